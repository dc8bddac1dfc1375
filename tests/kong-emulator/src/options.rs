//! Start options: how the emulated Kong node is configured.

/// Configuration of one emulated Kong node.
///
/// # Defaults
/// - no admin token (like Kong OSS, whose Admin API has no authentication)
/// - only the `default` workspace
/// - a database (Postgres) rather than DB-less mode
/// - plain HTTP on both listeners
/// - version `3.9.1`
/// - port 0 (an ephemeral port) for both listeners
/// - the proxy rejects expired keys, as data planes do from Kong 3.5.0 on
#[derive(Clone, Debug)]
pub struct Options {
    /// Admin token that every Admin API request must carry, or `None` for no authentication.
    pub admin_token: Option<AdminToken>,
    /// Workspaces besides `default`, reachable as a path prefix (`/{workspace}/consumers`).
    pub workspaces: Vec<String>,
    /// DB-less mode: every Admin API write is rejected with 405 and Kong's code 12 error.
    pub db_less: bool,
    /// TLS for the Admin API listener. The proxy listener stays plain HTTP.
    pub tls: Option<TlsOptions>,
    /// Version that `GET /` reports. From 3.3 on, consumers carry `updated_at`.
    pub version: String,
    /// Admin API port on 127.0.0.1; 0 picks a free port.
    pub admin_port: u16,
    /// Proxy port on 127.0.0.1; 0 picks a free port.
    pub proxy_port: u16,
    /// Makes the proxy accept expired keys that were not deleted, as DB-less and hybrid data
    /// planes before Kong 3.5.0 did, so a test can model such a data plane.
    pub ttl_ignored_by_proxy: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin_token: None,
            workspaces: Vec::new(),
            db_less: false,
            tls: None,
            version: "3.9.1".to_owned(),
            admin_port: 0,
            proxy_port: 0,
            ttl_ignored_by_proxy: false,
        }
    }
}

/// The header that carries the Admin API token and the token it must contain.
///
/// Kong Enterprise names the header with `rbac_auth_header`, which defaults to `Kong-Admin-Token`.
#[derive(Clone)]
pub struct AdminToken {
    /// Header name, matched case-insensitively.
    pub header: String,
    /// Token value, compared exactly.
    pub value: String,
}

impl AdminToken {
    /// Creates a token carried in `Kong-Admin-Token`, Kong Enterprise's default header.
    pub fn new(value: impl Into<String>) -> Self {
        AdminToken {
            header: "Kong-Admin-Token".to_owned(),
            value: value.into(),
        }
    }
}

impl std::fmt::Debug for AdminToken {
    // The token is a credential, so it never appears in debug output or logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("header", &self.header)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Certificate material for the Admin API TLS listener, all in PEM.
#[derive(Clone)]
pub struct TlsOptions {
    /// Server certificate chain, leaf first.
    pub cert_pem: String,
    /// Private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// CA certificates for client certificates. When set, a client must present a certificate
    /// that chains to one of them, as with nginx's `ssl_verify_client on`.
    pub client_ca_pem: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    // The private key never appears in debug output or logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("client_ca_pem", &self.client_ca_pem)
            .finish()
    }
}
