//! Typed request fields: the schema of a path's parameters and the parsing of request data
//! against it.
//!
//! Every field a request names is parsed before a handler runs, so a handler gets only valid
//! values and a wrong value is a 400 naming the field, the value and the expected form. A field
//! the request does not name stays absent, which lets a write change only the fields it names.
//! A JSON `null` counts as absent. Names the schema does not know are kept for a warning.
//!
//! Accepted input per type:
//! - string: a JSON string, number or boolean (numbers and booleans are taken as their text);
//! - int: a JSON integer, or a string holding one;
//! - bool: a JSON boolean, or one of `true`, `false`, `1`, `0`, `t`, `f` in any case;
//! - duration: whole seconds as a JSON integer or a string (`3600`), or a string of numbers
//!   with units `ns`, `us`, `ms`, `s`, `m`, `h`, `d` (`30s`, `1h`, `1h30m`, `1.5h`); the result
//!   is rounded down to whole seconds and an empty string is 0;
//! - comma-separated list: a JSON array of strings, or a string `a,b,c` (items are trimmed and
//!   empty items dropped);
//! - map: a JSON object with string values, or a string `key=value,key2=value2`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::Error;
use super::path::Captures;
use super::request::json_kind;

/// The type of a field, which sets how its value is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int,
    Bool,
    /// Whole seconds.
    Duration,
    CommaStringList,
    Map,
}

impl FieldType {
    /// Returns the name shown in help text.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Bool => "bool",
            Self::Duration => "duration (seconds)",
            Self::CommaStringList => "comma-separated list",
            Self::Map => "map",
        }
    }
}

/// A parsed field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    String(String),
    Int(i64),
    Bool(bool),
    /// Whole seconds.
    Duration(u64),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl FieldValue {
    /// Converts the value to JSON, for help text and OpenAPI defaults.
    pub fn to_json(&self) -> Value {
        match self {
            Self::String(text) => Value::from(text.as_str()),
            Self::Int(number) => Value::from(*number),
            Self::Bool(flag) => Value::from(*flag),
            Self::Duration(seconds) => Value::from(*seconds),
            Self::List(items) => Value::from(items.clone()),
            Self::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
                    .collect(),
            ),
        }
    }
}

/// One field of a path's schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldType,
    /// One sentence: what the field sets, its unit, its default and what 0 means.
    pub description: &'static str,
    /// The value a handler uses when the request does not name the field.
    pub default: Option<FieldValue>,
    /// Marks a secret: help and OpenAPI flag it, and reads never return it.
    pub sensitive: bool,
}

impl Field {
    pub fn new(name: &'static str, kind: FieldType, description: &'static str) -> Self {
        Self {
            name,
            kind,
            description,
            default: None,
            sensitive: false,
        }
    }

    pub fn with_default(mut self, default: FieldValue) -> Self {
        self.default = Some(default);
        self
    }

    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Parses a JSON value for this field.
    pub fn parse(&self, value: &Value) -> Result<FieldValue, Error> {
        let parsed = match self.kind {
            FieldType::String => parse_string(value).map(FieldValue::String),
            FieldType::Int => parse_int(value).map(FieldValue::Int),
            FieldType::Bool => parse_bool(value).map(FieldValue::Bool),
            FieldType::Duration => parse_duration(value).map(FieldValue::Duration),
            FieldType::CommaStringList => parse_list(value).map(FieldValue::List),
            FieldType::Map => parse_map(value).map(FieldValue::Map),
        };
        parsed.map_err(|reason| Error::bad_request(format!("invalid {}: {reason}", self.name)))
    }
}

/// The request's values for a path's fields, parsed and checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldData {
    values: BTreeMap<&'static str, FieldValue>,
    defaults: BTreeMap<&'static str, FieldValue>,
    unknown: Vec<String>,
}

impl FieldData {
    /// Parses `data` and the path `captures` against `fields`. A captured path segment wins
    /// over a body field of the same name.
    pub fn parse(
        fields: &[Field],
        data: &Map<String, Value>,
        captures: &Captures,
    ) -> Result<Self, Error> {
        let mut parsed = Self::default();

        for field in fields {
            if let Some(default) = &field.default {
                parsed.defaults.insert(field.name, default.clone());
            }
            let captured = captures.iter().find(|(name, _)| *name == field.name);
            let value = match captured {
                Some((_, text)) => FieldValue::String(text.clone()),
                None => match data.get(field.name) {
                    None | Some(Value::Null) => continue,
                    Some(value) => field.parse(value)?,
                },
            };
            parsed.values.insert(field.name, value);
        }

        parsed.unknown = data
            .keys()
            .filter(|key| !fields.iter().any(|field| field.name == key.as_str()))
            .cloned()
            .collect();
        Ok(parsed)
    }

    /// Returns the parsed value of `name`, or `None` when the request did not name it.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.values.get(name)
    }

    /// Returns the value of `name`, or its default when the request did not name it.
    pub fn get_or_default(&self, name: &str) -> Option<&FieldValue> {
        self.values.get(name).or_else(|| self.defaults.get(name))
    }

    /// Names in the request data that the path's schema does not know, sorted.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// Returns the string value of `name`, if the request named it.
    ///
    /// # Panics
    ///
    /// When the schema gives `name` another type: the handler and schema disagree.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            None => None,
            Some(FieldValue::String(text)) => Some(text),
            Some(other) => panic!("field {name} is not a string: {other:?}"),
        }
    }

    /// Returns the string value of `name`, or its default.
    ///
    /// # Panics
    ///
    /// When the schema gives `name` another type.
    pub fn string_or_default(&self, name: &str) -> Option<&str> {
        match self.get_or_default(name) {
            None => None,
            Some(FieldValue::String(text)) => Some(text),
            Some(other) => panic!("field {name} is not a string: {other:?}"),
        }
    }

    /// Returns the duration of `name` in seconds, if the request named it.
    ///
    /// # Panics
    ///
    /// When the schema gives `name` another type.
    pub fn duration(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            None => None,
            Some(FieldValue::Duration(seconds)) => Some(*seconds),
            Some(other) => panic!("field {name} is not a duration: {other:?}"),
        }
    }

    /// Returns the duration of `name` in seconds, or its default.
    ///
    /// # Panics
    ///
    /// When the schema gives `name` another type.
    pub fn duration_or_default(&self, name: &str) -> Option<u64> {
        match self.get_or_default(name) {
            None => None,
            Some(FieldValue::Duration(seconds)) => Some(*seconds),
            Some(other) => panic!("field {name} is not a duration: {other:?}"),
        }
    }
}

const DURATION_HINT: &str = "use seconds such as 3600 or a duration such as 30s, 1h or 1h30m";

fn parse_string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(format!("expected a string, got {}", json_kind(other))),
    }
}

fn parse_int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| format!("{number} is not a whole number in the 64-bit range")),
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{text:?} is not a whole number")),
        other => Err(format!("expected a whole number, got {}", json_kind(other))),
    }
}

fn parse_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Ok(true),
            "false" | "f" | "0" => Ok(false),
            _ => Err(format!("{text:?} is not a boolean; use true or false")),
        },
        other => Err(format!("expected true or false, got {}", json_kind(other))),
    }
}

fn parse_duration(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(number) => {
            if let Some(seconds) = number.as_u64() {
                return Ok(seconds);
            }
            match number.as_f64() {
                Some(seconds) if seconds < 0.0 => {
                    Err(format!("{number} is negative; {DURATION_HINT}"))
                }
                Some(seconds) if seconds.fract() == 0.0 && seconds <= u64::MAX as f64 => {
                    Ok(seconds as u64)
                }
                _ => Err(format!("{number} is not whole seconds; {DURATION_HINT}")),
            }
        }
        Value::String(text) => parse_duration_text(text.trim())
            .ok_or_else(|| format!("{text:?} is not a duration; {DURATION_HINT}")),
        other => Err(format!(
            "expected a duration, got {}; {DURATION_HINT}",
            json_kind(other)
        )),
    }
}

/// Parses a duration string into whole seconds, rounding down. `None` when it is invalid.
pub fn parse_duration_text(text: &str) -> Option<u64> {
    if text.is_empty() {
        return Some(0);
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse().ok();
    }

    // Sum in nanoseconds so that `1.5h` and `1500ms` are exact before rounding down.
    let mut total_nanoseconds: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_length = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_length);
        let unit_length = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_length);

        let unit_nanoseconds: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            _ => return None,
        };
        total_nanoseconds =
            total_nanoseconds.checked_add(scale_decimal(number, unit_nanoseconds)?)?;
        rest = after_unit;
    }

    u64::try_from(total_nanoseconds / 1_000_000_000).ok()
}

/// Multiplies a decimal such as `1.5` by `unit`, exactly for up to 9 fractional digits.
fn scale_decimal(number: &str, unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.contains('.') {
        return None;
    }

    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(unit)?;

    let digits: String = fraction.chars().take(9).collect();
    if !digits.is_empty() {
        let numerator: u128 = digits.parse().ok()?;
        let denominator = 10u128.pow(digits.len() as u32);
        value = value.checked_add(numerator.checked_mul(unit)? / denominator)?;
    }
    Some(value)
}

fn parse_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.trim().to_string()),
                Value::Number(number) => Ok(number.to_string()),
                other => Err(format!(
                    "list items must be strings, got {}",
                    json_kind(other)
                )),
            })
            .filter(|item| !matches!(item, Ok(text) if text.is_empty()))
            .collect(),
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(String::from)
            .collect()),
        other => Err(format!(
            "expected a list or a comma-separated string, got {}",
            json_kind(other)
        )),
    }
}

fn parse_map(value: &Value) -> Result<BTreeMap<String, String>, String> {
    match value {
        Value::Object(entries) => entries
            .iter()
            .map(|(key, value)| match parse_string(value) {
                Ok(text) => Ok((key.clone(), text)),
                Err(_) => Err(format!(
                    "the value of {key:?} must be a string, got {}",
                    json_kind(value)
                )),
            })
            .collect(),
        Value::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    Ok((key.trim().to_string(), value.trim().to_string()))
                }
                _ => Err(format!("{pair:?} is not key=value")),
            })
            .collect(),
        other => Err(format!(
            "expected an object or key=value pairs, got {}",
            json_kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(kind: FieldType) -> Field {
        Field::new("value", kind, "a test field")
    }

    #[test]
    fn duration_text_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("", Some(0)),
            ("0", Some(0)),
            ("30", Some(30)),
            ("30s", Some(30)),
            ("20s", Some(20)),
            ("1m", Some(60)),
            ("1h", Some(3600)),
            ("1h30m", Some(5400)),
            ("1h30m15s", Some(5415)),
            ("2d", Some(172_800)),
            ("1.5h", Some(5400)),
            (".5m", Some(30)),
            ("1500ms", Some(1)),
            ("999ms", Some(0)),
            ("90000000us", Some(90)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("-1s", None),
            ("1x", None),
            ("h", None),
            ("1h 30m", None),
            ("1..5s", None),
            ("abc", None),
            ("10s5", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration_text(text), *expected, "duration {text:?}");
        }
    }

    #[test]
    fn duration_field_table() {
        let accepted = [
            (json!(3600), 3600),
            (json!(3600.0), 3600),
            (json!("3600"), 3600),
            (json!(" 1h "), 3600),
            (json!("20s"), 20),
        ];
        for (value, seconds) in accepted {
            assert_eq!(
                field(FieldType::Duration).parse(&value),
                Ok(FieldValue::Duration(seconds)),
                "duration {value}"
            );
        }

        let rejected = [
            (json!(-5), "invalid value: -5 is negative; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"),
            (json!(1.5), "invalid value: 1.5 is not whole seconds; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"),
            (json!("soon"), "invalid value: \"soon\" is not a duration; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"),
            (json!(true), "invalid value: expected a duration, got boolean; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"),
        ];
        for (value, message) in rejected {
            assert_eq!(
                field(FieldType::Duration).parse(&value),
                Err(Error::bad_request(message)),
                "duration {value}"
            );
        }
    }

    #[test]
    fn scalar_field_table() {
        let cases = [
            (
                FieldType::String,
                json!("x y"),
                Ok(FieldValue::String("x y".into())),
            ),
            (
                FieldType::String,
                json!(12),
                Ok(FieldValue::String("12".into())),
            ),
            (
                FieldType::String,
                json!(false),
                Ok(FieldValue::String("false".into())),
            ),
            (
                FieldType::String,
                json!([1]),
                Err("invalid value: expected a string, got array"),
            ),
            (FieldType::Int, json!(-7), Ok(FieldValue::Int(-7))),
            (FieldType::Int, json!("42"), Ok(FieldValue::Int(42))),
            (
                FieldType::Int,
                json!(1.5),
                Err("invalid value: 1.5 is not a whole number in the 64-bit range"),
            ),
            (
                FieldType::Int,
                json!("four"),
                Err("invalid value: \"four\" is not a whole number"),
            ),
            (FieldType::Bool, json!(true), Ok(FieldValue::Bool(true))),
            (FieldType::Bool, json!("TRUE"), Ok(FieldValue::Bool(true))),
            (FieldType::Bool, json!("0"), Ok(FieldValue::Bool(false))),
            (
                FieldType::Bool,
                json!("yes"),
                Err("invalid value: \"yes\" is not a boolean; use true or false"),
            ),
            (
                FieldType::Bool,
                json!(1),
                Err("invalid value: expected true or false, got number"),
            ),
        ];
        for (kind, value, expected) in cases {
            let expected = expected.map_err(Error::bad_request);
            assert_eq!(field(kind).parse(&value), expected, "{kind:?} from {value}");
        }
    }

    #[test]
    fn list_and_map_field_table() {
        let list = |items: &[&str]| {
            Ok(FieldValue::List(
                items.iter().map(|s| s.to_string()).collect(),
            ))
        };
        let map = |pairs: &[(&str, &str)]| {
            Ok(FieldValue::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ))
        };
        let cases = [
            (
                FieldType::CommaStringList,
                json!("a, b,,c"),
                list(&["a", "b", "c"]),
            ),
            (
                FieldType::CommaStringList,
                json!(["a", " b ", ""]),
                list(&["a", "b"]),
            ),
            (FieldType::CommaStringList, json!(""), list(&[])),
            (
                FieldType::CommaStringList,
                json!([{}]),
                Err("invalid value: list items must be strings, got object"),
            ),
            (
                FieldType::CommaStringList,
                json!(3),
                Err("invalid value: expected a list or a comma-separated string, got number"),
            ),
            (
                FieldType::Map,
                json!({"a": "1", "b": 2}),
                map(&[("a", "1"), ("b", "2")]),
            ),
            (
                FieldType::Map,
                json!("a=1, b = 2"),
                map(&[("a", "1"), ("b", "2")]),
            ),
            (
                FieldType::Map,
                json!("a"),
                Err("invalid value: \"a\" is not key=value"),
            ),
            (
                FieldType::Map,
                json!({"a": [1]}),
                Err("invalid value: the value of \"a\" must be a string, got array"),
            ),
        ];
        for (kind, value, expected) in cases {
            let expected = expected.map_err(Error::bad_request);
            assert_eq!(field(kind).parse(&value), expected, "{kind:?} from {value}");
        }
    }

    #[test]
    fn field_data_keeps_absent_fields_absent() {
        let fields = [
            Field::new("ttl", FieldType::Duration, "ttl"),
            Field::new("max_ttl", FieldType::Duration, "max ttl")
                .with_default(FieldValue::Duration(0)),
        ];
        let data = json!({"ttl": "1h", "max_ttl": null});
        let parsed = FieldData::parse(&fields, data.as_object().unwrap(), &vec![]).unwrap();

        assert_eq!(parsed.duration("ttl"), Some(3600), "named field");
        assert_eq!(parsed.duration("max_ttl"), None, "null counts as absent");
        assert_eq!(
            parsed.duration_or_default("max_ttl"),
            Some(0),
            "default of absent field"
        );
    }

    #[test]
    fn field_data_capture_wins_and_unknown_kept() {
        let fields = [Field::new("username", FieldType::String, "name")];
        let data = json!({"username": "mallory", "colour": "blue", "size": 1});
        let captures = vec![("username", "alice".to_string())];
        let parsed = FieldData::parse(&fields, data.as_object().unwrap(), &captures).unwrap();

        assert_eq!(
            parsed.string("username"),
            Some("alice"),
            "path segment wins"
        );
        assert_eq!(parsed.unknown(), ["colour", "size"], "unknown names");
    }

    #[test]
    fn field_data_names_the_bad_field() {
        let fields = [Field::new("ttl", FieldType::Duration, "ttl")];
        let data = json!({"ttl": "forever"});
        let error = FieldData::parse(&fields, data.as_object().unwrap(), &vec![])
            .expect_err("an invalid duration must fail");
        assert_eq!(
            error,
            Error::bad_request(
                "invalid ttl: \"forever\" is not a duration; use seconds such as 3600 or a duration such as 30s, 1h or 1h30m"
            )
        );
    }
}
