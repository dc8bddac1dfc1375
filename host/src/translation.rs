//! Translation between Vault's protobuf messages (`pb`) and the component's WIT records.
//!
//! The rules, in both directions:
//!
//! - Request data, response data and a secret's internal data are JSON text of one object.
//!   Vault sends `null` for a request without data, which the component receives as `{}`.
//!   Vault decodes what the plugin returns with Go's `encoding/json`, which fails on an empty
//!   string, so the plugin sends `null` for a response without data and checks that whatever
//!   the component returned is an object before it goes out.
//! - Vault counts durations in nanoseconds, the component in whole seconds: incoming values
//!   are rounded down, outgoing ones multiplied (and capped at what an int64 holds).
//! - Every lease in a response carries an issue time, because Vault rejects a lease without
//!   one: the component's, or now when it gave none. Go's zero time, which Vault sends for
//!   "unset", reaches the component as none.
//! - Component errors become Vault outcomes as listed at [`request_error`].

use std::collections::HashMap;

use serde_json::Value;

use crate::proto::pb;
use crate::runtime::wit;
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// `err_type` values of `pb.ProtoError`: the Go error Vault rebuilds from the reply.
pub mod err_type {
    pub const UNKNOWN: u32 = 0;
    pub const USER_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
    pub const CODED_ERROR: u32 = 3;
    pub const STATUS_BAD_REQUEST: u32 = 4;
    pub const UNSUPPORTED_OPERATION: u32 = 5;
    pub const UNSUPPORTED_PATH: u32 = 6;
    pub const PERMISSION_DENIED: u32 = 8;
}

/// A Vault message the component cannot receive, or a component result Vault cannot receive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslationError {
    #[error("operation {0:?} is not supported by this plugin")]
    UnsupportedOperation(String),

    #[error("the Kong engine returned {field} that is not a JSON object: {problem}")]
    NotAnObject {
        field: &'static str,
        problem: String,
    },

    #[error("the Kong engine returned response data whose `error` is not a string")]
    ErrorNotText,
}

impl TranslationError {
    /// Maps the problem to the error Vault receives. A request that Vault may send but the
    /// plugin does not handle is an unsupported operation (405). A bad component result is
    /// an internal error (500).
    pub fn to_proto(&self) -> pb::ProtoError {
        match self {
            Self::UnsupportedOperation(_) => {
                proto_error(err_type::UNSUPPORTED_OPERATION, self.to_string())
            }
            _ => proto_error(err_type::INTERNAL_ERROR, self.to_string()),
        }
    }
}

pub fn proto_error(err_type: u32, err_msg: String) -> pb::ProtoError {
    pb::ProtoError {
        err_type,
        err_msg,
        err_code: 0,
    }
}

/// Parses Vault's operation name.
pub fn operation(name: &str) -> Result<wit::Operation, TranslationError> {
    let operation = match name {
        "create" => wit::Operation::Create,
        "read" => wit::Operation::Read,
        "update" => wit::Operation::Update,
        "patch" => wit::Operation::Patch,
        "delete" => wit::Operation::Delete,
        "list" => wit::Operation::List,
        "help" => wit::Operation::Help,
        "alias-lookahead" => wit::Operation::AliasLookahead,
        "resolve-role" => wit::Operation::ResolveRole,
        "header" => wit::Operation::Header,
        "renew" => wit::Operation::Renew,
        "revoke" => wit::Operation::Revoke,
        "rollback" => wit::Operation::Rollback,
        other => return Err(TranslationError::UnsupportedOperation(other.to_string())),
    };
    Ok(operation)
}

/// Translates Vault's request into the component's.
pub fn request(request: pb::Request) -> Result<wit::Request, TranslationError> {
    Ok(wit::Request {
        id: request.id,
        operation: operation(&request.operation)?,
        path: request.path,
        data: object_or_empty(request.data),
        secret: request.secret.map(secret_from_vault),
        headers: headers_from_vault(request.headers),
        mount_point: request.mount_point,
        mount_type: request.mount_type,
        mount_accessor: request.mount_accessor,
        display_name: request.display_name,
        entity_id: request.entity_id,
        client_token_accessor: request.client_token_accessor,
    })
}

/// Vault's JSON text, with `null` and the empty string as `{}`.
fn object_or_empty(json: String) -> String {
    match json.trim() {
        "" | "null" => "{}".to_string(),
        _ => json,
    }
}

fn secret_from_vault(secret: pb::Secret) -> wit::Secret {
    let lease = secret.lease_options.unwrap_or_default();
    wit::Secret {
        ttl_seconds: whole_seconds(lease.ttl_ns),
        max_ttl_seconds: whole_seconds(lease.max_ttl_ns),
        renewable: lease.renewable,
        increment_seconds: whole_seconds(lease.increment_ns),
        issue_time: lease.issue_time.and_then(datetime_from_vault),
        internal_data: object_or_empty(secret.internal_data),
    }
}

/// Whole seconds of a nanosecond duration; negative durations count as 0.
fn whole_seconds(nanoseconds: i64) -> u64 {
    u64::try_from(nanoseconds).unwrap_or(0) / NANOS_PER_SECOND
}

/// Nanoseconds of a whole-second duration, capped at the largest Go duration.
fn nanoseconds(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(NANOS_PER_SECOND)).unwrap_or(i64::MAX)
}

/// Converts a protobuf timestamp, with `None` for one before 1970 (such as Go's zero time,
/// which Vault sends for "unset").
fn datetime_from_vault(timestamp: prost_types::Timestamp) -> Option<Datetime> {
    let seconds = u64::try_from(timestamp.seconds).ok()?;
    let nanoseconds = u32::try_from(timestamp.nanos).ok()?;
    Some(Datetime {
        seconds,
        nanoseconds,
    })
}

fn timestamp_for_vault(datetime: Option<Datetime>) -> prost_types::Timestamp {
    match datetime {
        Some(datetime) => prost_types::Timestamp {
            seconds: i64::try_from(datetime.seconds).unwrap_or(i64::MAX),
            nanos: i32::try_from(datetime.nanoseconds.min(999_999_999)).unwrap_or_default(),
        },
        None => prost_types::Timestamp::from(std::time::SystemTime::now()),
    }
}

fn headers_from_vault(headers: HashMap<String, pb::Header>) -> Vec<wit::Header> {
    let mut headers: Vec<wit::Header> = headers
        .into_iter()
        .map(|(name, values)| wit::Header {
            name,
            values: values.header,
        })
        .collect();
    headers.sort_by(|left, right| left.name.cmp(&right.name));
    headers
}

fn headers_for_vault(headers: Vec<wit::Header>) -> HashMap<String, pb::Header> {
    let mut translated: HashMap<String, pb::Header> = HashMap::new();
    for header in headers {
        translated
            .entry(header.name)
            .or_default()
            .header
            .extend(header.values);
    }
    translated
}

/// Translates the component's response into Vault's.
pub fn response(response: wit::Response) -> Result<pb::Response, TranslationError> {
    let data = match response.data {
        Some(data) => {
            let object = parse_object("response data", &data)?;
            if object.get("error").is_some_and(|error| !error.is_string()) {
                return Err(TranslationError::ErrorNotText);
            }
            data
        }
        None => "null".to_string(),
    };
    let secret = response.secret.map(secret_for_vault).transpose()?;

    Ok(pb::Response {
        secret,
        data,
        warnings: response.warnings,
        headers: headers_for_vault(response.headers),
    })
}

fn secret_for_vault(secret: wit::Secret) -> Result<pb::Secret, TranslationError> {
    parse_object("internal data", &secret.internal_data)?;
    Ok(pb::Secret {
        lease_options: Some(pb::LeaseOptions {
            ttl_ns: nanoseconds(secret.ttl_seconds),
            renewable: secret.renewable,
            increment_ns: nanoseconds(secret.increment_seconds),
            issue_time: Some(timestamp_for_vault(secret.issue_time)),
            max_ttl_ns: nanoseconds(secret.max_ttl_seconds),
        }),
        internal_data: secret.internal_data,
        lease_id: String::new(),
    })
}

/// Checks that `json` is one JSON object.
fn parse_object(
    field: &'static str,
    json: &str,
) -> Result<serde_json::Map<String, Value>, TranslationError> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(TranslationError::NotAnObject {
            field,
            problem: format!("found {}", json_kind(&other)),
        }),
        Err(error) => Err(TranslationError::NotAnObject {
            field,
            problem: error.to_string(),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The reply parts for a component error on `HandleRequest`:
///
/// | component error         | Vault receives                         | HTTP status |
/// |-------------------------|----------------------------------------|-------------|
/// | `unsupported-path`      | unsupported path                       | 404         |
/// | `unsupported-operation` | unsupported operation                  | 405         |
/// | `bad-request(text)`     | response data `{"error": text}`        | 400         |
/// | `permission-denied`     | permission denied                      | 403         |
/// | `coded(status, text)`   | coded error with that status           | status      |
/// | `internal(text)`        | internal error with the text           | 500         |
///
/// A bad request travels as an error response rather than as an error, because Vault
/// responds with 400 and the text to that but with 500 to a user error without a response.
/// Renew, revoke and rollback are the exception: Vault's lease manager reports an error
/// response there as a dump of the whole Go response, so those carry the text as a
/// `StatusBadRequest` error instead.
pub fn request_error(
    operation: &str,
    error: wit::Error,
) -> (Option<pb::Response>, Option<pb::ProtoError>) {
    match error {
        wit::Error::BadRequest(message) if matches!(operation, "renew" | "revoke" | "rollback") => {
            (
                None,
                Some(proto_error(err_type::STATUS_BAD_REQUEST, message)),
            )
        }
        wit::Error::BadRequest(message) => {
            let data = serde_json::json!({ "error": message }).to_string();
            let response = pb::Response {
                data,
                ..Default::default()
            };
            (Some(response), None)
        }
        other => (None, Some(error_for_vault(other))),
    }
}

/// Maps a component error on `HandleExistenceCheck` as for requests, except that a bad
/// request is a user error, to which Vault responds with 400 and the text there.
pub fn existence_error(error: wit::Error) -> pb::ProtoError {
    match error {
        wit::Error::BadRequest(message) => proto_error(err_type::USER_ERROR, message),
        other => error_for_vault(other),
    }
}

/// Maps a component error on `Initialize`, and everywhere without a response, to Vault's
/// error.
pub fn error_for_vault(error: wit::Error) -> pb::ProtoError {
    match error {
        wit::Error::UnsupportedPath => {
            proto_error(err_type::UNSUPPORTED_PATH, "unsupported path".into())
        }
        wit::Error::UnsupportedOperation => proto_error(
            err_type::UNSUPPORTED_OPERATION,
            "unsupported operation".into(),
        ),
        wit::Error::BadRequest(message) => proto_error(err_type::USER_ERROR, message),
        wit::Error::PermissionDenied => {
            proto_error(err_type::PERMISSION_DENIED, "permission denied".into())
        }
        wit::Error::Coded(coded) => pb::ProtoError {
            err_type: err_type::CODED_ERROR,
            err_msg: coded.message,
            err_code: i64::from(coded.status),
        },
        wit::Error::Internal(message) => proto_error(err_type::INTERNAL_ERROR, message),
    }
}

/// Translates the component's special paths into Vault's.
pub fn special_paths(paths: wit::Paths) -> pb::Paths {
    pb::Paths {
        root: paths.root,
        unauthenticated: paths.unauthenticated,
        local_storage: paths.local_storage,
        seal_wrap_storage: paths.seal_wrap_storage,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_request(operation: &str) -> pb::Request {
        pb::Request {
            id: "5e1f".into(),
            operation: operation.into(),
            path: "creds/app".into(),
            data: "null".into(),
            mount_point: "kong/".into(),
            ..Default::default()
        }
    }

    fn component_secret() -> wit::Secret {
        wit::Secret {
            ttl_seconds: 20,
            max_ttl_seconds: 600,
            renewable: true,
            increment_seconds: 0,
            issue_time: None,
            internal_data: r#"{"secret_type":"key"}"#.into(),
        }
    }

    #[test]
    fn request_null_data_becomes_empty_object() {
        let translated = request(vault_request("read")).unwrap();

        assert_eq!(translated.data, "{}");
        assert_eq!(translated.path, "creds/app");
        assert_eq!(translated.mount_point, "kong/");
        assert!(matches!(translated.operation, wit::Operation::Read));
    }

    #[test]
    fn request_every_operation_translates() {
        let names = [
            "create",
            "read",
            "update",
            "patch",
            "delete",
            "list",
            "help",
            "alias-lookahead",
            "resolve-role",
            "header",
            "renew",
            "revoke",
            "rollback",
        ];
        for name in names {
            assert!(operation(name).is_ok(), "operation {name} is rejected");
        }
    }

    #[test]
    fn request_unknown_operation_is_unsupported() {
        let error = request(vault_request("scan")).unwrap_err();

        assert_eq!(
            error.to_proto(),
            proto_error(
                err_type::UNSUPPORTED_OPERATION,
                "operation \"scan\" is not supported by this plugin".into()
            )
        );
    }

    #[test]
    fn request_secret_converts_nanoseconds() {
        let mut incoming = vault_request("renew");
        incoming.secret = Some(pb::Secret {
            lease_options: Some(pb::LeaseOptions {
                ttl_ns: 20_999_999_999,
                renewable: true,
                increment_ns: 3_600 * 1_000_000_000,
                issue_time: Some(prost_types::Timestamp {
                    seconds: 1_714_557_600,
                    nanos: 5,
                }),
                max_ttl_ns: 600 * 1_000_000_000,
            }),
            internal_data: r#"{"key_id":"k1"}"#.into(),
            lease_id: String::new(),
        });

        let secret = request(incoming).unwrap().secret.unwrap();

        assert_eq!(secret.ttl_seconds, 20);
        assert_eq!(secret.increment_seconds, 3_600);
        assert_eq!(secret.max_ttl_seconds, 600);
        assert_eq!(secret.internal_data, r#"{"key_id":"k1"}"#);
        let issued = secret.issue_time.unwrap();
        assert_eq!((issued.seconds, issued.nanoseconds), (1_714_557_600, 5));
    }

    #[test]
    fn request_go_zero_time_is_none() {
        let mut incoming = vault_request("revoke");
        incoming.secret = Some(pb::Secret {
            lease_options: Some(pb::LeaseOptions {
                issue_time: Some(prost_types::Timestamp {
                    seconds: -62_135_596_800,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            internal_data: String::new(),
            lease_id: String::new(),
        });

        let secret = request(incoming).unwrap().secret.unwrap();

        assert!(
            secret.issue_time.is_none(),
            "Go's zero time became a datetime"
        );
        assert_eq!(secret.internal_data, "{}");
    }

    #[test]
    fn request_headers_keep_every_value() {
        let mut incoming = vault_request("read");
        incoming.headers.insert(
            "X-B".into(),
            pb::Header {
                header: vec!["2".into()],
            },
        );
        incoming.headers.insert(
            "X-A".into(),
            pb::Header {
                header: vec!["1".into(), "3".into()],
            },
        );

        let headers = request(incoming).unwrap().headers;

        let flat: Vec<(String, Vec<String>)> =
            headers.into_iter().map(|h| (h.name, h.values)).collect();
        assert_eq!(
            flat,
            [
                ("X-A".to_string(), vec!["1".to_string(), "3".to_string()]),
                ("X-B".to_string(), vec!["2".to_string()])
            ]
        );
    }

    #[test]
    fn response_secret_gets_nanoseconds_and_issue_time() {
        let before = prost_types::Timestamp::from(std::time::SystemTime::now());
        let outgoing = wit::Response {
            data: Some(r#"{"token":"t"}"#.into()),
            secret: Some(component_secret()),
            warnings: vec![],
            headers: vec![],
        };

        let translated = response(outgoing).unwrap();

        let lease = translated.secret.unwrap().lease_options.unwrap();
        assert_eq!(lease.ttl_ns, 20_000_000_000);
        assert_eq!(lease.max_ttl_ns, 600_000_000_000);
        assert!(lease.renewable);
        let issued = lease.issue_time.expect("issue time is missing");
        assert!(
            issued.seconds >= before.seconds,
            "issue time {issued:?} is before {before:?}"
        );
    }

    #[test]
    fn response_keeps_component_issue_time() {
        let mut secret = component_secret();
        secret.issue_time = Some(Datetime {
            seconds: 1_714_557_600,
            nanoseconds: 7,
        });
        let outgoing = wit::Response {
            data: None,
            secret: Some(secret),
            warnings: vec![],
            headers: vec![],
        };

        let lease = response(outgoing)
            .unwrap()
            .secret
            .unwrap()
            .lease_options
            .unwrap();

        assert_eq!(
            lease.issue_time,
            Some(prost_types::Timestamp {
                seconds: 1_714_557_600,
                nanos: 7
            })
        );
    }

    #[test]
    fn response_without_data_sends_null() {
        let outgoing = wit::Response {
            data: None,
            secret: None,
            warnings: vec!["w".into()],
            headers: vec![],
        };

        let translated = response(outgoing).unwrap();

        assert_eq!(translated.data, "null");
        assert_eq!(translated.warnings, ["w"]);
    }

    #[test]
    fn response_huge_ttl_is_capped() {
        let mut secret = component_secret();
        secret.ttl_seconds = u64::MAX;
        let outgoing = wit::Response {
            data: None,
            secret: Some(secret),
            warnings: vec![],
            headers: vec![],
        };

        let lease = response(outgoing)
            .unwrap()
            .secret
            .unwrap()
            .lease_options
            .unwrap();

        assert_eq!(lease.ttl_ns, i64::MAX);
    }

    #[test]
    fn response_rejects_non_object_data() {
        for (data, problem) in [
            ("[]", "found an array"),
            ("", "EOF while parsing a value at line 1 column 0"),
            ("null", "found null"),
        ] {
            let outgoing = wit::Response {
                data: Some(data.into()),
                secret: None,
                warnings: vec![],
                headers: vec![],
            };

            let error = response(outgoing).unwrap_err();

            assert_eq!(
                error,
                TranslationError::NotAnObject {
                    field: "response data",
                    problem: problem.into()
                },
                "data {data:?}"
            );
        }
    }

    #[test]
    fn response_rejects_empty_internal_data() {
        let mut secret = component_secret();
        secret.internal_data = String::new();
        let outgoing = wit::Response {
            data: None,
            secret: Some(secret),
            warnings: vec![],
            headers: vec![],
        };

        let error = response(outgoing).unwrap_err();

        assert_eq!(error.to_string(), "the Kong engine returned internal data that is not a JSON object: EOF while parsing a value at line 1 column 0");
    }

    #[test]
    fn response_rejects_non_text_error() {
        let outgoing = wit::Response {
            data: Some(r#"{"error":42}"#.into()),
            secret: None,
            warnings: vec![],
            headers: vec![],
        };

        assert_eq!(
            response(outgoing).unwrap_err(),
            TranslationError::ErrorNotText
        );
    }

    #[test]
    fn bad_request_becomes_error_response() {
        let (response, error) = request_error(
            "read",
            wit::Error::BadRequest("ttl must be a duration".into()),
        );

        assert_eq!(
            response.map(|r| r.data),
            Some(r#"{"error":"ttl must be a duration"}"#.to_string())
        );
        assert_eq!(error, None);
    }

    #[test]
    fn lease_bad_request_is_status_error() {
        for operation in ["renew", "revoke", "rollback"] {
            let (response, error) = request_error(
                operation,
                wit::Error::BadRequest("credential is gone".into()),
            );

            assert_eq!(response, None, "{operation}: no error response");
            assert_eq!(
                error,
                Some(proto_error(
                    err_type::STATUS_BAD_REQUEST,
                    "credential is gone".into()
                )),
                "{operation}: the text as a StatusBadRequest error"
            );
        }
    }

    #[test]
    fn error_types_follow_vault() {
        let cases = [
            (wit::Error::UnsupportedPath, err_type::UNSUPPORTED_PATH, 0),
            (
                wit::Error::UnsupportedOperation,
                err_type::UNSUPPORTED_OPERATION,
                0,
            ),
            (wit::Error::PermissionDenied, err_type::PERMISSION_DENIED, 0),
            (
                wit::Error::Internal("storage failed".into()),
                err_type::INTERNAL_ERROR,
                0,
            ),
            (
                wit::Error::Coded(wit::CodedError {
                    status: 502,
                    message: "Kong answered 503".into(),
                }),
                err_type::CODED_ERROR,
                502,
            ),
        ];
        for (error, expected_type, expected_code) in cases {
            let description = format!("{error:?}");
            let (response, proto) = request_error("read", error);
            let proto = proto.expect("an error is returned");

            assert!(response.is_none(), "{description} returned a response");
            assert_eq!(
                (proto.err_type, proto.err_code),
                (expected_type, expected_code),
                "{description}"
            );
        }
    }

    #[test]
    fn existence_bad_request_is_user_error() {
        let error = existence_error(wit::Error::BadRequest("name is invalid".into()));

        assert_eq!(
            error,
            proto_error(err_type::USER_ERROR, "name is invalid".into())
        );
    }
}
