//! Requests, responses and leased secrets as plain Rust values.
//!
//! These mirror the records of the WIT `types` interface, with JSON text already decoded into
//! `serde_json` maps, so that the framework and the engine never touch generated bindings.
//! Durations are whole seconds, as in the WIT world.

use serde_json::{Map, Value};

use super::error::Error;

/// The operation Vault routes to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Help,
    AliasLookahead,
    ResolveRole,
    Header,
    Renew,
    Revoke,
    Rollback,
}

impl Operation {
    /// Vault's name for the operation, as used in messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Help => "help",
            Self::AliasLookahead => "alias-lookahead",
            Self::ResolveRole => "resolve-role",
            Self::Header => "header",
            Self::Renew => "renew",
            Self::Revoke => "revoke",
            Self::Rollback => "rollback",
        }
    }
}

/// A point in wall-clock time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: u64,
    pub nanoseconds: u32,
}

/// A leased secret: what Vault stores with the lease and hands back on renew and revoke.
#[derive(Clone, Debug, PartialEq)]
pub struct Secret {
    /// Lease duration; 0 means the mount's default lease TTL.
    pub ttl_seconds: u64,
    /// Maximum total lifetime from the issue time; 0 means the mount's maximum lease TTL.
    pub max_ttl_seconds: u64,
    pub renewable: bool,
    /// On renew: the extension the user asked for, 0 when none was given.
    pub increment_seconds: u64,
    /// On renew and revoke: when the lease was issued. In a response, `None` means now.
    pub issue_time: Option<Timestamp>,
    /// Data Vault stores with the lease and never shows to users.
    pub internal_data: Map<String, Value>,
}

/// A request Vault routed to this backend.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Vault's request id, for log correlation.
    pub id: String,
    pub operation: Operation,
    /// Path relative to the mount, with no leading slash.
    pub path: String,
    /// The body of a write, or the query parameters of a read, list or delete.
    pub data: Map<String, Value>,
    /// On renew and revoke: the secret the backend returned earlier.
    pub secret: Option<Secret>,
    /// The mount path with its trailing slash, such as `kong/`.
    pub mount_point: String,
    pub mount_accessor: String,
}

impl Request {
    /// Builds a request with empty data, for the given operation and path.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            operation,
            path: path.into(),
            data: Map::new(),
            secret: None,
            mount_point: String::new(),
            mount_accessor: String::new(),
        }
    }

    /// Replaces the request data with `data`, which must be a JSON object.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = match data {
            Value::Object(map) => map,
            other => panic!("request data must be a JSON object, got {other}"),
        };
        self
    }

    /// Attaches a secret, as Vault does on renew and revoke.
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }
}

/// Decodes the JSON text of request data. Vault sends `null` for a request without data.
pub fn parse_data(text: &str) -> Result<Map<String, Value>, Error> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(Error::bad_request(format!(
            "request data must be a JSON object, got {}",
            json_kind(&other)
        ))),
        Err(error) => Err(Error::bad_request(format!(
            "request data is not valid JSON: {error}"
        ))),
    }
}

/// Names the kind of a JSON value for messages: `string`, `number`, `array`...
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A successful result. Handlers return `Option<Response>`, and `None` makes Vault return 404
/// for a read or list and 204 for a write or delete.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub secret: Option<Secret>,
    pub warnings: Vec<String>,
}

impl Response {
    /// Builds a response carrying `data`, which must be a JSON object.
    pub fn data(data: Value) -> Self {
        let map = match data {
            Value::Object(map) => map,
            other => panic!("response data must be a JSON object, got {other}"),
        };
        Self {
            data: Some(map),
            ..Self::default()
        }
    }

    /// Builds a list response: the entries under `keys`, as Vault expects. An empty list makes
    /// Vault return 404.
    pub fn list(keys: Vec<String>) -> Self {
        Self::data(serde_json::json!({ "keys": keys }))
    }

    /// Adds a warning shown to the user beside the data.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_data_accepts_objects_and_null() {
        let cases = [
            ("", 0),
            ("null", 0),
            ("{}", 0),
            (r#"{"ttl": "1h", "max_ttl": 7200}"#, 2),
        ];
        for (text, fields) in cases {
            let map = parse_data(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(map.len(), fields, "fields parsed from {text}");
        }
    }

    #[test]
    fn parse_data_rejects_non_objects() {
        let cases = [
            ("[1]", "request data must be a JSON object, got array"),
            ("\"x\"", "request data must be a JSON object, got string"),
        ];
        for (text, message) in cases {
            assert_eq!(
                parse_data(text),
                Err(Error::bad_request(message)),
                "parse of {text}"
            );
        }
        let invalid = parse_data("{").expect_err("truncated JSON must fail");
        assert!(
            invalid
                .to_string()
                .starts_with("request data is not valid JSON: "),
            "message: {invalid}"
        );
    }

    #[test]
    fn list_response_carries_keys() {
        let response = Response::list(vec!["a".into(), "b c".into()]);
        assert_eq!(
            response.data,
            Some(
                serde_json::json!({"keys": ["a", "b c"]})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
    }
}
