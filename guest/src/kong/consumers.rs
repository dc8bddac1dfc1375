//! `consumers/` and `consumers/<username>`: the Kong consumers this engine may issue keys for,
//! each with its lease TTL and max TTL. Each entry is the role that `creds/<username>` uses.
//!
//! An entry is stored at `consumer/<username>` with the username percent-encoded (see
//! [`storage_key`]), as JSON `{"username", "ttl_seconds", "max_ttl_seconds"}`. The older Go
//! plugin stored `ttl` and `max_ttl` in nanoseconds under those names; such entries still load.
//! A write changes only the fields it names. Nothing here calls Kong: the consumer must exist
//! in Kong by the time credentials are read.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{decode_segment, encode_segment};
use super::{load_json, save_json, Env};
use crate::framework::{
    Error, Field, FieldData, FieldType, FieldValue, Operation, Path, Request, Response,
};
use crate::services::Level;

/// The storage prefix of consumer entries.
pub const STORAGE_PREFIX: &str = "consumer/";

/// One consumer entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsumerEntry {
    /// The Kong username, exactly as written.
    pub username: String,
    /// Lease TTL; 0 means the mount's default lease TTL.
    pub ttl_seconds: u64,
    /// Lease max TTL; 0 means the mount's maximum lease TTL.
    pub max_ttl_seconds: u64,
}

/// The stored form, which also reads the Go plugin's nanosecond fields.
#[derive(Deserialize)]
struct StoredEntry {
    username: Option<String>,
    ttl_seconds: Option<u64>,
    max_ttl_seconds: Option<u64>,
    /// The Go plugin's `time.Duration`, in nanoseconds.
    ttl: Option<u64>,
    /// The Go plugin's `time.Duration`, in nanoseconds.
    max_ttl: Option<u64>,
}

const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;

/// Returns the storage key of `username`'s entry.
pub fn storage_key(username: &str) -> String {
    format!("{STORAGE_PREFIX}{}", encode_segment(username))
}

/// Reads `username`'s entry; `None` when there is none.
pub fn load(env: &Env<'_>, username: &str) -> Result<Option<ConsumerEntry>, Error> {
    let what = format!("consumer entry {username:?}");
    let stored: Option<StoredEntry> = load_json(env, &storage_key(username), &what)?;
    Ok(stored.map(|stored| ConsumerEntry {
        username: stored.username.unwrap_or_else(|| username.to_string()),
        ttl_seconds: stored
            .ttl_seconds
            .or(stored.ttl.map(|ns| ns / NANOSECONDS_PER_SECOND))
            .unwrap_or(0),
        max_ttl_seconds: stored
            .max_ttl_seconds
            .or(stored.max_ttl.map(|ns| ns / NANOSECONDS_PER_SECOND))
            .unwrap_or(0),
    }))
}

/// Builds the list path.
pub fn list_path<'a>() -> Path<Env<'a>> {
    Path::new("consumers/", "consumers", LIST_SYNOPSIS, LIST_DESCRIPTION)
        .operation(Operation::List, "list", "List the consumer entries.", list)
        .see_also("consumers/<username>")
}

/// Builds the entry path.
pub fn path<'a>() -> Path<Env<'a>> {
    Path::new("consumers/{username+}", "consumer", SYNOPSIS, DESCRIPTION)
        .field(Field::new(
            "username",
            FieldType::String,
            "Username of the Kong consumer, exactly as in Kong; any characters Kong accepts, such as alice@example.com.",
        ))
        .field(
            Field::new(
                "ttl",
                FieldType::Duration,
                "Lease TTL of issued credentials, in seconds or as a duration such as 1h; 0 uses the mount's default lease TTL.",
            )
            .with_default(FieldValue::Duration(0)),
        )
        .field(
            Field::new(
                "max_ttl",
                FieldType::Duration,
                "Longest lifetime of a lease with renewals, in seconds or as a duration such as 24h; 0 uses the mount's maximum lease TTL.",
            )
            .with_default(FieldValue::Duration(0)),
        )
        .operation(Operation::Read, "read", "Read a consumer entry.", read)
        .operation(Operation::Create, "write", "Create or update a consumer entry.", write)
        .operation(Operation::Update, "write", "Create or update a consumer entry.", write)
        .operation(Operation::Delete, "delete", "Delete a consumer entry.", delete)
        .existence_check(exists)
        .see_also("creds/<username>")
        .see_also("config/access")
}

fn username(fields: &FieldData) -> &str {
    fields
        .string("username")
        .expect("the path pattern always captures username")
}

fn exists(env: &Env<'_>, _: &Request, fields: &FieldData) -> Result<bool, Error> {
    Ok(load(env, username(fields))?.is_some())
}

fn list(env: &Env<'_>, _: &Request, _: &FieldData) -> Result<Option<Response>, Error> {
    let keys = env
        .storage
        .list(STORAGE_PREFIX)
        .map_err(|error| Error::internal(format!("failed to list consumer entries: {error}")))?;

    // Keys are percent-encoded; list the names as written. A key this engine did not encode
    // is shown as it is.
    let mut names: Vec<String> = keys
        .iter()
        .filter(|key| !key.ends_with('/'))
        .map(|key| decode_segment(key).unwrap_or_else(|| key.clone()))
        .collect();
    names.sort();
    Ok(Some(Response::list(names)))
}

fn read(env: &Env<'_>, _: &Request, fields: &FieldData) -> Result<Option<Response>, Error> {
    Ok(load(env, username(fields))?.map(|entry| {
        Response::data(json!({
            "username": entry.username,
            "ttl": entry.ttl_seconds,
            "max_ttl": entry.max_ttl_seconds,
        }))
    }))
}

fn write(env: &Env<'_>, _: &Request, fields: &FieldData) -> Result<Option<Response>, Error> {
    let username = username(fields);
    let mut entry = load(env, username)?.unwrap_or_else(|| ConsumerEntry {
        username: username.to_string(),
        ttl_seconds: 0,
        max_ttl_seconds: 0,
    });
    if let Some(ttl) = fields.duration("ttl") {
        entry.ttl_seconds = ttl;
    }
    if let Some(max_ttl) = fields.duration("max_ttl") {
        entry.max_ttl_seconds = max_ttl;
    }

    if entry.max_ttl_seconds > 0 && entry.ttl_seconds > entry.max_ttl_seconds {
        return Err(Error::bad_request(format!(
            "ttl {}s is greater than max_ttl {}s; lower ttl or raise max_ttl",
            entry.ttl_seconds, entry.max_ttl_seconds
        )));
    }
    let warnings = mount_limit_warnings(env, &entry)?;

    let what = format!("consumer entry {username:?}");
    save_json(env, &storage_key(username), &entry, false, &what)?;
    env.log
        .write(Level::Info, "wrote consumer entry", &[("role", username)]);

    if warnings.is_empty() {
        return Ok(None);
    }
    Ok(Some(Response {
        warnings,
        ..Response::default()
    }))
}

/// Warns when a TTL passes the mount's maximum, which Vault applies to every lease anyway.
fn mount_limit_warnings(env: &Env<'_>, entry: &ConsumerEntry) -> Result<Vec<String>, Error> {
    let mount_max = env.system_view.max_lease_ttl_seconds().map_err(|error| {
        Error::internal(format!("failed to read the mount's max lease TTL: {error}"))
    })?;
    let mut warnings = Vec::new();
    if mount_max == 0 {
        return Ok(warnings);
    }
    for (name, value) in [
        ("ttl", entry.ttl_seconds),
        ("max_ttl", entry.max_ttl_seconds),
    ] {
        if value > mount_max {
            warnings.push(format!(
                "{name} {value}s is greater than the mount's max lease TTL {mount_max}s, so leases end after {mount_max}s"
            ));
        }
    }
    Ok(warnings)
}

fn delete(env: &Env<'_>, _: &Request, fields: &FieldData) -> Result<Option<Response>, Error> {
    let username = username(fields);
    env.storage
        .delete(&storage_key(username))
        .map_err(|error| {
            Error::internal(format!(
                "failed to delete consumer entry {username:?}: {error}"
            ))
        })?;
    env.log
        .write(Level::Info, "deleted consumer entry", &[("role", username)]);
    Ok(None)
}

const LIST_SYNOPSIS: &str = "Lists the Kong consumers that may get credentials.";

const LIST_DESCRIPTION: &str = "\
Lists the usernames of the consumer entries, as they were written.";

const SYNOPSIS: &str = "Manages which Kong consumer may get credentials, and their lease TTLs.";

const DESCRIPTION: &str = "\
An entry allows creds/<username> to issue key-auth credentials for the Kong consumer with
that username, and sets the TTL and max TTL of their leases. The consumer itself must
already exist in Kong; this path does not call Kong.

A write changes only the fields it names, so a first write without ttl or max_ttl uses the
mount's defaults. A ttl greater than a non-zero max_ttl is rejected.

Deleting an entry stops new credentials and renewals for it. Credentials already issued
stay valid until their leases are revoked or expire.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{request, TestBackend};

    fn data(test: &TestBackend, path: &str) -> Option<serde_json::Value> {
        test.ok(request::read(path))
            .map(|response| serde_json::Value::Object(response.data.unwrap()))
    }

    #[test]
    fn consumer_write_then_read() {
        let test = TestBackend::new();
        test.ok(request::update(
            "consumers/alice",
            json!({"ttl": "20s", "max_ttl": "1h"}),
        ));

        assert_eq!(
            data(&test, "consumers/alice"),
            Some(json!({"username": "alice", "ttl": 20, "max_ttl": 3600}))
        );
    }

    #[test]
    fn consumer_durations_accept_seconds() {
        let test = TestBackend::new();
        test.ok(request::update(
            "consumers/bob",
            json!({"ttl": 30, "max_ttl": "120"}),
        ));

        assert_eq!(
            data(&test, "consumers/bob"),
            Some(json!({"username": "bob", "ttl": 30, "max_ttl": 120}))
        );
    }

    #[test]
    fn consumer_write_changes_named_fields_only() {
        let test = TestBackend::new();
        test.ok(request::update(
            "consumers/alice",
            json!({"ttl": 60, "max_ttl": 600}),
        ));
        test.ok(request::update("consumers/alice", json!({"ttl": 90})));
        assert_eq!(
            data(&test, "consumers/alice"),
            Some(json!({"username": "alice", "ttl": 90, "max_ttl": 600})),
            "after ttl-only write"
        );

        test.ok(request::update("consumers/alice", json!({})));
        assert_eq!(
            data(&test, "consumers/alice"),
            Some(json!({"username": "alice", "ttl": 90, "max_ttl": 600})),
            "after empty write"
        );
    }

    #[test]
    fn consumer_ttl_above_max_ttl_rejected() {
        let test = TestBackend::new();
        assert_eq!(
            test.call(request::update(
                "consumers/alice",
                json!({"ttl": "2h", "max_ttl": "1h"})
            )),
            Err(Error::bad_request(
                "ttl 7200s is greater than max_ttl 3600s; lower ttl or raise max_ttl"
            ))
        );

        test.ok(request::update(
            "consumers/alice",
            json!({"ttl": 60, "max_ttl": 120}),
        ));
        assert_eq!(
            test.call(request::update("consumers/alice", json!({"max_ttl": 30}))),
            Err(Error::bad_request(
                "ttl 60s is greater than max_ttl 30s; lower ttl or raise max_ttl"
            )),
            "lowering max_ttl alone is checked against the stored ttl"
        );
        assert_eq!(
            data(&test, "consumers/alice"),
            Some(json!({"username": "alice", "ttl": 60, "max_ttl": 120})),
            "a rejected write changes nothing"
        );
    }

    #[test]
    fn consumer_ttl_with_zero_max_ttl_allowed() {
        let test = TestBackend::new();
        test.ok(request::update(
            "consumers/alice",
            json!({"ttl": "5h", "max_ttl": 0}),
        ));
        assert_eq!(
            data(&test, "consumers/alice"),
            Some(json!({"username": "alice", "ttl": 18000, "max_ttl": 0}))
        );
    }

    #[test]
    fn consumer_warns_above_mount_max() {
        let test = TestBackend::new();
        test.system_view.set(60, 3600);
        let response = test.ok(request::update("consumers/alice", json!({"ttl": "2h"})));
        assert_eq!(
            response.map(|response| response.warnings),
            Some(vec![
                "ttl 7200s is greater than the mount's max lease TTL 3600s, so leases end after 3600s".to_string()
            ])
        );
    }

    #[test]
    fn consumer_rejects_bad_duration() {
        let test = TestBackend::new();
        assert_eq!(
            test.call(request::update("consumers/alice", json!({"max_ttl": "-1h"}))),
            Err(Error::bad_request(
                "invalid max_ttl: \"-1h\" is not a duration; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"
            ))
        );
    }

    #[test]
    fn consumer_read_missing_is_none() {
        let test = TestBackend::new();
        assert_eq!(test.call(request::read("consumers/nobody")), Ok(None));
    }

    #[test]
    fn consumer_names_kong_accepts() {
        let test = TestBackend::new();
        let names = [
            "bob smith",
            "alice@example.com",
            "team/alice",
            "zoë",
            "100%",
            "..",
            "a.b-c_d",
        ];
        for name in names {
            test.ok(request::update(
                &format!("consumers/{name}"),
                json!({"ttl": 5}),
            ));
            assert_eq!(
                data(&test, &format!("consumers/{name}")),
                Some(json!({"username": name, "ttl": 5, "max_ttl": 0})),
                "read back {name:?}"
            );
        }

        let listed = test.ok(request::list("consumers/")).unwrap().data.unwrap();
        let mut expected: Vec<&str> = names.to_vec();
        expected.sort();
        assert_eq!(listed["keys"], json!(expected));

        let keys: Vec<String> = test.storage.keys();
        assert!(
            keys.contains(&"consumer/team%2Falice".to_string()),
            "keys: {keys:?}"
        );
        assert!(
            keys.contains(&"consumer/%2E%2E".to_string()),
            "keys: {keys:?}"
        );
        assert!(
            keys.contains(&"consumer/a.b-c_d".to_string()),
            "keys: {keys:?}"
        );
    }

    #[test]
    fn consumer_list_empty_has_no_keys() {
        let test = TestBackend::new();
        let listed = test.ok(request::list("consumers/")).unwrap().data.unwrap();
        assert_eq!(listed["keys"], json!([]));
    }

    #[test]
    fn consumer_delete_and_existence() {
        let test = TestBackend::new();
        assert_eq!(test.exists("consumers/alice"), Ok(false), "before write");

        test.ok(request::update("consumers/alice", json!({})));
        assert_eq!(test.exists("consumers/alice"), Ok(true), "after write");

        assert_eq!(test.call(request::delete("consumers/alice")), Ok(None));
        assert_eq!(test.exists("consumers/alice"), Ok(false), "after delete");
        assert_eq!(
            test.call(request::delete("consumers/alice")),
            Ok(None),
            "delete twice"
        );
    }

    #[test]
    fn consumer_reads_go_plugin_entry() {
        let test = TestBackend::new();
        test.storage.insert(
            "consumer/legacy",
            br#"{"username":"legacy","ttl":20000000000,"max_ttl":3600000000000}"#,
        );
        assert_eq!(
            data(&test, "consumers/legacy"),
            Some(json!({"username": "legacy", "ttl": 20, "max_ttl": 3600}))
        );
    }

    #[test]
    fn consumer_write_logs_role() {
        let test = TestBackend::new();
        test.ok(request::update("consumers/alice", json!({})));
        assert_eq!(
            test.log.lines(),
            [(
                "info".to_string(),
                "wrote consumer entry".to_string(),
                vec![("role".to_string(), "alice".to_string())]
            )]
        );
    }
}
