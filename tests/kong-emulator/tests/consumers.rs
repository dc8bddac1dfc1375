//! Consumers: create, read, upsert, update, delete, uniqueness, pagination, tags and the
//! generic Admin API behaviour (content types, unknown routes, methods).

mod common;

use common::{create_consumer, keys, start, Api};
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn consumer_post_returns_entity() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let reply = api.post(
        "/consumers",
        json!({ "username": "bob", "tags": ["team-a"] }),
    );

    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(
        keys(&reply.body),
        [
            "id",
            "created_at",
            "updated_at",
            "username",
            "custom_id",
            "tags"
        ],
        "{reply:?}"
    );
    assert_eq!(reply.body["username"], "bob", "{reply:?}");
    assert_eq!(reply.body["custom_id"], Value::Null, "{reply:?}");
    assert_eq!(reply.body["tags"], json!(["team-a"]), "{reply:?}");
    assert!(reply.body["created_at"].is_i64(), "{reply:?}");
}

#[test]
fn consumer_without_names_is_rejected() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let reply = api.post("/consumers", json!({ "tags": ["a"] }));

    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "code": 2,
            "name": "schema violation",
            "message": "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
            "fields": {
                "@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]
            }
        }),
        "{reply:?}"
    );
}

#[test]
fn consumer_field_errors_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let cases = [
        (
            json!({ "username": "bob", "fake": 1 }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (fake: unknown field)",
                "fields": { "fake": "unknown field" }
            }),
        ),
        (
            json!({ "username": 42 }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (username: expected a string)",
                "fields": { "username": "expected a string" }
            }),
        ),
        (
            json!({ "username": "bob", "tags": "a" }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (tags: expected a set)",
                "fields": { "tags": "expected a set" }
            }),
        ),
        (
            json!({ "custom_id": "", "fake": true }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "2 schema violations (custom_id: length must be at least 1; fake: unknown field)",
                "fields": { "custom_id": "length must be at least 1", "fake": "unknown field" }
            }),
        ),
    ];

    for (body, expected) in cases {
        let reply = api.post("/consumers", body.clone());

        assert_eq!(reply.status, 400, "POST {body}: {reply:?}");
        assert_eq!(reply.body, expected, "POST {body}: {reply:?}");
    }
}

#[test]
fn consumer_duplicate_names_conflict() {
    let emulator = start();
    let api = Api::admin(&emulator);
    api.post(
        "/consumers",
        json!({ "username": "bob", "custom_id": "c-1" }),
    );
    let cases = [
        (
            json!({ "username": "bob" }),
            json!({
                "code": 5,
                "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{username=\"bob\"}'",
                "fields": { "username": "bob" }
            }),
        ),
        (
            json!({ "username": "alice", "custom_id": "c-1" }),
            json!({
                "code": 5,
                "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{custom_id=\"c-1\"}'",
                "fields": { "custom_id": "c-1" }
            }),
        ),
    ];

    for (body, expected) in cases {
        let reply = api.post("/consumers", body.clone());

        assert_eq!(reply.status, 409, "POST {body}: {reply:?}");
        assert_eq!(reply.body, expected, "POST {body}: {reply:?}");
    }
}

#[test]
fn consumer_get_by_username_or_id() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    let id = bob["id"].as_str().unwrap();

    let by_name = api.get("/consumers/bob");
    let by_id = api.get(&format!("/consumers/{id}"));
    let by_upper_id = api.get(&format!("/consumers/{}", id.to_uppercase()));

    assert_eq!(by_name.status, 200, "{by_name:?}");
    assert_eq!(by_name.body, bob, "{by_name:?}");
    assert_eq!(by_id.body, bob, "{by_id:?}");
    assert_eq!(by_upper_id.body, bob, "{by_upper_id:?}");
}

#[test]
fn consumer_get_missing_is_404() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let reply = api.get("/consumers/ghost");

    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.body, json!({ "message": "Not found" }), "{reply:?}");
}

#[test]
fn consumer_uuid_username_reads_as_id() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let name = "5f6c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f";
    create_consumer(&api, name);

    let reply = api.get(&format!("/consumers/{name}"));

    assert_eq!(reply.status, 404, "{reply:?}");
}

#[test]
fn consumer_username_with_reserved_characters() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob@example.com/ops");

    let reply = api.get("/consumers/bob%40example.com%2Fops");

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["username"], "bob@example.com/ops", "{reply:?}");
}

#[test]
fn consumer_put_creates_then_replaces() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let created = api.put(
        "/consumers/alice",
        json!({ "custom_id": "a-1", "tags": ["x"] }),
    );
    let replaced = api.put("/consumers/alice", json!({}));

    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.body["username"], "alice", "{created:?}");
    assert_eq!(created.body["custom_id"], "a-1", "{created:?}");
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.body["id"], created.body["id"], "{replaced:?}");
    assert_eq!(replaced.body["custom_id"], Value::Null, "{replaced:?}");
    assert_eq!(replaced.body["tags"], Value::Null, "{replaced:?}");
}

#[test]
fn consumer_put_path_username_wins() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let reply = api.put("/consumers/alice", json!({ "username": "mallory" }));

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["username"], "alice", "{reply:?}");
}

#[test]
fn consumer_put_by_id_needs_a_name() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let id = "0b3a5a6c-1111-4222-8333-944455556666";

    let nameless = api.put(&format!("/consumers/{id}"), json!({}));
    let named = api.put(&format!("/consumers/{id}"), json!({ "username": "carol" }));

    assert_eq!(nameless.status, 400, "{nameless:?}");
    assert_eq!(named.status, 200, "{named:?}");
    assert_eq!(named.body["id"], id, "{named:?}");
    assert_eq!(named.body["username"], "carol", "{named:?}");
}

#[test]
fn consumer_put_conflicting_custom_id() {
    let emulator = start();
    let api = Api::admin(&emulator);
    api.post(
        "/consumers",
        json!({ "username": "bob", "custom_id": "shared" }),
    );

    let reply = api.put("/consumers/alice", json!({ "custom_id": "shared" }));

    assert_eq!(reply.status, 409, "{reply:?}");
    assert_eq!(
        reply.body["fields"],
        json!({ "custom_id": "shared" }),
        "{reply:?}"
    );
}

#[test]
fn consumer_patch_updates_named_fields() {
    let emulator = start();
    let api = Api::admin(&emulator);
    api.post(
        "/consumers",
        json!({ "username": "bob", "custom_id": "c-1" }),
    );

    let reply = api.patch("/consumers/bob", json!({ "tags": ["ops"] }));

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["custom_id"], "c-1", "{reply:?}");
    assert_eq!(reply.body["tags"], json!(["ops"]), "{reply:?}");
}

#[test]
fn consumer_patch_missing_is_dao_404() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let id = "0b3a5a6c-1111-4222-8333-944455556666";
    let cases = [
        (
            "/consumers/ghost".to_owned(),
            json!({
                "code": 6,
                "name": "not found",
                "message": "could not find the entity with '{username=\"ghost\"}'",
                "fields": { "username": "ghost" }
            }),
        ),
        (
            format!("/consumers/{id}"),
            json!({
                "code": 6,
                "name": "not found",
                "message": format!("could not find the entity with primary key '{{id=\"{id}\"}}'"),
                "fields": { "id": id }
            }),
        ),
    ];

    for (path, expected) in cases {
        let reply = api.patch(&path, json!({ "tags": ["x"] }));

        assert_eq!(reply.status, 404, "PATCH {path}: {reply:?}");
        assert_eq!(reply.body, expected, "PATCH {path}: {reply:?}");
    }
}

#[test]
fn consumer_delete_is_idempotent() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let first = api.delete("/consumers/bob");
    let second = api.delete("/consumers/bob");
    let read = api.get("/consumers/bob");

    assert_eq!(first.status, 204, "{first:?}");
    assert_eq!(first.text, "", "{first:?}");
    assert_eq!(second.status, 204, "{second:?}");
    assert_eq!(read.status, 404, "{read:?}");
}

#[test]
fn consumer_delete_cascades_to_credentials() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let created = [
        ("key-auth", json!({})),
        (
            "basic-auth",
            json!({ "username": "bob-basic", "password": "pw" }),
        ),
        ("hmac-auth", json!({ "username": "bob-hmac" })),
        ("jwt", json!({})),
        ("acls", json!({ "group": "admins" })),
    ];
    for (nested, body) in &created {
        let reply = api.post(&format!("/consumers/bob/{nested}"), body.clone());
        assert_eq!(reply.status, 201, "POST {nested}: {reply:?}");
    }

    api.delete("/consumers/bob");

    for global in ["key-auths", "basic-auths", "hmac-auths", "jwts", "acls"] {
        let reply = api.get(&format!("/{global}"));
        assert_eq!(reply.body["data"], json!([]), "GET /{global}: {reply:?}");
    }
    assert!(emulator.key_auth_credentials().is_empty());
}

#[test]
fn consumers_list_pages_by_id() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let mut ids: Vec<String> = (0..5)
        .map(|i| {
            create_consumer(&api, &format!("user-{i}"))["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();

    let mut seen = Vec::new();
    let mut path = "/consumers?size=2".to_owned();
    let mut pages = 0;
    loop {
        let reply = api.get(&path);
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        pages += 1;
        for consumer in reply.body["data"].as_array().unwrap() {
            seen.push(consumer["id"].as_str().unwrap().to_owned());
        }
        match reply.body["next"].as_str() {
            Some(next) => {
                let offset = reply.body["offset"].as_str().expect("offset with next");
                let expected_next = format!("/consumers?offset={}&size=2", escape(offset));
                assert_eq!(next, expected_next, "{reply:?}");
                path = next.to_owned();
            }
            None => {
                assert!(
                    reply.body.get("offset").is_none(),
                    "last page has no offset: {reply:?}"
                );
                break;
            }
        }
    }

    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
}

#[test]
fn consumers_list_filters_by_tags() {
    let emulator = start();
    let api = Api::admin(&emulator);
    api.post(
        "/consumers",
        json!({ "username": "ab", "tags": ["a", "b"] }),
    );
    api.post("/consumers", json!({ "username": "a", "tags": ["a"] }));
    api.post("/consumers", json!({ "username": "c", "tags": ["c"] }));
    api.post("/consumers", json!({ "username": "none" }));
    let cases = [
        ("a", vec!["a", "ab"]),
        ("a,b", vec!["ab"]),
        ("b/c", vec!["ab", "c"]),
        ("zzz", vec![]),
    ];

    for (tags, expected) in cases {
        let reply = api.get(&format!("/consumers?tags={}", escape(tags)));
        let mut names: Vec<&str> = reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["username"].as_str().unwrap())
            .collect();
        names.sort();

        assert_eq!(names, expected, "tags={tags}: {reply:?}");
    }
}

#[test]
fn consumers_next_keeps_tags_and_size() {
    let emulator = start();
    let api = Api::admin(&emulator);
    for i in 0..3 {
        api.post(
            "/consumers",
            json!({ "username": format!("t{i}"), "tags": ["t"] }),
        );
    }

    let reply = api.get("/consumers?tags=t&size=2");

    let offset = reply.body["offset"].as_str().unwrap();
    assert_eq!(
        reply.body["next"],
        format!("/consumers?offset={}&tags=t&size=2", escape(offset)),
        "{reply:?}"
    );
}

#[test]
fn consumers_list_query_errors_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let cases = [
        (
            "size=abc",
            json!({ "code": 9, "name": "invalid size", "message": "size must be a number" }),
        ),
        (
            "size=0",
            json!({ "code": 9, "name": "invalid size", "message": "size must be an integer between 1 and 1000" }),
        ),
        (
            "size=1001",
            json!({ "code": 9, "name": "invalid size", "message": "size must be an integer between 1 and 1000" }),
        ),
        (
            "offset=%21%21",
            json!({ "code": 7, "name": "invalid offset", "message": "'!!' is not a valid offset: bad base64 encoding" }),
        ),
        (
            "offset=bm90IGpzb24",
            json!({ "code": 7, "name": "invalid offset", "message": "'bm90IGpzb24' is not a valid offset: bad json encoding" }),
        ),
        (
            "tags=a,b,c,d,e,f",
            json!({
                "code": 11,
                "name": "invalid options",
                "message": "invalid option (tags: cannot query more than 5 tags)",
                "options": { "tags": "cannot query more than 5 tags" }
            }),
        ),
        (
            "tags=a,b/c",
            json!({
                "code": 11,
                "name": "invalid options",
                "message": "invalid option (tags: invalid filter syntax)",
                "options": { "tags": "invalid filter syntax" }
            }),
        ),
    ];

    for (query, expected) in cases {
        let reply = api.get(&format!("/consumers?{query}"));

        assert_eq!(reply.status, 400, "GET ?{query}: {reply:?}");
        assert_eq!(reply.body, expected, "GET ?{query}: {reply:?}");
    }
}

#[test]
fn consumers_by_custom_id() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = api
        .post(
            "/consumers",
            json!({ "username": "bob", "custom_id": "ext-7" }),
        )
        .body;

    let found = api.get("/consumers?custom_id=ext-7");
    let missing = api.get("/consumers?custom_id=ext-8");
    let empty = api.get("/consumers?custom_id=");

    assert_eq!(
        found.body,
        json!({ "data": [bob], "next": null }),
        "{found:?}"
    );
    assert_eq!(
        missing.body,
        json!({ "data": [], "next": null }),
        "{missing:?}"
    );
    assert_eq!(empty.status, 400, "{empty:?}");
    assert_eq!(
        empty.body,
        json!({ "message": "custom_id must be an unempty string" }),
        "{empty:?}"
    );
}

#[test]
fn consumers_trailing_slash_is_ignored() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let list = api.get("/consumers/");
    let entity = api.get("/consumers/bob/");

    assert_eq!(
        list.body["data"].as_array().map(Vec::len),
        Some(1),
        "{list:?}"
    );
    assert_eq!(entity.status, 200, "{entity:?}");
}

#[test]
fn admin_routes_and_methods_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let cases = [
        (
            Method::DELETE,
            "/consumers",
            405,
            json!({ "message": "Method not allowed" }),
        ),
        (
            Method::POST,
            "/consumers/bob",
            405,
            json!({ "message": "Method not allowed" }),
        ),
        (
            Method::GET,
            "/services",
            404,
            json!({ "message": "Not found" }),
        ),
        (
            Method::GET,
            "/consumers/bob/plugins",
            404,
            json!({ "message": "Not found" }),
        ),
        (
            Method::GET,
            "/consumers/bob/key-auth/x/y",
            404,
            json!({ "message": "Not found" }),
        ),
        (
            Method::POST,
            "/",
            405,
            json!({ "message": "Method not allowed" }),
        ),
    ];

    for (method, path, status, body) in cases {
        let reply = api.send(method.clone(), path, None);

        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        assert_eq!(reply.body, body, "{method} {path}: {reply:?}");
    }
}

#[test]
fn write_body_content_types_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let cases: [(Option<&str>, &'static [u8], u16, Value); 5] = [
        (Some("text/plain"), b"username=a", 415, json!({ "message": "Unsupported Media Type" })),
        (None, b"username=a", 415, json!({ "message": "Unsupported Media Type" })),
        (Some("application/json"), b"{not json", 400, json!({ "message": "Cannot parse JSON body" })),
        (Some("application/x-www-form-urlencoded"), b"username=form-user&tags[]=t1", 201, Value::Null),
        (
            Some("multipart/form-data; boundary=B"),
            b"--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmultipart-user\r\n--B--\r\n",
            201,
            Value::Null,
        ),
    ];

    for (content_type, body, status, expected) in cases {
        let reply = api.send_raw(Method::POST, "/consumers", content_type, body);

        assert_eq!(
            reply.status, status,
            "content type {content_type:?}: {reply:?}"
        );
        if !expected.is_null() {
            assert_eq!(
                reply.body, expected,
                "content type {content_type:?}: {reply:?}"
            );
        }
    }
    assert_eq!(api.get("/consumers/form-user").body["tags"], json!(["t1"]));
    assert_eq!(api.get("/consumers/multipart-user").status, 200);
}

/// Percent-encodes like OpenResty's `ngx.escape_uri`, which Kong uses for `next`.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
