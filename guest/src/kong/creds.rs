//! `creds/<username>`: issues a Kong key-auth credential under a renewable lease.
//!
//! Order of operations, and why:
//! 1. Load the consumer entry, the access configuration and the mount's TTLs, so that every
//!    check that can fail runs before Kong is called.
//! 2. `POST /consumers/{username}/key-auth` with tags and a Kong-side `ttl` equal to the lease's
//!    max TTL, so Kong drops the key by itself if Vault never revokes it.
//! 3. Return `token` (the key) and `id` (the credential's UUID) with the lease.
//!
//! A credential that Kong created but the engine cannot return is deleted again before the
//! error is returned. When Kong's response was unusable, the engine deletes it by its id. When
//! no response arrived but the request may have reached Kong, it deletes by the request's tag.
//! That lookup has its own `request_timeout`, so after a timed-out create the error arrives
//! after up to twice `request_timeout`.
//!
//! Tags on each credential: `vault`, `vault-role-<username>`, `vault-mount-<accessor>` and
//! `vault-request-<request id>`. Kong's tag filters take only letters, digits and `-._~`, so
//! other bytes are written as `~` and two hex digits.

use serde_json::{json, Value};

use super::client::{encode_segment, KeyAuth, KongClient, KongError};
use super::consumers;
use super::leases::{self, LeaseData, LeaseLimits};
use super::{config, Env};
use crate::framework::{Error, Field, FieldData, FieldType, Operation, Path, Request, Response};
use crate::services::Level;

/// The tag every credential this engine creates carries.
pub const ENGINE_TAG: &str = "vault";

/// Builds the path definition.
pub fn path<'a>() -> Path<Env<'a>> {
    Path::new("creds/{username+}", "credentials", SYNOPSIS, DESCRIPTION)
        .field(Field::new(
            "username",
            FieldType::String,
            "Username of the Kong consumer to issue a key-auth credential for; it needs an entry at consumers/<username>.",
        ))
        .operation(Operation::Read, "generate", "Issue a Kong key-auth credential.", read)
        .see_also("consumers/<username>")
        .see_also("config/access")
}

/// Builds the tags for a credential issued by `request` for `role`.
pub fn tags(request: &Request, role: &str) -> Vec<String> {
    let mut tags = vec![
        ENGINE_TAG.to_string(),
        format!("vault-role-{}", tag_text(role)),
    ];
    if !request.mount_accessor.is_empty() {
        tags.push(format!("vault-mount-{}", tag_text(&request.mount_accessor)));
    }
    if let Some(tag) = request_tag(request) {
        tags.push(tag);
    }
    tags
}

/// Builds the tag that marks credentials created by one request; `None` without a request id.
fn request_tag(request: &Request) -> Option<String> {
    (!request.id.is_empty()).then(|| format!("vault-request-{}", tag_text(&request.id)))
}

/// Writes `text` with only the characters Kong's tag filters accept.
fn tag_text(text: &str) -> String {
    let mut tag = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
            tag.push(byte as char);
        } else {
            tag.push_str(&format!("~{byte:02X}"));
        }
    }
    tag
}

fn read(env: &Env<'_>, request: &Request, fields: &FieldData) -> Result<Option<Response>, Error> {
    let username = fields
        .string("username")
        .expect("the path pattern always captures username");
    let role = consumers::load(env, username)?.ok_or_else(|| {
        Error::bad_request(format!(
            "no consumer entry named {username:?}; write consumers/{username} (ttl and max_ttl are optional) before reading credentials"
        ))
    })?;
    let config = config::require(env)?;
    let limits = LeaseLimits::for_role(env.system_view, &role)?;
    let client = KongClient::new(env.http, &config)?;
    let issued_at = env.clock.now_unix_seconds();

    let created = client.create_key_auth(
        username,
        &tags(request, username),
        limits.kong_ttl_seconds(0),
    );
    let body = match created {
        Ok(body) => body,
        Err(error) if error.status() == Some(404) => {
            return Err(Error::bad_request(format!(
                "consumer {username:?} was not found in Kong at {}; create it in Kong first (for example PUT /consumers/{} on the Admin API), or fix baseurl in config/access",
                config.baseurl,
                encode_segment(username)
            )))
        }
        Err(error) if error.outcome_unknown() => {
            let note = clean_up_by_tag(env, &client, request);
            return Err(Error::from(error).map_message(|message| format!("{message}; {note}")));
        }
        Err(error) => return Err(error.into()),
    };

    let key = match KeyAuth::from_json(&body) {
        Ok(key) => key,
        Err(reason) => {
            let note = clean_up_unusable(env, &client, username, &body, request);
            return Err(Error::coded(
                502,
                format!("kong created an unusable key-auth credential for consumer {username:?}: {reason}; {note}"),
            ));
        }
    };

    let lease = LeaseData {
        credential_id: key.id.clone(),
        consumer_id: key.consumer_id.clone(),
        role: username.to_string(),
        issue_time_unix_seconds: Some(issued_at),
    };
    let secret = leases::secret_type().secret(
        limits.ttl_seconds,
        limits.max_ttl_seconds,
        lease.to_internal_data(),
    );
    env.log.write(
        Level::Info,
        "issued key-auth credential",
        &[
            ("role", username),
            ("consumer_id", &key.consumer_id),
            ("credential_id", &key.id),
            ("request_id", &request.id),
        ],
    );

    Ok(Some(Response {
        data: Some(
            json!({ "token": key.key, "id": key.id })
                .as_object()
                .cloned()
                .expect("a JSON object literal"),
        ),
        secret: Some(secret),
        warnings: Vec::new(),
    }))
}

/// Deletes a credential whose creation response was unusable, by its id when the response had
/// one and by the request's tag otherwise. Returns what happened, for the user's message.
fn clean_up_unusable(
    env: &Env<'_>,
    client: &KongClient<'_>,
    username: &str,
    body: &Value,
    request: &Request,
) -> String {
    let Some(id) = body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    else {
        return clean_up_by_tag(env, client, request);
    };
    match client.delete_key_auth(username, id) {
        Ok(_) => {
            env.log.write(
                Level::Warn,
                "deleted unusable key-auth credential",
                &[("role", username), ("credential_id", id)],
            );
            format!("the engine deleted credential {id} again")
        }
        Err(error) => {
            let message = error.to_string();
            env.log.write(
                Level::Error,
                "failed to delete unusable key-auth credential",
                &[
                    ("role", username),
                    ("credential_id", id),
                    ("error", &message),
                ],
            );
            format!("deleting credential {id} again also failed ({message}); delete it in Kong")
        }
    }
}

/// Deletes every credential that carries the request's tag, after a create whose outcome is
/// unknown. Returns what happened, for the user's message.
fn clean_up_by_tag(env: &Env<'_>, client: &KongClient<'_>, request: &Request) -> String {
    let Some(tag) = request_tag(request) else {
        env.log.write(
            Level::Error,
            "key-auth credential may exist in Kong without a lease, and the request has no id to find it by",
            &[],
        );
        return "Kong may have created the credential anyway; look for key-auth credentials tagged vault without a lease".into();
    };

    let found = match client.find_key_auths_by_tag(&tag) {
        Ok(found) => found,
        Err(error) => return cleanup_failed(env, &tag, &error),
    };
    let mut deleted = Vec::new();
    for credential in &found {
        let id = credential
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let consumer = credential
            .pointer("/consumer/id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Err(error) = client.delete_key_auth(consumer, id) {
            return cleanup_failed(env, &tag, &error);
        }
        deleted.push(id.to_string());
    }

    if deleted.is_empty() {
        return format!(
            "Kong held no credential tagged {tag} when the engine looked; if Kong still \
             completes the create, the key expires at its Kong-side ttl, or delete it by that tag"
        );
    }
    let ids = deleted.join(", ");
    env.log.write(
        Level::Warn,
        "deleted key-auth credential created by a failed request",
        &[("tag", &tag), ("credential_ids", &ids)],
    );
    format!("the engine deleted credential {ids}, which Kong had created anyway")
}

fn cleanup_failed(env: &Env<'_>, tag: &str, error: &KongError) -> String {
    let message = error.to_string();
    env.log.write(
        Level::Error,
        "failed to clean up key-auth credentials of a failed request",
        &[("tag", tag), ("error", &message)],
    );
    format!("Kong may have created the credential anyway, and looking for it failed ({message}); delete key-auth credentials tagged {tag} in Kong")
}

const SYNOPSIS: &str = "Issues a Kong key-auth credential for a consumer.";

const DESCRIPTION: &str = "\
Each read creates a new key-auth credential for the Kong consumer named in the path and
returns its key as token and its UUID as id, under a renewable lease. Kong generates the
key. The consumer needs an entry at consumers/<username>, which sets the lease ttl and
max_ttl, and config/access must be written.

The credential carries the tags vault, vault-role-<username>, vault-mount-<mount accessor>
and vault-request-<Vault request id>, and a Kong-side ttl equal to the lease's max TTL, so
Kong removes it even if Vault never revokes it. Characters that Kong's tag filters reject
appear as ~XX. List the credentials of one role with GET /key-auths?tags=vault-role-<name>.

Renewing the lease extends it up to its max TTL. Revoking it, or letting it expire,
deletes the credential in Kong.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::{Operation, Timestamp};
    use crate::testing::{request, TestBackend};

    fn creds(username: &str) -> Request {
        let mut request = request::read(&format!("creds/{username}"));
        request.id = "0b5e5d0a-1111-2222-3333-444455556666".into();
        request.mount_accessor = "kong_1a2b3c4d".into();
        request
    }

    /// Builds a backend with Kong configured, consumer `alice` in Kong and an entry for it.
    fn ready(ttl: &str, max_ttl: &str) -> TestBackend {
        let test = TestBackend::new();
        test.ok(request::update(
            "config/access",
            json!({"baseurl": "http://kong:8001", "token": "s3cr3t"}),
        ));
        test.ok(request::update(
            "consumers/alice",
            json!({"ttl": ttl, "max_ttl": max_ttl}),
        ));
        test.kong.add_consumer("alice");
        test
    }

    #[test]
    fn creds_returns_token_and_id_with_lease() {
        let test = ready("1h", "24h");
        let response = test.ok(creds("alice")).expect("a response");

        let data = response.data.expect("data");
        let stored = test.kong.credentials();
        assert_eq!(stored.len(), 1, "credentials in Kong: {stored:?}");
        assert_eq!(data["token"], json!(stored[0].key), "token is the key");
        assert_eq!(data["id"], json!(stored[0].id), "id is the credential id");
        assert_eq!(data.len(), 2, "data: {data:?}");

        let secret = response.secret.expect("a lease");
        assert_eq!(secret.ttl_seconds, 3600, "{secret:?}");
        assert_eq!(secret.max_ttl_seconds, 86400, "{secret:?}");
        assert!(secret.renewable, "{secret:?}");
        assert_eq!(
            serde_json::Value::Object(secret.internal_data),
            json!({
                "secret_type": "token",
                "credential_id": stored[0].id,
                "consumer_id": test.kong.consumer_id("alice"),
                "role": "alice",
                "issue_time_unix_seconds": test.clock.now(),
            })
        );
    }

    #[test]
    fn creds_sends_tags_ttl_and_token() {
        let test = ready("1h", "24h");
        test.ok(creds("alice"));

        let sent = test.kong.requests();
        assert_eq!(sent.len(), 1, "requests: {sent:?}");
        assert_eq!(sent[0].method, "POST");
        assert_eq!(sent[0].url, "http://kong:8001/consumers/alice/key-auth");
        assert_eq!(sent[0].header("kong-admin-token"), Some("s3cr3t"));
        assert_eq!(
            sent[0].json(),
            json!({
                "tags": ["vault", "vault-role-alice", "vault-mount-kong_1a2b3c4d", "vault-request-0b5e5d0a-1111-2222-3333-444455556666"],
                "ttl": 86400,
            })
        );
        assert_eq!(
            test.kong.credentials()[0].ttl_seconds,
            Some(86400),
            "Kong-side ttl"
        );
    }

    #[test]
    fn creds_zero_ttls_use_mount_values() {
        let test = ready("0", "0");
        test.system_view.set(600, 7200);
        let secret = test.ok(creds("alice")).unwrap().secret.unwrap();

        assert_eq!(
            (secret.ttl_seconds, secret.max_ttl_seconds),
            (600, 7200),
            "{secret:?}"
        );
        assert_eq!(
            test.kong.credentials()[0].ttl_seconds,
            Some(7200),
            "Kong-side ttl"
        );
    }

    #[test]
    fn creds_kong_ttl_capped_at_kong_limit() {
        let test = ready("1h", "0");
        test.system_view.set(3600, 200_000_000);
        test.ok(creds("alice"));
        assert_eq!(test.kong.credentials()[0].ttl_seconds, Some(100_000_000));
    }

    #[test]
    fn creds_username_percent_encoded() {
        let test = ready("1h", "2h");
        let name = "team/bob smith@example.com";
        test.ok(request::update(&format!("consumers/{name}"), json!({})));
        test.kong.add_consumer(name);

        let response = test.ok(creds(name)).unwrap();
        assert!(response.secret.is_some(), "{response:?}");

        let sent = test.kong.requests();
        assert_eq!(
            sent.last().unwrap().url,
            "http://kong:8001/consumers/team%2Fbob%20smith%40example.com/key-auth"
        );
        let tags = sent.last().unwrap().json()["tags"].clone();
        assert_eq!(
            tags[1],
            json!("vault-role-team~2Fbob~20smith~40example.com"),
            "tags: {tags}"
        );
    }

    #[test]
    fn creds_missing_entry_config_or_consumer() {
        let test = TestBackend::new();
        assert_eq!(
            test.call(creds("alice")),
            Err(Error::bad_request(
                "no consumer entry named \"alice\"; write consumers/alice (ttl and max_ttl are optional) before reading credentials"
            )),
            "without entry"
        );

        test.ok(request::update("consumers/alice", json!({})));
        assert_eq!(
            test.call(creds("alice")),
            Err(Error::bad_request(
                "kong access is not configured; write config/access with baseurl (and token if the Admin API needs one) first"
            )),
            "without config"
        );

        test.ok(request::update(
            "config/access",
            json!({"baseurl": "http://kong:8001"}),
        ));
        assert_eq!(
            test.call(creds("alice")),
            Err(Error::bad_request(
                "consumer \"alice\" was not found in Kong at http://kong:8001; create it in Kong first (for example PUT /consumers/alice on the Admin API), or fix baseurl in config/access"
            )),
            "without consumer in Kong"
        );
        assert!(test.kong.credentials().is_empty(), "nothing created");
    }

    #[test]
    fn creds_kong_error_names_status_and_message() {
        let test = ready("1h", "2h");
        test.kong
            .fail_next(503, br#"{"message":"An unexpected error occurred"}"#);
        assert_eq!(
            test.call(creds("alice")),
            Err(Error::coded(
                502,
                "kong returned 503 for POST http://kong:8001/consumers/alice/key-auth: An unexpected error occurred"
            ))
        );
    }

    #[test]
    fn creds_unusable_answer_deletes_credential() {
        let test = ready("1h", "2h");
        test.kong.strip_key_from_next_create();

        assert_eq!(
            test.call(creds("alice")),
            Err(Error::coded(
                502,
                format!(
                    "kong created an unusable key-auth credential for consumer \"alice\": the credential has no key; the engine deleted credential {} again",
                    test.kong.last_created_id()
                )
            ))
        );
        assert!(
            test.kong.credentials().is_empty(),
            "left in Kong: {:?}",
            test.kong.credentials()
        );
    }

    #[test]
    fn creds_lost_answer_deletes_by_tag() {
        let test = ready("1h", "2h");
        test.kong.lose_answer_to_next_create();

        assert_eq!(
            test.call(creds("alice")),
            Err(Error::coded(
                502,
                format!(
                    "connection to http://kong:8001/consumers/alice/key-auth was lost: connection reset; check baseurl in config/access and that Kong is running; the engine deleted credential {}, which Kong had created anyway",
                    test.kong.last_created_id()
                )
            ))
        );
        assert!(
            test.kong.credentials().is_empty(),
            "left in Kong: {:?}",
            test.kong.credentials()
        );
        let methods: Vec<String> = test
            .kong
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        assert_eq!(
            methods[1],
            "GET http://kong:8001/key-auths?tags=vault-request-0b5e5d0a-1111-2222-3333-444455556666",
            "requests: {methods:?}"
        );
    }

    #[test]
    fn creds_timeout_deletes_by_tag() {
        let test = ready("1h", "2h");
        test.kong.time_out_next();

        let error = test
            .call(creds("alice"))
            .expect_err("a timeout fails creds");
        assert_eq!(
            error,
            Error::coded(
                504,
                format!(
                    "no response from http://kong:8001/consumers/alice/key-auth within 10s; check that Kong is healthy, or raise request_timeout in config/access; the engine deleted credential {}, which Kong had created anyway",
                    test.kong.last_created_id()
                )
            )
        );
        assert!(
            test.kong.credentials().is_empty(),
            "left in Kong: {:?}",
            test.kong.credentials()
        );
    }

    #[test]
    fn creds_cleanup_finds_nothing() {
        // A connection lost before Kong stored anything leaves nothing to delete.
        let test = ready("1h", "2h");
        test.kong.lose_connection_before_next_request();

        assert_eq!(
            test.call(creds("alice")),
            Err(Error::coded(
                502,
                "connection to http://kong:8001/consumers/alice/key-auth was lost: connection reset; check baseurl in config/access and that Kong is running; Kong held no credential tagged vault-request-0b5e5d0a-1111-2222-3333-444455556666 when the engine looked; if Kong still completes the create, the key expires at its Kong-side ttl, or delete it by that tag"
            ))
        );
    }

    #[test]
    fn creds_refused_connection_skips_cleanup() {
        let test = ready("1h", "2h");
        test.kong.refuse_connections();
        assert_eq!(
            test.call(creds("alice")),
            Err(Error::coded(
                502,
                "could not reach http://kong:8001/consumers/alice/key-auth: connection refused; check baseurl in config/access and that Kong is running"
            ))
        );
        assert_eq!(test.kong.requests().len(), 1, "no cleanup request");
    }

    #[test]
    fn creds_denied_by_policy() {
        let test = ready("1h", "2h");
        test.kong.deny("origin http://kong:8001 is not in the allow-list; the operator sets it with KONG_ALLOWED_ORIGINS");
        assert_eq!(
            test.call(creds("alice")),
            Err(Error::coded(
                403,
                "request to http://kong:8001/consumers/alice/key-auth was denied: origin http://kong:8001 is not in the allow-list; the operator sets it with KONG_ALLOWED_ORIGINS"
            ))
        );
    }

    #[test]
    fn creds_never_log_key_or_token() {
        let test = ready("1h", "2h");
        test.ok(creds("alice"));

        let key = test.kong.credentials()[0].key.clone();
        test.log.assert_never_contains(&key);
        test.log.assert_never_contains("s3cr3t");
        let issued = test
            .log
            .find("issued key-auth credential")
            .expect("an issue log line");
        assert_eq!(
            issued,
            vec![
                ("role".to_string(), "alice".to_string()),
                ("consumer_id".to_string(), test.kong.consumer_id("alice")),
                (
                    "credential_id".to_string(),
                    test.kong.credentials()[0].id.clone()
                ),
                (
                    "request_id".to_string(),
                    "0b5e5d0a-1111-2222-3333-444455556666".to_string()
                ),
            ]
        );
    }

    #[test]
    fn tag_text_table() {
        let cases = [
            ("alice", "alice"),
            ("a.b-c_d", "a.b-c_d"),
            ("bob smith", "bob~20smith"),
            ("a,b/c", "a~2Cb~2Fc"),
            ("x~y", "x~7Ey"),
            ("é", "~C3~A9"),
        ];
        for (text, tag) in cases {
            assert_eq!(tag_text(text), tag, "tag for {text:?}");
        }
    }

    #[test]
    fn creds_lease_renew_and_revoke_round_trip() {
        let test = ready("1h", "3h");
        let response = test.ok(creds("alice")).unwrap();
        let mut secret = response.secret.unwrap();
        secret.issue_time = Some(Timestamp {
            seconds: test.clock.now(),
            nanoseconds: 0,
        });

        test.clock.advance(1800);
        let renewed = test
            .ok(request::lease(
                Operation::Renew,
                "creds/alice",
                secret.clone(),
            ))
            .and_then(|response| response.secret)
            .expect("renew returns the secret");
        assert_eq!(
            renewed.internal_data, secret.internal_data,
            "internal data echoed"
        );

        test.ok(request::lease(Operation::Revoke, "creds/alice", renewed));
        assert!(
            test.kong.credentials().is_empty(),
            "revoked: {:?}",
            test.kong.credentials()
        );
    }
}
