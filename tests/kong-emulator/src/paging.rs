//! List pagination and tag filters, as Kong 3.x's Admin API and Postgres strategy do them.
//!
//! Pages are ordered by `id`. The `offset` token is the base64 (no padding) of a JSON array
//! holding the last `id` of the page; the next page starts after it. `size` defaults to 100 and
//! must be an integer from 1 to 1000. `tags=a,b` keeps rows with every tag, `tags=a/b` rows
//! with any of them, and at most 5 tags may be given.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use crate::errors::{DaoError, FieldErrors};

const DEFAULT_SIZE: usize = 100;
const MAX_SIZE: usize = 1000;

/// A tag filter from the `tags` query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagFilter {
    All(Vec<String>),
    Any(Vec<String>),
}

impl TagFilter {
    pub(crate) fn matches(&self, tags: &Value) -> bool {
        let has = |wanted: &String| {
            tags.as_array()
                .is_some_and(|tags| tags.iter().any(|tag| tag.as_str() == Some(wanted)))
        };
        match self {
            TagFilter::All(wanted) => wanted.iter().all(has),
            TagFilter::Any(wanted) => wanted.iter().any(has),
        }
    }
}

/// Validated paging parameters of one list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) size: usize,
    /// Only rows with an `id` greater than this are listed.
    pub(crate) after_id: Option<String>,
    pub(crate) tags: Option<TagFilter>,
}

/// Parses `size`, `offset` and (when the entity has tags) `tags`, with Kong's errors.
pub(crate) fn parse(
    size: Option<&str>,
    offset: Option<&str>,
    tags: Option<&str>,
) -> Result<PageRequest, DaoError> {
    let size = match size {
        None => DEFAULT_SIZE,
        Some(text) => parse_size(text)?,
    };
    let tags = tags.map(parse_tags).transpose()?;
    let after_id = offset.map(decode_offset).transpose()?;
    Ok(PageRequest {
        size,
        after_id,
        tags,
    })
}

fn parse_size(text: &str) -> Result<usize, DaoError> {
    let number: f64 = text
        .trim()
        .parse()
        .map_err(|_| DaoError::invalid_size("size must be a number"))?;
    let in_range = number.fract() == 0.0 && (1.0..=MAX_SIZE as f64).contains(&number);
    if !in_range {
        return Err(DaoError::invalid_size(&format!(
            "size must be an integer between 1 and {MAX_SIZE}"
        )));
    }
    Ok(number as usize)
}

fn parse_tags(text: &str) -> Result<TagFilter, DaoError> {
    // Kong first splits on `,` or `/` (printable ASCII apart from those two, or UTF-8), then
    // checks the count and the characters of the tags.
    let is_tag_char =
        |c: char| !c.is_ascii() || (c.is_ascii_graphic() || c == ' ') && c != ',' && c != '/';
    let split = |separator: char| -> Option<Vec<String>> {
        let parts: Vec<&str> = text.split(separator).collect();
        let last_empty = parts.last() == Some(&"") && parts.len() > 1;
        let parts = if last_empty {
            &parts[..parts.len() - 1]
        } else {
            &parts[..]
        };
        parts
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(is_tag_char))
            .then(|| parts.iter().map(|part| (*part).to_owned()).collect())
    };

    let filter = if let Some(tags) = split(',') {
        TagFilter::All(tags)
    } else if let Some(tags) = split('/') {
        TagFilter::Any(tags)
    } else {
        return Err(invalid_tags("invalid filter syntax"));
    };

    let tags = match &filter {
        TagFilter::All(tags) | TagFilter::Any(tags) => tags,
    };
    if tags.len() > 5 {
        return Err(invalid_tags("cannot query more than 5 tags"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~');
    if !tags.iter().all(|tag| tag.chars().all(allowed)) {
        return Err(invalid_tags(
            "must only contain alphanumeric and '., -, _, ~' characters",
        ));
    }
    Ok(filter)
}

fn invalid_tags(reason: &str) -> DaoError {
    let mut errors = FieldErrors::new();
    errors.insert("tags".into(), json!(reason));
    DaoError::invalid_options(errors)
}

/// Encodes the offset token that points after `id`.
pub(crate) fn encode_offset(id: &str) -> String {
    STANDARD_NO_PAD.encode(json!([id]).to_string())
}

fn decode_offset(token: &str) -> Result<String, DaoError> {
    let trimmed = token.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(token))
        .map_err(|_| DaoError::invalid_offset(token, "bad base64 encoding"))?;
    let decoded: Value = serde_json::from_slice(&bytes)
        .map_err(|_| DaoError::invalid_offset(token, "bad json encoding"))?;
    Ok(match decoded.get(0) {
        Some(Value::String(id)) => id.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    })
}

/// Percent-encodes like OpenResty's `ngx.escape_uri`: everything but `A-Z a-z 0-9 - . _ ~`.
pub(crate) fn escape_uri(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_errors_table() {
        let cases = [
            ("abc", "size must be a number"),
            ("0", "size must be an integer between 1 and 1000"),
            ("1001", "size must be an integer between 1 and 1000"),
            ("1.5", "size must be an integer between 1 and 1000"),
        ];
        for (size, message) in cases {
            let error = parse(Some(size), None, None).unwrap_err();
            assert_eq!(error.body()["message"], message, "size={size}");
        }
    }

    #[test]
    fn tags_filter_table() {
        let cases = [
            ("a", Ok(TagFilter::All(vec!["a".into()]))),
            ("a,b", Ok(TagFilter::All(vec!["a".into(), "b".into()]))),
            ("a/b", Ok(TagFilter::Any(vec!["a".into(), "b".into()]))),
            ("a,b/c", Err("invalid filter syntax")),
            ("a,b,c,d,e,f", Err("cannot query more than 5 tags")),
            (
                "a b",
                Err("must only contain alphanumeric and '., -, _, ~' characters"),
            ),
        ];
        for (tags, expected) in cases {
            let parsed = parse(None, None, Some(tags)).map(|page| page.tags.unwrap());
            match expected {
                Ok(filter) => assert_eq!(parsed, Ok(filter), "tags={tags}"),
                Err(reason) => assert_eq!(
                    parsed.unwrap_err().body()["options"]["tags"],
                    reason,
                    "tags={tags}"
                ),
            }
        }
    }

    #[test]
    fn offset_round_trips() {
        let id = "5f6c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f";

        let page = parse(None, Some(&encode_offset(id)), None).unwrap();

        assert_eq!(page.after_id.as_deref(), Some(id));
    }

    #[test]
    fn offset_bad_base64_rejected() {
        let error = parse(None, Some("!!"), None).unwrap_err();

        assert_eq!(
            error.body(),
            json!({
                "code": 7,
                "name": "invalid offset",
                "message": "'!!' is not a valid offset: bad base64 encoding"
            })
        );
    }
}
