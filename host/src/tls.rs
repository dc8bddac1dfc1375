//! Mutual TLS between Vault and the plugin, with each side's certificate pinned.
//!
//! Vault generates a self-signed certificate per plugin process and passes it as PEM in
//! `PLUGIN_CLIENT_CERT`; the plugin generates its own and advertises it in the handshake line.
//! Each side then accepts exactly the other's certificate, in both directions:
//!
//! - on the plugin socket the plugin is the TLS server and requires Vault's certificate as
//!   the client certificate;
//! - on the broker socket Vault is the server and the plugin dials it, presenting the same
//!   certificate it advertised and accepting only Vault's.
//!
//! Vault's certificate is ECDSA P-521 and marked as a CA, and Vault signs the handshake with
//! it, so the stock WebPKI verifiers cannot be used (they reject a CA certificate as an end
//! entity) and the crypto provider must verify P-521 (aws-lc-rs does, ring does not). The
//! verifiers here compare the presented certificate byte for byte with the pinned one, check
//! its validity period and verify the handshake signature with the provider's algorithms.
//! ALPN is `h2` on both sides, because Vault's gRPC library rejects connections without it.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig,
    SignatureScheme,
};

/// The name both sides put in their certificates and dial.
pub const SERVER_NAME: &str = "localhost";

/// How long the plugin's certificate is valid: about 30 years, like the certificates of Go's
/// plugin framework, since a plugin process may run for as long as Vault does.
const CERTIFICATE_LIFETIME: time::Duration = time::Duration::hours(262_980);

/// The crypto provider for every TLS connection: aws-lc-rs, which verifies P-521.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The plugin's own certificate and key, generated at start and advertised in the handshake.
pub struct PluginIdentity {
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl PluginIdentity {
    /// Generates a self-signed ECDSA P-256 certificate for `localhost`, usable as TLS server
    /// and TLS client certificate. Vault pins it, so it need not be a CA.
    pub fn generate() -> anyhow::Result<Self> {
        use rcgen::{
            CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };

        let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("cannot generate the plugin's TLS key")?;

        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])
            .context("invalid certificate name")?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, SERVER_NAME);
        name.push(DnType::OrganizationName, "vault-plugin-secrets-kong");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];

        // Starting a little in the past tolerates a Vault clock slightly behind ours.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(30);
        params.not_after = now + CERTIFICATE_LIFETIME;

        let certificate = params
            .self_signed(&key_pair)
            .context("cannot sign the plugin's TLS certificate")?;

        Ok(Self {
            certificate: certificate.der().clone(),
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        })
    }

    /// Uses an existing certificate and PKCS#8 key, such as a test's stand-in for Vault.
    pub fn from_der(
        certificate: CertificateDer<'static>,
        key: PrivatePkcs8KeyDer<'static>,
    ) -> Self {
        Self { certificate, key }
    }

    /// The certificate in DER, as advertised in the handshake line.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.certificate.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
    }
}

/// Why a peer certificate was rejected.
#[derive(thiserror::Error)]
pub enum PinError {
    #[error("the peer's certificate is not the pinned certificate from PLUGIN_CLIENT_CERT")]
    Mismatch,
}

impl std::fmt::Debug for PinError {
    /// The message itself, because rustls shows a rejected certificate's error with `{:?}`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, formatter)
    }
}

/// The one certificate a peer may present, with its validity period.
#[derive(Clone, Debug)]
pub struct PinnedCertificate {
    der: CertificateDer<'static>,
    not_before: i64,
    not_after: i64,
}

impl PinnedCertificate {
    /// Pins the first certificate in `pem` (Vault's `PLUGIN_CLIENT_CERT`).
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .context("PLUGIN_CLIENT_CERT contains no PEM certificate")?;
        Self::from_der(der)
    }

    /// Pins `der`, which must parse as an X.509 certificate.
    pub fn from_der(der: CertificateDer<'static>) -> anyhow::Result<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|error| {
            anyhow::anyhow!("the pinned certificate is not valid X.509: {error}")
        })?;
        let validity = parsed.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        Ok(Self {
            der,
            not_before,
            not_after,
        })
    }

    /// Accepts `presented` only if it is byte-identical to the pinned certificate and valid
    /// at `now`.
    fn check(&self, presented: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        if presented.as_ref() != self.der.as_ref() {
            return Err(
                CertificateError::Other(rustls::OtherError(Arc::new(PinError::Mismatch))).into(),
            );
        }
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < self.not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > self.not_after {
            return Err(CertificateError::Expired.into());
        }
        Ok(())
    }
}

/// Server configuration for the plugin socket: presents `identity`, requires `peer` as the
/// client certificate, speaks HTTP/2.
pub fn server_config(
    identity: &PluginIdentity,
    peer: &PinnedCertificate,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier::new(peer.clone(), &provider));
    let (chain, key) = identity.chain_and_key();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the crypto provider supports no TLS version")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the plugin's TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Client configuration for the broker socket: presents `identity`, accepts only `peer` as
/// the server certificate, speaks HTTP/2.
pub fn client_config(
    identity: &PluginIdentity,
    peer: &PinnedCertificate,
) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier::new(peer.clone(), &provider));
    let (chain, key) = identity.chain_and_key();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the crypto provider supports no TLS version")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .context("the plugin's TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The server name to send when dialing Vault's broker.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("`localhost` is a valid DNS name")
}

/// Verifies a peer (client or server) against one pinned certificate.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: PinnedCertificate,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    fn new(pinned: PinnedCertificate, provider: &CryptoProvider) -> Self {
        Self {
            pinned,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.pinned.check(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name needs no check: the certificate itself is pinned.
        self.pinned.check(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// A certificate like Vault's: P-521, self-signed, marked as a CA.
    fn vault_like_identity() -> PluginIdentity {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

        let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(30);
        params.not_after = now + CERTIFICATE_LIFETIME;
        let certificate = params.self_signed(&key_pair).unwrap();
        PluginIdentity::from_der(
            certificate.der().clone(),
            PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        )
    }

    fn pin(identity: &PluginIdentity) -> PinnedCertificate {
        PinnedCertificate::from_der(identity.certificate_der().clone()).unwrap()
    }

    /// Runs one TLS connection over an in-memory pipe and returns the client's and the
    /// server's results.
    async fn connect(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);

        let server = tokio::spawn(async move {
            let mut stream = TlsAcceptor::from(server)
                .accept(server_io)
                .await
                .map_err(|error| error.to_string())?;
            let mut received = [0u8; 4];
            stream
                .read_exact(&mut received)
                .await
                .map_err(|error| error.to_string())?;
            stream
                .write_all(b"pong")
                .await
                .map_err(|error| error.to_string())?;
            stream.flush().await.map_err(|error| error.to_string())?;
            Ok::<_, String>(
                stream
                    .get_ref()
                    .1
                    .alpn_protocol()
                    .unwrap_or_default()
                    .to_vec(),
            )
        });

        let client = async move {
            let mut stream = TlsConnector::from(client)
                .connect(server_name(), client_io)
                .await
                .map_err(|error| error.to_string())?;
            stream
                .write_all(b"ping")
                .await
                .map_err(|error| error.to_string())?;
            stream.flush().await.map_err(|error| error.to_string())?;
            let mut received = [0u8; 4];
            stream
                .read_exact(&mut received)
                .await
                .map_err(|error| error.to_string())?;
            Ok::<_, String>(
                stream
                    .get_ref()
                    .1
                    .alpn_protocol()
                    .unwrap_or_default()
                    .to_vec(),
            )
        }
        .await;

        (client, server.await.unwrap())
    }

    #[tokio::test]
    async fn tls_accepts_pinned_p521_ca_certificates() {
        let plugin = PluginIdentity::generate().unwrap();
        let vault = vault_like_identity();

        let (client, server) = connect(
            client_config(&vault, &pin(&plugin)).unwrap(),
            server_config(&plugin, &pin(&vault)).unwrap(),
        )
        .await;

        assert_eq!(
            client,
            Ok(b"h2".to_vec()),
            "client side of Vault dialing the plugin"
        );
        assert_eq!(
            server,
            Ok(b"h2".to_vec()),
            "server side of Vault dialing the plugin"
        );

        let (client, server) = connect(
            client_config(&plugin, &pin(&vault)).unwrap(),
            server_config(&vault, &pin(&plugin)).unwrap(),
        )
        .await;

        assert_eq!(
            client,
            Ok(b"h2".to_vec()),
            "client side of the plugin dialing the broker"
        );
        assert_eq!(
            server,
            Ok(b"h2".to_vec()),
            "server side of the plugin dialing the broker"
        );
    }

    #[tokio::test]
    async fn tls_rejects_other_client_certificate() {
        let plugin = PluginIdentity::generate().unwrap();
        let vault = vault_like_identity();
        let stranger = vault_like_identity();

        let (_, server) = connect(
            client_config(&stranger, &pin(&plugin)).unwrap(),
            server_config(&plugin, &pin(&vault)).unwrap(),
        )
        .await;

        let error = server.expect_err("a stranger's certificate is accepted");
        assert!(
            error.contains("not the pinned certificate"),
            "error: {error}"
        );
    }

    #[tokio::test]
    async fn tls_rejects_other_server_certificate() {
        let plugin = PluginIdentity::generate().unwrap();
        let vault = vault_like_identity();
        let stranger = vault_like_identity();

        let (client, _) = connect(
            client_config(&plugin, &pin(&vault)).unwrap(),
            server_config(&stranger, &pin(&plugin)).unwrap(),
        )
        .await;

        let error = client.expect_err("a stranger's server certificate is accepted");
        assert!(
            error.contains("not the pinned certificate"),
            "error: {error}"
        );
    }

    #[test]
    fn pinned_certificate_rejects_expired() {
        let vault = vault_like_identity();
        let pinned = pin(&vault);
        let far_future =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(300 * 365 * 86_400));

        let result = pinned.check(vault.certificate_der(), far_future);

        assert_eq!(result, Err(CertificateError::Expired.into()));
    }

    #[test]
    fn pinned_certificate_parses_pem() {
        let vault = vault_like_identity();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                vault.certificate_der()
            )
        );

        let pinned = PinnedCertificate::from_pem(&pem).unwrap();

        assert_eq!(pinned.der, *vault.certificate_der());
    }
}
