//! Protocol tests that reach the Kong engine: a mount set up over the broker, requests that
//! read and write Vault's storage, a storage that fails, and messages larger than gRPC's
//! usual 4 MiB limit. The plugin binary runs as Vault starts it, and this file plays Vault.

mod protocol_vault;

use std::collections::HashMap;

use serde_json::{json, Value};
use tonic::transport::Channel;

use vault_plugin_secrets_kong::proto::pb;
use vault_plugin_secrets_kong::proto::pb::backend_client::BackendClient;

use protocol_vault::{announcement, BrokerStream, FakeBroker, Plugin, StorageCall, STEP_TIMEOUT};

/// A plugin mounted the way Vault mounts it: Setup over the broker, then Initialize.
struct Mount {
    plugin: Plugin,
    broker: FakeBroker,
    backend: BackendClient<Channel>,
    _stream: BrokerStream,
}

impl Mount {
    async fn start() -> Self {
        let plugin = Plugin::start().await;
        let channel = plugin.connect().await;
        let broker = FakeBroker::start(&plugin).await;
        let stream = BrokerStream::open(channel.clone()).await;
        stream.announce(announcement(1, &broker.socket)).await;
        let mut backend = BackendClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);

        let config = HashMap::from([("plugin_name".to_string(), "kong".to_string())]);
        let setup = backend
            .setup(pb::SetupArgs {
                broker_id: 1,
                config,
                backend_uuid: String::new(),
            })
            .await;
        assert_eq!(setup.unwrap().into_inner().err, "", "Setup failed");
        let initialize = backend
            .initialize(pb::InitializeArgs {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(initialize.err, None, "Initialize failed");

        Self {
            plugin,
            broker,
            backend,
            _stream: stream,
        }
    }

    async fn request(
        &mut self,
        operation: &str,
        path: &str,
        data: Value,
    ) -> pb::HandleRequestReply {
        let request = pb::Request {
            id: "7d1c0b4e".into(),
            operation: operation.into(),
            path: path.into(),
            data: data.to_string(),
            mount_point: "kong/".into(),
            mount_type: "kong".into(),
            ..Default::default()
        };
        let call = self.backend.handle_request(pb::HandleRequestArgs {
            storage_id: 0,
            request: Some(request),
        });
        let reply = tokio::time::timeout(STEP_TIMEOUT, call)
            .await
            .expect("HandleRequest returns in time");
        reply
            .unwrap_or_else(|status| {
                panic!(
                    "HandleRequest failed with {status:?}; stderr:\n{}",
                    self.plugin.output.stderr()
                )
            })
            .into_inner()
    }

    async fn existence(&mut self, operation: &str, path: &str) -> pb::HandleExistenceCheckReply {
        let request = pb::Request {
            operation: operation.into(),
            path: path.into(),
            data: "{}".into(),
            ..Default::default()
        };
        let args = pb::HandleExistenceCheckArgs {
            storage_id: 0,
            request: Some(request),
        };
        self.backend
            .handle_existence_check(args)
            .await
            .unwrap()
            .into_inner()
    }
}

fn response_data(reply: &pb::HandleRequestReply) -> Value {
    let response = reply
        .response
        .as_ref()
        .unwrap_or_else(|| panic!("no response in {reply:?}"));
    serde_json::from_str(&response.data)
        .unwrap_or_else(|error| panic!("response data is not JSON ({error}): {reply:?}"))
}

#[tokio::test]
async fn mount_reports_engine_special_paths() {
    let mut mount = Mount::start().await;

    let reply = mount
        .backend
        .special_paths(pb::Empty {})
        .await
        .unwrap()
        .into_inner();

    let paths = reply.paths.expect("no special paths");
    assert_eq!(paths.seal_wrap_storage, ["config/access"]);
}

#[tokio::test]
async fn config_write_reaches_vault_storage() {
    let mut mount = Mount::start().await;

    let existence = mount.existence("create", "config/access").await;
    let write = mount
        .request(
            "create",
            "config/access",
            json!({"baseurl": "http://127.0.0.1:8001"}),
        )
        .await;
    let read = mount.request("read", "config/access", json!(null)).await;

    assert_eq!(
        (existence.check_found, existence.exists, existence.err),
        (true, false, None)
    );
    assert_eq!(
        (write.response.is_none(), write.err.clone()),
        (true, None),
        "write reply: {write:?}"
    );
    let stored = mount
        .broker
        .storage
        .entries
        .lock()
        .unwrap()
        .get("config/access")
        .cloned();
    let stored: Value =
        serde_json::from_slice(&stored.expect("nothing stored at config/access")).unwrap();
    assert_eq!(
        stored["baseurl"], "http://127.0.0.1:8001",
        "stored: {stored}"
    );
    assert_eq!(
        response_data(&read)["baseurl"],
        "http://127.0.0.1:8001",
        "read reply: {read:?}"
    );
}

#[tokio::test]
async fn storage_error_reaches_the_caller() {
    let mut mount = Mount::start().await;
    *mount.broker.storage.failure.lock().unwrap() =
        Some("storage unavailable: raft leader lost".into());

    let reply = mount.request("read", "config/access", json!(null)).await;

    let err = reply
        .err
        .unwrap_or_else(|| panic!("no error in {:?}", reply.response));
    assert_eq!(err.err_type, 2, "error: {err:?}");
    assert!(
        err.err_msg
            .contains("storage unavailable: raft leader lost"),
        "error: {err:?}"
    );
    let calls = mount.broker.storage.calls.lock().unwrap().clone();
    assert_eq!(calls, [StorageCall::Get("config/access".into())]);
}

#[tokio::test]
async fn bad_input_is_error_response() {
    let mut mount = Mount::start().await;

    let reply = mount
        .request("create", "config/access", json!({"baseurl": "ftp://kong"}))
        .await;

    assert_eq!(reply.err, None, "reply: {reply:?}");
    let data = response_data(&reply);
    assert!(data["error"].is_string(), "no error text in {data}");
}

#[tokio::test]
async fn unknown_path_is_unsupported_path() {
    let mut mount = Mount::start().await;

    let existence = mount.existence("create", "nowhere/at/all").await;
    let reply = mount.request("read", "nowhere/at/all", json!(null)).await;

    assert_eq!(
        existence.err.map(|err| err.err_type),
        Some(6),
        "existence check"
    );
    assert_eq!(reply.err.map(|err| err.err_type), Some(6), "read");
}

#[tokio::test]
async fn root_help_has_openapi_document() {
    let mut mount = Mount::start().await;

    let reply = mount
        .request("help", "", json!({"requestResponsePrefix": "kong"}))
        .await;

    let data = response_data(&reply);
    assert!(data["help"].is_string(), "no help text in {data}");
    assert_eq!(
        data["openapi"]["openapi"], "3.0.2",
        "openapi: {}",
        data["openapi"]
    );
}

#[tokio::test]
async fn rollback_returns_nothing() {
    let mut mount = Mount::start().await;

    let reply = mount.request("rollback", "", json!({})).await;

    assert_eq!(
        reply,
        pb::HandleRequestReply {
            response: None,
            err: None
        }
    );
}

#[tokio::test]
async fn storage_entry_above_four_mib_is_read() {
    let mut mount = Mount::start().await;
    let padding = "x".repeat(6 * 1024 * 1024);
    let entry = json!({"baseurl": "http://127.0.0.1:8001", "padding": padding}).to_string();
    mount
        .broker
        .storage
        .entries
        .lock()
        .unwrap()
        .insert("config/access".into(), entry.into_bytes());

    let reply = mount.request("read", "config/access", json!(null)).await;

    assert_eq!(reply.err, None, "reply error");
    assert_eq!(response_data(&reply)["baseurl"], "http://127.0.0.1:8001");
}

#[tokio::test]
async fn request_above_four_mib_is_handled() {
    let mut mount = Mount::start().await;
    let token = "t".repeat(6 * 1024 * 1024);

    let reply = mount
        .request(
            "create",
            "config/access",
            json!({"baseurl": "http://127.0.0.1:8001", "token": token}),
        )
        .await;

    assert_eq!(
        (reply.response.is_none(), reply.err.clone()),
        (true, None),
        "reply: {reply:?}"
    );
    let calls = mount.broker.storage.calls.lock().unwrap().clone();
    let put = calls
        .iter()
        .find(|call| matches!(call, StorageCall::Put(key, _) if key == "config/access"));
    assert!(
        matches!(put, Some(StorageCall::Put(_, size)) if *size > 6 * 1024 * 1024),
        "no large put in {calls:?}"
    );
}
