//! Outbound HTTP as the engine uses it: one blocking request and response, a small URL
//! parser, and transport failures sorted by what the user should do about them.
//!
//! In the component, [`HttpClient`] is `wasi:http/outgoing-handler`, where the host applies
//! the operator's outbound policy. Messages name the URL but never a header, because headers
//! carry the Kong admin token.

#![forbid(unsafe_code)]

use std::fmt;

use thiserror::Error;

/// The largest response body the engine reads; more is an error, not a truncation.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// HTTP methods the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One outbound request.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    /// Name and value pairs. They may hold the admin token, so `Debug` leaves values out.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Bound on the whole exchange: connecting, the first byte and the body.
    pub timeout_seconds: u64,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        formatter
            .debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.to_string())
            .field("header_names", &header_names)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// A response with its whole body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The failure that kept a response from arriving.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TransportError {
    /// The host's outbound policy blocked the request. `reason` is the host's explanation,
    /// which names the policy and the setting that would allow the request.
    #[error("request to {url} was denied: {reason}")]
    Denied { url: String, reason: String },

    /// No connection was made: DNS failure, connection refused, TLS handshake failure.
    #[error("could not reach {url}: {detail}")]
    Unreachable { url: String, detail: String },

    /// A connection was made but broke before the whole response arrived.
    #[error("connection to {url} was lost: {detail}")]
    ConnectionLost { url: String, detail: String },

    /// Connecting or waiting for the response took longer than the request timeout.
    /// `connected` is true when the request may have reached the server.
    #[error("no response from {url} within {timeout_seconds}s")]
    TimedOut {
        url: String,
        timeout_seconds: u64,
        connected: bool,
    },

    /// The response body passed a size limit: the host's, which the operator sets, or the
    /// engine's own [`MAX_RESPONSE_BYTES`]. `limit_bytes` is `None` when the host stopped the
    /// body without reporting its limit.
    #[error("response from {url} is larger than {}", size_limit_text(.limit_bytes))]
    TooLarge {
        url: String,
        limit_bytes: Option<u64>,
    },

    /// Anything else, such as a malformed response.
    #[error("request to {url} failed: {detail}")]
    Failed { url: String, detail: String },
}

impl TransportError {
    /// Reports whether the server may have received and carried out the request.
    pub fn may_have_been_delivered(&self) -> bool {
        match self {
            Self::Denied { .. } | Self::Unreachable { .. } => false,
            Self::TimedOut { connected, .. } => *connected,
            Self::ConnectionLost { .. } | Self::TooLarge { .. } | Self::Failed { .. } => true,
        }
    }
}

fn size_limit_text(limit_bytes: &Option<u64>) -> String {
    match limit_bytes {
        Some(limit) => format!("{limit} bytes"),
        None => "the plugin's response size limit".to_string(),
    }
}

/// Sends requests. Implementations block until the response body is read or the request's
/// timeout passes.
pub trait HttpClient {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The URL schemes the engine speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// An absolute `http` or `https` URL without user info or fragment, split the way
/// `wasi:http` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Host and optional port, such as `127.0.0.1:8001` or `[::1]:8001`.
    pub authority: String,
    /// Starts with `/`; may hold a query.
    pub path_and_query: String,
}

impl Url {
    /// Parses `text`, or returns what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace or control characters".into());
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("it has no scheme; start it with http:// or https://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(format!("scheme {scheme:?} is not http or https")),
        };
        if rest.contains('#') {
            return Err("it has a fragment (#)".into());
        }

        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        check_authority(authority)?;

        let path_and_query = match path.strip_prefix('?') {
            Some(query) => format!("/?{query}"),
            None if path.is_empty() => "/".to_string(),
            None => path.to_string(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path_and_query,
        })
    }

    /// This URL with `suffix` (which starts with `/`) appended to its path.
    pub fn join(&self, suffix: &str) -> Self {
        let base = self.path_and_query.trim_end_matches('/');
        Self {
            scheme: self.scheme,
            authority: self.authority.clone(),
            path_and_query: format!("{base}{suffix}"),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(
            formatter,
            "{scheme}://{}{}",
            self.authority, self.path_and_query
        )
    }
}

fn check_authority(authority: &str) -> Result<(), String> {
    if authority.contains('@') {
        return Err("it contains user info (user@); set the admin token in token instead".into());
    }

    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("its IPv6 address has no closing ]")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("text follows its IPv6 address")?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };

    if host.is_empty() {
        return Err("it has no host".into());
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("port {port:?} is not a number from 1 to 65535")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parse_accepts_table() {
        let cases = [
            ("http://127.0.0.1:8001", Scheme::Http, "127.0.0.1:8001", "/"),
            (
                "https://kong.example:8444/",
                Scheme::Https,
                "kong.example:8444",
                "/",
            ),
            ("HTTP://kong", Scheme::Http, "kong", "/"),
            (
                "http://[::1]:8001/admin",
                Scheme::Http,
                "[::1]:8001",
                "/admin",
            ),
            ("http://[::1]", Scheme::Http, "[::1]", "/"),
            ("http://kong?x=1", Scheme::Http, "kong", "/?x=1"),
        ];
        for (text, scheme, authority, path) in cases {
            let url = Url::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(url.scheme, scheme, "scheme of {text}");
            assert_eq!(url.authority, authority, "authority of {text}");
            assert_eq!(url.path_and_query, path, "path of {text}");
        }
    }

    #[test]
    fn url_parse_rejects_table() {
        let cases = [
            (
                "kong:8001",
                "it has no scheme; start it with http:// or https://",
            ),
            ("ftp://kong", "scheme \"ftp\" is not http or https"),
            ("http://", "it has no host"),
            ("http://:8001", "it has no host"),
            (
                "http://kong:0",
                "port \"0\" is not a number from 1 to 65535",
            ),
            (
                "http://kong:99999",
                "port \"99999\" is not a number from 1 to 65535",
            ),
            (
                "http://kong:+80",
                "port \"+80\" is not a number from 1 to 65535",
            ),
            ("http://kong:", "port \"\" is not a number from 1 to 65535"),
            (
                "http://admin:secret@kong",
                "it contains user info (user@); set the admin token in token instead",
            ),
            ("http://kong/#top", "it has a fragment (#)"),
            (
                "http://kong /x",
                "it contains whitespace or control characters",
            ),
            ("http://[::1", "its IPv6 address has no closing ]"),
            ("http://[::1]x", "text follows its IPv6 address"),
        ];
        for (text, reason) in cases {
            assert_eq!(Url::parse(text), Err(reason.to_string()), "parse of {text}");
        }
    }

    #[test]
    fn url_join_and_display() {
        let base = Url::parse("http://kong:8001/admin/").unwrap();
        let joined = base.join("/consumers/a%20b/key-auth");
        assert_eq!(
            joined.to_string(),
            "http://kong:8001/admin/consumers/a%20b/key-auth"
        );

        let root = Url::parse("https://kong").unwrap();
        assert_eq!(
            root.join("/consumers").to_string(),
            "https://kong/consumers"
        );
    }

    #[test]
    fn request_debug_hides_header_values() {
        let request = HttpRequest {
            method: Method::Post,
            url: Url::parse("http://kong").unwrap(),
            headers: vec![("kong-admin-token".into(), "s3cr3t".into())],
            body: None,
            timeout_seconds: 10,
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("s3cr3t"), "debug output: {debug}");
        assert!(debug.contains("kong-admin-token"), "debug output: {debug}");
    }

    #[test]
    fn too_large_names_limit_it_passed() {
        let host_limit = TransportError::TooLarge {
            url: "http://kong/consumers".into(),
            limit_bytes: Some(1024),
        };
        let unreported = TransportError::TooLarge {
            url: "http://kong/consumers".into(),
            limit_bytes: None,
        };

        assert_eq!(
            host_limit.to_string(),
            "response from http://kong/consumers is larger than 1024 bytes"
        );
        assert_eq!(
            unreported.to_string(),
            "response from http://kong/consumers is larger than the plugin's response size limit"
        );
    }
}
