//! Tests of the Vault dev server harness on the real Vault binary. The server starts on loopback
//! with the requested plugin directory, and the CLI and the HTTP API reach it with the root
//! token. Dropping it stops the process and deletes its scratch folder.

use std::net::TcpStream;
use std::path::Path;

use e2e::vault::VaultDevServer;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::{json, Value};
use tempfile::TempDir;

/// Vault release pinned in `tests/vault/go.mod`.
const VAULT_VERSION: &str = "1.21.0";

fn start_server() -> (VaultDevServer, TempDir) {
    let plugin_dir = tempfile::tempdir().expect("failed to create a plugin directory");
    let server =
        VaultDevServer::start(plugin_dir.path()).expect("vault dev server failed to start");
    (server, plugin_dir)
}

#[test]
fn status_reports_unsealed_pinned_version() {
    let (server, _plugin_dir) = start_server();

    let output = server.cli(&["status", "-format=json"]);

    assert!(output.status.success(), "vault status failed: {output:?}");
    let status: Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("vault status printed invalid JSON ({error}): {output:?}"));
    assert_eq!(status["initialized"], json!(true), "vault status: {status}");
    assert_eq!(status["sealed"], json!(false), "vault status: {status}");
    assert_eq!(
        status["version"],
        json!(VAULT_VERSION),
        "vault status: {status}"
    );
}

#[test]
fn kv_round_trip_through_cli() {
    let (server, _plugin_dir) = start_server();

    let put = server.cli(&["kv", "put", "-mount=secret", "harness", "greeting=hello"]);
    assert!(put.status.success(), "vault kv put failed: {put:?}");

    let get = server.cli(&["kv", "get", "-mount=secret", "-field=greeting", "harness"]);
    assert!(get.status.success(), "vault kv get failed: {get:?}");
    assert_eq!(get.stdout, "hello", "vault kv get printed: {get:?}");

    let (status, body) = server.api("GET", "secret/data/harness", None);
    assert_eq!(status, 200, "GET secret/data/harness: {body}");
    assert_eq!(
        body["data"]["data"]["greeting"],
        json!("hello"),
        "GET secret/data/harness: {body}"
    );
}

#[test]
fn api_writes_with_json_body() {
    let (server, _plugin_dir) = start_server();

    let (status, body) = server.api(
        "POST",
        "secret/data/from-api",
        Some(json!({ "data": { "colour": "blue" } })),
    );
    assert_eq!(status, 200, "POST secret/data/from-api: {body}");

    let get = server.cli(&["kv", "get", "-mount=secret", "-field=colour", "from-api"]);
    assert_eq!(get.stdout, "blue", "vault kv get printed: {get:?}");

    // ureq rejects the LIST method, so the list goes as Vault's equivalent GET with list=true.
    let (status, body) = server.api("GET", "secret/metadata?list=true", None);
    assert_eq!(status, 200, "GET secret/metadata?list=true: {body}");
    assert_eq!(
        body["data"]["keys"],
        json!(["from-api"]),
        "GET secret/metadata?list=true: {body}"
    );
}

#[test]
fn cli_uses_root_token() {
    let (server, _plugin_dir) = start_server();

    let output = server.cli(&["token", "lookup", "-format=json"]);

    assert!(
        output.status.success(),
        "vault token lookup failed: {output:?}"
    );
    let lookup: Value = serde_json::from_str(&output.stdout).unwrap_or_else(|error| {
        panic!("vault token lookup printed invalid JSON ({error}): {output:?}")
    });
    assert_eq!(
        lookup["data"]["id"],
        json!(server.token()),
        "vault token lookup: {lookup}"
    );
    assert_eq!(
        lookup["data"]["policies"],
        json!(["root"]),
        "vault token lookup: {lookup}"
    );
}

#[test]
fn server_uses_given_plugin_dir() {
    let (server, plugin_dir) = start_server();

    // Vault resolves a plugin's command inside its plugin directory, so the error for a
    // missing file shows which directory the server was given.
    let sha256 = "0".repeat(64);
    let output = server.cli(&[
        "plugin",
        "register",
        &format!("-sha256={sha256}"),
        "-command=missing-plugin",
        "secret",
        "probe",
    ]);

    assert!(
        !output.status.success(),
        "registering a missing plugin succeeded: {output:?}"
    );
    let plugin_dir = plugin_dir
        .path()
        .canonicalize()
        .expect("plugin directory path");
    let expected = format!(
        "lstat {}/missing-plugin: no such file or directory",
        plugin_dir.display()
    );
    assert!(
        output.stderr.contains(&expected),
        "expected {expected:?} in: {output:?}"
    );
}

#[test]
fn log_keeps_server_output() {
    let (server, _plugin_dir) = start_server();

    let log = server.log();

    assert!(log.contains("Vault server started!"), "server log: {log}");
    assert!(
        log.contains("[TRACE]"),
        "server log has no trace lines: {log}"
    );
}

#[test]
fn drop_stops_server_and_cleans_up() {
    let (server, _plugin_dir) = start_server();
    let address = server.addr().trim_start_matches("http://").to_string();
    let pid = Pid::from_raw(i32::try_from(server.pid()).expect("pid fits in i32"));
    let scratch_dir = server.scratch_dir().to_path_buf();
    assert!(
        TcpStream::connect(&address).is_ok(),
        "nothing listens on {address} before drop"
    );

    drop(server);

    assert_eq!(
        kill(pid, None),
        Err(Errno::ESRCH),
        "vault process {pid} still exists after drop"
    );
    assert!(
        TcpStream::connect(&address).is_err(),
        "{address} still accepts connections after drop"
    );
    assert!(
        !scratch_dir.exists(),
        "{} still exists after drop",
        scratch_dir.display()
    );
}

#[test]
fn start_rejects_missing_plugin_dir() {
    let missing = Path::new("/nonexistent/vault-plugins");

    let error = match VaultDevServer::start(missing) {
        Ok(_) => panic!("vault dev server started with a missing plugin directory"),
        Err(error) => error,
    };

    assert_eq!(
        error.to_string(),
        "plugin directory /nonexistent/vault-plugins not found: create it before starting Vault"
    );
}
