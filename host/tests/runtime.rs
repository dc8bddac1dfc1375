//! The runtime with the hostile test component: every export, every import of the
//! `vault-backend` world, a fresh instance per call and an empty WASI context.

mod sandbox_support;

use sandbox_support::{
    call, capture_logs, hostile_runtime, request, services, settings, HOSTILE_GUEST,
};
use serde_json::json;
use vault_plugin_secrets_kong::runtime::{wit, Runtime};

#[tokio::test]
async fn special_paths_come_from_component() {
    let runtime = hostile_runtime(&settings(&[]));
    let paths = runtime
        .special_paths()
        .await
        .expect("special-paths succeeds");
    assert_eq!(paths.root, vec!["root/*".to_string()], "{paths:?}");
    assert_eq!(
        paths.unauthenticated,
        vec!["public".to_string()],
        "{paths:?}"
    );
    assert_eq!(
        paths.seal_wrap_storage,
        vec!["config/".to_string()],
        "{paths:?}"
    );
}

#[tokio::test]
async fn initialize_writes_mount_storage() {
    let runtime = hostile_runtime(&settings(&[]));
    let (services, storage) = services();
    let result = runtime
        .initialize(&services)
        .await
        .expect("initialize runs");
    assert!(result.is_ok(), "initialize returned {result:?}");
    assert_eq!(
        storage.snapshot().get("initialized"),
        Some(&b"yes".to_vec()),
        "storage after initialize"
    );
}

#[tokio::test]
async fn storage_imports_reach_services() {
    let runtime = hostile_runtime(&settings(&[]));
    let data = call(
        &runtime,
        "storage",
        json!({ "key": "role/app", "value": "v1" }),
    )
    .await
    .expect("storage call");
    assert_eq!(data["read"], json!("v1"), "{data}");
    assert_eq!(data["listed"], json!(["role/"]), "{data}");
    assert_eq!(data["after_delete"], json!(null), "{data}");
}

#[tokio::test]
async fn system_view_imports_reach_services() {
    let runtime = hostile_runtime(&settings(&[]));
    let data = call(&runtime, "system", json!({}))
        .await
        .expect("system call");
    assert_eq!(
        data["default_lease_ttl_seconds"],
        json!(768 * 3600),
        "{data}"
    );
    assert_eq!(data["max_lease_ttl_seconds"], json!(768 * 3600), "{data}");
    assert_eq!(data["tainted"], json!(false), "{data}");
    assert_eq!(data["vault_version"], json!("1.21.4"), "{data}");
}

#[tokio::test]
async fn unknown_path_returns_component_error() {
    let runtime = hostile_runtime(&settings(&[]));
    let (services, _) = services();
    let result = runtime
        .handle_request(&services, request("nowhere", json!({})))
        .await
        .expect("the call runs");
    assert!(
        matches!(result, Err(wit::Error::UnsupportedPath)),
        "returned {result:?}"
    );
}

#[tokio::test]
async fn existence_check_invalidate_cleanup_run() {
    let runtime = hostile_runtime(&settings(&[]));
    let (services, _) = services();
    let existence = runtime
        .handle_existence_check(&services, request("echo", json!({})))
        .await
        .expect("existence check runs");
    assert!(
        matches!(
            existence,
            Ok(wit::Existence {
                check_found: true,
                exists: true
            })
        ),
        "returned {existence:?}"
    );
    runtime
        .invalidate(&services, "role/app".to_string())
        .await
        .expect("invalidate runs");
    runtime.cleanup(&services).await.expect("cleanup runs");
}

#[tokio::test]
async fn fresh_instance_per_call() {
    let runtime = hostile_runtime(&settings(&[]));
    for attempt in 1..=3 {
        let data = call(&runtime, "counter", json!({}))
            .await
            .expect("counter call");
        assert_eq!(
            data["count"],
            json!(1),
            "call {attempt} saw state of an earlier call: {data}"
        );
    }
}

#[tokio::test]
async fn wasi_context_is_empty() {
    let runtime = hostile_runtime(&settings(&[]));
    let data = call(&runtime, "environment", json!({}))
        .await
        .expect("environment call");
    assert_eq!(data["variables"], json!([]), "{data}");
    assert_eq!(data["arguments"], json!([]), "{data}");
    let root = data["root"].as_str().unwrap_or_default();
    assert!(
        root.starts_with("error:"),
        "the root directory is readable: {data}"
    );
}

#[test]
fn invalid_component_bytes_fail_clearly() {
    let error = Runtime::from_component_bytes(b"not wasm", &settings(&[]))
        .err()
        .expect("garbage is rejected");
    assert_eq!(error.to_string(), "failed to compile the component");
}

#[test]
fn hostile_component_is_release_build() {
    // A debug build would be several megabytes; the size also catches a stale artifact.
    assert!(
        HOSTILE_GUEST.len() < 1024 * 1024,
        "hostile component is {} bytes",
        HOSTILE_GUEST.len()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn log_import_reaches_tracing() {
    let runtime = hostile_runtime(&settings(&[]));
    let (result, lines) = capture_logs(call(&runtime, "log", json!({}))).await;
    result.expect("log call");

    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        let capitalized = level[..1].to_string() + &level[1..].to_lowercase();
        let expected = format!(
            "{level} engine message=hostile guest log at Level::{capitalized} fields=consumer=app"
        );
        assert!(
            lines.contains(&expected),
            "no line `{expected}` in {lines:#?}"
        );
    }
    let stderr = lines.iter().any(|line| {
        line.contains("engine wrote to stderr") && line.contains("hostile guest wrote to stderr")
    });
    assert!(stderr, "guest stderr was not logged at debug: {lines:#?}");
}

/// Returns the log lines written on this thread while `start` runs.
fn lines_logged_by(start: impl FnOnce()) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let ((), lines) = runtime.block_on(capture_logs(async { start() }));
    lines
}

#[test]
fn open_policy_warns_at_start() {
    let lines = lines_logged_by(|| {
        hostile_runtime(&settings(&[]));
    });
    let warning = "WARN vault_plugin_secrets_kong::runtime message=outbound policy is open: the engine may \
                   send requests to any origin outside the denied networks; set --allowed-origins or \
                   KONG_SECRETS_ALLOWED_ORIGINS to restrict it";
    assert!(
        lines.iter().any(|line| line == warning),
        "no open-policy warning in {lines:#?}"
    );
}

#[test]
fn allow_list_logged_without_warning() {
    let lines = lines_logged_by(|| {
        hostile_runtime(&settings(&[
            "--allowed-origins=https://kong.example.com:8444,http://127.0.0.1:8001",
        ]));
    });
    let listed =
        "INFO vault_plugin_secrets_kong::runtime message=outbound policy allows only the listed \
                  origins allowed_origins=https://kong.example.com:8444,http://127.0.0.1:8001";
    assert!(
        lines.iter().any(|line| line == listed),
        "no allow-list line in {lines:#?}"
    );
    let warned = lines
        .iter()
        .any(|line| line.contains("outbound policy is open"));
    assert!(
        !warned,
        "an open-policy warning despite an allow-list: {lines:#?}"
    );
}
