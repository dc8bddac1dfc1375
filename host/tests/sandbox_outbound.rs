//! The outbound policy end to end: the hostile component sends requests through the host to
//! loopback servers. 127.0.0.1 is the allowed address and 127.0.0.2 the denied one. Names
//! come from the settings' static host table, never from real DNS.

mod sandbox_support;

use std::net::IpAddr;

use sandbox_support::{assert_still_serves, call, hostile_runtime, settings, TestServer};
use serde_json::{json, Value};
use vault_plugin_secrets_kong::runtime::Runtime;
use vault_plugin_secrets_kong::settings::Settings;

async fn fetch(runtime: &Runtime, url: &str) -> Value {
    call(runtime, "fetch", json!({ "url": url }))
        .await
        .expect("fetch call")
}

/// Settings with `arguments` plus static host entries `name=address`.
fn settings_with_hosts(arguments: &[&str], hosts: &[(&str, &[&str])]) -> Settings {
    let mut settings = settings(arguments);
    for (name, addresses) in hosts {
        let addresses: Vec<IpAddr> = addresses
            .iter()
            .map(|address| address.parse().unwrap())
            .collect();
        settings.static_hosts.insert(name.to_string(), addresses);
    }
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origin_is_fetched() {
    let server = TestServer::start("127.0.0.1").await;
    let allowed = format!("--allowed-origins={}", server.origin());
    let runtime = hostile_runtime(&settings(&[&allowed]));

    let data = fetch(&runtime, &server.url("/ok")).await;
    assert_eq!(data["status"], json!(200), "{data}");
    assert_eq!(data["body"], json!("hello"), "{data}");
    assert_eq!(data["denial_reason"], json!(null), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_origin_is_denied() {
    let allowed_server = TestServer::start("127.0.0.1").await;
    let denied_server = TestServer::start("127.0.0.2").await;
    let allowed = format!("--allowed-origins={}", allowed_server.origin());
    let runtime = hostile_runtime(&settings(&[&allowed]));

    let data = fetch(&runtime, &denied_server.url("/ok")).await;
    assert_eq!(data["error"], json!("HttpRequestDenied"), "{data}");
    let expected = format!(
        "the plugin's outbound policy denied http://127.0.0.2:{}: the origin is not in the allowed \
         origins; a Vault operator can add it with --allowed-origins or KONG_SECRETS_ALLOWED_ORIGINS",
        denied_server.port()
    );
    assert_eq!(data["denial_reason"], json!(expected), "{data}");
    assert!(
        denied_server.received().is_empty(),
        "the denied server got {:?}",
        denied_server.received()
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_resolving_to_denied_network_is_denied() {
    let server = TestServer::start("127.0.0.2").await;
    let allowed = format!("--allowed-origins=http://kong.test:{}", server.port());
    let settings = settings_with_hosts(
        &[&allowed, "--denied-networks=127.0.0.2/32"],
        &[("kong.test", &["127.0.0.2"])],
    );
    let runtime = hostile_runtime(&settings);

    let data = fetch(&runtime, &format!("http://kong.test:{}/ok", server.port())).await;
    assert_eq!(data["error"], json!("HttpRequestDenied"), "{data}");
    let expected = format!(
        "the plugin's outbound policy denied http://kong.test:{}: kong.test resolves to 127.0.0.2, \
         which is in the denied network 127.0.0.2/32; a Vault operator can remove it from \
         --denied-networks or KONG_SECRETS_DENIED_NETWORKS",
        server.port()
    );
    assert_eq!(data["denial_reason"], json!(expected), "{data}");
    assert!(
        server.received().is_empty(),
        "the denied server got {:?}",
        server.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_with_one_denied_address_is_denied() {
    let allowed_server = TestServer::start("127.0.0.1").await;
    let port = allowed_server.port();
    let settings = settings_with_hosts(
        &["--denied-networks=127.0.0.2/32"],
        &[("mixed.test", &["127.0.0.1", "127.0.0.2"])],
    );
    let runtime = hostile_runtime(&settings);

    let data = fetch(&runtime, &format!("http://mixed.test:{port}/ok")).await;
    assert_eq!(data["error"], json!("HttpRequestDenied"), "{data}");
    assert!(
        allowed_server.received().is_empty(),
        "the server got {:?}",
        allowed_server.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_connects_to_checked_address() {
    let server = TestServer::start("127.0.0.1").await;
    let allowed = format!("--allowed-origins=http://*.kong.test:{}", server.port());
    let settings = settings_with_hosts(&[&allowed], &[("admin.kong.test", &["127.0.0.1"])]);
    let runtime = hostile_runtime(&settings);

    let data = fetch(
        &runtime,
        &format!("http://admin.kong.test:{}/host", server.port()),
    )
    .await;
    assert_eq!(data["status"], json!(200), "{data}");
    let host = format!("admin.kong.test:{}", server.port());
    assert_eq!(
        data["body"],
        json!(host),
        "the server saw another Host header: {data}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_is_not_followed() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&[]));

    let data = fetch(&runtime, &server.url("/redirect")).await;
    assert_eq!(data["status"], json!(302), "{data}");
    assert_eq!(data["location"], json!(server.url("/ok")), "{data}");
    let paths: Vec<String> = server
        .received()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(
        paths,
        vec!["/redirect".to_string()],
        "the host followed the redirect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_cannot_set_host_header() {
    let runtime = hostile_runtime(&settings(&[]));
    let data = call(&runtime, "set-host", json!({}))
        .await
        .expect("set-host call");
    assert_eq!(
        data["result"],
        json!("Err(HeaderError::Forbidden)"),
        "{data}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_scheme_is_denied() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&[]));
    let url = format!("ftp://{}/ok", server.address);

    let data = fetch(&runtime, &url).await;
    assert_eq!(data["error"], json!("HttpRequestDenied"), "{data}");
    let expected = format!(
        "the plugin's outbound policy denied ftp://{}: only http and https are allowed",
        server.address
    );
    assert_eq!(data["denial_reason"], json!(expected), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_is_network_failure() {
    let server = TestServer::start("127.0.0.1").await;
    let url = server.url("/ok");
    drop(server);
    let runtime = hostile_runtime(&settings(&[]));

    let data = fetch(&runtime, &url).await;
    assert_eq!(data["error"], json!("ConnectionRefused"), "{data}");
    assert_eq!(
        data["denial_reason"],
        json!(null),
        "a network failure is no denial: {data}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_first_byte_times_out() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&["--max-first-byte-timeout=200ms"]));
    // The component requests 30 s, and the operator's maximum of 200 ms wins.
    let data = call(
        &runtime,
        "fetch",
        json!({ "url": server.url("/slow-head?ms=3000"), "options": { "first_byte_timeout_ms": 30000 } }),
    )
    .await
    .expect("fetch call");
    assert_eq!(data["error"], json!("ConnectionReadTimeout"), "{data}");
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_body_times_out() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&["--max-between-bytes-timeout=200ms"]));
    let data = fetch(&runtime, &server.url("/slow-body")).await;
    assert_eq!(data["status"], json!(200), "{data}");
    // wasmtime-wasi-http 48 passes a body error to the component as `internal-error` with the
    // error's text, not as its own error code.
    assert_eq!(
        data["body_error_detail"],
        json!(r#"ErrorCode::InternalError(Some("connection read timeout"))"#),
        "{data}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_oversized_body_is_refused() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&["--max-response-body-bytes=1KiB"]));
    let data = fetch(&runtime, &server.url("/big?bytes=4096")).await;
    assert_eq!(
        data["error_detail"],
        json!("ErrorCode::HttpResponseBodySize(Some(1024))"),
        "the payload is the cap: {data}"
    );

    let within = fetch(&runtime, &server.url("/big?bytes=1024")).await;
    assert_eq!(
        within["body_bytes"],
        json!(1024),
        "a body at the cap: {within}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_oversized_body_is_cut() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&["--max-response-body-bytes=64KiB"]));
    let data = fetch(&runtime, &server.url("/big-chunked?bytes=1048576")).await;
    assert_eq!(data["status"], json!(200), "{data}");
    assert_eq!(
        data["body_error_detail"],
        json!(
            r#"ErrorCode::InternalError(Some("HTTP response body size exceeds limit: 65536 bytes"))"#
        ),
        "{data}"
    );
    assert_eq!(data["body_bytes"], json!(null), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_flood_is_capped() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&["--max-outbound-requests-per-call=3"]));
    let data = call(
        &runtime,
        "flood",
        json!({ "url": server.url("/ok"), "count": 10 }),
    )
    .await
    .expect("flood call");
    assert_eq!(
        data["outcomes"],
        json!({ "200": 3, "HttpRequestDenied": 7 }),
        "{data}"
    );
    let expected = format!(
        "the plugin's outbound policy denied {}: the engine already sent 3 requests for this Vault \
         request, the most allowed; a Vault operator can raise --max-outbound-requests-per-call or \
         KONG_SECRETS_MAX_OUTBOUND_REQUESTS_PER_CALL",
        server.url("")
    );
    assert_eq!(data["denial_reason"], json!(expected), "{data}");
    assert_eq!(
        server.received().len(),
        3,
        "the server got more than the cap"
    );

    // The cap is per call: the next call may send again.
    let next = fetch(&runtime, &server.url("/ok")).await;
    assert_eq!(next["status"], json!(200), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_reason_is_per_call() {
    let server = TestServer::start("127.0.0.2").await;
    let runtime = hostile_runtime(&settings(&["--denied-networks=127.0.0.2/32"]));
    let denied = fetch(&runtime, &server.url("/ok")).await;
    assert_eq!(denied["error"], json!("HttpRequestDenied"), "{denied}");

    let unrelated = call(&runtime, "flood", json!({ "url": "", "count": 0 }))
        .await
        .expect("flood call");
    assert_eq!(
        unrelated["denial_reason"],
        json!(null),
        "a reason leaked into the next call: {unrelated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_no_spurious_failures() {
    let server = TestServer::start("127.0.0.1").await;
    let allowed = format!("--allowed-origins={}", server.origin());
    let runtime = hostile_runtime(&settings(&[&allowed]));

    // 8 tasks of 25 calls, each call sending 4 requests: 800 requests in all.
    let mut tasks = Vec::new();
    for task in 0..8 {
        let runtime = runtime.clone();
        let url = server.url("/ok");
        tasks.push(tokio::spawn(async move {
            for round in 0..25 {
                let data = call(&runtime, "flood", json!({ "url": url, "count": 4 }))
                    .await
                    .unwrap_or_else(|error| panic!("task {task} round {round}: {error}"));
                assert_eq!(
                    data["outcomes"],
                    json!({ "200": 4 }),
                    "task {task} round {round}: {data}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("fetch task");
    }
    assert_eq!(server.received().len(), 800, "requests the server received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_resolves_through_system() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&[]));
    let data = fetch(&runtime, &format!("http://localhost:{}/ok", server.port())).await;
    assert_eq!(data["status"], json!(200), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_in_denied_network_is_denied() {
    let server = TestServer::start("127.0.0.1").await;
    let runtime = hostile_runtime(&settings(&["--denied-networks=127.0.0.0/8"]));
    let data = fetch(&runtime, &format!("http://localhost:{}/ok", server.port())).await;
    assert_eq!(data["error"], json!("HttpRequestDenied"), "{data}");
    let expected = format!(
        "the plugin's outbound policy denied http://localhost:{}: localhost resolves to 127.0.0.1, \
         which is in the denied network 127.0.0.0/8; a Vault operator can remove it from \
         --denied-networks or KONG_SECRETS_DENIED_NETWORKS",
        server.port()
    );
    assert_eq!(data["denial_reason"], json!(expected), "{data}");
    assert!(
        server.received().is_empty(),
        "the server got {:?}",
        server.received()
    );
}
