//! Start options: admin token, workspaces, DB-less mode, TLS with client certificates, the
//! reported version, and use from async tests.

mod common;

use common::{create_consumer, plain_client, start, start_with, Api};
use kong_emulator::{AdminToken, Emulator, Options, TlsOptions};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn root_reports_node_facts() {
    let emulator = start();

    let reply = Api::admin(&emulator).get("/");

    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["version"], "3.9.1", "{reply:?}");
    assert_eq!(
        reply.body["configuration"]["database"], "postgres",
        "{reply:?}"
    );
    assert_eq!(
        reply.body["plugins"]["available_on_server"]["key-auth"],
        json!({ "version": "3.9.1", "priority": 1250 }),
        "{reply:?}"
    );
    for plugin in ["basic-auth", "hmac-auth", "jwt", "acl"] {
        assert!(
            reply.body["plugins"]["available_on_server"]
                .get(plugin)
                .is_some(),
            "{plugin}: {reply:?}"
        );
    }
    assert_eq!(reply.header("server"), Some("kong/3.9.1"), "{reply:?}");
}

#[test]
fn version_changes_reported_shapes() {
    let cases = [
        (
            "3.9.1",
            true,
            json!({ "version": "3.9.1", "priority": 1250 }),
        ),
        (
            "3.2.2",
            false,
            json!({ "version": "3.2.2", "priority": 1250 }),
        ),
        ("2.8.4", false, json!(true)),
    ];

    for (version, has_updated_at, key_auth_entry) in cases {
        let emulator = start_with(Options {
            version: version.to_owned(),
            ..Options::default()
        });
        let api = Api::admin(&emulator);

        let root = api.get("/");
        let consumer = create_consumer(&api, "bob");

        assert_eq!(root.body["version"], version, "{root:?}");
        assert_eq!(
            root.body["plugins"]["available_on_server"]["key-auth"], key_auth_entry,
            "{root:?}"
        );
        assert_eq!(
            consumer.get("updated_at").is_some(),
            has_updated_at,
            "{version}: {consumer}"
        );
    }
}

#[test]
fn version_must_parse() {
    let started = Emulator::start(Options {
        version: "latest".to_owned(),
        ..Options::default()
    });

    let error = started.err().expect("start fails");

    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        error.to_string(),
        "version \"latest\" is invalid; pass major.minor.patch, e.g. 3.9.1"
    );
}

#[test]
fn admin_token_checks_table() {
    let emulator = start_with(Options {
        admin_token: Some(AdminToken::new("s3cr3t")),
        ..Options::default()
    });
    let cases = [
        (
            None,
            401,
            json!({ "message": "Invalid credentials. Token or User credentials required" }),
        ),
        (
            Some("wrong"),
            401,
            json!({ "message": "Invalid RBAC credentials" }),
        ),
        (Some("s3cr3t"), 200, Value::Null),
    ];

    for (token, status, body) in cases {
        let mut api = Api::admin(&emulator);
        if let Some(token) = token {
            api = api.with_header("kong-admin-token", token);
        }

        let reply = api.get("/consumers");

        assert_eq!(reply.status, status, "token {token:?}: {reply:?}");
        if status == 401 {
            assert_eq!(reply.body, body, "token {token:?}: {reply:?}");
        }
    }
}

#[test]
fn admin_token_custom_header() {
    let emulator = start_with(Options {
        admin_token: Some(AdminToken {
            header: "X-Admin-Key".to_owned(),
            value: "k".to_owned(),
        }),
        ..Options::default()
    });

    let default_header = Api::admin(&emulator)
        .with_header("Kong-Admin-Token", "k")
        .get("/");
    let custom_header = Api::admin(&emulator)
        .with_header("x-admin-key", "k")
        .get("/");

    assert_eq!(default_header.status, 401, "{default_header:?}");
    assert_eq!(custom_header.status, 200, "{custom_header:?}");
}

#[test]
fn admin_token_never_in_debug_output() {
    let token = AdminToken::new("s3cr3t");

    let printed = format!("{token:?}");

    assert!(!printed.contains("s3cr3t"), "{printed}");
}

#[test]
fn workspaces_prefix_and_isolation() {
    let emulator = start_with(Options {
        workspaces: vec!["team-a".to_owned()],
        ..Options::default()
    });
    let api = Api::admin(&emulator);

    let in_team = api.post("/team-a/consumers", json!({ "username": "bob" }));
    let in_default = api.post("/consumers", json!({ "username": "bob" }));
    let explicit_default = api.get("/default/consumers/bob");
    let duplicate = api.post("/team-a/consumers", json!({ "username": "bob" }));
    let key = api.post(
        "/team-a/consumers/bob/key-auth",
        json!({ "key": "same-key" }),
    );
    let same_key_default = api.post("/consumers/bob/key-auth", json!({ "key": "same-key" }));
    let team_list = api.get("/team-a/key-auths");
    let unknown = api.get("/nope/consumers");

    assert_eq!(in_team.status, 201, "{in_team:?}");
    assert_eq!(
        in_default.status, 201,
        "names are unique per workspace: {in_default:?}"
    );
    assert_ne!(in_team.body["id"], in_default.body["id"]);
    assert_eq!(
        explicit_default.body, in_default.body,
        "{explicit_default:?}"
    );
    assert_eq!(duplicate.status, 409, "{duplicate:?}");
    assert_eq!(key.status, 201, "{key:?}");
    assert_eq!(
        same_key_default.status, 201,
        "keys are unique per workspace: {same_key_default:?}"
    );
    assert_eq!(team_list.body["data"], json!([key.body]), "{team_list:?}");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert_eq!(
        unknown.body,
        json!({ "message": "Workspace 'nope' not found" }),
        "{unknown:?}"
    );
    assert_eq!(emulator.key_auth_credentials().len(), 2);
}

fn db_less() -> Emulator {
    start_with(Options {
        db_less: true,
        ..Options::default()
    })
}

fn unsupported(message: &str) -> Value {
    json!({ "code": 12, "name": "operation unsupported", "message": message })
}

#[test]
fn db_less_rejects_writes_table() {
    let emulator = db_less();
    let bob = emulator
        .seed("default", "consumers", json!({ "username": "bob" }))
        .unwrap();
    let bob_id = bob["id"].as_str().unwrap();
    let key = emulator
        .seed(
            "default",
            "key-auths",
            json!({ "consumer": { "id": bob_id }, "key": "seeded" }),
        )
        .unwrap();
    let key_id = key["id"].as_str().unwrap();
    let api = Api::admin(&emulator);
    let cases = [
        (
            Method::POST,
            "/consumers".to_owned(),
            json!({ "username": "x" }),
            "cannot create 'consumers' entities when not using a database",
        ),
        (
            Method::PUT,
            "/consumers/alice".to_owned(),
            json!({}),
            "cannot create or update 'consumers' entities by 'username' when not using a database",
        ),
        (
            Method::PATCH,
            "/consumers/bob".to_owned(),
            json!({ "tags": ["t"] }),
            "cannot update 'consumers' entities by 'username' when not using a database",
        ),
        (
            Method::DELETE,
            "/consumers/bob".to_owned(),
            json!({}),
            "cannot remove 'consumers' entities by 'username' when not using a database",
        ),
        (
            Method::DELETE,
            format!("/consumers/{bob_id}"),
            json!({}),
            "cannot remove 'consumers' entities when not using a database",
        ),
        (
            Method::POST,
            "/consumers/bob/key-auth".to_owned(),
            json!({}),
            "cannot create 'keyauth_credentials' entities when not using a database",
        ),
        (
            Method::PATCH,
            format!("/consumers/bob/key-auth/{key_id}"),
            json!({ "ttl": 5 }),
            "cannot update 'keyauth_credentials' entities when not using a database",
        ),
        (
            Method::DELETE,
            "/consumers/bob/key-auth/seeded".to_owned(),
            json!({}),
            "cannot remove 'keyauth_credentials' entities when not using a database",
        ),
        (
            Method::POST,
            "/consumers/bob/basic-auth".to_owned(),
            json!({ "username": "u", "password": "p" }),
            "cannot create 'basicauth_credentials' entities when not using a database",
        ),
    ];

    for (method, path, body, message) in cases {
        let reply = api.send(method.clone(), &path, Some(body));

        assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
        assert_eq!(
            reply.body,
            unsupported(message),
            "{method} {path}: {reply:?}"
        );
    }
    assert_eq!(api.get("/consumers/bob").body, bob);
    assert_eq!(api.get("/key-auths/seeded").body, key);
}

#[test]
fn db_less_lookups_precede_rejection() {
    let emulator = db_less();
    emulator
        .seed("default", "consumers", json!({ "username": "bob" }))
        .unwrap();
    let api = Api::admin(&emulator);

    let missing_consumer = api.post("/consumers/ghost/key-auth", json!({}));
    let missing_global = api.delete("/key-auths/no-such-key");
    let schema_violation = api.post("/consumers", json!({ "fake": 1, "username": "x" }));
    let root = api.get("/");

    assert_eq!(missing_consumer.status, 404, "{missing_consumer:?}");
    assert_eq!(missing_global.status, 204, "{missing_global:?}");
    assert_eq!(schema_violation.status, 400, "{schema_violation:?}");
    assert_eq!(root.body["configuration"]["database"], "off", "{root:?}");
}

#[test]
fn seed_reports_rejections() {
    let emulator = start();

    let unknown_workspace = emulator.seed("nope", "consumers", json!({ "username": "a" }));
    let unknown_collection = emulator.seed("default", "services", json!({}));
    let invalid = emulator.seed("default", "consumers", json!({}));

    assert_eq!(
        unknown_workspace.unwrap_err().to_string(),
        "workspace \"nope\" not found; pass \"default\" or one named in Options::workspaces"
    );
    assert_eq!(
        unknown_collection.unwrap_err().to_string(),
        "collection \"services\" not found; pass an Admin API collection such as \"consumers\" or \"key-auths\""
    );
    match invalid.unwrap_err() {
        kong_emulator::SeedError::Rejected { status, body } => {
            assert_eq!(status, 400);
            assert_eq!(body["code"], 2);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all in PEM.
struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_identity_pem: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["vault-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

    Pki {
        ca_pem: ca_cert.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_identity_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    }
}

fn tls_client(pki: &Pki, with_identity: bool) -> Client {
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let mut builder = Client::builder().tls_certs_only([ca]);
    if with_identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[test]
fn tls_serves_admin_over_https() {
    let pki = pki();
    let emulator = start_with(Options {
        tls: Some(TlsOptions {
            cert_pem: pki.server_cert_pem.clone(),
            key_pem: pki.server_key_pem.clone(),
            client_ca_pem: None,
        }),
        ..Options::default()
    });

    let https = Api::new(emulator.admin_url(), tls_client(&pki, false)).get("/");
    let untrusted = Api::new(emulator.admin_url(), plain_client()).try_send(Method::GET, "/", None);
    let proxy = Api::proxy(&emulator).get("/");

    assert!(
        emulator.admin_url().starts_with("https://127.0.0.1:"),
        "{}",
        emulator.admin_url()
    );
    assert_eq!(https.status, 200, "{https:?}");
    assert!(
        untrusted.is_err(),
        "a client without the CA must fail the handshake"
    );
    assert_eq!(proxy.status, 401, "the proxy stays plain HTTP: {proxy:?}");
}

#[test]
fn tls_requires_client_certificate() {
    let pki = pki();
    let emulator = start_with(Options {
        tls: Some(TlsOptions {
            cert_pem: pki.server_cert_pem.clone(),
            key_pem: pki.server_key_pem.clone(),
            client_ca_pem: Some(pki.ca_pem.clone()),
        }),
        ..Options::default()
    });

    let without =
        Api::new(emulator.admin_url(), tls_client(&pki, false)).try_send(Method::GET, "/", None);
    let with = Api::new(emulator.admin_url(), tls_client(&pki, true)).get("/");

    assert!(
        without.is_err(),
        "a client without a certificate must be refused"
    );
    assert_eq!(with.status, 200, "{with:?}");
}

#[test]
fn tls_bad_material_fails_start() {
    let started = Emulator::start(Options {
        tls: Some(TlsOptions {
            cert_pem: "not pem".to_owned(),
            key_pem: "not pem".to_owned(),
            client_ca_pem: None,
        }),
        ..Options::default()
    });

    let error = started.err().expect("start fails");

    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        error.to_string(),
        "tls cert_pem holds no certificate; pass a PEM CERTIFICATE block"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_works_from_async_test() {
    let emulator = Emulator::start(Options::default()).unwrap();
    let client = reqwest::Client::new();

    let created = client
        .post(format!("{}/consumers", emulator.admin_url()))
        .json(&json!({ "username": "async-bob" }))
        .send()
        .await
        .unwrap();
    let status = created.status().as_u16();
    let admin_url = emulator.admin_url();
    drop(emulator);
    let after_drop = client.get(admin_url).send().await;

    assert_eq!(status, 201);
    assert!(after_drop.is_err());
}

#[test]
fn emulator_drop_closes_listeners() {
    let emulator = start();
    let admin_url = emulator.admin_url();

    drop(emulator);
    let reply = Api::new(admin_url, plain_client()).try_send(Method::GET, "/", None);

    assert!(reply.is_err(), "the admin port must be closed after drop");
}
