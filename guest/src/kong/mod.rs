//! The Kong secrets engine: issues Kong key-auth credentials as Vault leases.
//!
//! Paths (the older Go plugin's API, unchanged for its users):
//! - `config/access`: how to reach Kong's Admin API;
//! - `consumers/` and `consumers/<username>`: which Kong consumers may get credentials, with
//!   their lease TTLs;
//! - `creds/<username>`: issues a key-auth credential under a renewable lease.
//!
//! Storage keys: `config/access`, and `consumer/<username>` with the username percent-encoded
//! (letters, digits and `-._~` stay as they are, so names the Go plugin accepted keep their
//! keys). Leases keep only ids and times in their internal data, never the key.

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod consumers;
pub mod creds;
pub mod leases;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::framework::{Backend, Error};
use crate::http::HttpClient;
use crate::services::{Clock, Log, Storage, SystemView};

/// The services a handler reaches the outside world through.
pub struct Env<'a> {
    pub storage: &'a dyn Storage,
    pub system_view: &'a dyn SystemView,
    pub log: &'a dyn Log,
    pub http: &'a dyn HttpClient,
    pub clock: &'a dyn Clock,
}

/// Vault's special paths for this backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialPaths {
    pub root: Vec<String>,
    pub unauthenticated: Vec<String>,
    pub local_storage: Vec<String>,
    pub seal_wrap_storage: Vec<String>,
}

/// Returns the special paths. Only the access configuration, which contains the admin
/// token, is seal-wrapped.
pub fn special_paths() -> SpecialPaths {
    SpecialPaths {
        seal_wrap_storage: vec![config::STORAGE_KEY.to_string()],
        ..SpecialPaths::default()
    }
}

/// Builds the backend with all its paths and its secret type.
pub fn backend<'a>() -> Backend<Env<'a>> {
    Backend {
        operation_prefix: "kong",
        title: "Kong secrets engine",
        synopsis: SYNOPSIS,
        description: DESCRIPTION,
        paths: vec![
            config::path(),
            consumers::list_path(),
            consumers::path(),
            creds::path(),
        ],
        secret_types: vec![leases::secret_type()],
    }
}

/// Reads and decodes the JSON entry at `key`; `what` names it in messages.
fn load_json<T: DeserializeOwned>(
    env: &Env<'_>,
    key: &str,
    what: &str,
) -> Result<Option<T>, Error> {
    let Some(bytes) = env
        .storage
        .get(key)
        .map_err(|error| Error::internal(format!("failed to read {what} from storage: {error}")))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|error| {
        Error::internal(format!(
            "stored {what} at {key:?} is not valid: {error}; write it again"
        ))
    })
}

/// Encodes `value` as JSON and writes it at `key`; `what` names it in messages. Vault's
/// message on a read-only node (`cannot write to readonly storage`) stays in the text, so
/// Vault can still recognise it.
fn save_json<T: Serialize>(
    env: &Env<'_>,
    key: &str,
    value: &T,
    seal_wrap: bool,
    what: &str,
) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value)
        .map_err(|error| Error::internal(format!("failed to encode {what}: {error}")))?;
    env.storage
        .put(key, &bytes, seal_wrap)
        .map_err(|error| Error::internal(format!("failed to write {what} to storage: {error}")))
}

const SYNOPSIS: &str = "Issues Kong key-auth credentials as Vault leases.";

const DESCRIPTION: &str = "\
This engine creates a key-auth credential (an API key) for an existing Kong consumer each
time creds/<username> is read, and deletes it when the lease is revoked or expires.

Set up in order: write config/access with the Admin API's baseurl (and token if it needs
one), then write consumers/<username> for each Kong consumer that may get keys, with the
lease ttl and max_ttl. The consumer must already exist in Kong.

Renewing a lease extends it up to its max TTL and moves the key's expiry in Kong to the
end of that maximum, so Kong drops the key even if Vault never revokes it. Revoking deletes
the key; a key or consumer already deleted in Kong counts as revoked.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Operation;
    use crate::testing::{request, TestBackend};

    #[test]
    fn backend_unknown_path_and_operation() {
        let test = TestBackend::new();
        let cases = [
            (request::read("roles/app"), Error::UnsupportedPath),
            (request::read(""), Error::UnsupportedPath),
            (request::read("config"), Error::UnsupportedPath),
            (request::list("config/access"), Error::UnsupportedOperation),
            (request::delete("creds/app"), Error::UnsupportedOperation),
            (
                request::update("creds/app", json!({})),
                Error::UnsupportedOperation,
            ),
            (request::read("consumers/"), Error::UnsupportedOperation),
        ];
        for (request, expected) in cases {
            let label = format!("{} {:?}", request.operation.name(), request.path);
            assert_eq!(test.call(request), Err(expected), "{label}");
        }
    }

    #[test]
    fn backend_rollback_answers_nothing() {
        let test = TestBackend::new();
        let rollback = crate::framework::Request::new(Operation::Rollback, "");
        assert_eq!(test.call(rollback), Ok(None));
    }

    fn help(test: &TestBackend, path: &str) -> serde_json::Map<String, serde_json::Value> {
        let request = crate::framework::Request::new(Operation::Help, path);
        test.ok(request)
            .and_then(|response| response.data)
            .unwrap_or_else(|| panic!("help on {path:?} has no data"))
    }

    #[test]
    fn help_root_lists_every_path() {
        let test = TestBackend::new();
        let root = help(&test, "");

        let text = root["help"].as_str().unwrap();
        assert!(
            text.starts_with("Issues Kong key-auth credentials as Vault leases.\n"),
            "help: {text}"
        );
        for (pattern, synopsis) in [
            (
                "config/access",
                "Configures how the engine reaches Kong's Admin API.",
            ),
            (
                "consumers/",
                "Lists the Kong consumers that may get credentials.",
            ),
            (
                "consumers/{username+}",
                "Manages which Kong consumer may get credentials, and their lease TTLs.",
            ),
            (
                "creds/{username+}",
                "Issues a Kong key-auth credential for a consumer.",
            ),
        ] {
            assert!(
                text.contains(&format!("    {pattern}\n        {synopsis}\n")),
                "root help lacks {pattern}: {text}"
            );
        }
        assert_eq!(root["see_also"], json!([]), "{root:?}");
    }

    #[test]
    fn help_root_openapi_operation_ids() {
        let test = TestBackend::new();
        let root = help(&test, "");
        let openapi = &root["openapi"];
        assert_eq!(openapi["openapi"], json!("3.0.2"), "{openapi}");

        let cases = [
            ("/config/access", "get", "kong-read-access-configuration"),
            ("/config/access", "post", "kong-write-access-configuration"),
            (
                "/config/access",
                "delete",
                "kong-delete-access-configuration",
            ),
            ("/consumers/", "get", "kong-list-consumers"),
            ("/consumers/{username}", "get", "kong-read-consumer"),
            ("/consumers/{username}", "post", "kong-write-consumer"),
            ("/consumers/{username}", "delete", "kong-delete-consumer"),
            ("/creds/{username}", "get", "kong-generate-credentials"),
        ];
        for (path, method, id) in cases {
            assert_eq!(
                openapi["paths"][path][method]["operationId"],
                json!(id),
                "{method} {path} in {}",
                openapi["paths"]
            );
        }
        assert_eq!(
            openapi["paths"].as_object().map(|paths| paths.len()),
            Some(4),
            "{}",
            openapi["paths"]
        );
        let token = &openapi["components"]["schemas"]["KongWriteAccessConfigurationRequest"]
            ["properties"]["token"];
        assert_eq!(
            token["x-vault-displayAttrs"],
            json!({"sensitive": true}),
            "{token}"
        );
    }

    #[test]
    fn help_on_every_path() {
        let test = TestBackend::new();
        let cases = [
            (
                "config/access",
                "Configures how the engine reaches Kong's Admin API.",
                "/config/access",
            ),
            (
                "consumers/",
                "Lists the Kong consumers that may get credentials.",
                "/consumers/",
            ),
            (
                "consumers/bob smith",
                "Manages which Kong consumer may get credentials, and their lease TTLs.",
                "/consumers/{username}",
            ),
            (
                "creds/team/alice",
                "Issues a Kong key-auth credential for a consumer.",
                "/creds/{username}",
            ),
        ];
        for (path, synopsis, openapi_path) in cases {
            let data = help(&test, path);
            let text = data["help"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("Request:        {path}\n")),
                "help on {path}: {text}"
            );
            assert!(
                text.contains(&format!("\n{synopsis}\n")),
                "help on {path}: {text}"
            );
            assert!(text.contains("## DESCRIPTION"), "help on {path}: {text}");
            assert!(data["see_also"].is_array(), "see_also on {path}: {data:?}");
            let paths = data["openapi"]["paths"].as_object().unwrap();
            assert_eq!(
                paths.keys().collect::<Vec<_>>(),
                [openapi_path],
                "OpenAPI of {path}"
            );
        }
    }

    #[test]
    fn help_unknown_path_unsupported() {
        let test = TestBackend::new();
        let request = crate::framework::Request::new(Operation::Help, "roles/app");
        assert_eq!(test.call(request), Err(Error::UnsupportedPath));
    }

    #[test]
    fn existence_check_creds_not_found() {
        let test = TestBackend::new();
        let request = crate::framework::Request::new(Operation::Update, "creds/alice");
        let existence = backend().handle_existence_check(&test.env(), &request);
        assert_eq!(
            existence,
            Ok(crate::framework::Existence {
                check_found: false,
                exists: false
            })
        );
        let unknown = crate::framework::Request::new(Operation::Update, "roles/alice");
        assert_eq!(
            backend().handle_existence_check(&test.env(), &unknown),
            Err(Error::UnsupportedPath)
        );
    }

    #[test]
    fn write_warns_about_unknown_fields() {
        let test = TestBackend::new();
        let response = test.ok(request::update(
            "consumers/alice",
            json!({"ttl": 5, "tll": 9}),
        ));
        assert_eq!(
            response.map(|response| response.warnings),
            Some(vec![
                "ignored fields that consumers/{username+} does not take: tll".to_string()
            ])
        );
    }

    #[test]
    fn backend_seal_wraps_config_only() {
        assert_eq!(special_paths().seal_wrap_storage, ["config/access"]);
        assert!(special_paths().root.is_empty(), "{:?}", special_paths());
    }
}
