//! Kong's error responses.
//!
//! Endpoint-level errors are `{"message": "..."}`. Errors from Kong's DAO layer are objects with
//! `code`, `name`, `message` and, depending on the code, `fields` or `options`. The HTTP status
//! follows from the code. Messages are built the way Kong 3.x's `kong/db/errors.lua` builds them,
//! including the Lua-table rendering of keys such as `'{username="bob"}'`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Per-field error messages, keyed by field name. The `@entity` key contains entity-level messages.
pub(crate) type FieldErrors = BTreeMap<String, Value>;

/// An Admin API error response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// `{"message": message}` with `status`.
    Message { status: u16, message: String },
    /// A DAO error object.
    Dao(DaoError),
}

impl ApiError {
    pub(crate) fn message(status: u16, message: impl Into<String>) -> Self {
        ApiError::Message {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found() -> Self {
        ApiError::message(404, "Not found")
    }

    pub(crate) fn method_not_allowed() -> Self {
        ApiError::message(405, "Method not allowed")
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::Message { status, .. } => *status,
            ApiError::Dao(error) => error.status(),
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            ApiError::Message { message, .. } => json!({ "message": message }),
            ApiError::Dao(error) => error.body(),
        }
    }
}

impl From<DaoError> for ApiError {
    fn from(error: DaoError) -> Self {
        ApiError::Dao(error)
    }
}

/// Kong DAO error codes, from `kong/db/errors.lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    InvalidPrimaryKey = 1,
    SchemaViolation = 2,
    PrimaryKeyViolation = 3,
    ForeignKeyViolation = 4,
    UniqueViolation = 5,
    NotFound = 6,
    InvalidOffset = 7,
    InvalidSize = 9,
    InvalidOptions = 11,
    OperationUnsupported = 12,
    ForeignKeysUnresolved = 13,
}

impl Code {
    fn name(self) -> &'static str {
        match self {
            Code::InvalidPrimaryKey => "invalid primary key",
            Code::SchemaViolation => "schema violation",
            Code::PrimaryKeyViolation => "primary key violation",
            Code::ForeignKeyViolation => "foreign key violation",
            Code::UniqueViolation => "unique constraint violation",
            Code::NotFound => "not found",
            Code::InvalidOffset => "invalid offset",
            Code::InvalidSize => "invalid size",
            Code::InvalidOptions => "invalid options",
            Code::OperationUnsupported => "operation unsupported",
            Code::ForeignKeysUnresolved => "foreign keys unresolved",
        }
    }

    /// HTTP status the Admin API gives this code (`ERRORS_HTTP_CODES` in `kong/api/endpoints.lua`).
    fn status(self) -> u16 {
        match self {
            Code::UniqueViolation => 409,
            Code::NotFound => 404,
            Code::OperationUnsupported => 405,
            _ => 400,
        }
    }
}

/// A Kong DAO error object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DaoError {
    code: Code,
    message: String,
    /// `fields` (or `options` for invalid options), when the error has per-field detail.
    detail: Option<Value>,
}

impl DaoError {
    fn new(code: Code, message: String, detail: Option<Value>) -> Self {
        DaoError {
            code,
            message,
            detail,
        }
    }

    pub(crate) fn status(&self) -> u16 {
        self.code.status()
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code as u8));
        body.insert("name".into(), json!(self.code.name()));
        body.insert("message".into(), json!(self.message));
        if let Some(detail) = &self.detail {
            let key = if self.code == Code::InvalidOptions {
                "options"
            } else {
                "fields"
            };
            body.insert(key.into(), detail.clone());
        }
        Value::Object(body)
    }

    /// `schema violation (<field>: <reason>)`, or `N schema violations (a; b)`.
    pub(crate) fn schema_violation(errors: FieldErrors) -> Self {
        let parts = flatten(&errors);
        let message = if parts.len() == 1 {
            format!("schema violation ({})", parts[0])
        } else {
            format!("{} schema violations ({})", parts.len(), parts.join("; "))
        };
        DaoError::new(Code::SchemaViolation, message, Some(to_object(errors)))
    }

    /// `invalid option (<option>: <reason>)`, or `N option violations (a; b)`.
    pub(crate) fn invalid_options(errors: FieldErrors) -> Self {
        let parts = flatten(&errors);
        let message = if parts.len() == 1 {
            format!("invalid option ({})", parts[0])
        } else {
            format!("{} option violations ({})", parts.len(), parts.join("; "))
        };
        DaoError::new(Code::InvalidOptions, message, Some(to_object(errors)))
    }

    pub(crate) fn unique_violation(field: &str, value: &Value) -> Self {
        let message = format!(
            "UNIQUE violation detected on '{}'",
            lua_table(&[(field, value)])
        );
        DaoError::new(
            Code::UniqueViolation,
            message,
            Some(json!({ field: value })),
        )
    }

    pub(crate) fn primary_key_violation(id: &str) -> Self {
        let id = json!(id);
        let message = format!(
            "primary key violation on key '{}'",
            lua_table(&[("id", &id)])
        );
        DaoError::new(
            Code::PrimaryKeyViolation,
            message,
            Some(json!({ "id": id })),
        )
    }

    pub(crate) fn not_found_by_primary_key(id: &str) -> Self {
        let id = json!(id);
        let message = format!(
            "could not find the entity with primary key '{}'",
            lua_table(&[("id", &id)])
        );
        DaoError::new(Code::NotFound, message, Some(json!({ "id": id })))
    }

    pub(crate) fn not_found_by_field(field: &str, value: &str) -> Self {
        let value = json!(value);
        let message = format!(
            "could not find the entity with '{}'",
            lua_table(&[(field, &value)])
        );
        DaoError::new(Code::NotFound, message, Some(json!({ field: value })))
    }

    pub(crate) fn invalid_primary_key(reason: &str) -> Self {
        let reason = json!(reason);
        let message = format!("invalid primary key: '{}'", lua_table(&[("id", &reason)]));
        DaoError::new(
            Code::InvalidPrimaryKey,
            message,
            Some(json!({ "id": reason })),
        )
    }

    pub(crate) fn foreign_key_violation(field: &str, id: &str, parent: &str) -> Self {
        let id = json!(id);
        let message = format!(
            "the foreign key '{}' does not reference an existing '{}' entity.",
            lua_table(&[("id", &id)]),
            parent
        );
        DaoError::new(
            Code::ForeignKeyViolation,
            message,
            Some(json!({ field: { "id": id } })),
        )
    }

    pub(crate) fn foreign_key_unresolved(
        field: &str,
        key: &str,
        value: &Value,
        parent: &str,
    ) -> Self {
        let reason = format!(
            "the foreign key cannot be resolved with '{}' for an existing '{}' entity",
            lua_table(&[(key, value)]),
            parent
        );
        let message = format!("foreign key unresolved ({field}.{key}: {reason})");
        DaoError::new(
            Code::ForeignKeysUnresolved,
            message,
            Some(json!({ field: { key: reason } })),
        )
    }

    pub(crate) fn invalid_offset(offset: &str, reason: &str) -> Self {
        let message = format!("'{offset}' is not a valid offset: {reason}");
        DaoError::new(Code::InvalidOffset, message, None)
    }

    pub(crate) fn invalid_size(message: &str) -> Self {
        DaoError::new(Code::InvalidSize, message.to_owned(), None)
    }

    pub(crate) fn operation_unsupported(message: String) -> Self {
        DaoError::new(Code::OperationUnsupported, message, None)
    }
}

/// Renders per-field errors as Kong's message parts: `@entity` messages first, then
/// `field: reason` in sorted field order, with `field.sub: reason` for nested errors.
fn flatten(errors: &FieldErrors) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(Value::Array(entity)) = errors.get("@entity") {
        parts.extend(entity.iter().map(display));
    }
    for (field, error) in errors.iter().filter(|(field, _)| *field != "@entity") {
        match error {
            Value::Object(sub) => {
                let mut keys: Vec<&String> = sub.keys().collect();
                keys.sort();
                for key in keys {
                    parts.push(format!("{field}.{key}: {}", display(&sub[key])));
                }
            }
            // Per-element errors of a set or array, 1-based like Lua and `null` where valid.
            Value::Array(elements) => {
                for (index, element) in elements.iter().enumerate() {
                    if !element.is_null() {
                        parts.push(format!("{field}.{}: {}", index + 1, display(element)));
                    }
                }
            }
            other => parts.push(format!("{field}: {}", display(other))),
        }
    }
    parts
}

fn display(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn to_object(errors: FieldErrors) -> Value {
    Value::Object(errors.into_iter().collect())
}

/// Renders key/value pairs the way Penlight's `pretty.write(t, "")` does: `{key="value"}`.
fn lua_table(pairs: &[(&str, &Value)]) -> String {
    let rendered: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => {
                    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
                }
                other => other.to_string(),
            };
            format!("{key}={value}")
        })
        .collect();
    format!("{{{}}}", rendered.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_violation_message_lists_entity_first() {
        let mut errors = FieldErrors::new();
        errors.insert("tags".into(), json!([null, "expected a string"]));
        errors.insert(
            "@entity".into(),
            json!(["at least one of these fields must be non-empty: 'custom_id', 'username'"]),
        );
        errors.insert("fake".into(), json!("unknown field"));

        let body = DaoError::schema_violation(errors).body();

        assert_eq!(
            body["message"],
            "3 schema violations (at least one of these fields must be non-empty: \
             'custom_id', 'username'; fake: unknown field; tags.2: expected a string)"
        );
    }

    #[test]
    fn unique_violation_renders_lua_table() {
        let body = DaoError::unique_violation("username", &json!("bob")).body();

        assert_eq!(
            body,
            json!({
                "code": 5,
                "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{username=\"bob\"}'",
                "fields": { "username": "bob" }
            })
        );
    }
}
