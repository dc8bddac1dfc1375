//! TLS for the Admin API listener, with rustls on the aws-lc-rs provider.
//!
//! The server presents the configured certificate chain and offers HTTP/1.1 over ALPN. With a
//! client CA configured, the handshake fails unless the client presents a certificate that
//! chains to that CA, as nginx does with `ssl_verify_client on`.

use std::io;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::options::TlsOptions;

/// Builds the server configuration, or fails naming the PEM input that is wrong.
pub(crate) fn server_config(options: &TlsOptions) -> io::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let certs = parse_certs(&options.cert_pem, "tls cert_pem")?;
    let key = PrivateKeyDer::from_pem_slice(options.key_pem.as_bytes())
        .map_err(|error| invalid(format!("tls key_pem holds no usable private key: {error}")))?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(format!("tls protocol versions unsupported: {error}")))?;

    let builder = match &options.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for cert in parse_certs(ca_pem, "tls client_ca_pem")? {
                roots.add(cert).map_err(|error| {
                    invalid(format!("tls client_ca_pem is not a usable CA: {error}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| invalid(format!("tls client_ca_pem is not usable: {error}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    let mut config = builder.with_single_cert(certs, key).map_err(|error| {
        invalid(format!(
            "tls cert_pem and key_pem do not form a usable pair: {error}"
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn parse_certs(pem: &str, what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("{what} is not valid PEM: {error}")))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{what} holds no certificate; pass a PEM CERTIFICATE block"
        )));
    }
    Ok(certs)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
