//! Fault injection on the Admin API listener and the request log.

mod common;

use std::time::{Duration, Instant};

use common::{start, Api};
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn fault_fail_next_answers_status() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.faults().fail_next(2, 503);

    let first = api.get("/consumers");
    let second = api.post("/consumers", json!({ "username": "bob" }));
    let third = api.get("/consumers");

    for reply in [&first, &second] {
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(
            reply.body,
            json!({ "message": "Service Unavailable" }),
            "{reply:?}"
        );
    }
    assert_eq!(third.status, 200, "{third:?}");
    assert_eq!(
        third.body["data"],
        json!([]),
        "the failed POST wrote nothing: {third:?}"
    );
}

#[test]
fn fault_fail_500_uses_kong_message() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.faults().fail_next(1, 500);

    let reply = api.get("/");

    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({ "message": "An unexpected error occurred" }),
        "{reply:?}"
    );
}

#[test]
fn fault_drop_next_closes_connection() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.faults().drop_next(1);

    let dropped = api.try_send(Method::GET, "/", None);
    let next = api.get("/");

    assert!(
        dropped.is_err(),
        "expected no response, got {:?}",
        dropped.ok()
    );
    assert_eq!(next.status, 200, "{next:?}");
}

#[test]
fn fault_non_json_body() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.faults().non_json_next(1);

    let reply = api.get("/consumers");

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("text/html"), "{reply:?}");
    assert!(
        serde_json::from_str::<Value>(&reply.text).is_err(),
        "{reply:?}"
    );
}

#[test]
fn fault_oversized_body() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.faults().oversized_next(1, 3_000_000);

    let reply = api.get("/consumers");

    assert_eq!(reply.status, 200);
    assert_eq!(reply.text.len(), 3_000_000);
    assert_eq!(
        reply.body["data"],
        json!([]),
        "the oversized body is still JSON"
    );
}

#[test]
fn fault_redirect_to_other_origin() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator
        .faults()
        .redirect_next(1, "http://127.0.0.1:9/consumers");

    let reply = api.post("/consumers", json!({ "username": "bob" }));

    assert_eq!(reply.status, 307, "{reply:?}");
    assert_eq!(
        reply.header("location"),
        Some("http://127.0.0.1:9/consumers"),
        "{reply:?}"
    );
    assert_eq!(
        api.get("/consumers/bob").status,
        404,
        "the redirected POST wrote nothing"
    );
}

#[test]
fn fault_latency_delays_responses() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.faults().set_latency(Duration::from_millis(300));

    let started = Instant::now();
    let reply = api.get("/");
    let elapsed = started.elapsed();

    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        elapsed >= Duration::from_millis(300),
        "answered after {elapsed:?}"
    );
}

#[test]
fn fault_clear_switches_all_off() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let faults = emulator.faults();
    faults.set_latency(Duration::from_secs(30));
    faults.fail_next(5, 500);
    faults.drop_next(5);
    faults.non_json_next(5);
    faults.oversized_next(5, 10);
    faults.redirect_next(5, "http://127.0.0.1:9/");

    faults.clear();
    let reply = api.get("/");

    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn fault_leaves_proxy_alone() {
    let emulator = start();
    emulator.faults().fail_next(1, 502);

    let proxied = Api::proxy(&emulator).get("/");
    let admin = Api::admin(&emulator).get("/");

    assert_eq!(proxied.status, 401, "{proxied:?}");
    assert_eq!(
        admin.status, 502,
        "the fault was still armed for the Admin API: {admin:?}"
    );
}

#[test]
fn request_log_records_in_order() {
    let emulator = start();
    let api = Api::admin(&emulator).with_header("X-Trace", "t-1");
    emulator.faults().fail_next(1, 500);

    api.get("/consumers?size=5&tags=a%2Cb");
    api.post("/consumers", json!({ "username": "bob" }));
    api.delete("/consumers/bob");

    let requests = emulator.requests();
    let summary: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/consumers?size=5&tags=a%2Cb"),
            ("POST", "/consumers"),
            ("DELETE", "/consumers/bob")
        ]
    );
    assert_eq!(requests[1].header("x-trace"), Some("t-1"));
    assert_eq!(requests[1].header("content-type"), Some("application/json"));
    assert_eq!(requests[1].json(), Some(json!({ "username": "bob" })));
    assert!(requests[2].body.is_empty());

    emulator.clear_requests();
    assert!(emulator.requests().is_empty());
}
