//! Request arguments: the body of writes and the query string of reads.
//!
//! Like Kong's Admin API, writes accept JSON, form-urlencoded and multipart bodies. A body of
//! any other type gets 415, and JSON that does not parse to an object gets 400. Form values are
//! strings, dotted names build nested objects (`consumer.id=...`), and `name[]` or a repeated
//! name builds an array. So a `ttl` sent in a form is a string, and Kong rejects it.

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// Fields that hold arrays, so that one form value still becomes an array.
const ARRAY_FIELDS: &[&str] = &["tags"];

/// Parses the body of a `POST`, `PUT` or `PATCH` into its arguments.
pub(crate) fn parse_write_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let Some(content_type) = content_type else {
        // Kong lets a write without a body through, and rejects a body of unnamed type.
        return if body.is_empty() {
            Ok(Map::new())
        } else {
            Err(unsupported_media_type())
        };
    };
    let lowered = content_type.to_ascii_lowercase();

    if lowered.starts_with("application/json") {
        return match serde_json::from_slice(body) {
            Ok(Value::Object(arguments)) => Ok(arguments),
            _ => Err(ApiError::message(400, "Cannot parse JSON body")),
        };
    }
    if lowered.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(body);
        return Ok(normalize(parse_pairs(&text)));
    }
    if lowered.starts_with("multipart/form-data") {
        let boundary = content_type
            .split(';')
            .filter_map(|param| param.trim().strip_prefix("boundary="))
            .map(|boundary| boundary.trim_matches('"'))
            .next()
            .ok_or_else(unsupported_media_type)?;
        return Ok(normalize(parse_multipart(body, boundary)));
    }
    Err(unsupported_media_type())
}

fn unsupported_media_type() -> ApiError {
    ApiError::message(415, "Unsupported Media Type")
}

/// Parses `a=1&b=2` into decoded name/value pairs, in order.
pub(crate) fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name, true), percent_decode(value, true))
        })
        .collect()
}

/// Returns the first value of a query parameter.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Decodes `%XX` escapes (and `+` as a space in forms and query strings).
pub(crate) fn percent_decode(text: &str, plus_as_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let escape = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(value) => {
                decoded.push(value);
                index += 3;
            }
            None => {
                decoded.push(if plus_as_space && byte == b'+' {
                    b' '
                } else {
                    byte
                });
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Builds nested arguments from flat form names, as Kong's `normalize_nested_params` does.
fn normalize(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut arguments = Map::new();
    for (name, value) in pairs {
        let (name, is_array) = match name.find('[') {
            Some(open) if name.ends_with(']') => (name[..open].to_owned(), true),
            _ => (name, false),
        };
        let mut path: Vec<&str> = name.split('.').collect();
        let last = path.pop().unwrap_or_default();

        let mut node = &mut arguments;
        for segment in path {
            let entry = node
                .entry(segment.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(child) = entry else {
                unreachable!("set to an object above")
            };
            node = child;
        }

        let value = Value::String(value);
        let as_array = is_array || ARRAY_FIELDS.contains(&last);
        match node.get_mut(last) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None if as_array => {
                node.insert(last.to_owned(), Value::Array(vec![value]));
            }
            None => {
                node.insert(last.to_owned(), value);
            }
        }
    }
    arguments
}

/// Reads the text parts of a `multipart/form-data` body.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    text.split(delimiter.as_str())
        .filter_map(|part| {
            let part = part.strip_prefix("\r\n")?;
            let (headers, value) = part.split_once("\r\n\r\n")?;
            let name = headers
                .split("\r\n")
                .filter(|line| {
                    line.to_ascii_lowercase()
                        .starts_with("content-disposition:")
                })
                .flat_map(|line| line.split(';'))
                .filter_map(|param| param.trim().strip_prefix("name="))
                .map(|name| name.trim_matches('"').to_owned())
                .next()?;
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            Some((name, value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn form_body_builds_nested_arguments() {
        let body = b"username=bob&tags=a&consumer.id=42&tags=b&ttl=10";

        let arguments = parse_write_body(Some("application/x-www-form-urlencoded"), body).unwrap();

        assert_eq!(
            Value::Object(arguments),
            json!({ "username": "bob", "tags": ["a", "b"], "consumer": { "id": "42" }, "ttl": "10" })
        );
    }

    #[test]
    fn multipart_body_reads_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--XyZ\r\nContent-Disposition: form-data; name=\"tags[]\"\r\n\r\nt1\r\n--XyZ--\r\n";

        let arguments = parse_write_body(Some("multipart/form-data; boundary=XyZ"), body).unwrap();

        assert_eq!(
            Value::Object(arguments),
            json!({ "username": "bob", "tags": ["t1"] })
        );
    }

    #[test]
    fn body_content_type_table() {
        type Expected = Result<Value, (u16, &'static str)>;
        let cases: [(Option<&str>, &[u8], Expected); 6] = [
            (None, b"", Ok(json!({}))),
            (None, b"username=bob", Err((415, "Unsupported Media Type"))),
            (
                Some("text/plain"),
                b"x",
                Err((415, "Unsupported Media Type")),
            ),
            (
                Some("application/json"),
                b"{",
                Err((400, "Cannot parse JSON body")),
            ),
            (
                Some("application/json"),
                b"[1]",
                Err((400, "Cannot parse JSON body")),
            ),
            (
                Some("application/json; charset=utf-8"),
                b"{\"a\":1}",
                Ok(json!({ "a": 1 })),
            ),
        ];
        for (content_type, body, expected) in cases {
            let parsed = parse_write_body(content_type, body)
                .map(Value::Object)
                .map_err(|error| {
                    (
                        error.status(),
                        error.body()["message"].as_str().unwrap_or("").to_owned(),
                    )
                });
            let expected = expected.map_err(|(status, message)| (status, message.to_owned()));
            assert_eq!(parsed, expected, "content type {content_type:?}");
        }
    }

    #[test]
    fn percent_decode_table() {
        let cases = [
            ("a%2Fb", false, "a/b"),
            ("a+b", true, "a b"),
            ("a+b", false, "a+b"),
            ("%zz", true, "%zz"),
        ];
        for (text, plus, expected) in cases {
            assert_eq!(percent_decode(text, plus), expected, "decode {text:?}");
        }
    }
}
