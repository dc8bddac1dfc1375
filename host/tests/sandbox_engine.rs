//! The Kong engine inside the sandbox: `config/access` pointed where the operator's policy
//! or limits stop it. Each case asserts the error the Vault user sees and that the next
//! request is served. The Kong emulator listens on 127.0.0.1. 127.0.0.2 is the origin the
//! engine must never reach, and names come from the settings' static host table.

mod sandbox_support;

use std::sync::Arc;
use std::time::Duration;

use kong_emulator::{Emulator, Options};
use sandbox_support::{settings, TestServer};
use serde_json::{json, Value};
use vault_plugin_secrets_kong::runtime::{wit, Runtime};
use vault_plugin_secrets_kong::services::{MemoryStorage, MountServices, StaticSystemView};
use vault_plugin_secrets_kong::settings::Settings;

/// The embedded engine with one mount's in-memory services, next to an emulator.
struct Engine {
    kong: Emulator,
    runtime: Arc<Runtime>,
    services: MountServices,
}

impl Engine {
    fn start(settings: Settings) -> Engine {
        let kong = Emulator::start(Options::default()).expect("the Kong emulator starts");
        let runtime = Runtime::new(&settings).expect("the embedded engine loads");
        let services = MountServices {
            storage: Arc::new(MemoryStorage::default()),
            system_view: Arc::new(StaticSystemView::default()),
        };
        Engine {
            kong,
            runtime,
            services,
        }
    }

    async fn call(
        &self,
        operation: wit::Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<wit::Response>, wit::Error> {
        let request = wit::Request {
            id: "0e6c1f0a-5b8e-4c5f-a0f1-6f3d1f9b2a77".to_string(),
            operation,
            path: path.to_string(),
            data: data.to_string(),
            secret: None,
            headers: vec![],
            mount_point: "kong/".to_string(),
            mount_type: "vault-plugin-secrets-kong".to_string(),
            mount_accessor: "kong_5e1f7a2b".to_string(),
            display_name: "token".to_string(),
            entity_id: String::new(),
            client_token_accessor: String::new(),
        };
        self.runtime
            .handle_request(&self.services, request)
            .await
            .unwrap_or_else(|error| panic!("the runtime failed on {path}: {error}"))
    }

    async fn write(&self, path: &str, data: Value) {
        let result = self.call(wit::Operation::Update, path, data).await;
        assert!(result.is_ok(), "writing {path} failed: {result:?}");
    }

    /// Configures `baseurl`, adds the role `alice` and the consumer in Kong.
    async fn ready(&self, baseurl: &str) {
        self.write(
            "config/access",
            json!({ "baseurl": baseurl, "request_timeout": "10s" }),
        )
        .await;
        self.write("consumers/alice", json!({})).await;
        self.kong
            .seed("default", "consumers", json!({ "username": "alice" }))
            .expect("the emulator stores the consumer");
    }

    /// Reads `creds/alice` and returns the error's status and message.
    async fn creds_error(&self) -> (u16, String) {
        match self
            .call(wit::Operation::Read, "creds/alice", json!({}))
            .await
        {
            Err(wit::Error::Coded(wit::CodedError { status, message })) => (status, message),
            other => panic!("creds/alice returned {other:?}"),
        }
    }

    /// Asserts that the engine still issues a credential once the fault is gone.
    async fn assert_still_issues(&self) {
        let result = self
            .call(wit::Operation::Read, "creds/alice", json!({}))
            .await;
        let issued = matches!(&result, Ok(Some(response)) if response.secret.is_some());
        assert!(issued, "creds/alice after the failure returned {result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_name_in_denied_network_is_403() {
    let mut settings = settings(&["--denied-networks=127.0.0.1/32"]);
    settings.static_hosts.insert(
        "kong.internal".to_string(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let engine = Engine::start(settings);
    let port = engine
        .kong
        .admin_url()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let baseurl = format!("http://kong.internal:{port}");
    engine.ready(&baseurl).await;

    let (status, message) = engine.creds_error().await;
    assert_eq!(status, 403, "{message}");
    let reason = format!(
        "the plugin's outbound policy denied http://kong.internal:{port}: kong.internal resolves to \
         127.0.0.1, which is in the denied network 127.0.0.1/32; a Vault operator can remove it \
         from --denied-networks or KONG_SECRETS_DENIED_NETWORKS"
    );
    assert!(
        message.ends_with(&reason),
        "the user does not see the host's reason: {message}"
    );
    assert!(
        engine.kong.requests().is_empty(),
        "Kong was reached: {:?}",
        engine.kong.requests()
    );

    let config = engine
        .call(wit::Operation::Read, "config/access", json!({}))
        .await;
    assert!(
        matches!(config, Ok(Some(_))),
        "the next request failed: {config:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_redirect_to_other_origin_not_followed() {
    let elsewhere = TestServer::start("127.0.0.2").await;
    let engine = Engine::start(settings(&[]));
    engine.ready(&engine.kong.admin_url()).await;
    engine
        .kong
        .faults()
        .redirect_next(1, elsewhere.url("/consumers/alice/key-auth"));

    let (status, message) = engine.creds_error().await;
    assert_eq!(status, 502, "{message}");
    assert!(message.contains("307"), "{message}");
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.received()
    );
    engine.assert_still_issues().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_slow_kong_clamped_by_operator() {
    let engine = Engine::start(settings(&["--max-first-byte-timeout=300ms"]));
    engine.ready(&engine.kong.admin_url()).await;
    // The engine allows 10 s; the operator's 300 ms maximum ends the wait first.
    engine.kong.faults().set_latency(Duration::from_secs(3));

    let (status, message) = engine.creds_error().await;
    assert_eq!(status, 504, "{message}");
    engine.kong.faults().clear();
    engine.assert_still_issues().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_body_over_operator_cap_is_502() {
    let engine = Engine::start(settings(&["--max-response-body-bytes=64KiB"]));
    engine.ready(&engine.kong.admin_url()).await;
    engine.kong.faults().oversized_next(1, 1024 * 1024);

    let (status, message) = engine.creds_error().await;
    assert_eq!(status, 502, "{message}");
    let url = format!("{}/consumers/alice/key-auth", engine.kong.admin_url());
    assert!(
        message.starts_with(&format!("response from {url} is larger than ")),
        "{message}"
    );
    engine.assert_still_issues().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_memory_cap_fails_clearly() {
    // Far below what the engine needs to start, so its first allocation fails.
    let engine = Engine::start(settings(&["--max-memory-bytes=64KiB"]));
    let request = wit::Request {
        id: String::new(),
        operation: wit::Operation::Read,
        path: "config/access".to_string(),
        data: "{}".to_string(),
        secret: None,
        headers: vec![],
        mount_point: "kong/".to_string(),
        mount_type: String::new(),
        mount_accessor: String::new(),
        display_name: String::new(),
        entity_id: String::new(),
        client_token_accessor: String::new(),
    };
    let error = engine
        .runtime
        .handle_request(&engine.services, request)
        .await
        .expect_err("the engine cannot run in 64 KiB");
    assert_eq!(
        error.to_string(),
        "the engine ran out of memory: it needed more than 65536 bytes; a Vault operator can raise --max-memory-bytes"
    );
}
