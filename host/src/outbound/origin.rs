//! Origins: the scheme, host and port of an outbound request, and the operator's patterns.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The two schemes the engine may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    /// Returns the port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A host as a request names it: a DNS name (lowercase, without a trailing dot) or an IP
/// address literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses the host part of an authority: `[::1]`, `127.0.0.1` or a name.
    fn parse(text: &str) -> Option<Host> {
        if let Some(inner) = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return inner.parse().ok().map(Host::Ip);
        }
        if let Ok(address) = text.parse::<IpAddr>() {
            return Some(Host::Ip(address));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        valid.then_some(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(address)) => write!(f, "[{address}]"),
            Host::Ip(IpAddr::V4(address)) => write!(f, "{address}"),
        }
    }
}

/// The origin of one outbound request, with the port always explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

/// The reason a request's URL has no origin the policy can judge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("unsupported scheme `{0}`")]
    UnsupportedScheme(String),
    #[error("invalid authority `{0}`")]
    InvalidAuthority(String),
}

impl Origin {
    /// Reads the origin of an absolute request URI. User information (`user@host`) is
    /// rejected, because nothing legitimate sends it and it makes origins harder to read.
    pub fn from_uri(uri: &http::Uri) -> Result<Origin, OriginError> {
        let scheme_text = uri.scheme_str().unwrap_or_default();
        let scheme = Scheme::parse(scheme_text)
            .ok_or_else(|| OriginError::UnsupportedScheme(scheme_text.to_string()))?;
        let authority = uri
            .authority()
            .map(|authority| authority.as_str())
            .unwrap_or_default();
        let invalid = || OriginError::InvalidAuthority(authority.to_string());
        if authority.contains('@') {
            return Err(invalid());
        }
        let parsed = http::uri::Authority::from_str(authority).map_err(|_| invalid())?;
        let host = Host::parse(parsed.host()).ok_or_else(invalid)?;
        let port = match parsed.port() {
            Some(port) => port.as_u16(),
            None if authority.ends_with(':') => return Err(invalid()),
            None => scheme.default_port(),
        };
        Ok(Origin { scheme, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

/// The host part of an allowed origin.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(Host),
    /// `*.example.com`: any name with at least one more label in front of the suffix.
    Subdomains(String),
}

/// One entry of the operator's origin allow-list, such as `https://kong.example.com:8444`
/// or `https://*.kong.example.com`.
///
/// A wildcard matches DNS names only, never an IP literal, and needs a suffix of at least two
/// labels (`*.com` is rejected). It is safe only for a zone the operator controls, because
/// anyone who can add names under it can point the engine at any address. Every address
/// still passes the network rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

impl AllowedOrigin {
    /// Parses `scheme://host[:port]` with an optional trailing `/`; the message names the
    /// entry and the expected form.
    pub fn parse(text: &str) -> Result<AllowedOrigin, String> {
        let invalid = |why: &str| {
            format!("invalid allowed origin `{text}`: {why}; expected scheme://host:port, such as https://kong.example.com:8444")
        };
        let (scheme, rest) = text
            .trim()
            .split_once("://")
            .ok_or_else(|| invalid("no scheme"))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| invalid("the scheme must be http or https"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(invalid("an origin has no path, query or user information"));
        }

        let (host_text, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| invalid("the port must be a number from 1 to 65535"))?;
                if port == 0 {
                    return Err(invalid("the port must be a number from 1 to 65535"));
                }
                (host, port)
            }
            _ => (authority, scheme.default_port()),
        };

        let host = if let Some(suffix) = host_text.strip_prefix("*.") {
            match Host::parse(suffix) {
                Some(Host::Name(name)) if name.contains('.') => HostPattern::Subdomains(name),
                _ => {
                    return Err(invalid(
                        "a wildcard needs a domain of at least two labels after `*.`",
                    ))
                }
            }
        } else {
            HostPattern::Exact(
                Host::parse(host_text)
                    .ok_or_else(|| invalid("the host is not a valid name or IP address"))?,
            )
        };
        Ok(AllowedOrigin { scheme, host, port })
    }

    /// Returns whether this entry allows a request to `origin`.
    pub fn matches(&self, origin: &Origin) -> bool {
        if self.scheme != origin.scheme || self.port != origin.port {
            return false;
        }
        match (&self.host, &origin.host) {
            (HostPattern::Exact(allowed), host) => allowed == host,
            (HostPattern::Subdomains(suffix), Host::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            (HostPattern::Subdomains(_), Host::Ip(_)) => false,
        }
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(host) => {
                write!(f, "{}://{}:{}", self.scheme.as_str(), host, self.port)
            }
            HostPattern::Subdomains(suffix) => {
                write!(f, "{}://*.{}:{}", self.scheme.as_str(), suffix, self.port)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::from_uri(&url.parse().expect("valid URI")).expect("valid origin")
    }

    #[test]
    fn origin_fills_default_ports() {
        assert_eq!(
            origin("http://Kong.Example.com./x").to_string(),
            "http://kong.example.com:80"
        );
        assert_eq!(origin("https://[::1]/").to_string(), "https://[::1]:443");
        assert_eq!(
            origin("http://127.0.0.1:8001").to_string(),
            "http://127.0.0.1:8001"
        );
    }

    #[test]
    fn origin_rejects_user_info_and_schemes() {
        let with_user = Origin::from_uri(&"http://user@kong.test/".parse().unwrap());
        assert_eq!(
            with_user,
            Err(OriginError::InvalidAuthority("user@kong.test".into()))
        );
        let ftp = Origin::from_uri(&"ftp://kong.test/".parse().unwrap());
        assert_eq!(ftp, Err(OriginError::UnsupportedScheme("ftp".into())));
    }

    #[test]
    fn allowed_origin_matches_table() {
        let cases = [
            (
                "https://kong.example.com:8444",
                "https://kong.example.com:8444/consumers",
                true,
            ),
            (
                "https://kong.example.com:8444",
                "https://KONG.example.com:8444",
                true,
            ),
            (
                "https://kong.example.com:8444",
                "http://kong.example.com:8444",
                false,
            ),
            (
                "https://kong.example.com:8444",
                "https://kong.example.com",
                false,
            ),
            (
                "https://kong.example.com",
                "https://kong.example.com:443",
                true,
            ),
            ("http://127.0.0.1:8001", "http://127.0.0.1:8001", true),
            ("http://127.0.0.1:8001", "http://127.0.0.2:8001", false),
            ("http://[::1]:8001/", "http://[::1]:8001", true),
            ("https://*.example.com", "https://kong.example.com", true),
            ("https://*.example.com", "https://a.b.example.com", true),
            ("https://*.example.com", "https://example.com", false),
            ("https://*.example.com", "https://badexample.com", false),
            (
                "https://*.example.com",
                "https://example.com.evil.test",
                false,
            ),
        ];
        for (allowed, url, expected) in cases {
            let pattern = AllowedOrigin::parse(allowed).expect("valid pattern");
            assert_eq!(
                pattern.matches(&origin(url)),
                expected,
                "{allowed} against {url}"
            );
        }
    }

    #[test]
    fn allowed_origin_parse_errors() {
        let cases = [
            ("kong.example.com", "no scheme"),
            ("ftp://kong.example.com", "the scheme must be http or https"),
            (
                "https://kong.example.com/admin",
                "an origin has no path, query or user information",
            ),
            (
                "https://kong.example.com:0",
                "the port must be a number from 1 to 65535",
            ),
            (
                "https://*.com",
                "a wildcard needs a domain of at least two labels after `*.`",
            ),
            (
                "https://*.127.0.0.1",
                "a wildcard needs a domain of at least two labels after `*.`",
            ),
        ];
        for (text, why) in cases {
            let expected = format!(
                "invalid allowed origin `{text}`: {why}; expected scheme://host:port, such as https://kong.example.com:8444"
            );
            assert_eq!(AllowedOrigin::parse(text), Err(expected), "parsing {text}");
        }
    }
}
