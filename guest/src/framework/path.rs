//! Path patterns with named segments.
//!
//! A pattern is a `/`-separated list of segments, each one of:
//! - a literal, matched exactly: `config`, `access`;
//! - `{name}`: one non-empty segment, captured as `name`;
//! - `{name+}`: the rest of the path, non-empty and possibly holding `/`, captured as `name`.
//!   It must be the last segment, and lets names such as `team/alice` through unchanged.
//!
//! A pattern that ends in `/` (a list path such as `consumers/`) also matches the path without
//! it. The empty pattern matches only the mount root.

use std::fmt;

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
    Rest(&'static str),
}

/// A parsed path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: &'static str,
    segments: Vec<Segment>,
}

/// The segments a request path filled in, in pattern order.
pub type Captures = Vec<(&'static str, String)>;

impl PathPattern {
    /// Parses `text`.
    ///
    /// # Panics
    ///
    /// On a malformed pattern: an empty name, a `{name+}` that is not last, or a brace in a
    /// literal. Patterns are constants in the engine's code, so this is a programmer error that
    /// the engine's tests catch.
    pub fn parse(text: &'static str) -> Self {
        let mut segments = Vec::new();
        if text.is_empty() {
            return Self { text, segments };
        }

        let pieces: Vec<&'static str> = text.split('/').collect();
        for (index, piece) in pieces.iter().enumerate() {
            let segment = match piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(rest) => {
                        assert!(
                            index == pieces.len() - 1,
                            "pattern {text:?}: {{{name}}} must be the last segment"
                        );
                        Segment::Rest(rest)
                    }
                    None => Segment::Param(name),
                },
                None => {
                    assert!(
                        !piece.contains(['{', '}']),
                        "pattern {text:?}: brace in literal segment {piece:?}"
                    );
                    Segment::Literal(piece)
                }
            };
            if let Segment::Param(name) | Segment::Rest(name) = segment {
                assert!(!name.is_empty(), "pattern {text:?}: empty parameter name");
            }
            segments.push(segment);
        }
        Self { text, segments }
    }

    /// Returns the pattern as written, such as `consumers/{username+}`.
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// Names of the captured segments, in order.
    pub fn params(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) | Segment::Rest(name) => Some(*name),
            Segment::Literal(_) => None,
        })
    }

    /// Builds the OpenAPI path template: a leading `/` and plain `{name}` placeholders.
    pub fn openapi_path(&self) -> String {
        let mut path = String::from("/");
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                path.push('/');
            }
            match segment {
                Segment::Literal(literal) => path.push_str(literal),
                Segment::Param(name) | Segment::Rest(name) => {
                    path.push('{');
                    path.push_str(name);
                    path.push('}');
                }
            }
        }
        path
    }

    /// Matches `path` and returns the captured segments, or `None` when it does not match.
    pub fn matches(&self, path: &str) -> Option<Captures> {
        if let Some(captures) = self.match_exact(path) {
            return Some(captures);
        }
        // A list pattern such as `consumers/` also matches `consumers`.
        if self.text.ends_with('/') && !path.ends_with('/') && !path.is_empty() {
            return self.match_exact(&format!("{path}/"));
        }
        None
    }

    fn match_exact(&self, path: &str) -> Option<Captures> {
        if self.segments.is_empty() {
            return path.is_empty().then(Vec::new);
        }

        let mut remaining = Some(path);
        let mut captures = Vec::new();
        for segment in &self.segments {
            let current = remaining?;
            if let Segment::Rest(name) = segment {
                if current.is_empty() {
                    return None;
                }
                captures.push((*name, current.to_string()));
                remaining = None;
                continue;
            }

            let (piece, rest) = match current.split_once('/') {
                Some((piece, rest)) => (piece, Some(rest)),
                None => (current, None),
            };
            match segment {
                Segment::Literal(literal) if piece == *literal => {}
                Segment::Param(name) if !piece.is_empty() => {
                    captures.push((*name, piece.to_string()));
                }
                _ => return None,
            }
            remaining = rest;
        }
        remaining.is_none().then_some(captures)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pattern, path, and the expected captures (`None`: no match).
    type MatchCase<'a> = (&'a str, &'a str, Option<&'a [(&'a str, &'a str)]>);

    #[test]
    fn pattern_match_table() {
        let cases: &[MatchCase] = &[
            ("", "", Some(&[])),
            ("", "config", None),
            ("config/access", "config/access", Some(&[])),
            ("config/access", "config/access/", None),
            ("config/access", "config", None),
            ("config/access", "config/accessx", None),
            ("consumers/", "consumers/", Some(&[])),
            ("consumers/", "consumers", Some(&[])),
            ("consumers/", "consumers/alice", None),
            (
                "consumers/{username+}",
                "consumers/alice",
                Some(&[("username", "alice")]),
            ),
            (
                "consumers/{username+}",
                "consumers/team/alice",
                Some(&[("username", "team/alice")]),
            ),
            (
                "consumers/{username+}",
                "consumers/bob smith@example.com",
                Some(&[("username", "bob smith@example.com")]),
            ),
            ("consumers/{username+}", "consumers/", None),
            ("consumers/{username+}", "consumers", None),
            (
                "roles/{name}/keys",
                "roles/app/keys",
                Some(&[("name", "app")]),
            ),
            ("roles/{name}/keys", "roles//keys", None),
            ("roles/{name}/keys", "roles/a/b/keys", None),
            ("roles/{name}", "roles/app/", None),
        ];
        for (pattern, path, expected) in cases {
            let found = PathPattern::parse(pattern).matches(path);
            let expected = expected.map(|pairs| {
                pairs
                    .iter()
                    .map(|(name, value)| (*name, value.to_string()))
                    .collect::<Captures>()
            });
            assert_eq!(found, expected, "pattern {pattern:?} on path {path:?}");
        }
    }

    #[test]
    fn pattern_openapi_path_and_params() {
        let cases = [
            ("", "/", vec![]),
            ("config/access", "/config/access", vec![]),
            ("consumers/", "/consumers/", vec![]),
            ("creds/{username+}", "/creds/{username}", vec!["username"]),
            ("a/{b}/c/{d+}", "/a/{b}/c/{d}", vec!["b", "d"]),
        ];
        for (text, openapi, params) in cases {
            let pattern = PathPattern::parse(text);
            assert_eq!(pattern.openapi_path(), openapi, "OpenAPI path of {text:?}");
            assert_eq!(
                pattern.params().collect::<Vec<_>>(),
                params,
                "params of {text:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "must be the last segment")]
    fn pattern_rest_must_be_last() {
        PathPattern::parse("a/{b+}/c");
    }

    #[test]
    #[should_panic(expected = "empty parameter name")]
    fn pattern_rejects_empty_name() {
        PathPattern::parse("a/{}");
    }
}
