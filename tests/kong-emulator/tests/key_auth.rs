//! key-auth credentials: nested and global routes, generated keys, uniqueness, `ttl` expiry
//! and renewal, pagination and the 404-versus-204 difference of nested and global deletes.

mod common;

use std::time::Duration;

use common::{create_consumer, keys, start, Api};
use reqwest::Method;
use serde_json::{json, Value};

const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

fn invalid_ttl() -> Value {
    json!({
        "code": 11,
        "name": "invalid options",
        "message": "invalid option (ttl: must be an integer between 0 and 100000000)",
        "options": { "ttl": "must be an integer between 0 and 100000000" }
    })
}

#[test]
fn key_auth_post_generates_key() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");

    let reply = api.post("/consumers/bob/key-auth", json!({}));

    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(
        keys(&reply.body),
        ["id", "created_at", "consumer", "key", "tags", "ttl"],
        "{reply:?}"
    );
    assert_eq!(
        reply.body["consumer"],
        json!({ "id": bob["id"] }),
        "{reply:?}"
    );
    let key = reply.body["key"].as_str().unwrap();
    assert_eq!(key.len(), 32, "{reply:?}");
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{reply:?}");
    assert_eq!(reply.body["tags"], Value::Null, "{reply:?}");
    assert_eq!(reply.body["ttl"], Value::Null, "{reply:?}");
}

#[test]
fn key_auth_post_without_body() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let reply = api.send(Method::POST, "/consumers/bob/key-auth", None);

    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(
        reply.body["key"].as_str().map(str::len),
        Some(32),
        "{reply:?}"
    );
}

#[test]
fn key_auth_post_with_key_tags_ttl() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let reply = api.post(
        "/consumers/bob/key-auth",
        json!({ "key": "my-key", "tags": ["vault", "lease-1"], "ttl": 3600 }),
    );

    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.body["key"], "my-key", "{reply:?}");
    assert_eq!(reply.body["tags"], json!(["vault", "lease-1"]), "{reply:?}");
    assert_eq!(reply.body["ttl"], 3600, "{reply:?}");
}

#[test]
fn key_auth_duplicate_key_conflicts() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    create_consumer(&api, "alice");
    api.post("/consumers/bob/key-auth", json!({ "key": "taken" }));

    let reply = api.post("/consumers/alice/key-auth", json!({ "key": "taken" }));

    assert_eq!(reply.status, 409, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "code": 5,
            "name": "unique constraint violation",
            "message": "UNIQUE violation detected on '{key=\"taken\"}'",
            "fields": { "key": "taken" }
        }),
        "{reply:?}"
    );
}

#[test]
fn key_auth_invalid_key_type() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let reply = api.post("/consumers/bob/key-auth", json!({ "key": 123 }));

    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "code": 2,
            "name": "schema violation",
            "message": "schema violation (key: expected a string)",
            "fields": { "key": "expected a string" }
        }),
        "{reply:?}"
    );
}

#[test]
fn key_auth_nested_missing_consumer_404() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let cases = [
        (Method::GET, "/consumers/ghost/key-auth"),
        (Method::POST, "/consumers/ghost/key-auth"),
        (Method::GET, "/consumers/ghost/key-auth/some-key"),
        (Method::PUT, "/consumers/ghost/key-auth/some-key"),
        (Method::PATCH, "/consumers/ghost/key-auth/some-key"),
        (Method::DELETE, "/consumers/ghost/key-auth/some-key"),
    ];

    for (method, path) in cases {
        let reply = api.send(method.clone(), path, Some(json!({})));

        assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
        assert_eq!(
            reply.body,
            json!({ "message": "Not found" }),
            "{method} {path}: {reply:?}"
        );
    }
}

#[test]
fn key_auth_nested_get_by_id_or_key() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let credential = api
        .post("/consumers/bob/key-auth", json!({ "key": "k-1" }))
        .body;
    let id = credential["id"].as_str().unwrap();

    let by_id = api.get(&format!("/consumers/bob/key-auth/{id}"));
    let by_key = api.get("/consumers/bob/key-auth/k-1");

    assert_eq!(by_id.body, credential, "{by_id:?}");
    assert_eq!(by_key.body, credential, "{by_key:?}");
}

#[test]
fn key_auth_nested_delete_semantics_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    create_consumer(&api, "alice");
    let bobs = api
        .post("/consumers/bob/key-auth", json!({ "key": "bobs-key" }))
        .body;
    let bobs_id = bobs["id"].as_str().unwrap();
    let cases = [
        (
            format!("/consumers/ghost/key-auth/{bobs_id}"),
            "consumer missing",
        ),
        (
            format!("/consumers/bob/key-auth/{MISSING_ID}"),
            "credential missing",
        ),
        ("/consumers/bob/key-auth/blah".to_owned(), "key missing"),
        (
            format!("/consumers/alice/key-auth/{bobs_id}"),
            "credential of another consumer",
        ),
        (
            "/consumers/alice/key-auth/bobs-key".to_owned(),
            "key of another consumer",
        ),
    ];

    for (path, case) in cases {
        let reply = api.delete(&path);

        assert_eq!(reply.status, 404, "{case}: DELETE {path}: {reply:?}");
        assert_eq!(
            reply.body,
            json!({ "message": "Not found" }),
            "{case}: {reply:?}"
        );
    }
    let deleted = api.delete(&format!("/consumers/bob/key-auth/{bobs_id}"));
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert!(emulator.key_auth_credentials().is_empty());
}

#[test]
fn key_auth_global_delete_missing_is_204() {
    let emulator = start();
    let api = Api::admin(&emulator);

    for path in [
        format!("/key-auths/{MISSING_ID}"),
        "/key-auths/no-such-key".to_owned(),
    ] {
        let reply = api.delete(&path);

        assert_eq!(reply.status, 204, "DELETE {path}: {reply:?}");
    }
}

#[test]
fn key_auth_global_routes_by_id_or_key() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    let credential = api
        .post("/consumers/bob/key-auth", json!({ "key": "k-1" }))
        .body;
    let id = credential["id"].as_str().unwrap();

    let by_id = api.get(&format!("/key-auths/{id}"));
    let by_key = api.get("/key-auths/k-1");
    let owner = api.get("/key-auths/k-1/consumer");
    let patched = api.patch("/key-auths/k-1", json!({ "tags": ["t"] }));
    let deleted = api.delete(&format!("/key-auths/{id}"));
    let gone = api.get(&format!("/key-auths/{id}"));

    assert_eq!(by_id.body, credential, "{by_id:?}");
    assert_eq!(by_key.body, credential, "{by_key:?}");
    assert_eq!(owner.body, bob, "{owner:?}");
    assert_eq!(patched.body["tags"], json!(["t"]), "{patched:?}");
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(gone.status, 404, "{gone:?}");
    assert_eq!(gone.body, json!({ "message": "Not found" }), "{gone:?}");
}

#[test]
fn key_auth_global_patch_missing_is_dao_404() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let reply = api.patch("/key-auths/nope", json!({ "tags": ["t"] }));

    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "code": 6,
            "name": "not found",
            "message": "could not find the entity with '{key=\"nope\"}'",
            "fields": { "key": "nope" }
        }),
        "{reply:?}"
    );
}

#[test]
fn key_auth_global_post_consumer_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    let cases = [
        (
            json!({}),
            400,
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (consumer: required field missing)",
                "fields": { "consumer": "required field missing" }
            }),
        ),
        (
            json!({ "consumer": { "id": MISSING_ID } }),
            400,
            json!({
                "code": 4,
                "name": "foreign key violation",
                "message": format!("the foreign key '{{id=\"{MISSING_ID}\"}}' does not reference an existing 'consumers' entity."),
                "fields": { "consumer": { "id": MISSING_ID } }
            }),
        ),
        (
            json!({ "consumer": { "username": "ghost" } }),
            400,
            json!({
                "code": 13,
                "name": "foreign keys unresolved",
                "message": "foreign key unresolved (consumer.username: the foreign key cannot be resolved with '{username=\"ghost\"}' for an existing 'consumers' entity)",
                "fields": { "consumer": { "username": "the foreign key cannot be resolved with '{username=\"ghost\"}' for an existing 'consumers' entity" } }
            }),
        ),
        (
            json!({ "consumer": { "username": "bob" } }),
            201,
            Value::Null,
        ),
        (json!({ "consumer": { "id": bob["id"] } }), 201, Value::Null),
    ];

    for (body, status, expected) in cases {
        let reply = api.post("/key-auths", body.clone());

        assert_eq!(reply.status, status, "POST {body}: {reply:?}");
        if status == 201 {
            assert_eq!(
                reply.body["consumer"],
                json!({ "id": bob["id"] }),
                "POST {body}: {reply:?}"
            );
        } else {
            assert_eq!(reply.body, expected, "POST {body}: {reply:?}");
        }
    }
}

#[test]
fn key_auth_nested_put_upserts() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    let id = "c16bbff7-5d0d-4a28-8127-1ee581898f11";

    let by_key = api.put("/consumers/bob/key-auth/1234", json!({}));
    let by_id = api.put(&format!("/consumers/bob/key-auth/{id}"), json!({}));
    let replaced = api.put("/consumers/bob/key-auth/1234", json!({ "tags": ["x"] }));

    assert_eq!(by_key.status, 200, "{by_key:?}");
    assert_eq!(by_key.body["key"], "1234", "{by_key:?}");
    assert_eq!(
        by_key.body["consumer"],
        json!({ "id": bob["id"] }),
        "{by_key:?}"
    );
    assert_eq!(by_id.body["id"], id, "{by_id:?}");
    assert_eq!(
        by_id.body["key"].as_str().map(str::len),
        Some(32),
        "{by_id:?}"
    );
    assert_eq!(replaced.body["id"], by_key.body["id"], "{replaced:?}");
    assert_eq!(replaced.body["tags"], json!(["x"]), "{replaced:?}");
}

#[test]
fn key_auth_ttl_expires_everywhere() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let proxy = Api::proxy(&emulator);
    emulator.pause_clock();
    create_consumer(&api, "bob");
    let created = api.post(
        "/consumers/bob/key-auth",
        json!({ "key": "short", "ttl": 10 }),
    );
    let id = created.body["id"].as_str().unwrap().to_owned();

    emulator.advance_clock(Duration::from_millis(4500));
    let halfway = api.get(&format!("/key-auths/{id}"));
    emulator.advance_clock(Duration::from_millis(5500));
    let last_moment = api.get(&format!("/key-auths/{id}"));
    emulator.advance_clock(Duration::from_millis(1));

    assert_eq!(created.body["ttl"], 10, "{created:?}");
    assert_eq!(halfway.body["ttl"], 5, "{halfway:?}");
    assert_eq!(last_moment.body["ttl"], 0, "{last_moment:?}");
    for path in [
        format!("/key-auths/{id}"),
        "/key-auths/short".to_owned(),
        format!("/consumers/bob/key-auth/{id}"),
    ] {
        let reply = api.get(&path);
        assert_eq!(reply.status, 404, "GET {path} after expiry: {reply:?}");
    }
    assert_eq!(api.get("/key-auths").body["data"], json!([]));
    assert_eq!(api.get("/consumers/bob/key-auth").body["data"], json!([]));
    assert_eq!(
        api.delete(&format!("/consumers/bob/key-auth/{id}")).status,
        404
    );
    assert!(emulator.key_auth_credentials().is_empty());
    let denied = proxy.send(Method::GET, "/", None);
    assert_eq!(denied.status, 401, "{denied:?}");
    let denied = Api::proxy(&emulator)
        .with_header("apikey", "short")
        .get("/");
    assert_eq!(
        denied.body,
        json!({ "message": "Invalid authentication credentials" }),
        "{denied:?}"
    );
}

#[test]
fn key_auth_patch_ttl_moves_expiry() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.pause_clock();
    create_consumer(&api, "bob");
    let id = api
        .post("/consumers/bob/key-auth", json!({ "ttl": 10 }))
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/consumers/bob/key-auth/{id}");

    emulator.advance_clock(Duration::from_secs(8));
    let renewed = api.patch(&path, json!({ "ttl": 10 }));
    emulator.advance_clock(Duration::from_secs(9));
    let still_live = api.get(&path);
    emulator.advance_clock(Duration::from_secs(2));
    let expired = api.get(&path);

    assert_eq!(renewed.status, 200, "{renewed:?}");
    assert_eq!(renewed.body["ttl"], 10, "{renewed:?}");
    assert_eq!(still_live.status, 200, "{still_live:?}");
    assert_eq!(still_live.body["ttl"], 1, "{still_live:?}");
    assert_eq!(expired.status, 404, "{expired:?}");
}

#[test]
fn key_auth_patch_without_ttl_keeps_expiry() {
    let emulator = start();
    let api = Api::admin(&emulator);
    emulator.pause_clock();
    create_consumer(&api, "bob");
    let id = api
        .post("/consumers/bob/key-auth", json!({ "ttl": 10 }))
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    emulator.advance_clock(Duration::from_millis(4500));
    let patched = api.patch(&format!("/key-auths/{id}"), json!({ "tags": ["t"] }));

    assert_eq!(patched.body["ttl"], 5, "{patched:?}");
    assert_eq!(patched.body["tags"], json!(["t"]), "{patched:?}");
}

#[test]
fn key_auth_ttl_zero_never_expires() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let created = api.post("/consumers/bob/key-auth", json!({ "ttl": 0 }));
    let id = created.body["id"].as_str().unwrap();

    emulator.advance_clock(Duration::from_secs(100_000_000));
    let later = api.get(&format!("/key-auths/{id}"));

    assert_eq!(created.body["ttl"], Value::Null, "{created:?}");
    assert_eq!(later.status, 200, "{later:?}");
}

#[test]
fn key_auth_ttl_out_of_range_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let id = api.post("/consumers/bob/key-auth", json!({})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad_ttls = [
        json!(-1),
        json!(100_000_001),
        json!(1.5),
        json!("10"),
        json!(null),
    ];

    for ttl in bad_ttls {
        let post = api.post("/consumers/bob/key-auth", json!({ "ttl": ttl }));
        let patch = api.patch(
            &format!("/consumers/bob/key-auth/{id}"),
            json!({ "ttl": ttl }),
        );

        assert_eq!(post.status, 400, "POST ttl={ttl}: {post:?}");
        assert_eq!(post.body, invalid_ttl(), "POST ttl={ttl}: {post:?}");
        assert_eq!(patch.status, 400, "PATCH ttl={ttl}: {patch:?}");
        assert_eq!(patch.body, invalid_ttl(), "PATCH ttl={ttl}: {patch:?}");
    }
    assert_eq!(
        api.get("/key-auths").body["data"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn key_auth_ttl_in_form_is_rejected() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let reply = api.send_raw(
        Method::POST,
        "/consumers/bob/key-auth",
        Some("application/x-www-form-urlencoded"),
        b"ttl=10",
    );

    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.body, invalid_ttl(), "{reply:?}");
}

#[test]
fn key_auth_schema_violation_precedes_ttl() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let reply = api.post("/consumers/bob/key-auth", json!({ "key": 1, "ttl": -1 }));

    assert_eq!(reply.body["code"], 2, "{reply:?}");
}

#[test]
fn key_auth_global_list_tags_and_pages() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    create_consumer(&api, "alice");
    for consumer in ["bob", "alice"] {
        for i in 0..3 {
            api.post(
                &format!("/consumers/{consumer}/key-auth"),
                json!({ "key": format!("{consumer}-{i}"), "tags": ["vault", format!("owner-{consumer}")] }),
            );
        }
    }
    api.post("/consumers/bob/key-auth", json!({ "key": "untagged" }));

    let all = api.get("/key-auths");
    let first = api.get("/key-auths?tags=vault&size=4");
    let next = first.body["next"].as_str().unwrap().to_owned();
    let second = api.get(&next);
    let bobs = api.get("/key-auths?tags=vault,owner-bob");

    assert_eq!(
        all.body["data"].as_array().map(Vec::len),
        Some(7),
        "{all:?}"
    );
    assert_eq!(
        first.body["data"].as_array().map(Vec::len),
        Some(4),
        "{first:?}"
    );
    assert!(next.starts_with("/key-auths?offset="), "{first:?}");
    assert!(next.ends_with("&tags=vault&size=4"), "{first:?}");
    assert_eq!(
        second.body["data"].as_array().map(Vec::len),
        Some(2),
        "{second:?}"
    );
    assert_eq!(second.body["next"], Value::Null, "{second:?}");
    assert_eq!(
        bobs.body["data"].as_array().map(Vec::len),
        Some(3),
        "{bobs:?}"
    );
}

#[test]
fn key_auth_nested_next_keeps_only_offset() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    for _ in 0..3 {
        api.post("/consumers/bob/key-auth", json!({ "tags": ["t"] }));
    }

    let first = api.get("/consumers/bob/key-auth?size=2&tags=t");
    let next = first.body["next"].as_str().unwrap().to_owned();
    let offset = first.body["offset"].as_str().unwrap();
    let rebuilt = api.get(&format!("/consumers/bob/key-auth?size=2&offset={offset}"));

    assert_eq!(
        first.body["data"].as_array().map(Vec::len),
        Some(2),
        "{first:?}"
    );
    assert!(
        next.starts_with("/consumers/bob/key-auth?offset="),
        "{first:?}"
    );
    assert!(
        !next.contains("size=") && !next.contains("tags="),
        "{first:?}"
    );
    assert_eq!(
        rebuilt.body["data"].as_array().map(Vec::len),
        Some(1),
        "{rebuilt:?}"
    );
}

#[test]
fn key_auth_credential_of_other_consumer_hidden() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    create_consumer(&api, "alice");
    let id = api.post("/consumers/bob/key-auth", json!({})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let get = api.get(&format!("/consumers/alice/key-auth/{id}"));
    let patch = api.patch(
        &format!("/consumers/alice/key-auth/{id}"),
        json!({ "tags": ["x"] }),
    );

    assert_eq!(get.status, 404, "{get:?}");
    assert_eq!(patch.status, 404, "{patch:?}");
    assert_eq!(patch.body, json!({ "message": "Not found" }), "{patch:?}");
}

#[test]
fn key_auth_credentials_lists_live_rows() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let keeper = api
        .post("/consumers/bob/key-auth", json!({ "key": "keeper" }))
        .body;
    api.post(
        "/consumers/bob/key-auth",
        json!({ "key": "brief", "ttl": 1 }),
    );

    emulator.advance_clock(Duration::from_secs(2));

    assert_eq!(emulator.key_auth_credentials(), vec![keeper]);
}
