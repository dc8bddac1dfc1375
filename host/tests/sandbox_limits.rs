//! Resource limits with the hostile component: a busy loop, unbounded allocation, a panic,
//! a call that outlasts the wall clock, and more calls than slots. Each failure must end that
//! call only, with a clear error, while the runtime keeps serving.

mod sandbox_support;

use std::time::Duration;

use sandbox_support::{assert_still_serves, call, hostile_runtime, request, services, settings};
use serde_json::json;
use vault_plugin_secrets_kong::runtime::CallError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_hits_cpu_limit() {
    let runtime = hostile_runtime(&settings(&[
        "--max-cpu-time=200ms",
        "--max-call-duration=20s",
    ]));
    let error = call(&runtime, "loop", json!({}))
        .await
        .expect_err("an endless loop fails");
    assert_eq!(
        error.to_string(),
        "the engine used more than 200ms of CPU time on this request; a Vault operator can raise --max-cpu-time"
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_existence_check_hits_cpu_limit() {
    let runtime = hostile_runtime(&settings(&["--max-cpu-time=100ms"]));
    let (services, _) = services();
    let error = runtime
        .handle_existence_check(&services, request("loop", json!({})))
        .await
        .expect_err("an endless loop fails");
    assert!(matches!(error, CallError::CpuLimit { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_memory_cap() {
    let runtime = hostile_runtime(&settings(&["--max-memory-bytes=16MiB"]));
    let error = call(&runtime, "allocate", json!({}))
        .await
        .expect_err("unbounded allocation fails");
    assert_eq!(
        error.to_string(),
        "the engine ran out of memory: it needed more than 16777216 bytes; a Vault operator can raise --max-memory-bytes"
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_panic_fails_one_call() {
    let runtime = hostile_runtime(&settings(&[]));
    let error = call(&runtime, "panic", json!({}))
        .await
        .expect_err("a panic fails the call");
    let CallError::GuestPanic { location, message } = &error else {
        panic!("expected a guest panic, got {error:?}");
    };
    assert_eq!(message, "hostile guest panicked on purpose", "{error}");
    assert!(location.starts_with("src/lib.rs:"), "{error}");
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_invalidate_is_reported() {
    let runtime = hostile_runtime(&settings(&[]));
    let (services, _) = services();
    let error = runtime
        .invalidate(&services, "panic".to_string())
        .await
        .expect_err("a panic fails the call");
    assert!(
        matches!(&error, CallError::GuestPanic { message, .. } if message == "hostile guest panicked on invalidate"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_call_hits_wall_clock() {
    let runtime = hostile_runtime(&settings(&[
        "--max-call-duration=300ms",
        "--max-cpu-time=100ms",
    ]));
    // Sleeping uses no CPU, so only the wall-clock limit can end this call.
    let error = call(&runtime, "sleep", json!({ "ms": 5000 }))
        .await
        .expect_err("the call outlasts its limit");
    assert_eq!(
        error.to_string(),
        "the engine did not finish this request within 300ms; a Vault operator can raise --max-call-duration"
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_does_not_count_as_cpu() {
    let runtime = hostile_runtime(&settings(&["--max-cpu-time=50ms"]));
    let data = call(&runtime, "sleep", json!({ "ms": 400 }))
        .await
        .expect("a sleeping call within its CPU budget");
    assert_eq!(data["slept_ms"], json!(400), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_calls_are_overloaded() {
    let runtime = hostile_runtime(&settings(&[
        "--max-concurrent-calls=1",
        "--max-queue-wait=100ms",
    ]));
    let busy = tokio::spawn({
        let runtime = runtime.clone();
        async move { call(&runtime, "sleep", json!({ "ms": 1500 })).await }
    });
    // Give the first call time to take the only slot.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let error = call(&runtime, "echo", json!({}))
        .await
        .expect_err("no slot is free");
    assert_eq!(
        error.to_string(),
        "the plugin is busy: 1 requests are already running and no slot freed up within 100ms; retry later, or have a Vault operator raise --max-concurrent-calls"
    );
    let finished = busy.await.expect("the first call's task");
    assert!(finished.is_ok(), "the first call failed: {finished:?}");
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_call_waits_for_slot() {
    let runtime = hostile_runtime(&settings(&[
        "--max-concurrent-calls=1",
        "--max-queue-wait=5s",
    ]));
    let busy = tokio::spawn({
        let runtime = runtime.clone();
        async move { call(&runtime, "sleep", json!({ "ms": 300 })).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let echoed = call(&runtime, "echo", json!({ "queued": true }))
        .await
        .expect("the queued call runs");
    assert_eq!(echoed, json!({ "queued": true }));
    assert!(busy.await.expect("the first call's task").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_call_spares_calls_in_flight() {
    let runtime = hostile_runtime(&settings(&[
        "--max-cpu-time=500ms",
        "--max-concurrent-calls=8",
    ]));
    let looping = tokio::spawn({
        let runtime = runtime.clone();
        async move { call(&runtime, "loop", json!({})).await }
    });
    let mut echoes = Vec::new();
    for index in 0..20 {
        let runtime = runtime.clone();
        echoes.push(tokio::spawn(async move {
            call(&runtime, "echo", json!({ "index": index })).await
        }));
    }
    for (index, echo) in echoes.into_iter().enumerate() {
        let data = echo
            .await
            .expect("echo task")
            .unwrap_or_else(|error| panic!("echo {index} failed: {error}"));
        assert_eq!(data, json!({ "index": index }), "echo {index}");
    }
    let looped = looping.await.expect("loop task");
    assert!(
        matches!(looped, Err(CallError::CpuLimit { .. })),
        "{looped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sequential_calls_all_succeed() {
    let runtime = hostile_runtime(&settings(&[]));
    for index in 0..200 {
        let data = call(&runtime, "echo", json!({ "index": index })).await;
        let data = data.unwrap_or_else(|error| panic!("call {index} failed: {error}"));
        assert_eq!(data, json!({ "index": index }), "call {index}");
    }
}
