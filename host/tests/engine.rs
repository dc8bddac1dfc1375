//! Component tests of the Kong engine: the release component embedded in the host, run by the
//! host runtime with in-memory storage, against the Kong emulator on 127.0.0.1.
//!
//! Each test starts its own emulator and a runtime whose outbound policy allows only that
//! emulator's Admin API origin. The engine reads the wall clock, so tests of the max TTL
//! backdate a lease's issue time instead of waiting, and tests of Kong-side expiry move the
//! emulator's clock.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use kong_emulator::{AdminToken, Emulator, Options};
use serde_json::{json, Value};
use vault_plugin_secrets_kong::runtime::{wit, Runtime};
use vault_plugin_secrets_kong::services::{MemoryStorage, MountServices, StaticSystemView};
use vault_plugin_secrets_kong::settings::Settings;

mod sandbox_support;

/// Mount TTLs the system view reports: Vault's defaults of 768 hours.
const MOUNT_TTL_SECONDS: u64 = 768 * 3600;

/// The request id every test request carries, which the engine puts in a Kong tag.
const REQUEST_ID: &str = "5f0c6f3e-8d1b-4c1e-9a51-0d6f2b7c9e10";

/// The engine, its mount services and the emulator it talks to.
struct Harness {
    kong: Emulator,
    runtime: Arc<Runtime>,
    services: MountServices,
    storage: Arc<MemoryStorage>,
}

impl Harness {
    /// Starts an emulator with default options and a runtime that may reach only it.
    fn start() -> Harness {
        Harness::with_options(Options::default(), &[])
    }

    /// Starts an emulator with `options`, and a runtime that may reach its Admin API origin
    /// and the extra `origins`.
    fn with_options(options: Options, origins: &[&str]) -> Harness {
        let kong = Emulator::start(options).expect("the Kong emulator starts");
        let mut allowed = vec![kong.admin_url()];
        allowed.extend(origins.iter().map(|origin| origin.to_string()));
        let settings = Settings::try_parse_from([
            "vault-plugin-secrets-kong",
            "--allowed-origins",
            &allowed.join(","),
        ])
        .expect("valid settings");
        let runtime = Runtime::new(&settings).expect("the embedded engine loads");

        let storage = Arc::new(MemoryStorage::default());
        let services = MountServices {
            storage: storage.clone(),
            system_view: Arc::new(StaticSystemView {
                default_lease_ttl_seconds: MOUNT_TTL_SECONDS,
                max_lease_ttl_seconds: MOUNT_TTL_SECONDS,
                vault_version: "1.21.0".to_string(),
            }),
        };
        Harness {
            kong,
            runtime,
            services,
            storage,
        }
    }

    /// Sends one request; a failure of the runtime itself (trap, limit) fails the test.
    async fn call(&self, request: wit::Request) -> Result<Option<wit::Response>, wit::Error> {
        let label = format!("{:?} {:?}", request.operation, request.path);
        self.runtime
            .handle_request(&self.services, request)
            .await
            .unwrap_or_else(|error| panic!("the runtime failed on {label}: {error}"))
    }

    /// Sends one request that must succeed.
    async fn ok(&self, request: wit::Request) -> Option<wit::Response> {
        let label = format!("{:?} {:?}", request.operation, request.path);
        self.call(request)
            .await
            .unwrap_or_else(|error| panic!("{label} failed: {error:?}"))
    }

    /// Sends one request that must fail, and returns the error.
    async fn fail(&self, request: wit::Request) -> wit::Error {
        let label = format!("{:?} {:?}", request.operation, request.path);
        match self.call(request).await {
            Ok(response) => panic!("{label} succeeded: {response:?}"),
            Err(error) => error,
        }
    }

    /// Reads `path` and returns the response data.
    async fn read(&self, path: &str) -> Option<Value> {
        self.ok(request(wit::Operation::Read, path, json!({})))
            .await
            .map(|response| data(&response))
    }

    async fn write(&self, path: &str, body: Value) -> Option<wit::Response> {
        self.ok(request(wit::Operation::Update, path, body)).await
    }

    /// Points the engine at the emulator.
    async fn configure(&self) {
        self.write(
            "config/access",
            json!({ "baseurl": self.kong.admin_url(), "request_timeout": "2s" }),
        )
        .await;
    }

    /// Creates a consumer in Kong and returns its id.
    fn add_kong_consumer(&self, username: &str) -> String {
        let consumer = self
            .kong
            .seed("default", "consumers", json!({ "username": username }))
            .expect("the emulator stores the consumer");
        consumer["id"].as_str().expect("consumer id").to_string()
    }

    /// Configures the engine, creates `username` in Kong and an entry for it.
    async fn ready(&self, username: &str, role: Value) -> String {
        self.configure().await;
        self.write(&format!("consumers/{username}"), role).await;
        self.add_kong_consumer(username)
    }

    /// Reads `creds/<username>` and returns the data and the lease.
    async fn issue(&self, username: &str) -> (Value, wit::Secret) {
        let response = self
            .ok(request(
                wit::Operation::Read,
                &format!("creds/{username}"),
                json!({}),
            ))
            .await
            .expect("creds returns a response");
        let secret = response.secret.clone().expect("creds returns a lease");
        (data(&response), secret)
    }

    /// Sends a renew or revoke of `secret`, as Vault does.
    async fn lease(
        &self,
        operation: wit::Operation,
        username: &str,
        secret: &wit::Secret,
    ) -> Result<Option<wit::Response>, wit::Error> {
        let mut request = request(operation, &format!("creds/{username}"), json!({}));
        request.secret = Some(secret.clone());
        self.call(request).await
    }

    /// Sends `method path` to the Admin API directly, as an operator would.
    fn admin(&self, method: &str, path: &str) -> u16 {
        http_status(&self.kong.admin_url(), method, path, &[])
    }

    /// Sends a request carrying `key` to the proxy and returns the status.
    fn proxy_status(&self, key: &str) -> u16 {
        http_status(
            &self.kong.proxy_url(),
            "GET",
            "/anything",
            &[("apikey", key)],
        )
    }
}

/// Builds a request as the protocol layer would.
fn request(operation: wit::Operation, path: &str, data: Value) -> wit::Request {
    wit::Request {
        id: REQUEST_ID.to_string(),
        operation,
        path: path.to_string(),
        data: data.to_string(),
        secret: None,
        headers: vec![],
        mount_point: "kong/".to_string(),
        mount_type: "kong".to_string(),
        mount_accessor: "kong_7e1d2c3b".to_string(),
        display_name: "token".to_string(),
        entity_id: String::new(),
        client_token_accessor: String::new(),
    }
}

/// Decodes the JSON data of a response.
fn data(response: &wit::Response) -> Value {
    let text = response.data.as_deref().expect("the response has data");
    serde_json::from_str(text).expect("response data is JSON")
}

fn internal_data(secret: &wit::Secret) -> Value {
    serde_json::from_str(&secret.internal_data).expect("internal data is JSON")
}

/// Sends one HTTP/1.1 request to a loopback server and returns the status.
fn http_status(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let address = base.strip_prefix("http://").expect("a plain http base URL");
    assert!(
        address.starts_with("127.0.0.1:"),
        "tests only talk to loopback, not {address}"
    );
    let mut stream = TcpStream::connect(address).expect("connect to the emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-length: 0\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response.split(' ').nth(1).unwrap_or_default();
    status
        .parse()
        .unwrap_or_else(|_| panic!("no status in {response:?}"))
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs()
}

fn bad_request(error: &wit::Error) -> &str {
    match error {
        wit::Error::BadRequest(message) => message,
        other => panic!("expected a bad request, got {other:?}"),
    }
}

fn coded(error: &wit::Error) -> (u16, &str) {
    match error {
        wit::Error::Coded(coded) => (coded.status, &coded.message),
        other => panic!("expected a coded error, got {other:?}"),
    }
}

// config/access

#[tokio::test]
async fn config_write_read_delete() {
    let harness = Harness::start();
    let url = harness.kong.admin_url();
    let written = harness
        .write(
            "config/access",
            json!({ "baseurl": url, "token": "s3cr3t", "token_header": "X-Admin", "request_timeout": "1m" }),
        )
        .await;
    assert!(
        written.is_none(),
        "a write returns no response: {written:?}"
    );

    let read = harness.read("config/access").await;
    assert_eq!(
        read,
        Some(
            json!({ "baseurl": url, "token_set": true, "token_header": "X-Admin", "request_timeout": 60 })
        )
    );

    harness
        .ok(request(wit::Operation::Delete, "config/access", json!({})))
        .await;
    assert_eq!(
        harness.read("config/access").await,
        None,
        "read after delete"
    );
    assert!(
        harness.storage.snapshot().is_empty(),
        "storage after delete: {:?}",
        harness.storage.snapshot()
    );
}

#[tokio::test]
async fn config_write_changes_named_fields() {
    let harness = Harness::start();
    harness.configure().await;
    harness
        .write("config/access", json!({ "token_header": "Kong-Token" }))
        .await;

    let read = harness.read("config/access").await.expect("config exists");
    assert_eq!(read["baseurl"], json!(harness.kong.admin_url()), "{read}");
    assert_eq!(read["request_timeout"], json!(2), "{read}");
    assert_eq!(read["token_header"], json!("Kong-Token"), "{read}");
}

#[tokio::test]
async fn config_rejects_bad_baseurl() {
    let harness = Harness::start();
    let error = harness
        .fail(request(
            wit::Operation::Update,
            "config/access",
            json!({ "baseurl": "kong.internal:8001" }),
        ))
        .await;
    assert_eq!(
        bad_request(&error),
        "invalid baseurl \"kong.internal:8001\": it has no scheme; start it with http:// or https://; use the Admin API's URL, such as http://127.0.0.1:8001"
    );

    let error = harness
        .fail(request(
            wit::Operation::Update,
            "config/access",
            json!({ "token": "t" }),
        ))
        .await;
    assert_eq!(
        bad_request(&error),
        "missing baseurl: the first write to config/access must set it, such as baseurl=http://127.0.0.1:8001"
    );
}

#[tokio::test]
async fn config_existence_check() {
    let harness = Harness::start();
    let check = || async {
        harness
            .runtime
            .handle_existence_check(
                &harness.services,
                request(wit::Operation::Update, "config/access", json!({})),
            )
            .await
            .expect("the existence check runs")
    };
    assert!(
        matches!(
            check().await,
            Ok(wit::Existence {
                check_found: true,
                exists: false
            })
        ),
        "before write"
    );
    harness.configure().await;
    assert!(
        matches!(
            check().await,
            Ok(wit::Existence {
                check_found: true,
                exists: true
            })
        ),
        "after write"
    );
}

// consumers/

#[tokio::test]
async fn consumer_write_read_list_delete() {
    let harness = Harness::start();
    harness
        .write("consumers/alice", json!({ "ttl": "20s", "max_ttl": "1h" }))
        .await;
    harness.write("consumers/bob", json!({ "ttl": 30 })).await;

    assert_eq!(
        harness.read("consumers/alice").await,
        Some(json!({ "username": "alice", "ttl": 20, "max_ttl": 3600 }))
    );
    let listed = harness
        .ok(request(wit::Operation::List, "consumers/", json!({})))
        .await;
    assert_eq!(
        listed.map(|response| data(&response)),
        Some(json!({ "keys": ["alice", "bob"] }))
    );

    harness
        .ok(request(
            wit::Operation::Delete,
            "consumers/alice",
            json!({}),
        ))
        .await;
    assert_eq!(
        harness.read("consumers/alice").await,
        None,
        "read after delete"
    );
}

#[tokio::test]
async fn consumer_write_changes_named_fields() {
    let harness = Harness::start();
    harness
        .write("consumers/alice", json!({ "ttl": "1h", "max_ttl": "2h" }))
        .await;
    harness
        .write("consumers/alice", json!({ "max_ttl": "3h" }))
        .await;
    assert_eq!(
        harness.read("consumers/alice").await,
        Some(json!({ "username": "alice", "ttl": 3600, "max_ttl": 10800 }))
    );
}

#[tokio::test]
async fn consumer_ttl_above_max_rejected() {
    let harness = Harness::start();
    let error = harness
        .fail(request(
            wit::Operation::Update,
            "consumers/alice",
            json!({ "ttl": "2h", "max_ttl": "1h" }),
        ))
        .await;
    assert_eq!(
        bad_request(&error),
        "ttl 7200s is greater than max_ttl 3600s; lower ttl or raise max_ttl"
    );
}

#[tokio::test]
async fn consumer_read_missing_has_no_response() {
    let harness = Harness::start();
    let response = harness
        .call(request(wit::Operation::Read, "consumers/nobody", json!({})))
        .await;
    assert!(matches!(response, Ok(None)), "{response:?}");
}

#[tokio::test]
async fn consumer_names_kong_accepts() {
    let harness = Harness::start();
    harness.configure().await;
    let names = ["bob smith", "alice@example.com", "team/alice", "zoë"];
    for name in names {
        harness
            .write(&format!("consumers/{name}"), json!({ "ttl": 60 }))
            .await;
        harness.add_kong_consumer(name);
        let (data, _) = harness.issue(name).await;
        let key = data["token"].as_str().expect("a key");
        assert_eq!(harness.proxy_status(key), 200, "key of {name:?}");
    }

    let listed = harness
        .ok(request(wit::Operation::List, "consumers/", json!({})))
        .await;
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(
        listed.map(|response| data(&response)["keys"].clone()),
        Some(json!(expected))
    );

    let paths: Vec<String> = harness
        .kong
        .requests()
        .iter()
        .filter(|request| request.method == "POST")
        .map(|request| request.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/consumers/bob%20smith/key-auth",
            "/consumers/alice%40example.com/key-auth",
            "/consumers/team%2Falice/key-auth",
            "/consumers/zo%C3%AB/key-auth",
        ]
    );
}

// creds/

#[tokio::test]
async fn creds_key_works_until_revoked() {
    let harness = Harness::start();
    let consumer_id = harness
        .ready("alice", json!({ "ttl": "1h", "max_ttl": "2h" }))
        .await;

    let (data, secret) = harness.issue("alice").await;
    let key = data["token"]
        .as_str()
        .expect("token is a string")
        .to_string();
    let credential_id = data["id"].as_str().expect("id is a string").to_string();
    assert_eq!(
        data.as_object().map(|data| data.len()),
        Some(2),
        "data holds token and id only: {data}"
    );
    assert_eq!(harness.proxy_status(&key), 200, "a fresh key is accepted");

    assert_eq!(secret.ttl_seconds, 3600, "{secret:?}");
    assert_eq!(secret.max_ttl_seconds, 7200, "{secret:?}");
    assert!(secret.renewable, "{secret:?}");
    let internal = internal_data(&secret);
    assert_eq!(internal["secret_type"], json!("token"), "{internal}");
    assert_eq!(
        internal["credential_id"],
        json!(credential_id),
        "{internal}"
    );
    assert_eq!(internal["consumer_id"], json!(consumer_id), "{internal}");
    assert_eq!(internal["role"], json!("alice"), "{internal}");
    assert!(
        !secret.internal_data.contains(&key),
        "internal data holds the key: {internal}"
    );

    let revoked = harness
        .lease(wit::Operation::Revoke, "alice", &secret)
        .await;
    assert!(matches!(revoked, Ok(None)), "{revoked:?}");
    assert_eq!(harness.proxy_status(&key), 401, "a revoked key is rejected");
    assert!(
        harness.kong.key_auth_credentials().is_empty(),
        "{:?}",
        harness.kong.key_auth_credentials()
    );
}

#[tokio::test]
async fn creds_key_expires_in_kong() {
    let harness = Harness::start();
    harness
        .ready("alice", json!({ "ttl": "10m", "max_ttl": "1h" }))
        .await;
    let (data, _) = harness.issue("alice").await;
    let key = data["token"].as_str().unwrap().to_string();

    harness.kong.advance_clock(Duration::from_secs(3599));
    assert_eq!(harness.proxy_status(&key), 200, "just before the max TTL");
    harness.kong.advance_clock(Duration::from_secs(2));
    assert_eq!(harness.proxy_status(&key), 401, "after the max TTL");
}

#[tokio::test]
async fn creds_sends_tags_and_kong_ttl() {
    let harness = Harness::start();
    harness
        .ready("alice", json!({ "ttl": "1h", "max_ttl": "2h" }))
        .await;
    harness.issue("alice").await;

    let posts: Vec<_> = harness
        .kong
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/consumers/alice/key-auth");
    assert_eq!(
        posts[0].json(),
        Some(json!({
            "tags": ["vault", "vault-role-alice", "vault-mount-kong_7e1d2c3b", format!("vault-request-{REQUEST_ID}")],
            "ttl": 7200,
        }))
    );

    let stored = harness.kong.key_auth_credentials();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let ttl = stored[0]["ttl"].as_u64().expect("the key has a Kong ttl");
    assert!((7199..=7200).contains(&ttl), "Kong ttl {ttl}");
}

#[tokio::test]
async fn creds_zero_ttls_use_mount_values() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    let (_, secret) = harness.issue("alice").await;
    assert_eq!(
        (secret.ttl_seconds, secret.max_ttl_seconds),
        (MOUNT_TTL_SECONDS, MOUNT_TTL_SECONDS)
    );
}

#[tokio::test]
async fn creds_sends_admin_token_header() {
    let options = Options {
        admin_token: Some(AdminToken::new("s3cr3t-admin")),
        ..Options::default()
    };
    let harness = Harness::with_options(options, &[]);
    harness.ready("alice", json!({})).await;

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let message = bad_request(&error);
    assert!(message.starts_with("kong returned 401"), "{message}");
    assert!(
        message.ends_with("; check token and token_header in config/access"),
        "{message}"
    );

    harness
        .write("config/access", json!({ "token": "s3cr3t-admin" }))
        .await;
    let (data, _) = harness.issue("alice").await;
    assert!(data["token"].is_string(), "{data}");
    let last = harness.kong.requests().pop().unwrap();
    assert_eq!(
        last.header("kong-admin-token"),
        Some("s3cr3t-admin"),
        "{last:?}"
    );
}

#[tokio::test]
async fn creds_db_less_node_explained() {
    let options = Options {
        db_less: true,
        ..Options::default()
    };
    let harness = Harness::with_options(options, &[]);
    harness.ready("alice", json!({})).await;

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let message = bad_request(&error);
    assert!(
        message.starts_with("kong returned 405 (operation unsupported) for POST "),
        "{message}"
    );
    assert!(
        message.ends_with("; this Kong node has no database (DB-less or a data plane), so point baseurl in config/access at a node with one"),
        "{message}"
    );
}

#[tokio::test]
async fn creds_missing_entry_config_or_consumer() {
    let harness = Harness::start();
    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    assert_eq!(
        bad_request(&error),
        "no consumer entry named \"alice\"; write consumers/alice (ttl and max_ttl are optional) before reading credentials"
    );

    harness.write("consumers/alice", json!({})).await;
    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    assert_eq!(
        bad_request(&error),
        "kong access is not configured; write config/access with baseurl (and token if the Admin API needs one) first"
    );

    harness.configure().await;
    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    assert_eq!(
        bad_request(&error),
        format!(
            "consumer \"alice\" was not found in Kong at {}; create it in Kong first (for example PUT /consumers/alice on the Admin API), or fix baseurl in config/access",
            harness.kong.admin_url()
        )
    );
}

// Renew

#[tokio::test]
async fn renew_extends_and_moves_kong_expiry() {
    let harness = Harness::start();
    harness
        .ready("alice", json!({ "ttl": "10m", "max_ttl": "1h" }))
        .await;
    let (data, mut secret) = harness.issue("alice").await;
    // Vault issued the lease 20 minutes ago.
    secret.issue_time = Some(wit_time(now_seconds() - 1200));

    let renewed = harness
        .lease(wit::Operation::Renew, "alice", &secret)
        .await
        .expect("renew succeeds")
        .and_then(|response| response.secret)
        .expect("renew returns the secret");
    assert_eq!(renewed.ttl_seconds, 600, "{renewed:?}");
    assert_eq!(renewed.max_ttl_seconds, 3600, "{renewed:?}");
    assert_eq!(
        internal_data(&renewed),
        internal_data(&secret),
        "internal data echoed"
    );

    let patch = harness.kong.requests().pop().unwrap();
    assert_eq!(patch.method, "PATCH", "{patch:?}");
    let kong_ttl = patch
        .json()
        .and_then(|body| body["ttl"].as_u64())
        .expect("PATCH sets ttl");
    assert!(
        (2399..=2400).contains(&kong_ttl),
        "Kong ttl {kong_ttl} is issue + 1h - now"
    );

    let key = data["token"].as_str().unwrap();
    harness.kong.advance_clock(Duration::from_secs(2390));
    assert_eq!(harness.proxy_status(key), 200, "before the new Kong expiry");
    harness.kong.advance_clock(Duration::from_secs(20));
    assert_eq!(harness.proxy_status(key), 401, "after the new Kong expiry");
}

#[tokio::test]
async fn renew_follows_raised_max_ttl() {
    let harness = Harness::start();
    harness
        .ready("alice", json!({ "ttl": "10m", "max_ttl": "1h" }))
        .await;
    let (_, mut secret) = harness.issue("alice").await;
    secret.issue_time = Some(wit_time(now_seconds()));

    harness
        .write("consumers/alice", json!({ "max_ttl": "5h" }))
        .await;
    let renewed = harness
        .lease(wit::Operation::Renew, "alice", &secret)
        .await
        .expect("renew succeeds")
        .and_then(|response| response.secret)
        .expect("renew returns the secret");
    assert_eq!(renewed.max_ttl_seconds, 18000, "{renewed:?}");

    let ttl = harness.kong.key_auth_credentials()[0]["ttl"]
        .as_u64()
        .expect("Kong ttl");
    assert!(
        (17999..=18000).contains(&ttl),
        "Kong ttl {ttl} moved forward to the new max TTL"
    );
}

#[tokio::test]
async fn renew_past_max_ttl_rejected() {
    let harness = Harness::start();
    harness
        .ready("alice", json!({ "ttl": "10m", "max_ttl": "1h" }))
        .await;
    let (_, mut secret) = harness.issue("alice").await;
    secret.issue_time = Some(wit_time(now_seconds() - 3601));

    let error = harness
        .lease(wit::Operation::Renew, "alice", &secret)
        .await
        .expect_err("renew fails");
    assert_eq!(
        bad_request(&error),
        "the lease reached its max TTL of 3600s, so it cannot be renewed; read creds/alice for a new credential"
    );
}

#[tokio::test]
async fn renew_credential_gone_rejected() {
    let harness = Harness::start();
    harness
        .ready("alice", json!({ "ttl": "10m", "max_ttl": "1h" }))
        .await;
    let (data, mut secret) = harness.issue("alice").await;
    secret.issue_time = Some(wit_time(now_seconds()));
    let id = data["id"].as_str().unwrap();
    assert_eq!(
        harness.admin("DELETE", &format!("/key-auths/{id}")),
        204,
        "delete in Kong"
    );

    let error = harness
        .lease(wit::Operation::Renew, "alice", &secret)
        .await
        .expect_err("renew fails");
    assert_eq!(
        bad_request(&error),
        format!(
            "credential {id} no longer exists in Kong (it or its consumer was deleted), so the lease cannot be renewed; read creds/alice for a new credential"
        )
    );
}

// Revoke

#[tokio::test]
async fn revoke_after_consumer_deleted_in_kong() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    let (_, secret) = harness.issue("alice").await;
    assert_eq!(
        harness.admin("DELETE", "/consumers/alice"),
        204,
        "delete the consumer in Kong"
    );

    let revoked = harness
        .lease(wit::Operation::Revoke, "alice", &secret)
        .await;
    assert!(matches!(revoked, Ok(None)), "{revoked:?}");
}

#[tokio::test]
async fn revoke_twice_is_ok() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    let (_, secret) = harness.issue("alice").await;

    for attempt in ["first", "second"] {
        let revoked = harness
            .lease(wit::Operation::Revoke, "alice", &secret)
            .await;
        assert!(matches!(revoked, Ok(None)), "{attempt} revoke: {revoked:?}");
    }
    let deletes = harness
        .kong
        .requests()
        .iter()
        .filter(|request| request.method == "DELETE")
        .count();
    assert_eq!(deletes, 2, "each revoke asks Kong");
}

#[tokio::test]
async fn revoke_kong_error_retried_by_vault() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    let (data, secret) = harness.issue("alice").await;
    harness.kong.faults().fail_next(1, 503);

    let error = harness
        .lease(wit::Operation::Revoke, "alice", &secret)
        .await
        .expect_err("revoke fails");
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    let id = data["id"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "failed to revoke credential {id}: kong returned 503 for DELETE "
        )),
        "{message}"
    );
    assert_eq!(
        harness.kong.key_auth_credentials().len(),
        1,
        "the key is still in Kong"
    );

    let retried = harness
        .lease(wit::Operation::Revoke, "alice", &secret)
        .await;
    assert!(matches!(retried, Ok(None)), "{retried:?}");
    assert!(
        harness.kong.key_auth_credentials().is_empty(),
        "the retry deleted the key"
    );
}

// Kong faults

#[tokio::test]
async fn kong_5xx_names_status_and_message() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    harness.kong.faults().fail_next(1, 500);

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    assert_eq!(
        message,
        format!(
            "kong returned 500 for POST {}/consumers/alice/key-auth: An unexpected error occurred",
            harness.kong.admin_url()
        )
    );
}

#[tokio::test]
async fn kong_non_json_body_rejected_and_cleaned() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    harness.kong.faults().non_json_next(1);

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    let url = harness.kong.admin_url();
    assert!(
        message.starts_with(&format!("kong returned an unexpected response for POST {url}/consumers/alice/key-auth: the body is not JSON: ")),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("Kong held no credential tagged vault-request-{REQUEST_ID} when the engine looked; if Kong still completes the create, the key expires at its Kong-side ttl, or delete it by that tag")),
        "{message}"
    );
    let last = harness.kong.requests().pop().unwrap();
    assert_eq!(
        last.path,
        format!("/key-auths?tags=vault-request-{REQUEST_ID}"),
        "{last:?}"
    );
}

#[tokio::test]
async fn kong_dropped_connection_is_502() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    harness.kong.faults().drop_next(1);

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    let url = format!("{}/consumers/alice/key-auth", harness.kong.admin_url());
    assert!(message.contains(&url), "{message}");
    assert!(
        message.contains("check baseurl in config/access and that Kong is running"),
        "{message}"
    );
    assert!(
        harness.kong.key_auth_credentials().is_empty(),
        "{:?}",
        harness.kong.key_auth_credentials()
    );
}

#[tokio::test]
async fn kong_timeout_is_504_within_request_timeout() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    harness
        .write("config/access", json!({ "request_timeout": "1s" }))
        .await;
    harness.kong.faults().set_latency(Duration::from_secs(5));

    let started = Instant::now();
    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let elapsed = started.elapsed();
    harness.kong.faults().clear();

    let (status, message) = coded(&error);
    assert_eq!(status, 504, "{message}");
    let url = format!("{}/consumers/alice/key-auth", harness.kong.admin_url());
    assert!(
        message.starts_with(&format!(
            "no response from {url} within 1s; check that Kong is healthy, or raise request_timeout in config/access; "
        )),
        "{message}"
    );
    // One timeout for the create and one for the lookup of a credential it may have left.
    assert!(
        elapsed < Duration::from_millis(2800),
        "the call took {elapsed:?}"
    );
}

#[tokio::test]
async fn kong_unreachable_is_502() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        listener.local_addr().expect("bound address").port()
    };
    let origin = format!("http://127.0.0.1:{closed}");
    let harness = Harness::with_options(Options::default(), &[&origin]);
    harness
        .write("config/access", json!({ "baseurl": origin }))
        .await;
    harness.write("consumers/alice", json!({})).await;

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    assert!(
        message.starts_with(&format!(
            "could not reach {origin}/consumers/alice/key-auth: "
        )),
        "{message}"
    );
    assert!(
        message.ends_with("; check baseurl in config/access and that Kong is running"),
        "{message}"
    );
}

#[tokio::test]
async fn outbound_policy_denial_is_403() {
    let harness = Harness::start();
    // The proxy listener is not an allowed origin.
    let proxy = harness.kong.proxy_url();
    harness
        .write(
            "config/access",
            json!({ "baseurl": proxy, "token": "s3cr3t" }),
        )
        .await;
    harness.write("consumers/alice", json!({})).await;

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 403, "{message}");
    assert!(
        message.starts_with(&format!("request to {proxy}/consumers/alice/key-auth was denied: the plugin's outbound policy denied ")),
        "{message}"
    );
    assert!(
        message.contains("KONG_SECRETS_ALLOWED_ORIGINS"),
        "the host's reason reaches the user: {message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
}

#[tokio::test]
async fn kong_oversized_body_rejected() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    harness.kong.faults().oversized_next(1, 5 * 1024 * 1024);

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    let url = format!("{}/consumers/alice/key-auth", harness.kong.admin_url());
    assert!(
        message.starts_with(&format!(
            "response from {url} is larger than 4194304 bytes; "
        )),
        "{message}"
    );
}

#[tokio::test]
async fn kong_redirect_not_followed() {
    let harness = Harness::start();
    harness.ready("alice", json!({})).await;
    let elsewhere = format!("{}/consumers/alice/key-auth", harness.kong.proxy_url());
    harness.kong.faults().redirect_next(1, elsewhere);

    let error = harness
        .fail(request(wit::Operation::Read, "creds/alice", json!({})))
        .await;
    let (status, message) = coded(&error);
    assert_eq!(status, 502, "{message}");
    let url = format!("{}/consumers/alice/key-auth", harness.kong.admin_url());
    assert!(
        message.starts_with(&format!("kong returned 307 for POST {url}: ")),
        "{message}"
    );
    assert_eq!(
        harness.kong.requests().len(),
        1,
        "one request, no retry: {:?}",
        harness.kong.requests()
    );
}

// Many calls

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_no_spurious_failures() {
    let harness = Harness::start();
    harness.ready("alice", json!({ "ttl": "1h" })).await;

    for round in 0..40 {
        let (data, secret) = harness.issue("alice").await;
        assert!(data["token"].is_string(), "round {round}: {data}");
        let revoked = harness
            .lease(wit::Operation::Revoke, "alice", &secret)
            .await;
        assert!(matches!(revoked, Ok(None)), "round {round}: {revoked:?}");
    }

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let runtime = Arc::clone(&harness.runtime);
        let services = harness.services.clone();
        tasks.push(tokio::spawn(async move {
            let request = request(wit::Operation::Read, "creds/alice", json!({}));
            runtime.handle_request(&services, request).await
        }));
    }
    let mut secrets = Vec::new();
    for task in tasks {
        let result = task.await.expect("the task runs");
        let response = result
            .expect("the runtime serves")
            .expect("creds succeeds")
            .expect("a response");
        secrets.push(response.secret.expect("a lease"));
    }
    assert_eq!(
        harness.kong.key_auth_credentials().len(),
        16,
        "one key per concurrent read"
    );

    for secret in &secrets {
        let revoked = harness.lease(wit::Operation::Revoke, "alice", secret).await;
        assert!(matches!(revoked, Ok(None)), "{revoked:?}");
    }
    assert!(
        harness.kong.key_auth_credentials().is_empty(),
        "{:?}",
        harness.kong.key_auth_credentials()
    );
}

// Help, rollback, routing

#[tokio::test]
async fn help_root_and_paths() {
    let harness = Harness::start();
    let root = harness
        .ok(request(wit::Operation::Help, "", json!({})))
        .await
        .expect("root help");
    let root = data(&root);
    assert!(
        root["help"]
            .as_str()
            .unwrap()
            .starts_with("Issues Kong key-auth credentials"),
        "{root}"
    );
    assert_eq!(root["openapi"]["openapi"], json!("3.0.2"), "{root}");
    assert_eq!(
        root["openapi"]["paths"]["/creds/{username}"]["get"]["operationId"],
        json!("kong-generate-credentials"),
        "{root}"
    );

    for path in [
        "config/access",
        "consumers/",
        "consumers/alice",
        "creds/alice",
    ] {
        let help = harness
            .ok(request(wit::Operation::Help, path, json!({})))
            .await
            .expect("path help");
        let help = data(&help);
        assert!(
            help["help"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Request:        {path}\n")),
            "{help}"
        );
        assert!(help["see_also"].is_array(), "{help}");
        assert!(help["openapi"]["paths"].is_object(), "{help}");
    }
}

#[tokio::test]
async fn rollback_and_unknown_routes() {
    let harness = Harness::start();
    let rollback = harness
        .call(request(wit::Operation::Rollback, "", json!({})))
        .await;
    assert!(matches!(rollback, Ok(None)), "{rollback:?}");

    let unknown = harness
        .call(request(wit::Operation::Read, "roles/app", json!({})))
        .await;
    assert!(
        matches!(unknown, Err(wit::Error::UnsupportedPath)),
        "{unknown:?}"
    );
    let unsupported = harness
        .call(request(wit::Operation::Delete, "creds/app", json!({})))
        .await;
    assert!(
        matches!(unsupported, Err(wit::Error::UnsupportedOperation)),
        "{unsupported:?}"
    );
}

#[tokio::test]
async fn special_paths_seal_wrap_config() {
    let harness = Harness::start();
    let paths = harness
        .runtime
        .special_paths()
        .await
        .expect("special paths");
    assert_eq!(paths.seal_wrap_storage, ["config/access"], "{paths:?}");
}

// Logging

#[tokio::test(flavor = "current_thread")]
async fn logs_ids_never_key_or_token() {
    // The capture reads this thread's events through one global subscriber: a per-test
    // subscriber misses events when parallel tests share callsites.
    let (data, lines) = sandbox_support::capture_logs(issue_renew_revoke()).await;
    let key = data["token"].as_str().unwrap();
    for line in &lines {
        assert!(!line.contains(key), "a log line holds the key: {line}");
        assert!(
            !line.contains("adm1n-t0ken"),
            "a log line holds the admin token: {line}"
        );
    }
    let id = data["id"].as_str().unwrap();
    for message in [
        "issued key-auth credential",
        "renewed key-auth credential lease",
        "revoked key-auth credential",
    ] {
        assert!(
            lines
                .iter()
                .any(|line| line.contains(message) && line.contains(id) && line.contains("alice")),
            "no {message:?} line with the credential id and role: {lines:#?}"
        );
    }
}

/// Issues, renews and revokes a key with an admin token configured, and returns the issued
/// data.
async fn issue_renew_revoke() -> Value {
    let options = Options {
        admin_token: Some(AdminToken::new("adm1n-t0ken")),
        ..Options::default()
    };
    let harness = Harness::with_options(options, &[]);
    harness
        .ready("alice", json!({ "ttl": "1h", "max_ttl": "2h" }))
        .await;
    harness
        .write("config/access", json!({ "token": "adm1n-t0ken" }))
        .await;
    let (data, mut secret) = harness.issue("alice").await;
    secret.issue_time = Some(wit_time(now_seconds()));
    harness
        .lease(wit::Operation::Renew, "alice", &secret)
        .await
        .expect("renew");
    harness
        .lease(wit::Operation::Revoke, "alice", &secret)
        .await
        .expect("revoke");

    data
}

fn wit_time(seconds: u64) -> wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime {
    wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime {
        seconds,
        nanoseconds: 0,
    }
}
