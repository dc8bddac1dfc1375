//! The Kong Admin API client: the few calls the engine makes, and the translation of Kong's
//! responses into Vault errors.
//!
//! Calls (Kong Gateway 1.4 and later, where key-auth credentials take `ttl` and `tags`):
//! - `POST /consumers/{consumer}/key-auth` with `tags` and `ttl`: Kong generates the key;
//! - `GET /key-auths?tags={tag}`: finds a credential by a tag, to clean up after a failure;
//! - `PATCH /consumers/{consumer}/key-auth/{id}` with `ttl`: Kong moves the key's expiry to now
//!   plus `ttl` seconds;
//! - `DELETE /consumers/{consumer}/key-auth/{id}`: Kong returns 404 when the consumer or the
//!   credential is gone, which counts as deleted.
//!
//! Every path segment is percent-encoded, so any username Kong accepts works. The admin token
//! goes only into the configured header, and no message or log line contains it or a key.
//!
//! NOTE: Kong reads a path segment that is a valid UUID as an id, so a consumer whose
//! username looks like a UUID cannot be addressed by its username here.
//!
//! Error mapping, done once in `From<KongError> for Error`: a Kong 4xx becomes a 400 and a Kong
//! 5xx a 502, both naming Kong's status and message; an unreachable Kong is a 502, a timeout a
//! 504, and a request the host's outbound policy denied a 403 with the host's reason. A 3xx is a
//! 502 too, because the host follows no redirect.

use serde_json::{json, Value};
use thiserror::Error;

use super::config::AccessConfig;
use crate::framework::Error;
use crate::http::{HttpClient, HttpRequest, Method, TransportError, Url};

/// Kong's upper bound for a key-auth credential's `ttl`, in seconds.
pub const KONG_MAX_TTL_SECONDS: u64 = 100_000_000;

/// How much of a body that is not JSON a message quotes.
const EXCERPT_CHARS: usize = 120;

/// The failure of a call to Kong.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KongError {
    /// Kong returned an error status.
    #[error("kong returned {status}{} for {method} {url}: {message}", kind.as_ref().map(|kind| format!(" ({kind})")).unwrap_or_default())]
    Status {
        method: Method,
        url: String,
        status: u16,
        /// Kong's error name, such as `unique constraint violation`, when the body had one.
        kind: Option<String>,
        message: String,
    },

    /// No response arrived.
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// Kong returned success but a body the engine cannot use.
    #[error("kong returned an unexpected response for {method} {url}: {detail}")]
    InvalidResponse {
        method: Method,
        url: String,
        detail: String,
    },
}

impl KongError {
    /// Kong's status, when Kong answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Reports whether Kong may have carried out the request even though no usable response
    /// arrived, so a created credential may exist.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Status { .. } => false,
            Self::InvalidResponse { .. } => true,
            Self::Transport(error) => error.may_have_been_delivered(),
        }
    }
}

impl From<KongError> for Error {
    fn from(error: KongError) -> Self {
        let hint = match &error {
            KongError::Status { status: 401 | 403, .. } => {
                "; check token and token_header in config/access"
            }
            KongError::Status { status: 405, kind: Some(kind), .. } if kind == "operation unsupported" => {
                "; this Kong node has no database (DB-less or a data plane), so point baseurl in config/access at a node with one"
            }
            KongError::Status { status: 300..=399, .. } => {
                "; the plugin follows no redirects, so set baseurl in config/access to the address that serves the Admin API itself"
            }
            KongError::Transport(TransportError::Unreachable { .. } | TransportError::ConnectionLost { .. }) => {
                "; check baseurl in config/access and that Kong is running"
            }
            KongError::Transport(TransportError::TimedOut { .. }) => {
                "; check that Kong is healthy, or raise request_timeout in config/access"
            }
            _ => "",
        };
        let message = format!("{error}{hint}");

        match error {
            KongError::Status { status, .. } if (400..500).contains(&status) => {
                Error::bad_request(message)
            }
            KongError::Status { .. } | KongError::InvalidResponse { .. } => {
                Error::coded(502, message)
            }
            KongError::Transport(TransportError::Denied { .. }) => Error::coded(403, message),
            KongError::Transport(TransportError::TimedOut { .. }) => Error::coded(504, message),
            KongError::Transport(_) => Error::coded(502, message),
        }
    }
}

/// A key-auth credential as Kong returns it after creating one.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// The credential's UUID.
    pub id: String,
    /// The key itself: the secret the user receives.
    pub key: String,
    /// The UUID of the consumer that owns it.
    pub consumer_id: String,
}

impl std::fmt::Debug for KeyAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyAuth")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("consumer_id", &self.consumer_id)
            .finish()
    }
}

impl KeyAuth {
    /// Reads Kong's JSON for a key-auth credential.
    pub fn from_json(body: &Value) -> Result<Self, String> {
        let text = |pointer: &str| -> Result<String, String> {
            match body.pointer(pointer) {
                Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                _ => Err(format!(
                    "the credential has no {}",
                    pointer.trim_start_matches('/').replace('/', ".")
                )),
            }
        };
        Ok(Self {
            id: text("/id")?,
            key: text("/key")?,
            consumer_id: text("/consumer/id")?,
        })
    }
}

/// The outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Kong answered 404: the credential or its whole consumer was already gone.
    AlreadyGone,
}

/// A client for one configured Kong Admin API.
pub struct KongClient<'a> {
    http: &'a dyn HttpClient,
    config: &'a AccessConfig,
    base: Url,
}

impl<'a> KongClient<'a> {
    /// Builds a client. The base URL was checked when config/access was written, so a failure
    /// here means storage contains an entry this engine did not write.
    pub fn new(http: &'a dyn HttpClient, config: &'a AccessConfig) -> Result<Self, Error> {
        let base = Url::parse(&config.baseurl).map_err(|reason| {
            Error::internal(format!(
                "stored baseurl {:?} is invalid: {reason}; write config/access again",
                config.baseurl
            ))
        })?;
        Ok(Self { http, config, base })
    }

    /// Creates a key-auth credential for `consumer` (a username or id). Kong generates the
    /// key. `ttl_seconds` of 0 creates a key that never expires in Kong.
    pub fn create_key_auth(
        &self,
        consumer: &str,
        tags: &[String],
        ttl_seconds: u64,
    ) -> Result<Value, KongError> {
        let mut body = json!({ "tags": tags });
        if ttl_seconds > 0 {
            body["ttl"] = Value::from(ttl_seconds.min(KONG_MAX_TTL_SECONDS));
        }
        let path = format!("/consumers/{}/key-auth", encode_segment(consumer));
        self.call(Method::Post, &path, Some(body))
    }

    /// Lists the key-auth credentials that carry `tag`, first page only (up to 100).
    pub fn find_key_auths_by_tag(&self, tag: &str) -> Result<Vec<Value>, KongError> {
        let path = format!("/key-auths?tags={}", encode_segment(tag));
        let body = self.call(Method::Get, &path, None)?;
        match body.get("data") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(KongError::InvalidResponse {
                method: Method::Get,
                url: self.base.join(&path).to_string(),
                detail: "the list has no data array".into(),
            }),
        }
    }

    /// Sets a credential's Kong-side expiry to now plus `ttl_seconds`.
    pub fn set_key_auth_ttl(
        &self,
        consumer: &str,
        credential_id: &str,
        ttl_seconds: u64,
    ) -> Result<(), KongError> {
        let path = credential_path(consumer, credential_id);
        let body = json!({ "ttl": ttl_seconds.min(KONG_MAX_TTL_SECONDS) });
        self.call(Method::Patch, &path, Some(body)).map(|_| ())
    }

    /// Deletes a credential. A 404 means it or its consumer is already gone.
    pub fn delete_key_auth(
        &self,
        consumer: &str,
        credential_id: &str,
    ) -> Result<Deletion, KongError> {
        let path = credential_path(consumer, credential_id);
        match self.call(Method::Delete, &path, None) {
            Ok(_) => Ok(Deletion::Deleted),
            Err(error) if error.status() == Some(404) => Ok(Deletion::AlreadyGone),
            Err(error) => Err(error),
        }
    }

    /// Sends one request and returns the JSON body of a 2xx answer (`null` when empty).
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, KongError> {
        let url = self.base.join(path);
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        if !self.config.token.is_empty() {
            headers.push((self.config.token_header.clone(), self.config.token.clone()));
        }
        let request = HttpRequest {
            method,
            url: url.clone(),
            headers,
            body: body.map(|body| body.to_string().into_bytes()),
            timeout_seconds: self.config.request_timeout_seconds,
        };

        let response = self.http.send(&request)?;
        let url = url.to_string();
        if !(200..300).contains(&response.status) {
            let (kind, message) = error_message(&response.body);
            return Err(KongError::Status {
                method,
                url,
                status: response.status,
                kind,
                message,
            });
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body).map_err(|_| KongError::InvalidResponse {
            method,
            url,
            detail: format!("the body is not JSON: {}", excerpt(&response.body)),
        })
    }
}

fn credential_path(consumer: &str, credential_id: &str) -> String {
    format!(
        "/consumers/{}/key-auth/{}",
        encode_segment(consumer),
        encode_segment(credential_id)
    )
}

/// Reads Kong's error body: `{"message": ...}`, or a DAO error `{"code", "name", "message"}`.
/// Returns the error name (when present) and the message, or an excerpt of a body that is not
/// such JSON.
pub fn error_message(body: &[u8]) -> (Option<String>, String) {
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) {
        let kind = object.get("name").and_then(Value::as_str).map(String::from);
        let message = match object.get("message") {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        if let Some(message) = message {
            return (kind, message);
        }
        return (kind, excerpt(body));
    }
    (None, excerpt(body))
}

/// Shortens a body to the start of its text on one line, for messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "(empty body)".to_string();
    }
    let mut chars = collapsed.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Percent-encodes one URL path segment: every byte except ASCII letters, digits and `-._~`.
/// A segment of only dots (`.` or `..`) is encoded whole, because URL normalisation would
/// otherwise read it as "this" or "parent" directory.
pub fn encode_segment(segment: &str) -> String {
    if !segment.is_empty() && segment.bytes().all(|byte| byte == b'.') {
        return "%2E".repeat(segment.len());
    }
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Reverses [`encode_segment`]; `None` when `text` contains a malformed escape or the bytes are
/// not UTF-8.
pub fn decode_segment(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_segment_table() {
        let cases = [
            ("alice", "alice"),
            ("a-b.c_d~e", "a-b.c_d~e"),
            ("bob smith", "bob%20smith"),
            ("alice@example.com", "alice%40example.com"),
            ("team/alice", "team%2Falice"),
            ("100%", "100%25"),
            ("zoë", "zo%C3%AB"),
            ("a?b#c", "a%3Fb%23c"),
            (".", "%2E"),
            ("..", "%2E%2E"),
            ("...a", "...a"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(encode_segment(plain), encoded, "encoding of {plain:?}");
            assert_eq!(
                decode_segment(encoded).as_deref(),
                Some(plain),
                "decoding of {encoded:?}"
            );
        }
    }

    #[test]
    fn decode_segment_rejects_malformed() {
        for text in ["%", "%2", "%zz", "%FF"] {
            assert_eq!(decode_segment(text), None, "decoding of {text:?}");
        }
    }

    #[test]
    fn error_message_table() {
        let long = "x".repeat(300);
        let cases: Vec<(&[u8], Option<&str>, String)> = vec![
            (br#"{"message":"Not found"}"#, None, "Not found".into()),
            (
                br#"{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{username=\"bob\"}'","fields":{}}"#,
                Some("unique constraint violation"),
                "UNIQUE violation detected on '{username=\"bob\"}'".into(),
            ),
            (br#"{"message":{"ttl":"bad"}}"#, None, r#"{"ttl":"bad"}"#.into()),
            (br#"{"status":401}"#, None, r#"{"status":401}"#.into()),
            (b"<html>\n  <body>Bad   Gateway</body>\n</html>", None, "<html> <body>Bad Gateway</body> </html>".into()),
            (b"", None, "(empty body)".into()),
            (long.as_bytes(), None, format!("{}…", "x".repeat(120))),
        ];
        for (body, kind, message) in cases {
            assert_eq!(
                error_message(body),
                (kind.map(String::from), message),
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn key_auth_from_json() {
        let body = json!({"id": "c1", "key": "k1", "consumer": {"id": "u1"}, "ttl": 60});
        assert_eq!(
            KeyAuth::from_json(&body),
            Ok(KeyAuth {
                id: "c1".into(),
                key: "k1".into(),
                consumer_id: "u1".into()
            })
        );
        assert_eq!(
            KeyAuth::from_json(&json!({"id": "c1", "consumer": {"id": "u1"}})),
            Err("the credential has no key".into())
        );
        assert_eq!(
            KeyAuth::from_json(&json!({"id": "c1", "key": "k"})),
            Err("the credential has no consumer.id".into())
        );
    }

    #[test]
    fn key_auth_debug_hides_key() {
        let key = KeyAuth {
            id: "c1".into(),
            key: "very-secret".into(),
            consumer_id: "u1".into(),
        };
        assert!(
            !format!("{key:?}").contains("very-secret"),
            "debug: {key:?}"
        );
    }

    #[test]
    fn kong_error_to_vault_error_table() {
        let status = |status: u16, kind: Option<&str>, message: &str| KongError::Status {
            method: Method::Post,
            url: "http://kong/consumers/bob/key-auth".into(),
            status,
            kind: kind.map(String::from),
            message: message.into(),
        };
        let cases = [
            (
                status(409, Some("unique constraint violation"), "UNIQUE violation"),
                Error::bad_request("kong returned 409 (unique constraint violation) for POST http://kong/consumers/bob/key-auth: UNIQUE violation"),
            ),
            (
                status(401, None, "Invalid RBAC credentials"),
                Error::bad_request("kong returned 401 for POST http://kong/consumers/bob/key-auth: Invalid RBAC credentials; check token and token_header in config/access"),
            ),
            (
                status(405, Some("operation unsupported"), "cannot create 'keyauth_credentials' entities when not using a database"),
                Error::bad_request("kong returned 405 (operation unsupported) for POST http://kong/consumers/bob/key-auth: cannot create 'keyauth_credentials' entities when not using a database; this Kong node has no database (DB-less or a data plane), so point baseurl in config/access at a node with one"),
            ),
            (
                status(500, None, "An unexpected error occurred"),
                Error::coded(502, "kong returned 500 for POST http://kong/consumers/bob/key-auth: An unexpected error occurred"),
            ),
            (
                status(307, None, "Temporary Redirect"),
                Error::coded(502, "kong returned 307 for POST http://kong/consumers/bob/key-auth: Temporary Redirect; the plugin follows no redirects, so set baseurl in config/access to the address that serves the Admin API itself"),
            ),
            (
                KongError::InvalidResponse { method: Method::Get, url: "http://kong/key-auths".into(), detail: "the body is not JSON: <html>".into() },
                Error::coded(502, "kong returned an unexpected response for GET http://kong/key-auths: the body is not JSON: <html>"),
            ),
            (
                KongError::Transport(TransportError::Denied { url: "http://kong/".into(), reason: "origin http://kong is not allowed".into() }),
                Error::coded(403, "request to http://kong/ was denied: origin http://kong is not allowed"),
            ),
            (
                KongError::Transport(TransportError::Unreachable { url: "http://kong/".into(), detail: "connection refused".into() }),
                Error::coded(502, "could not reach http://kong/: connection refused; check baseurl in config/access and that Kong is running"),
            ),
            (
                KongError::Transport(TransportError::TimedOut { url: "http://kong/".into(), timeout_seconds: 2, connected: true }),
                Error::coded(504, "no response from http://kong/ within 2s; check that Kong is healthy, or raise request_timeout in config/access"),
            ),
        ];
        for (kong, vault) in cases {
            assert_eq!(Error::from(kong.clone()), vault, "mapping of {kong:?}");
        }
    }

    #[test]
    fn outcome_unknown_table() {
        let url = || "http://kong/".to_string();
        let cases = [
            (
                KongError::Transport(TransportError::Denied {
                    url: url(),
                    reason: "no".into(),
                }),
                false,
            ),
            (
                KongError::Transport(TransportError::Unreachable {
                    url: url(),
                    detail: "refused".into(),
                }),
                false,
            ),
            (
                KongError::Transport(TransportError::TimedOut {
                    url: url(),
                    timeout_seconds: 1,
                    connected: false,
                }),
                false,
            ),
            (
                KongError::Transport(TransportError::TimedOut {
                    url: url(),
                    timeout_seconds: 1,
                    connected: true,
                }),
                true,
            ),
            (
                KongError::Transport(TransportError::ConnectionLost {
                    url: url(),
                    detail: "reset".into(),
                }),
                true,
            ),
            (
                KongError::Transport(TransportError::TooLarge {
                    url: url(),
                    limit_bytes: Some(1),
                }),
                true,
            ),
            (
                KongError::InvalidResponse {
                    method: Method::Post,
                    url: url(),
                    detail: "x".into(),
                },
                true,
            ),
            (
                KongError::Status {
                    method: Method::Post,
                    url: url(),
                    status: 500,
                    kind: None,
                    message: "x".into(),
                },
                false,
            ),
        ];
        for (error, unknown) in cases {
            assert_eq!(error.outcome_unknown(), unknown, "outcome of {error:?}");
        }
    }
}
