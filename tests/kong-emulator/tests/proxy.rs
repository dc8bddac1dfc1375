//! The proxy listener: a live key gets 200, a missing, unknown, revoked or expired one 401,
//! and an older data plane that ignores `ttl` keeps accepting an expired key.

mod common;

use std::time::Duration;

use common::{create_consumer, start, start_with, Api};
use kong_emulator::Options;
use reqwest::Method;
use serde_json::json;

#[test]
fn proxy_accepts_live_key() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    let credential = api
        .post("/consumers/bob/key-auth", json!({ "key": "live-key" }))
        .body;

    let by_header = Api::proxy(&emulator)
        .with_header("apikey", "live-key")
        .get("/orders/7");
    let by_query = Api::proxy(&emulator).get("/orders/7?apikey=live-key&x=1");

    for reply in [&by_header, &by_query] {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body,
            json!({
                "consumer": { "id": bob["id"], "username": "bob", "custom_id": null },
                "credential": { "id": credential["id"] }
            }),
            "{reply:?}"
        );
        assert_eq!(
            reply.header("x-consumer-id"),
            bob["id"].as_str(),
            "{reply:?}"
        );
        assert_eq!(
            reply.header("x-consumer-username"),
            Some("bob"),
            "{reply:?}"
        );
    }
}

#[test]
fn proxy_accepts_any_method_and_path() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    api.post("/consumers/bob/key-auth", json!({ "key": "k" }));
    let proxy = Api::proxy(&emulator).with_header("apikey", "k");

    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ] {
        let reply = proxy.send(method.clone(), "/a/b/c", Some(json!({ "any": "body" })));

        assert_eq!(reply.status, 200, "{method}: {reply:?}");
    }
}

#[test]
fn proxy_rejections_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let revoked = api
        .post("/consumers/bob/key-auth", json!({ "key": "revoked" }))
        .body;
    api.delete(&format!("/key-auths/{}", revoked["id"].as_str().unwrap()));
    let cases = [
        (None, "/", "No API key found in request"),
        (Some("unknown"), "/", "Invalid authentication credentials"),
        (Some("revoked"), "/", "Invalid authentication credentials"),
        (
            None,
            "/?apikey=unknown",
            "Invalid authentication credentials",
        ),
    ];

    for (header, path, message) in cases {
        let mut proxy = Api::proxy(&emulator);
        if let Some(key) = header {
            proxy = proxy.with_header("apikey", key);
        }

        let reply = proxy.get(path);

        assert_eq!(reply.status, 401, "key {header:?} {path}: {reply:?}");
        assert_eq!(
            reply.body,
            json!({ "message": message }),
            "key {header:?} {path}: {reply:?}"
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Key realm=\"kong\""),
            "{reply:?}"
        );
    }
}

#[test]
fn proxy_rejects_expired_key() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    api.post(
        "/consumers/bob/key-auth",
        json!({ "key": "brief", "ttl": 5 }),
    );
    let proxy = Api::proxy(&emulator).with_header("apikey", "brief");

    let before = proxy.get("/");
    emulator.advance_clock(Duration::from_secs(6));
    let after = proxy.get("/");

    assert_eq!(before.status, 200, "{before:?}");
    assert_eq!(after.status, 401, "{after:?}");
    assert_eq!(
        after.body,
        json!({ "message": "Invalid authentication credentials" }),
        "{after:?}"
    );
}

#[test]
fn proxy_ignoring_ttl_accepts_expired_key() {
    let emulator = start_with(Options {
        version: "3.4.2".to_owned(),
        ttl_ignored_by_proxy: true,
        ..Options::default()
    });
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let credential = api
        .post(
            "/consumers/bob/key-auth",
            json!({ "key": "brief", "ttl": 5 }),
        )
        .body;
    let proxy = Api::proxy(&emulator).with_header("apikey", "brief");

    emulator.advance_clock(Duration::from_secs(6));
    let expired = proxy.get("/");
    let admin_view = api.get(&format!(
        "/key-auths/{}",
        credential["id"].as_str().unwrap()
    ));
    api.delete(&format!(
        "/consumers/bob/key-auth/{}",
        credential["id"].as_str().unwrap()
    ));
    let after_admin_delete = proxy.get("/");
    api.delete("/consumers/bob");
    let after_consumer_delete = proxy.get("/");

    assert_eq!(expired.status, 200, "{expired:?}");
    assert_eq!(admin_view.status, 404, "{admin_view:?}");
    assert_eq!(
        after_admin_delete.status, 200,
        "nested delete of an expired key is a 404: {after_admin_delete:?}"
    );
    assert_eq!(
        after_consumer_delete.status, 401,
        "{after_consumer_delete:?}"
    );
}

#[test]
fn proxy_finds_keys_in_workspaces() {
    let emulator = start_with(Options {
        workspaces: vec!["team-a".to_owned()],
        ..Options::default()
    });
    let api = Api::admin(&emulator);
    api.post("/team-a/consumers", json!({ "username": "bob" }));
    api.post("/team-a/consumers/bob/key-auth", json!({ "key": "ws-key" }));

    let reply = Api::proxy(&emulator)
        .with_header("apikey", "ws-key")
        .get("/");

    assert_eq!(reply.status, 200, "{reply:?}");
}
