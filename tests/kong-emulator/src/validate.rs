//! Schema validation with Kong's per-field messages (`kong/db/schema/init.lua`).

use serde_json::{json, Map, Value};

use crate::errors::FieldErrors;
use crate::info::Version;
use crate::schema::{EntityCheck, FieldType, Schema, JWT_ALGORITHMS};

/// Validates a whole entity (after defaults and merging) against its schema.
pub(crate) fn validate(
    schema: &Schema,
    version: Version,
    entity: &Map<String, Value>,
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();

    for key in entity.keys() {
        let known = schema
            .field(key)
            .is_some_and(|field| version.at_least(field.since));
        if !known {
            errors.insert(key.clone(), json!("unknown field"));
        }
    }

    for field in schema.fields.iter().filter(|f| version.at_least(f.since)) {
        let value = entity.get(field.name).unwrap_or(&Value::Null);
        if value.is_null() {
            if field.required {
                errors.insert(field.name.to_owned(), json!("required field missing"));
            }
            continue;
        }
        if let Some(error) = check_value(field.kind, value) {
            errors.insert(field.name.to_owned(), error);
        }
    }

    check_entity(schema, entity, &mut errors);

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_value(kind: FieldType, value: &Value) -> Option<Value> {
    match kind {
        FieldType::Uuid => match value.as_str() {
            None => Some(json!("expected a string")),
            Some(text) if !is_uuid(text) => Some(json!("expected a valid UUID")),
            Some(_) => None,
        },
        FieldType::Timestamp => (!value.is_i64()).then(|| json!("expected an integer")),
        FieldType::Text => check_text(value),
        FieldType::OneOf(allowed) => match value.as_str() {
            None => Some(json!("expected a string")),
            Some(text) if !allowed.contains(&text) => {
                Some(json!(format!("expected one of: {}", allowed.join(", "))))
            }
            Some(_) => None,
        },
        FieldType::Tags => check_tags(value),
        FieldType::Consumer => check_consumer(value),
    }
}

fn check_text(value: &Value) -> Option<Value> {
    match value.as_str() {
        None => Some(json!("expected a string")),
        Some("") => Some(json!("length must be at least 1")),
        Some(_) => None,
    }
}

/// Kong's `tags` typedef: a set of strings, each printable ASCII except `,` and `/`, or UTF-8.
fn check_tags(value: &Value) -> Option<Value> {
    let Value::Array(tags) = value else {
        return Some(json!("expected a set"));
    };
    let element_errors: Vec<Value> = tags
        .iter()
        .map(|tag| match tag.as_str() {
            None => json!("expected a string"),
            Some(text) if !is_valid_tag(text) => json!(format!(
                "invalid tag '{text}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
            )),
            Some(_) => Value::Null,
        })
        .collect();
    if element_errors.iter().all(Value::is_null) {
        return None;
    }
    // Kong reports element errors by 1-based position, which JSON shows as an array with
    // `null` at the valid positions, trailing valid positions left out.
    let last = element_errors
        .iter()
        .rposition(|e| !e.is_null())
        .unwrap_or(0);
    Some(Value::Array(element_errors[..=last].to_vec()))
}

fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .chars()
            .all(|c| !c.is_ascii() || (c.is_ascii_graphic() || c == ' ') && c != ',' && c != '/')
}

/// The `consumer` foreign key must be a record with a UUID `id` and nothing else.
fn check_consumer(value: &Value) -> Option<Value> {
    let Value::Object(record) = value else {
        return Some(json!("expected a record"));
    };
    let mut errors = Map::new();
    for key in record.keys().filter(|key| *key != "id") {
        errors.insert(key.clone(), json!("unknown field"));
    }
    match record.get("id") {
        None | Some(Value::Null) => {
            errors.insert("id".into(), json!("required field missing"));
        }
        Some(id) => {
            if let Some(error) = check_value(FieldType::Uuid, id) {
                errors.insert("id".into(), error);
            }
        }
    }
    (!errors.is_empty()).then_some(Value::Object(errors))
}

fn check_entity(schema: &Schema, entity: &Map<String, Value>, errors: &mut FieldErrors) {
    match schema.check {
        EntityCheck::None => {}
        EntityCheck::AtLeastOneOf(fields) => {
            let any_set = fields
                .iter()
                .any(|name| entity.get(*name).is_some_and(|value| !value.is_null()));
            if !any_set {
                let names: Vec<String> = fields.iter().map(|name| format!("'{name}'")).collect();
                add_entity_error(
                    errors,
                    format!(
                        "at least one of these fields must be non-empty: {}",
                        names.join(", ")
                    ),
                );
            }
        }
        EntityCheck::PublicKeyForAlgorithm => check_jwt_public_key(entity, errors),
    }
}

/// jwt: RS* and ES* algorithms verify with a public key, so `rsa_public_key` must hold one.
fn check_jwt_public_key(entity: &Map<String, Value>, errors: &mut FieldErrors) {
    let algorithm = entity
        .get("algorithm")
        .and_then(Value::as_str)
        .unwrap_or("");
    let needs_key = JWT_ALGORITHMS.contains(&algorithm)
        && (algorithm.starts_with("RS") || algorithm.starts_with("ES"));
    if !needs_key || errors.contains_key("rsa_public_key") {
        return;
    }
    let field_error = match entity.get("rsa_public_key").and_then(Value::as_str) {
        None => Some("required field missing"),
        Some(pem) if !is_public_key_pem(pem) => Some("invalid key"),
        Some(_) => None,
    };
    if let Some(field_error) = field_error {
        errors.insert("rsa_public_key".into(), json!(field_error));
        add_entity_error(
            errors,
            "failed conditional validation given value of field 'algorithm'".to_owned(),
        );
    }
}

/// Checks that `pem` holds a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block.
// NOTE: Kong parses the key with OpenSSL, which also takes `RSA PUBLIC KEY` blocks and checks
// the key material; this checks the PEM framing and base64 only.
fn is_public_key_pem(pem: &str) -> bool {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).is_ok()
}

fn add_entity_error(errors: &mut FieldErrors, message: String) {
    let entry = errors
        .entry("@entity".to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(messages) = entry {
        messages.push(json!(message));
    }
}

/// Checks the canonical 8-4-4-4-12 hexadecimal UUID form, as Kong's `is_valid_uuid` does.
pub(crate) fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(index, c)| match index {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{CONSUMERS, JWT};

    const VERSION: Version = Version(3, 9, 1);

    #[test]
    fn consumer_without_names_fails_entity_check() {
        let entity = json!({ "tags": ["a"] });

        let errors = validate(&CONSUMERS, VERSION, entity.as_object().unwrap()).unwrap_err();

        assert_eq!(
            errors.get("@entity"),
            Some(&json!([
                "at least one of these fields must be non-empty: 'custom_id', 'username'"
            ]))
        );
    }

    #[test]
    fn tags_report_bad_element_position() {
        let entity = json!({ "username": "bob", "tags": ["ok", 7] });

        let errors = validate(&CONSUMERS, VERSION, entity.as_object().unwrap()).unwrap_err();

        assert_eq!(
            errors.get("tags"),
            Some(&json!([null, "expected a string"]))
        );
    }

    #[test]
    fn updated_at_unknown_before_3_3() {
        let entity = json!({ "username": "bob", "updated_at": 1 });

        let errors =
            validate(&CONSUMERS, Version(3, 2, 0), entity.as_object().unwrap()).unwrap_err();

        assert_eq!(errors.get("updated_at"), Some(&json!("unknown field")));
    }

    #[test]
    fn jwt_rs256_requires_public_key() {
        let entity = json!({ "algorithm": "RS256", "consumer": { "id": "5f6c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f" } });

        let errors = validate(&JWT, VERSION, entity.as_object().unwrap()).unwrap_err();

        assert_eq!(
            errors.get("rsa_public_key"),
            Some(&json!("required field missing"))
        );
    }

    #[test]
    fn uuid_check_table() {
        let cases = [
            ("5f6c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f", true),
            ("5F6C1D2E-8A4B-4C3D-9E2F-1A2B3C4D5E6F", true),
            ("5f6c1d2e8a4b4c3d9e2f1a2b3c4d5e6f", false),
            ("5f6c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6g", false),
            ("bob", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_uuid(text), expected, "is_uuid({text:?})");
        }
    }
}
