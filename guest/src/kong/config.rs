//! `config/access`: how the engine reaches Kong's Admin API.
//!
//! Stored at the storage key `config/access`, seal-wrapped, as JSON with `baseurl`, `token`,
//! `token_header` and `request_timeout_seconds`. An entry the older Go plugin wrote holds only
//! `baseurl`; the other fields then take their defaults. A write changes only the fields it
//! names, and the first write must set `baseurl`. A read never returns the token, only whether
//! one is set.
//!
//! Security: `baseurl` decides where the token is sent, so a caller allowed to write this path
//! can point the engine anywhere the host's outbound policy allows. That policy is set by the
//! Vault operator when registering the plugin, not here.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{load_json, save_json, Env};
use crate::framework::{
    Error, Field, FieldData, FieldType, FieldValue, Operation, Path, Request, Response,
};
use crate::http::Url;
use crate::services::Level;

/// The storage key of the configuration.
pub const STORAGE_KEY: &str = "config/access";

/// The header Kong Enterprise reads the RBAC token from unless `rbac_auth_header` changes it.
pub const DEFAULT_TOKEN_HEADER: &str = "Kong-Admin-Token";

/// How long one Admin API request may take unless `request_timeout` sets another limit.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 10;

/// Headers the engine sets itself or that HTTP reserves for the connection, so the token may
/// not go into them.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The stored configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessConfig {
    /// The Admin API's base URL, checked when written.
    pub baseurl: String,
    /// The admin token; empty when Kong needs none.
    #[serde(default)]
    pub token: String,
    #[serde(default = "default_token_header")]
    pub token_header: String,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
}

fn default_token_header() -> String {
    DEFAULT_TOKEN_HEADER.to_string()
}

fn default_request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_SECONDS
}

impl std::fmt::Debug for AccessConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccessConfig")
            .field("baseurl", &self.baseurl)
            .field("token_set", &!self.token.is_empty())
            .field("token_header", &self.token_header)
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .finish()
    }
}

/// Reads the configuration; `None` when it was never written or was deleted.
pub fn load(env: &Env<'_>) -> Result<Option<AccessConfig>, Error> {
    load_json(env, STORAGE_KEY, "the kong access configuration")
}

/// Reads the configuration, or fails with a 400 that asks the user to write it.
pub fn require(env: &Env<'_>) -> Result<AccessConfig, Error> {
    load(env)?.ok_or_else(|| {
        Error::bad_request(
            "kong access is not configured; write config/access with baseurl (and token if the Admin API needs one) first",
        )
    })
}

/// Builds the path definition.
pub fn path<'a>() -> Path<Env<'a>> {
    Path::new("config/access", "access-configuration", SYNOPSIS, DESCRIPTION)
        .field(Field::new(
            "baseurl",
            FieldType::String,
            "Base URL of Kong's Admin API, http or https, such as http://127.0.0.1:8001. Required on the first write.",
        ))
        .field(
            Field::new(
                "token",
                FieldType::String,
                "Admin API token sent in the token_header header, such as a Kong Enterprise RBAC token. An empty string removes it.",
            )
            .sensitive(),
        )
        .field(
            Field::new(
                "token_header",
                FieldType::String,
                "Name of the header that carries token.",
            )
            .with_default(FieldValue::String(DEFAULT_TOKEN_HEADER.into())),
        )
        .field(
            Field::new(
                "request_timeout",
                FieldType::Duration,
                "Time limit for each Admin API request, in seconds or as a duration such as 30s; at least 1 second.",
            )
            .with_default(FieldValue::Duration(DEFAULT_REQUEST_TIMEOUT_SECONDS)),
        )
        .operation(Operation::Read, "read", "Read the Kong access configuration.", read)
        .operation(Operation::Create, "write", "Configure access to Kong's Admin API.", write)
        .operation(Operation::Update, "write", "Configure access to Kong's Admin API.", write)
        .operation(Operation::Delete, "delete", "Delete the Kong access configuration.", delete)
        .existence_check(exists)
        .see_also("consumers/")
}

fn exists(env: &Env<'_>, _: &Request, _: &FieldData) -> Result<bool, Error> {
    Ok(load(env)?.is_some())
}

fn read(env: &Env<'_>, _: &Request, _: &FieldData) -> Result<Option<Response>, Error> {
    // The token is write-only, so a read returns only whether one is set.
    Ok(load(env)?.map(|config| {
        Response::data(json!({
            "baseurl": config.baseurl,
            "token_set": !config.token.is_empty(),
            "token_header": config.token_header,
            "request_timeout": config.request_timeout_seconds,
        }))
    }))
}

fn write(env: &Env<'_>, _: &Request, fields: &FieldData) -> Result<Option<Response>, Error> {
    let baseurl = fields.string("baseurl");
    let mut config = match (load(env)?, baseurl) {
        (Some(existing), _) => existing,
        (None, Some(_)) => AccessConfig {
            baseurl: String::new(),
            token: String::new(),
            token_header: DEFAULT_TOKEN_HEADER.into(),
            request_timeout_seconds: DEFAULT_REQUEST_TIMEOUT_SECONDS,
        },
        (None, None) => {
            return Err(Error::bad_request(
                "missing baseurl: the first write to config/access must set it, such as baseurl=http://127.0.0.1:8001",
            ))
        }
    };

    if let Some(baseurl) = baseurl {
        config.baseurl = check_baseurl(baseurl)?;
    }
    if let Some(token) = fields.string("token") {
        check_token(token)?;
        config.token = token.to_string();
    }
    if let Some(header) = fields.string("token_header") {
        config.token_header = check_token_header(header)?;
    }
    if let Some(timeout) = fields.duration("request_timeout") {
        if timeout == 0 {
            return Err(Error::bad_request(
                "invalid request_timeout: 0s leaves no time for a request; use at least 1s, such as 10s",
            ));
        }
        config.request_timeout_seconds = timeout;
    }

    save_json(
        env,
        STORAGE_KEY,
        &config,
        true,
        "the kong access configuration",
    )?;
    let token_set = if config.token.is_empty() {
        "false"
    } else {
        "true"
    };
    env.log.write(
        Level::Info,
        "wrote kong access configuration",
        &[("baseurl", &config.baseurl), ("token_set", token_set)],
    );
    Ok(None)
}

fn delete(env: &Env<'_>, _: &Request, _: &FieldData) -> Result<Option<Response>, Error> {
    env.storage.delete(STORAGE_KEY).map_err(|error| {
        Error::internal(format!(
            "failed to delete the kong access configuration: {error}"
        ))
    })?;
    env.log
        .write(Level::Info, "deleted kong access configuration", &[]);
    Ok(None)
}

/// Checks a base URL and returns it without trailing slashes.
pub fn check_baseurl(text: &str) -> Result<String, Error> {
    let invalid = |reason: &str| {
        Error::bad_request(format!(
            "invalid baseurl {text:?}: {reason}; use the Admin API's URL, such as http://127.0.0.1:8001"
        ))
    };
    let url = Url::parse(text).map_err(|reason| invalid(&reason))?;
    if url.path_and_query.contains('?') {
        return Err(invalid("it has a query (?)"));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// Checks that a token fits in an HTTP header value. The message never quotes the token.
fn check_token(token: &str) -> Result<(), Error> {
    let valid = token
        .bytes()
        .all(|byte| byte == b'\t' || (b' '..=b'~').contains(&byte));
    if !valid || token.trim() != token {
        return Err(Error::bad_request(
            "invalid token: a header value may contain only printable ASCII, with no leading or trailing spaces; check the token you copied",
        ));
    }
    Ok(())
}

/// Checks a header name and returns it.
fn check_token_header(name: &str) -> Result<String, Error> {
    let is_token_char =
        |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(Error::bad_request(format!(
            "invalid token_header {name:?}: a header name may contain only letters, digits and !#$%&'*+-.^_`|~, such as {DEFAULT_TOKEN_HEADER}"
        )));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(Error::bad_request(format!(
            "invalid token_header {name:?}: the engine or HTTP sets that header itself; use the header Kong reads the token from, such as {DEFAULT_TOKEN_HEADER}"
        )));
    }
    Ok(name.to_string())
}

const SYNOPSIS: &str = "Configures how the engine reaches Kong's Admin API.";

const DESCRIPTION: &str = "\
Sets the Admin API base URL, the admin token and its header, and the time limit for each
request. Write this path before reading creds/. The first write must set baseurl; later
writes change only the fields they name.

A read returns every setting except the token, and token_set tells whether one is stored.
Delete removes the configuration; leases issued earlier then cannot be renewed or revoked
until it is written again.

Which hosts the engine may reach is decided by the Vault operator when registering the
plugin, not by this path.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{request, TestBackend};

    #[test]
    fn config_write_then_read() {
        let test = TestBackend::new();
        test.ok(request::update(
            "config/access",
            json!({
                "baseurl": "http://127.0.0.1:8001/",
                "token": "s3cr3t",
                "token_header": "X-Admin-Token",
                "request_timeout": "1m",
            }),
        ));

        let response = test.ok(request::read("config/access"));
        assert_eq!(
            response.and_then(|response| response.data),
            json!({
                "baseurl": "http://127.0.0.1:8001",
                "token_set": true,
                "token_header": "X-Admin-Token",
                "request_timeout": 60,
            })
            .as_object()
            .cloned()
        );
    }

    #[test]
    fn config_defaults_without_token() {
        let test = TestBackend::new();
        test.ok(request::update(
            "config/access",
            json!({"baseurl": "https://kong:8444"}),
        ));

        let data = test
            .ok(request::read("config/access"))
            .unwrap()
            .data
            .unwrap();
        assert_eq!(data["token_set"], json!(false), "{data:?}");
        assert_eq!(data["token_header"], json!("Kong-Admin-Token"), "{data:?}");
        assert_eq!(data["request_timeout"], json!(10), "{data:?}");
    }

    #[test]
    fn config_write_changes_named_fields_only() {
        let test = TestBackend::new();
        test.ok(request::update(
            "config/access",
            json!({
                "baseurl": "http://kong:8001", "token": "t1", "request_timeout": 30,
            }),
        ));
        test.ok(request::update(
            "config/access",
            json!({"request_timeout": "5s"}),
        ));

        let stored = test.stored_config().unwrap();
        assert_eq!(
            stored.baseurl, "http://kong:8001",
            "baseurl kept: {stored:?}"
        );
        assert_eq!(stored.token, "t1", "token kept: {stored:?}");
        assert_eq!(
            stored.request_timeout_seconds, 5,
            "timeout changed: {stored:?}"
        );

        test.ok(request::update("config/access", json!({"token": ""})));
        assert_eq!(
            test.stored_config().unwrap().token,
            "",
            "empty token removes it"
        );
    }

    #[test]
    fn config_first_write_needs_baseurl() {
        let test = TestBackend::new();
        assert_eq!(
            test.call(request::update("config/access", json!({"token": "t"}))),
            Err(Error::bad_request(
                "missing baseurl: the first write to config/access must set it, such as baseurl=http://127.0.0.1:8001"
            ))
        );
    }

    #[test]
    fn config_rejects_bad_values() {
        let test = TestBackend::new();
        let cases = [
            (json!({"baseurl": "kong:8001"}), "invalid baseurl \"kong:8001\": it has no scheme; start it with http:// or https://; use the Admin API's URL, such as http://127.0.0.1:8001"),
            (json!({"baseurl": "ftp://kong"}), "invalid baseurl \"ftp://kong\": scheme \"ftp\" is not http or https; use the Admin API's URL, such as http://127.0.0.1:8001"),
            (json!({"baseurl": "http://kong/?a=1"}), "invalid baseurl \"http://kong/?a=1\": it has a query (?); use the Admin API's URL, such as http://127.0.0.1:8001"),
            (json!({"baseurl": ""}), "invalid baseurl \"\": it has no scheme; start it with http:// or https://; use the Admin API's URL, such as http://127.0.0.1:8001"),
            (json!({"baseurl": "http://k", "token_header": "Bad Header"}), "invalid token_header \"Bad Header\": a header name may contain only letters, digits and !#$%&'*+-.^_`|~, such as Kong-Admin-Token"),
            (json!({"baseurl": "http://k", "token_header": "Host"}), "invalid token_header \"Host\": the engine or HTTP sets that header itself; use the header Kong reads the token from, such as Kong-Admin-Token"),
            (json!({"baseurl": "http://k", "token": "line\nbreak"}), "invalid token: a header value may contain only printable ASCII, with no leading or trailing spaces; check the token you copied"),
            (json!({"baseurl": "http://k", "request_timeout": 0}), "invalid request_timeout: 0s leaves no time for a request; use at least 1s, such as 10s"),
            (json!({"baseurl": "http://k", "request_timeout": "soon"}), "invalid request_timeout: \"soon\" is not a duration; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"),
        ];
        for (data, message) in cases {
            assert_eq!(
                test.call(request::update("config/access", data.clone())),
                Err(Error::bad_request(message)),
                "write of {data}"
            );
        }
        assert!(test.stored_config().is_none(), "nothing may be stored");
    }

    #[test]
    fn config_delete_and_existence() {
        let test = TestBackend::new();
        assert_eq!(test.exists("config/access"), Ok(false), "before write");

        test.ok(request::update(
            "config/access",
            json!({"baseurl": "http://kong"}),
        ));
        assert_eq!(test.exists("config/access"), Ok(true), "after write");

        assert_eq!(test.call(request::delete("config/access")), Ok(None));
        assert_eq!(test.exists("config/access"), Ok(false), "after delete");
        assert_eq!(
            test.call(request::read("config/access")),
            Ok(None),
            "read after delete"
        );
    }

    #[test]
    fn config_reads_go_plugin_entry() {
        let test = TestBackend::new();
        test.storage
            .insert("config/access", br#"{"baseurl":"http://legacy:8001"}"#);

        let data = test
            .ok(request::read("config/access"))
            .unwrap()
            .data
            .unwrap();
        assert_eq!(data["baseurl"], json!("http://legacy:8001"), "{data:?}");
        assert_eq!(data["request_timeout"], json!(10), "{data:?}");
    }

    #[test]
    fn config_is_seal_wrapped_and_token_not_logged() {
        let test = TestBackend::new();
        test.ok(request::update(
            "config/access",
            json!({"baseurl": "http://kong", "token": "s3cr3t"}),
        ));

        assert_eq!(test.storage.seal_wrapped("config/access"), Some(true));
        test.log.assert_never_contains("s3cr3t");
        assert_eq!(
            test.log.messages(),
            ["wrote kong access configuration"],
            "log lines"
        );
    }

    #[test]
    fn config_patch_is_unsupported() {
        let test = TestBackend::new();
        let request = Request::new(Operation::Patch, "config/access");
        assert_eq!(test.call(request), Err(Error::UnsupportedOperation));
    }
}
