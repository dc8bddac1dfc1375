//! Protocol tests of the plugin process itself: how it starts, the handshake line, mutual
//! TLS, the framework services, signals and how it stops. Each test starts the built binary
//! the way Vault does and plays Vault's side.

mod protocol_vault;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use vault_plugin_secrets_kong::proto::logical::plugin_version_client::PluginVersionClient;
use vault_plugin_secrets_kong::proto::pb;
use vault_plugin_secrets_kong::proto::pb::backend_client::BackendClient;
use vault_plugin_secrets_kong::proto::plugin::grpc_controller_client::GrpcControllerClient;
use vault_plugin_secrets_kong::proto::plugin::grpc_stdio_client::GrpcStdioClient;
use vault_plugin_secrets_kong::proto::plugin::Empty;

use protocol_vault::{
    pem, run_to_exit, vault_environment, vault_like_identity, Plugin, STEP_TIMEOUT,
};

/// The message for a start without Vault's cookie, exactly as the plugin prints it.
const NOT_STARTED_BY_VAULT: &str =
    "vault-plugin-secrets-kong: this program is a Vault plugin and runs \
    only when Vault starts it (VAULT_BACKEND_PLUGIN is not set). Register it with `vault plugin \
    register -sha256=<SHA-256 of this file> -version=<version> secret <name>` and enable it with \
    `vault secrets enable -path=kong <name>`; run it with --help to see its settings.";

fn environment_with(
    changes: &[(&str, Option<&str>)],
) -> (tempfile::TempDir, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut environment =
        vault_environment(&pem(vault_like_identity().certificate_der()), dir.path());
    for (key, value) in changes {
        environment.retain(|(existing, _)| existing != key);
        if let Some(value) = value {
            environment.push((key.to_string(), value.to_string()));
        }
    }
    (dir, environment)
}

async fn health_status(channel: tonic::transport::Channel) -> Result<i32, tonic::Status> {
    let request = HealthCheckRequest {
        service: "plugin".into(),
    };
    Ok(HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner()
        .status)
}

#[tokio::test]
async fn launch_without_cookie_explains_and_exits() {
    let (_dir, environment) = environment_with(&[("VAULT_BACKEND_PLUGIN", None)]);

    let (status, output) = run_to_exit(&environment).await;

    assert_eq!(status.code(), Some(1), "stderr: {}", output.stderr());
    assert_eq!(output.stdout(), "", "stdout must stay empty");
    assert_eq!(output.stderr(), NOT_STARTED_BY_VAULT);
}

#[tokio::test]
async fn launch_with_wrong_cookie_exits() {
    let (_dir, environment) = environment_with(&[("VAULT_BACKEND_PLUGIN", Some("0000"))]);

    let (status, output) = run_to_exit(&environment).await;

    assert_eq!(status.code(), Some(1), "stderr: {}", output.stderr());
    assert_eq!(output.stdout(), "", "stdout must stay empty");
    assert!(
        output
            .stderr()
            .contains("(VAULT_BACKEND_PLUGIN has an unexpected value)"),
        "stderr: {}",
        output.stderr()
    );
}

#[tokio::test]
async fn launch_offering_versions_three_four_exits() {
    let (_dir, environment) = environment_with(&[("PLUGIN_PROTOCOL_VERSIONS", Some("3,4"))]);

    let (status, output) = run_to_exit(&environment).await;

    assert_eq!(status.code(), Some(1), "stderr: {}", output.stderr());
    assert_eq!(output.stdout(), "", "stdout must stay empty");
    assert_eq!(
        output.stderr(),
        "vault-plugin-secrets-kong: Vault offered backend plugin protocol versions \"3,4\", but this \
         plugin speaks only version 5, which Vault 1.12 and newer offer: upgrade Vault"
    );
}

#[tokio::test]
async fn launch_with_invalid_setting_logs_error() {
    let (_dir, environment) = environment_with(&[("KONG_SECRETS_MAX_CPU_TIME", Some("soon"))]);

    let (status, output) = run_to_exit(&environment).await;

    assert_eq!(status.code(), Some(2), "stderr: {}", output.stderr());
    assert_eq!(output.stdout(), "", "stdout must stay empty");
    let lines = output.stderr_lines();
    assert_eq!(lines.len(), 1, "one log line: {lines:?}");
    let line: serde_json::Value =
        serde_json::from_str(&lines[0]).expect("the line is JSON that Vault's logger parses");
    assert_eq!(line["@level"], "error", "line: {line}");
    assert_eq!(
        line["@message"],
        "invalid plugin arguments or environment: fix the -args or -env given to vault plugin register",
        "line: {line}"
    );
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("--max-cpu-time") && error.contains("soon"),
        "the error names the setting and the value: {line}"
    );
}

#[tokio::test]
async fn launch_by_hand_prints_version() {
    let output = tokio::process::Command::new(protocol_vault::PLUGIN_BINARY)
        .arg("--version")
        .env_clear()
        .output()
        .await
        .unwrap();

    assert!(output.status.success(), "--version failed: {output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("vault-plugin-secrets-kong v{}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn handshake_line_has_vault_format() {
    let plugin = Plugin::start().await;
    let fields: Vec<&str> = plugin.handshake.line.trim_end().split('|').collect();

    assert!(
        plugin.handshake.line.ends_with('\n'),
        "line: {:?}",
        plugin.handshake.line
    );
    assert_eq!(
        fields[..3],
        ["1", "5", "unix"],
        "line: {:?}",
        plugin.handshake.line
    );
    assert_eq!(fields[4], "grpc", "line: {:?}", plugin.handshake.line);
    assert!(
        plugin.handshake.socket.is_absolute(),
        "socket: {:?}",
        plugin.handshake.socket
    );
    assert!(
        plugin.handshake.socket.starts_with(plugin.dir.path()),
        "socket is not in TMPDIR: {:?}",
        plugin.handshake.socket
    );
    assert!(
        !fields[5].ends_with('='),
        "certificate is padded: {}",
        fields[5]
    );

    let mode = std::fs::metadata(&plugin.handshake.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode is {:o}", mode & 0o777);
}

#[tokio::test]
async fn handshake_certificate_suits_go_clients() {
    use x509_parser::extensions::GeneralName;

    let plugin = Plugin::start().await;
    let (_, certificate) =
        x509_parser::parse_x509_certificate(&plugin.handshake.certificate_der).unwrap();

    let names = certificate
        .subject_alternative_name()
        .unwrap()
        .expect("certificate has no SAN")
        .value;
    assert_eq!(names.general_names, [GeneralName::DNSName("localhost")]);
    let usage = certificate
        .extended_key_usage()
        .unwrap()
        .expect("certificate has no EKU")
        .value;
    assert!(usage.server_auth, "certificate lacks serverAuth");
    assert!(usage.client_auth, "certificate lacks clientAuth");
    assert!(
        certificate.validity().is_valid(),
        "certificate is not valid now: {:?}",
        certificate.validity()
    );
}

#[tokio::test]
async fn tls_rejects_client_with_other_certificate() {
    let plugin = Plugin::start().await;
    let stranger = vault_like_identity();

    let result = match plugin.connect_as(&stranger).await {
        Ok(channel) => health_status(channel)
            .await
            .map_err(|status| status.to_string()),
        Err(error) => Err(error),
    };

    assert!(
        result.is_err(),
        "a client with another certificate got an answer: {result:?}"
    );
    let vault_status = health_status(plugin.connect().await).await;
    assert_eq!(
        vault_status.ok(),
        Some(ServingStatus::Serving as i32),
        "Vault's own connection failed after the rejection"
    );
    assert!(
        plugin
            .output
            .stderr()
            .contains("rejected a connection on the plugin socket: TLS handshake failed"),
        "stderr: {}",
        plugin.output.stderr()
    );
}

#[tokio::test]
async fn health_reports_plugin_serving() {
    let plugin = Plugin::start().await;

    let status = health_status(plugin.connect().await).await;

    assert_eq!(status.ok(), Some(ServingStatus::Serving as i32));
}

#[tokio::test]
async fn version_reports_v_prefixed_crate_version() {
    let plugin = Plugin::start().await;
    let mut client = PluginVersionClient::new(plugin.connect().await);

    let reply = client
        .version(vault_plugin_secrets_kong::proto::logical::Empty {})
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        reply.plugin_version,
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn type_is_logical_backend() {
    let plugin = Plugin::start().await;
    let mut client = BackendClient::new(plugin.connect().await);

    let reply = client.r#type(pb::Empty {}).await.unwrap().into_inner();

    assert_eq!(reply.r#type, 1);
}

#[tokio::test]
async fn stdio_stream_stays_open_silently() {
    let plugin = Plugin::start().await;
    let mut stream = GrpcStdioClient::new(plugin.connect().await)
        .stream_stdio(())
        .await
        .unwrap()
        .into_inner();

    let first = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;

    assert!(
        first.is_err(),
        "the stdio stream yielded or ended: {first:?}"
    );
}

#[tokio::test]
async fn multiplexing_support_is_unimplemented() {
    let plugin = Plugin::start().await;
    let mut client = tonic::client::Grpc::new(plugin.connect().await);
    client.ready().await.unwrap();

    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/pluginutil.multiplexing.PluginMultiplexing/MultiplexingSupport",
    );
    let codec = tonic_prost::ProstCodec::<pb::Empty, pb::Empty>::default();
    let result = client
        .unary(tonic::Request::new(pb::Empty {}), path, codec)
        .await;

    assert_eq!(
        result.map_err(|status| status.code()).err(),
        Some(tonic::Code::Unimplemented)
    );
}

#[tokio::test]
async fn shutdown_exits_and_removes_socket() {
    let mut plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let _stdio = GrpcStdioClient::new(channel.clone())
        .stream_stdio(())
        .await
        .unwrap();

    let reply = GrpcControllerClient::new(channel).shutdown(Empty {}).await;
    let status = plugin.wait_exit(Duration::from_secs(2)).await;

    assert!(reply.is_ok(), "Shutdown failed: {reply:?}");
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "stderr: {}",
        plugin.output.stderr()
    );
    assert!(
        !plugin.handshake.socket.exists(),
        "socket {:?} is left behind",
        plugin.handshake.socket
    );
    assert_eq!(
        plugin.output.stdout(),
        plugin.handshake.line,
        "stdout has more than the handshake line"
    );
}

#[tokio::test]
async fn closed_connection_stops_plugin() {
    let mut plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    assert!(
        health_status(channel.clone()).await.is_ok(),
        "the plugin does not answer"
    );

    drop(channel);
    let status = plugin.wait_exit(Duration::from_secs(5)).await;

    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "stderr: {}",
        plugin.output.stderr()
    );
}

#[tokio::test]
async fn sigint_is_ignored() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let mut plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let pid = Pid::from_raw(plugin.child.id().unwrap() as i32);

    kill(pid, Signal::SIGINT).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        plugin.child.try_wait().unwrap().is_none(),
        "the plugin exited on SIGINT"
    );
    assert_eq!(
        health_status(channel).await.ok(),
        Some(ServingStatus::Serving as i32)
    );
}

#[tokio::test]
async fn sigterm_stops_plugin() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let mut plugin = Plugin::start().await;
    let pid = Pid::from_raw(plugin.child.id().unwrap() as i32);

    kill(pid, Signal::SIGTERM).unwrap();
    let status = plugin.wait_exit(STEP_TIMEOUT).await;

    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "stderr: {}",
        plugin.output.stderr()
    );
    assert!(
        !plugin.handshake.socket.exists(),
        "socket {:?} is left behind",
        plugin.handshake.socket
    );
}

#[tokio::test]
async fn log_lines_have_vault_json_shape() {
    let mut plugin = Plugin::start().await;
    GrpcControllerClient::new(plugin.connect().await)
        .shutdown(Empty {})
        .await
        .unwrap();
    plugin.wait_exit(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let lines = protocol_vault::parse_log_lines(&plugin.output);

    let listening = lines
        .iter()
        .find(|line| line["@message"] == "plugin listening");
    let listening = listening.unwrap_or_else(|| panic!("no start line in {lines:?}"));
    assert_eq!(listening["@level"], "info", "line: {listening}");
    assert_eq!(listening["@module"], "kong", "line: {listening}");
    assert_eq!(
        listening["version"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "line: {listening}"
    );
}
