//! https origins: a loopback TLS server with a certificate from a test certificate authority,
//! trusted through `--outbound-ca-file` and rejected without it.

mod sandbox_support;

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sandbox_support::{call, hostile_runtime, settings};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A TLS server on 127.0.0.1 for the name `tls.test`, which sends `secure` for every request.
struct TlsServer {
    port: u16,
    ca_file: std::path::PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

async fn start_tls_server(test: &str) -> TlsServer {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["tls.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();

    let ca_file =
        std::env::temp_dir().join(format!("sandbox-tls-{test}-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure",
                    )
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    TlsServer {
        port,
        ca_file,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origin_with_operator_ca() {
    let server = start_tls_server("trusted").await;
    let ca = format!("--outbound-ca-file={}", server.ca_file.display());
    let mut settings = settings(&[&ca]);
    settings
        .static_hosts
        .insert("tls.test".to_string(), vec!["127.0.0.1".parse().unwrap()]);
    let runtime = hostile_runtime(&settings);

    let url = format!("https://tls.test:{}/ok", server.port);
    let data = call(&runtime, "fetch", json!({ "url": url }))
        .await
        .expect("fetch call");
    assert_eq!(data["status"], json!(200), "{data}");
    assert_eq!(data["body"], json!("secure"), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origin_untrusted_is_tls_error() {
    let server = start_tls_server("untrusted").await;
    let mut settings = settings(&[]);
    settings
        .static_hosts
        .insert("tls.test".to_string(), vec!["127.0.0.1".parse().unwrap()]);
    let runtime = hostile_runtime(&settings);

    let url = format!("https://tls.test:{}/ok", server.port);
    let data = call(&runtime, "fetch", json!({ "url": url }))
        .await
        .expect("fetch call");
    assert_eq!(data["error"], json!("TlsCertificateError"), "{data}");
}

#[test]
fn missing_ca_file_fails_startup() {
    let settings = settings(&["--outbound-ca-file=/nonexistent/ca.pem"]);
    let error = vault_plugin_secrets_kong::runtime::Runtime::from_component_bytes(
        sandbox_support::HOSTILE_GUEST,
        &settings,
    )
    .err()
    .expect("a missing CA file is an error");
    assert_eq!(
        error.to_string(),
        "failed to read --outbound-ca-file /nonexistent/ca.pem"
    );
}
