//! basic-auth, hmac-auth, jwt and acls credentials: the nested and global route pattern they
//! share with key-auth, their own fields, and the rejection of `ttl`, which only key-auth takes.

mod common;

use common::{create_consumer, keys, start, Api};
use serde_json::{json, Value};

const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

/// Returns each type's nested name, global name and a valid creation body.
fn credential_types() -> [(&'static str, &'static str, Value); 4] {
    [
        (
            "basic-auth",
            "basic-auths",
            json!({ "username": "bob-basic", "password": "s3cret" }),
        ),
        ("hmac-auth", "hmac-auths", json!({ "username": "bob-hmac" })),
        ("jwt", "jwts", json!({})),
        ("acls", "acls", json!({ "group": "admins" })),
    ]
}

fn sha1_hex(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        text.as_bytes(),
    );
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn credential_types_share_route_pattern() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    create_consumer(&api, "alice");

    for (nested, global, body) in credential_types() {
        let created = api.post(&format!("/consumers/bob/{nested}"), body);
        let id = created.body["id"].as_str().unwrap_or_default().to_owned();
        let nested_get = api.get(&format!("/consumers/bob/{nested}/{id}"));
        let other_consumer = api.get(&format!("/consumers/alice/{nested}/{id}"));
        let nested_list = api.get(&format!("/consumers/bob/{nested}"));
        let global_list = api.get(&format!("/{global}"));
        let global_get = api.get(&format!("/{global}/{id}"));
        let owner = api.get(&format!("/{global}/{id}/consumer"));
        let nested_delete_missing = api.delete(&format!("/consumers/bob/{nested}/{MISSING_ID}"));
        let global_delete_missing = api.delete(&format!("/{global}/{MISSING_ID}"));
        let nested_delete = api.delete(&format!("/consumers/bob/{nested}/{id}"));
        let after = api.get(&format!("/{global}/{id}"));

        assert_eq!(created.status, 201, "POST {nested}: {created:?}");
        assert_eq!(
            created.body["consumer"],
            json!({ "id": bob["id"] }),
            "POST {nested}: {created:?}"
        );
        assert_eq!(
            nested_get.body, created.body,
            "GET nested {nested}: {nested_get:?}"
        );
        assert_eq!(
            other_consumer.status, 404,
            "GET {nested} of alice: {other_consumer:?}"
        );
        assert_eq!(
            nested_list.body["data"],
            json!([created.body]),
            "{nested} list: {nested_list:?}"
        );
        assert_eq!(
            global_list.body["data"],
            json!([created.body]),
            "/{global}: {global_list:?}"
        );
        assert_eq!(
            global_get.body, created.body,
            "GET /{global}/id: {global_get:?}"
        );
        assert_eq!(owner.body, bob, "/{global}/id/consumer: {owner:?}");
        assert_eq!(
            nested_delete_missing.status, 404,
            "{nested}: {nested_delete_missing:?}"
        );
        assert_eq!(
            global_delete_missing.status, 204,
            "/{global}: {global_delete_missing:?}"
        );
        assert_eq!(nested_delete.status, 204, "{nested}: {nested_delete:?}");
        assert_eq!(after.status, 404, "/{global} after delete: {after:?}");
    }
}

#[test]
fn credential_types_reject_ttl() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    for (nested, _, mut body) in credential_types() {
        body["ttl"] = json!(60);

        let reply = api.post(&format!("/consumers/bob/{nested}"), body);

        assert_eq!(reply.status, 400, "POST {nested} with ttl: {reply:?}");
        assert_eq!(
            reply.body,
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (ttl: unknown field)",
                "fields": { "ttl": "unknown field" }
            }),
            "POST {nested} with ttl: {reply:?}"
        );
    }
}

#[test]
fn basic_auth_returns_password_hash() {
    let emulator = start();
    let api = Api::admin(&emulator);
    let bob = create_consumer(&api, "bob");
    let consumer_id = bob["id"].as_str().unwrap();

    let created = api.post(
        "/consumers/bob/basic-auth",
        json!({ "username": "bob", "password": "s3cret" }),
    );
    let patched = api.patch(
        "/consumers/bob/basic-auth/bob",
        json!({ "password": "n3w" }),
    );
    let tagged = api.patch("/consumers/bob/basic-auth/bob", json!({ "tags": ["t"] }));

    assert_eq!(
        keys(&created.body),
        [
            "id",
            "created_at",
            "consumer",
            "username",
            "password",
            "tags"
        ],
        "{created:?}"
    );
    assert_eq!(
        created.body["password"],
        sha1_hex(&format!("s3cret{consumer_id}")),
        "{created:?}"
    );
    assert_eq!(
        patched.body["password"],
        sha1_hex(&format!("n3w{consumer_id}")),
        "{patched:?}"
    );
    assert_eq!(
        tagged.body["password"], patched.body["password"],
        "{tagged:?}"
    );
}

#[test]
fn basic_auth_field_errors_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    api.post(
        "/consumers/bob/basic-auth",
        json!({ "username": "taken", "password": "p" }),
    );
    let cases = [
        (
            json!({ "username": "u" }),
            400,
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (password: required field missing)",
                "fields": { "password": "required field missing" }
            }),
        ),
        (
            json!({}),
            400,
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "2 schema violations (password: required field missing; username: required field missing)",
                "fields": { "password": "required field missing", "username": "required field missing" }
            }),
        ),
        (
            json!({ "username": "taken", "password": "p" }),
            409,
            json!({
                "code": 5,
                "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{username=\"taken\"}'",
                "fields": { "username": "taken" }
            }),
        ),
    ];

    for (body, status, expected) in cases {
        let reply = api.post("/consumers/bob/basic-auth", body.clone());

        assert_eq!(reply.status, status, "POST {body}: {reply:?}");
        assert_eq!(reply.body, expected, "POST {body}: {reply:?}");
    }
}

#[test]
fn hmac_auth_generates_secret() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");

    let generated = api.post("/consumers/bob/hmac-auth", json!({ "username": "h1" }));
    let chosen = api.post(
        "/consumers/bob/hmac-auth",
        json!({ "username": "h2", "secret": "mine" }),
    );
    let by_username = api.get("/hmac-auths/h1");

    assert_eq!(
        keys(&generated.body),
        ["id", "created_at", "consumer", "username", "secret", "tags"],
        "{generated:?}"
    );
    assert_eq!(
        generated.body["secret"].as_str().map(str::len),
        Some(32),
        "{generated:?}"
    );
    assert_eq!(chosen.body["secret"], "mine", "{chosen:?}");
    assert_eq!(by_username.body, generated.body, "{by_username:?}");
}

#[test]
fn jwt_defaults_and_algorithms() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let public_key = rcgen::KeyPair::generate().unwrap().public_key_pem();

    let default = api.post("/consumers/bob/jwt", json!({}));
    let es256 = api.post(
        "/consumers/bob/jwt",
        json!({ "algorithm": "ES256", "rsa_public_key": public_key }),
    );

    assert_eq!(
        keys(&default.body),
        [
            "id",
            "created_at",
            "consumer",
            "key",
            "secret",
            "rsa_public_key",
            "algorithm",
            "tags"
        ],
        "{default:?}"
    );
    assert_eq!(default.body["algorithm"], "HS256", "{default:?}");
    assert_eq!(
        default.body["key"].as_str().map(str::len),
        Some(32),
        "{default:?}"
    );
    assert_eq!(
        default.body["secret"].as_str().map(str::len),
        Some(32),
        "{default:?}"
    );
    assert_eq!(default.body["rsa_public_key"], Value::Null, "{default:?}");
    assert_eq!(es256.status, 201, "{es256:?}");
}

#[test]
fn jwt_field_errors_table() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let cases = [
        (
            json!({ "algorithm": "RS256" }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "2 schema violations (failed conditional validation given value of field 'algorithm'; rsa_public_key: required field missing)",
                "fields": {
                    "@entity": ["failed conditional validation given value of field 'algorithm'"],
                    "rsa_public_key": "required field missing"
                }
            }),
        ),
        (
            json!({ "algorithm": "RS256", "rsa_public_key": "not a key" }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "2 schema violations (failed conditional validation given value of field 'algorithm'; rsa_public_key: invalid key)",
                "fields": {
                    "@entity": ["failed conditional validation given value of field 'algorithm'"],
                    "rsa_public_key": "invalid key"
                }
            }),
        ),
        (
            json!({ "algorithm": "none" }),
            json!({
                "code": 2,
                "name": "schema violation",
                "message": "schema violation (algorithm: expected one of: HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384)",
                "fields": { "algorithm": "expected one of: HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384" }
            }),
        ),
    ];

    for (body, expected) in cases {
        let reply = api.post("/consumers/bob/jwt", body.clone());

        assert_eq!(reply.status, 400, "POST {body}: {reply:?}");
        assert_eq!(reply.body, expected, "POST {body}: {reply:?}");
    }
}

#[test]
fn acls_addressed_by_group_name() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    let created = api.post("/consumers/bob/acls", json!({ "group": "admins" }));

    let by_group = api.get("/consumers/bob/acls/admins");
    let put_new = api.put("/consumers/bob/acls/readers", json!({}));
    let missing_group = api.get("/consumers/bob/acls/nobody");
    let delete_group = api.delete("/consumers/bob/acls/admins");

    assert_eq!(
        keys(&created.body),
        ["id", "created_at", "consumer", "group", "tags"],
        "{created:?}"
    );
    assert_eq!(by_group.body, created.body, "{by_group:?}");
    assert_eq!(put_new.status, 200, "{put_new:?}");
    assert_eq!(put_new.body["group"], "readers", "{put_new:?}");
    assert_eq!(missing_group.status, 404, "{missing_group:?}");
    assert_eq!(delete_group.status, 204, "{delete_group:?}");
    assert_eq!(
        api.get("/acls").body["data"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn acls_duplicate_group_rejected() {
    let emulator = start();
    let api = Api::admin(&emulator);
    create_consumer(&api, "bob");
    create_consumer(&api, "alice");
    api.post("/consumers/bob/acls", json!({ "group": "admins" }));
    let id = "5f6c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f";

    let duplicate = api.post(
        "/consumers/bob/acls",
        json!({ "group": "admins", "id": id }),
    );
    let other_consumer = api.post("/consumers/alice/acls", json!({ "group": "admins" }));

    assert_eq!(duplicate.status, 400, "{duplicate:?}");
    assert_eq!(
        duplicate.body,
        json!({
            "code": 3,
            "name": "primary key violation",
            "message": format!("primary key violation on key '{{id=\"{id}\"}}'"),
            "fields": { "id": id }
        }),
        "{duplicate:?}"
    );
    assert_eq!(other_consumer.status, 201, "{other_consumer:?}");
}

#[test]
fn acls_global_route_needs_uuid() {
    let emulator = start();
    let api = Api::admin(&emulator);

    let reply = api.get("/acls/admins");

    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "code": 1,
            "name": "invalid primary key",
            "message": "invalid primary key: '{id=\"expected a valid UUID\"}'",
            "fields": { "id": "expected a valid UUID" }
        }),
        "{reply:?}"
    );
}
