//! Per-call cost of the runtime: a fresh store, instantiation, one export call and the drop,
//! measured end to end through `Runtime::handle_request`.
//!
//! Run: `cargo bench -p vault-plugin-secrets-kong --bench call`. Prints the median, 90th and
//! 99th percentile of each case, for `BENCHMARKS.md`. Cases:
//!
//! - `hostile echo`: the hostile test component returning `echo` data (no imports used);
//! - `hostile storage`: the same component doing put, get, list and delete on in-memory
//!   storage;
//! - `engine help (root)` and `engine read consumer`: the embedded Kong engine rendering the
//!   root help with its OpenAPI document, and reading a role that does not exist (one storage
//!   get). Skipped when the calls fail.
//!
//! It also prints how long `Runtime::new` takes and when the first call of the embedded
//! engine finishes, which includes compiling the component. The last step runs 64 calls at
//! once and prints the process's resident memory around them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vault_plugin_secrets_kong::runtime::{wit, Runtime};
use vault_plugin_secrets_kong::services::{MemoryStorage, MountServices, StaticSystemView};
use vault_plugin_secrets_kong::settings::Settings;

static HOSTILE_GUEST: &[u8] = include_bytes!(env!("HOSTILE_GUEST_WASM"));

const WARM_UP: usize = 200;
const ITERATIONS: usize = 5_000;

fn request(path: &str, operation: wit::Operation, data: serde_json::Value) -> wit::Request {
    wit::Request {
        id: "bench".to_string(),
        operation,
        path: path.to_string(),
        data: data.to_string(),
        secret: None,
        headers: vec![],
        mount_point: "kong/".to_string(),
        mount_type: "kong".to_string(),
        mount_accessor: "kong_bench".to_string(),
        display_name: "bench".to_string(),
        entity_id: String::new(),
        client_token_accessor: String::new(),
    }
}

fn services() -> MountServices {
    MountServices {
        storage: Arc::new(MemoryStorage::default()),
        system_view: Arc::new(StaticSystemView::default()),
    }
}

/// Times `ITERATIONS` sequential calls after a warm-up, and prints percentiles.
async fn measure(name: &str, runtime: &Runtime, make: impl Fn() -> wit::Request) -> Option<()> {
    let services = services();
    for _ in 0..WARM_UP {
        let result = runtime.handle_request(&services, make()).await;
        if result.is_err() {
            println!(
                "{name:<24} skipped: {}",
                result
                    .err()
                    .map(|error| error.to_string())
                    .unwrap_or_default()
            );
            return None;
        }
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let request = make();
        let started = Instant::now();
        let result = runtime.handle_request(&services, request).await;
        samples.push(started.elapsed());
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    samples.sort();
    let percentile = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "{name:<24} median {:>8.1} µs   p90 {:>8.1} µs   p99 {:>8.1} µs   ({ITERATIONS} calls)",
        percentile(50).as_secs_f64() * 1e6,
        percentile(90).as_secs_f64() * 1e6,
        percentile(99).as_secs_f64() * 1e6,
    );
    Some(())
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let settings = Settings::default();

    tokio.block_on(async {
        let started = Instant::now();
        let hostile =
            Runtime::from_component_bytes(HOSTILE_GUEST, &settings).expect("hostile component");
        println!(
            "hostile component prepared in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        measure("hostile echo", &hostile, || {
            request("echo", wit::Operation::Read, json!({ "a": 1 }))
        })
        .await;
        measure("hostile storage", &hostile, || {
            request("storage", wit::Operation::Read, json!({ "key": "k" }))
        })
        .await;

        let started = Instant::now();
        match Runtime::new(&settings) {
            Ok(engine) => {
                println!(
                    "embedded engine: Runtime::new returned in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1e3
                );
                let first = engine.special_paths().await;
                println!(
                    "embedded engine: first call (waits for compilation) done after {:.1} ms: {}",
                    started.elapsed().as_secs_f64() * 1e3,
                    if first.is_ok() { "ok" } else { "failed" }
                );
                measure("engine help (root)", &engine, || {
                    request("", wit::Operation::Help, json!({}))
                })
                .await;
                measure("engine read consumer", &engine, || {
                    request("consumers/app", wit::Operation::Read, json!({}))
                })
                .await;
            }
            Err(error) => println!("embedded engine skipped: {error:#}"),
        }

        concurrent_memory(&hostile).await;
    });
}

/// Runs 64 calls that each hold an instance for 200 ms at the same time, and prints the
/// process's resident memory before and its peak after. The figures include everything the
/// bench process did before, compilation included, so they are upper bounds for the runtime.
async fn concurrent_memory(runtime: &Arc<Runtime>) {
    const CALLS: usize = 64;

    println!(
        "resident memory before {CALLS} concurrent calls: {}",
        proc_status("VmRSS")
    );
    let mut tasks = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let runtime = Arc::clone(runtime);
        tasks.push(tokio::spawn(async move {
            let services = services();
            let request = request("sleep", wit::Operation::Read, json!({ "ms": 200 }));
            runtime.handle_request(&services, request).await
        }));
    }
    for task in tasks {
        let result = task.await.expect("call task");
        assert!(
            matches!(result, Ok(Ok(Some(_)))),
            "concurrent call: {result:?}"
        );
    }
    println!(
        "resident memory after {CALLS} concurrent calls: {} (peak {})",
        proc_status("VmRSS"),
        proc_status("VmHWM")
    );
}

/// Returns one field of `/proc/self/status`, such as `VmRSS`, or `unknown` off Linux.
fn proc_status(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}
