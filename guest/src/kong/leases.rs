//! The `token` secret type: leases of key-auth credentials, their TTL arithmetic, renew and
//! revoke.
//!
//! A lease's internal data holds `credential_id` and `consumer_id` (the UUIDs Kong returned),
//! `role` (the consumer entry's name) and `issue_time_unix_seconds`, never the key. Leases
//! from the older Go plugin hold `id` and `consumer` (the username) instead; both work here.
//!
//! TTLs: a lease's max TTL is the role's `max_ttl`, or the mount's maximum when that is 0 or
//! lower, and its TTL is the role's `ttl`, or the mount's default, capped at the max TTL.
//!
//! Renew re-reads the role, refuses once the lease has reached its max TTL, and sets the key's
//! Kong-side `ttl` so that Kong's expiry is the issue time plus the current max TTL. So when an
//! operator raises `max_ttl`, renewals move Kong's expiry forward to match. Revoke deletes the
//! credential, and counts a credential or consumer already gone in Kong as revoked.

use serde_json::{Map, Value};

use super::client::{Deletion, KongClient, KONG_MAX_TTL_SECONDS};
use super::consumers::{self, ConsumerEntry};
use super::{config, Env};
use crate::framework::{Error, Request, Response, Secret, SecretType};
use crate::services::{Level, SystemView};

/// The secret type's name. The older Go plugin used the same, so its leases still dispatch.
pub const SECRET_TYPE: &str = "token";

/// Builds the secret type with its renew and revoke handlers.
pub fn secret_type<'a>() -> SecretType<Env<'a>> {
    SecretType {
        name: SECRET_TYPE,
        renew: Some(renew),
        revoke,
    }
}

/// The TTLs of a lease, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseLimits {
    pub ttl_seconds: u64,
    /// 0 only when both the role and the mount set no maximum.
    pub max_ttl_seconds: u64,
}

impl LeaseLimits {
    /// Combines a role's TTLs with the mount's defaults.
    pub fn for_role(system_view: &dyn SystemView, role: &ConsumerEntry) -> Result<Self, Error> {
        let mount_default = system_view.default_lease_ttl_seconds().map_err(|error| {
            Error::internal(format!(
                "failed to read the mount's default lease TTL: {error}"
            ))
        })?;
        let mount_max = system_view.max_lease_ttl_seconds().map_err(|error| {
            Error::internal(format!("failed to read the mount's max lease TTL: {error}"))
        })?;
        Ok(Self::combine(role, mount_default, mount_max))
    }

    /// Computes [`Self::for_role`] from plain numbers.
    pub fn combine(role: &ConsumerEntry, mount_default: u64, mount_max: u64) -> Self {
        let max_ttl_seconds = match (role.max_ttl_seconds, mount_max) {
            (0, mount) => mount,
            (role, 0) => role,
            (role, mount) => role.min(mount),
        };
        let ttl = if role.ttl_seconds > 0 {
            role.ttl_seconds
        } else {
            mount_default
        };
        let ttl_seconds = if max_ttl_seconds > 0 {
            ttl.min(max_ttl_seconds)
        } else {
            ttl
        };
        Self {
            ttl_seconds,
            max_ttl_seconds,
        }
    }

    /// Computes the Kong-side `ttl` for a key issued `elapsed_seconds` ago: what remains of the max TTL,
    /// within Kong's limit. 0 (no Kong expiry) only when there is no max TTL.
    pub fn kong_ttl_seconds(&self, elapsed_seconds: u64) -> u64 {
        if self.max_ttl_seconds == 0 {
            return 0;
        }
        self.max_ttl_seconds
            .saturating_sub(elapsed_seconds)
            .clamp(1, KONG_MAX_TTL_SECONDS)
    }
}

/// The record of a lease's credential, kept in the lease's internal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseData {
    pub credential_id: String,
    /// The consumer's UUID, or its username in a Go plugin lease.
    pub consumer_id: String,
    pub role: String,
    /// Absent in Go plugin leases.
    pub issue_time_unix_seconds: Option<u64>,
}

impl LeaseData {
    /// Builds the internal data of a new lease (the secret type adds `secret_type`).
    pub fn to_internal_data(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(
            "credential_id".into(),
            Value::from(self.credential_id.as_str()),
        );
        map.insert("consumer_id".into(), Value::from(self.consumer_id.as_str()));
        map.insert("role".into(), Value::from(self.role.as_str()));
        if let Some(seconds) = self.issue_time_unix_seconds {
            map.insert("issue_time_unix_seconds".into(), Value::from(seconds));
        }
        map
    }

    /// Reads a lease's internal data, this engine's or the Go plugin's. `None` when it names
    /// no credential.
    pub fn from_internal_data(data: &Map<String, Value>) -> Option<Self> {
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|key| data.get(*key).and_then(Value::as_str))
                .filter(|text| !text.is_empty())
                .map(String::from)
        };
        let credential_id = text(&["credential_id", "id"])?;
        let consumer_id = text(&["consumer_id", "consumer"])?;
        let role = text(&["role", "consumer"]).unwrap_or_else(|| consumer_id.clone());
        Some(Self {
            credential_id,
            consumer_id,
            role,
            issue_time_unix_seconds: data.get("issue_time_unix_seconds").and_then(Value::as_u64),
        })
    }
}

fn renew(env: &Env<'_>, _: &Request, secret: &Secret) -> Result<Option<Response>, Error> {
    let lease = LeaseData::from_internal_data(&secret.internal_data).ok_or_else(|| {
        Error::bad_request("the lease names no Kong credential, so it cannot be renewed; read creds/<username> for a new one")
    })?;
    let role = consumers::load(env, &lease.role)?.ok_or_else(|| {
        Error::bad_request(format!(
            "consumer entry {:?} no longer exists, so its leases cannot be renewed; write consumers/{} again, or read new credentials",
            lease.role, lease.role
        ))
    })?;
    let config = config::require(env)?;
    let limits = LeaseLimits::for_role(env.system_view, &role)?;

    let issued = secret
        .issue_time
        .map(|time| time.seconds)
        .or(lease.issue_time_unix_seconds)
        .ok_or_else(|| {
            Error::internal("the lease has no issue time, so its max TTL cannot be checked")
        })?;
    let elapsed = env.clock.now_unix_seconds().saturating_sub(issued);
    if limits.max_ttl_seconds > 0 && elapsed >= limits.max_ttl_seconds {
        return Err(Error::bad_request(format!(
            "the lease reached its max TTL of {}s, so it cannot be renewed; read creds/{} for a new credential",
            limits.max_ttl_seconds, lease.role
        )));
    }

    let client = KongClient::new(env.http, &config)?;
    let kong_ttl = limits.kong_ttl_seconds(elapsed);
    match client.set_key_auth_ttl(&lease.consumer_id, &lease.credential_id, kong_ttl) {
        Ok(()) => {}
        Err(error) if error.status() == Some(404) => {
            return Err(Error::bad_request(format!(
                "credential {} no longer exists in Kong (it or its consumer was deleted), so the lease cannot be renewed; read creds/{} for a new credential",
                lease.credential_id, lease.role
            )))
        }
        Err(error) => return Err(error.into()),
    }

    let remaining = limits.max_ttl_seconds.saturating_sub(elapsed);
    let ttl_seconds = if limits.max_ttl_seconds > 0 {
        limits.ttl_seconds.min(remaining)
    } else {
        limits.ttl_seconds
    };
    let kong_ttl_text = kong_ttl.to_string();
    env.log.write(
        Level::Info,
        "renewed key-auth credential lease",
        &[
            ("role", &lease.role),
            ("consumer_id", &lease.consumer_id),
            ("credential_id", &lease.credential_id),
            ("kong_ttl_seconds", &kong_ttl_text),
        ],
    );

    Ok(Some(Response {
        secret: Some(Secret {
            ttl_seconds,
            max_ttl_seconds: limits.max_ttl_seconds,
            renewable: true,
            increment_seconds: 0,
            issue_time: secret.issue_time,
            // Vault replaces the lease's stored secret with this one, so revoke needs it all.
            internal_data: secret.internal_data.clone(),
        }),
        ..Response::default()
    }))
}

fn revoke(env: &Env<'_>, _: &Request, secret: &Secret) -> Result<Option<Response>, Error> {
    let Some(lease) = LeaseData::from_internal_data(&secret.internal_data) else {
        // Nothing names a credential, so there is nothing to delete; failing would only make
        // Vault retry forever.
        env.log.write(
            Level::Warn,
            "lease names no Kong credential; nothing to revoke",
            &[],
        );
        return Ok(None);
    };
    let config = config::load(env)?.ok_or_else(|| {
        Error::bad_request(format!(
            "cannot revoke credential {}: kong access is not configured; write config/access with baseurl first",
            lease.credential_id
        ))
    })?;
    let client = KongClient::new(env.http, &config)?;

    let fields = [
        ("role", lease.role.as_str()),
        ("consumer_id", lease.consumer_id.as_str()),
        ("credential_id", lease.credential_id.as_str()),
    ];
    match client.delete_key_auth(&lease.consumer_id, &lease.credential_id) {
        Ok(Deletion::Deleted) => {
            env.log
                .write(Level::Info, "revoked key-auth credential", &fields);
        }
        Ok(Deletion::AlreadyGone) => {
            env.log.write(
                Level::Info,
                "key-auth credential already gone in Kong; counted as revoked",
                &fields,
            );
        }
        Err(error) => {
            let credential_id = &lease.credential_id;
            return Err(Error::from(error).map_message(|message| {
                format!("failed to revoke credential {credential_id}: {message}")
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::{Operation, Timestamp};
    use crate::testing::{request, TestBackend};

    /// Builds a backend with Kong configured and consumer `alice`, and issues one lease whose
    /// issue time Vault set to the clock's time.
    fn issued(ttl: &str, max_ttl: &str) -> (TestBackend, Secret) {
        let test = TestBackend::new();
        test.ok(request::update(
            "config/access",
            json!({"baseurl": "http://kong:8001"}),
        ));
        test.ok(request::update(
            "consumers/alice",
            json!({"ttl": ttl, "max_ttl": max_ttl}),
        ));
        test.kong.add_consumer("alice");
        let mut secret = test
            .ok(request::read("creds/alice"))
            .and_then(|response| response.secret)
            .expect("creds returns a lease");
        secret.issue_time = Some(Timestamp {
            seconds: test.clock.now(),
            nanoseconds: 0,
        });
        (test, secret)
    }

    fn renew(test: &TestBackend, secret: &Secret) -> Result<Option<Response>, Error> {
        test.call(request::lease(
            Operation::Renew,
            "creds/alice",
            secret.clone(),
        ))
    }

    fn revoke(test: &TestBackend, secret: &Secret) -> Result<Option<Response>, Error> {
        test.call(request::lease(
            Operation::Revoke,
            "creds/alice",
            secret.clone(),
        ))
    }

    fn credential_id(secret: &Secret) -> String {
        secret.internal_data["credential_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn renew_extends_within_max_ttl() {
        let (test, secret) = issued("1h", "3h");
        test.clock.advance(3000);

        let renewed = renew(&test, &secret)
            .unwrap()
            .and_then(|r| r.secret)
            .expect("a secret");
        assert_eq!(renewed.ttl_seconds, 3600, "{renewed:?}");
        assert_eq!(renewed.max_ttl_seconds, 10800, "{renewed:?}");
        assert!(renewed.renewable, "{renewed:?}");
        assert_eq!(renewed.issue_time, secret.issue_time, "{renewed:?}");
        assert_eq!(
            renewed.internal_data, secret.internal_data,
            "internal data echoed"
        );
    }

    #[test]
    fn renew_ttl_capped_near_max_ttl() {
        let (test, secret) = issued("1h", "3h");
        test.clock.advance(10000);

        let renewed = renew(&test, &secret)
            .unwrap()
            .and_then(|r| r.secret)
            .expect("a secret");
        assert_eq!(renewed.ttl_seconds, 800, "{renewed:?}");
    }

    #[test]
    fn renew_sets_kong_expiry_to_max_ttl() {
        let (test, secret) = issued("1h", "3h");
        test.clock.advance(3000);
        renew(&test, &secret).unwrap();

        let sent = test.kong.requests();
        let patch = sent.last().unwrap();
        assert_eq!(patch.method, "PATCH", "{sent:?}");
        assert_eq!(
            patch.url,
            format!(
                "http://kong:8001/consumers/{}/key-auth/{}",
                test.kong.consumer_id("alice"),
                credential_id(&secret)
            )
        );
        assert_eq!(patch.json(), json!({"ttl": 7800}));
        assert_eq!(
            test.kong.credentials()[0].ttl_seconds,
            Some(7800),
            "Kong expiry unchanged"
        );
    }

    #[test]
    fn renew_moves_kong_expiry_forward_when_max_raised() {
        let (test, secret) = issued("1h", "2h");
        assert_eq!(
            test.kong.credentials()[0].ttl_seconds,
            Some(7200),
            "at issue"
        );

        test.ok(request::update("consumers/alice", json!({"max_ttl": "5h"})));
        test.clock.advance(3600);
        let renewed = renew(&test, &secret)
            .unwrap()
            .and_then(|r| r.secret)
            .expect("a secret");

        assert_eq!(renewed.max_ttl_seconds, 18000, "{renewed:?}");
        assert_eq!(
            test.kong.credentials()[0].ttl_seconds,
            Some(14400),
            "issue + 5h - now"
        );
    }

    #[test]
    fn renew_at_max_ttl_rejected() {
        let (test, secret) = issued("1h", "2h");
        test.clock.advance(7200);

        assert_eq!(
            renew(&test, &secret),
            Err(Error::bad_request(
                "the lease reached its max TTL of 7200s, so it cannot be renewed; read creds/alice for a new credential"
            ))
        );
        assert_eq!(test.kong.requests().len(), 1, "no PATCH after the max TTL");
    }

    #[test]
    fn renew_uses_internal_issue_time_without_vault_one() {
        let (test, mut secret) = issued("1h", "2h");
        secret.issue_time = None;
        test.clock.advance(7300);

        assert_eq!(
            renew(&test, &secret),
            Err(Error::bad_request(
                "the lease reached its max TTL of 7200s, so it cannot be renewed; read creds/alice for a new credential"
            ))
        );
    }

    #[test]
    fn renew_credential_gone_rejected() {
        let (test, secret) = issued("1h", "2h");
        test.kong.remove_credential(&credential_id(&secret));

        assert_eq!(
            renew(&test, &secret),
            Err(Error::bad_request(format!(
                "credential {} no longer exists in Kong (it or its consumer was deleted), so the lease cannot be renewed; read creds/alice for a new credential",
                credential_id(&secret)
            )))
        );
    }

    #[test]
    fn renew_role_deleted_rejected() {
        let (test, secret) = issued("1h", "2h");
        test.ok(request::delete("consumers/alice"));

        assert_eq!(
            renew(&test, &secret),
            Err(Error::bad_request(
                "consumer entry \"alice\" no longer exists, so its leases cannot be renewed; write consumers/alice again, or read new credentials"
            ))
        );
    }

    #[test]
    fn renew_kong_timeout_is_504() {
        let (test, secret) = issued("1h", "2h");
        test.kong.time_out_next();
        let error = renew(&test, &secret).expect_err("a timeout fails the renew");
        assert_eq!(error.status(), 504, "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("no response from http://kong:8001/consumers/"),
            "message: {error}"
        );
    }

    #[test]
    fn revoke_deletes_credential() {
        let (test, secret) = issued("1h", "2h");
        assert_eq!(revoke(&test, &secret), Ok(None));

        assert!(
            test.kong.credentials().is_empty(),
            "{:?}",
            test.kong.credentials()
        );
        let delete = test.kong.requests().pop().unwrap();
        assert_eq!(delete.method, "DELETE");
        assert_eq!(
            delete.url,
            format!(
                "http://kong:8001/consumers/{}/key-auth/{}",
                test.kong.consumer_id("alice"),
                credential_id(&secret)
            )
        );
    }

    #[test]
    fn revoke_twice_is_ok() {
        let (test, secret) = issued("1h", "2h");
        assert_eq!(revoke(&test, &secret), Ok(None), "first revoke");
        assert_eq!(revoke(&test, &secret), Ok(None), "second revoke");
        assert_eq!(
            test.log.messages().last().map(String::as_str),
            Some("key-auth credential already gone in Kong; counted as revoked")
        );
    }

    #[test]
    fn revoke_after_consumer_deleted_is_ok() {
        let (test, secret) = issued("1h", "2h");
        test.kong.remove_consumer("alice");
        assert_eq!(revoke(&test, &secret), Ok(None));
    }

    #[test]
    fn revoke_after_role_deleted_still_works() {
        let (test, secret) = issued("1h", "2h");
        test.ok(request::delete("consumers/alice"));
        assert_eq!(revoke(&test, &secret), Ok(None));
        assert!(
            test.kong.credentials().is_empty(),
            "{:?}",
            test.kong.credentials()
        );
    }

    #[test]
    fn revoke_without_config_fails() {
        let (test, secret) = issued("1h", "2h");
        test.ok(request::delete("config/access"));
        assert_eq!(
            revoke(&test, &secret),
            Err(Error::bad_request(format!(
                "cannot revoke credential {}: kong access is not configured; write config/access with baseurl first",
                credential_id(&secret)
            )))
        );
    }

    #[test]
    fn revoke_kong_failure_names_credential() {
        let (test, secret) = issued("1h", "2h");
        test.kong.fail_next(500, b"<html>oops</html>");
        assert_eq!(
            revoke(&test, &secret),
            Err(Error::coded(
                502,
                format!(
                    "failed to revoke credential {id}: kong returned 500 for DELETE http://kong:8001/consumers/{consumer}/key-auth/{id}: <html>oops</html>",
                    id = credential_id(&secret),
                    consumer = test.kong.consumer_id("alice"),
                )
            ))
        );
    }

    #[test]
    fn revoke_go_plugin_lease() {
        let (test, _) = issued("1h", "2h");
        let id = test.kong.credentials()[0].id.clone();
        let legacy = Secret {
            ttl_seconds: 3600,
            max_ttl_seconds: 0,
            renewable: true,
            increment_seconds: 0,
            issue_time: None,
            internal_data: json!({"secret_type": "token", "id": id, "consumer": "alice"})
                .as_object()
                .cloned()
                .unwrap(),
        };
        assert_eq!(revoke(&test, &legacy), Ok(None));
        assert_eq!(
            test.kong.requests().pop().unwrap().url,
            format!("http://kong:8001/consumers/alice/key-auth/{id}")
        );
        assert!(
            test.kong.credentials().is_empty(),
            "{:?}",
            test.kong.credentials()
        );
    }

    #[test]
    fn revoke_without_credential_is_ok() {
        let (test, mut secret) = issued("1h", "2h");
        secret.internal_data.remove("credential_id");
        assert_eq!(revoke(&test, &secret), Ok(None));
        assert_eq!(
            test.log.messages().last().map(String::as_str),
            Some("lease names no Kong credential; nothing to revoke")
        );
    }

    #[test]
    fn lease_logs_ids_never_key() {
        let (test, secret) = issued("1h", "2h");
        let key = test.kong.credentials()[0].key.clone();
        renew(&test, &secret).unwrap();
        revoke(&test, &secret).unwrap();

        test.log.assert_never_contains(&key);
        assert_eq!(
            test.log.find("revoked key-auth credential"),
            Some(vec![
                ("role".to_string(), "alice".to_string()),
                ("consumer_id".to_string(), test.kong.consumer_id("alice")),
                ("credential_id".to_string(), credential_id(&secret)),
            ])
        );
    }

    fn role(ttl_seconds: u64, max_ttl_seconds: u64) -> ConsumerEntry {
        ConsumerEntry {
            username: "app".into(),
            ttl_seconds,
            max_ttl_seconds,
        }
    }

    #[test]
    fn limits_table() {
        // (role ttl, role max, mount default, mount max) → (ttl, max)
        let cases = [
            ((0, 0, 3600, 7200), (3600, 7200)),
            ((60, 0, 3600, 7200), (60, 7200)),
            ((60, 120, 3600, 7200), (60, 120)),
            ((0, 120, 3600, 7200), (120, 120)),
            ((60, 9000, 3600, 7200), (60, 7200)),
            ((8000, 0, 3600, 7200), (7200, 7200)),
            ((60, 120, 3600, 0), (60, 120)),
            ((60, 0, 3600, 0), (60, 0)),
        ];
        for ((ttl, max, mount_default, mount_max), (want_ttl, want_max)) in cases {
            assert_eq!(
                LeaseLimits::combine(&role(ttl, max), mount_default, mount_max),
                LeaseLimits {
                    ttl_seconds: want_ttl,
                    max_ttl_seconds: want_max
                },
                "role {ttl}/{max}, mount {mount_default}/{mount_max}"
            );
        }
    }

    #[test]
    fn kong_ttl_table() {
        let limits = |max| LeaseLimits {
            ttl_seconds: 60,
            max_ttl_seconds: max,
        };
        let cases = [
            (limits(3600), 0, 3600),
            (limits(3600), 600, 3000),
            (limits(3600), 3599, 1),
            (limits(3600), 4000, 1),
            (limits(0), 100, 0),
            (limits(200_000_000), 0, 100_000_000),
        ];
        for (limits, elapsed, expected) in cases {
            assert_eq!(
                limits.kong_ttl_seconds(elapsed),
                expected,
                "{limits:?} after {elapsed}s"
            );
        }
    }

    #[test]
    fn lease_data_round_trip() {
        let lease = LeaseData {
            credential_id: "c1".into(),
            consumer_id: "u1".into(),
            role: "team/app".into(),
            issue_time_unix_seconds: Some(1_700_000_000),
        };
        assert_eq!(
            LeaseData::from_internal_data(&lease.to_internal_data()),
            Some(lease)
        );
    }

    #[test]
    fn lease_data_reads_go_plugin_lease() {
        let data = json!({"secret_type": "token", "id": "c1", "consumer": "alice"});
        assert_eq!(
            LeaseData::from_internal_data(data.as_object().unwrap()),
            Some(LeaseData {
                credential_id: "c1".into(),
                consumer_id: "alice".into(),
                role: "alice".into(),
                issue_time_unix_seconds: None,
            })
        );
    }

    #[test]
    fn lease_data_without_credential() {
        let data = json!({"secret_type": "token", "consumer_id": "u1"});
        assert_eq!(
            LeaseData::from_internal_data(data.as_object().unwrap()),
            None
        );
    }
}
