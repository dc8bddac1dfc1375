//! The HTTP/1.1 client that sends the engine's requests once the origin is allowed.
//!
//! It resolves the host itself, checks every address, and connects only to checked
//! addresses, so a name cannot resolve to one address for the check and another for the
//! connection. It follows no redirect (a 3xx reaches the engine as it is), clamps the
//! engine's timeouts to the operator's maximums and stops a response body at the byte cap.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::origin::{Host, Scheme};
use super::policy::{AllowedAddress, AllowedTarget, Denial, Policy};
use crate::settings::Settings;

/// The operator's maximums for one request, and the byte cap of a response body.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    pub response_body_bytes: u64,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Limits {
        Limits {
            connect_timeout: settings.max_connect_timeout,
            first_byte_timeout: settings.max_first_byte_timeout,
            between_bytes_timeout: settings.max_between_bytes_timeout,
            response_body_bytes: settings.max_response_body_bytes,
        }
    }

    /// Caps each timeout the engine requested at the operator's maximum.
    fn clamp(&self, options: Option<RequestOptions>) -> Limits {
        let options = options.unwrap_or_default();
        let pick = |requested: Option<Duration>, max: Duration| {
            requested.map_or(max, |value| value.min(max))
        };
        Limits {
            connect_timeout: pick(options.connect_timeout, self.connect_timeout),
            first_byte_timeout: pick(options.first_byte_timeout, self.first_byte_timeout),
            between_bytes_timeout: pick(options.between_bytes_timeout, self.between_bytes_timeout),
            response_body_bytes: self.response_body_bytes,
        }
    }
}

/// Everything a request needs besides the request itself, shared by all calls.
pub struct Client {
    pub policy: Policy,
    pub limits: Limits,
    pub tls: tokio_rustls::TlsConnector,
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
}

/// The failure of a request that the policy allowed by origin.
pub enum SendError {
    /// A resolved address is in a denied network.
    Denied(Denial),
    /// A network or protocol failure, as the engine will see it.
    Failed(Error),
}

impl From<Error> for SendError {
    fn from(error: Error) -> Self {
        SendError::Failed(error)
    }
}

/// A response whose body is capped, and the future that drives the connection.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl Client {
    /// Resolves, checks, connects and sends `request` to `target`.
    pub async fn send(
        self: Arc<Self>,
        target: AllowedTarget,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, SendError> {
        let limits = self.limits.clamp(options);
        let deadline = Instant::now() + limits.connect_timeout;

        let addresses = tokio::time::timeout_at(deadline, self.resolve(&target))
            .await
            .map_err(|_| Error::DnsTimeout)??;
        let allowed = addresses
            .into_iter()
            .map(|address| self.policy.check_address(&target, address))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SendError::Denied)?;

        let stream = tokio::time::timeout_at(deadline, connect(&allowed, target.origin().port))
            .await
            .map_err(|_| Error::ConnectionTimeout)??;

        // The request goes out in origin form (`/path?query`), with `Host` set by the host
        // from the checked authority; the engine cannot set `Host` itself.
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_string();
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        let authority = host_header(&target);
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&authority).map_err(|_| Error::HttpRequestUriInvalid)?,
        );

        let (mut sender, connection) = match target.origin().scheme {
            Scheme::Http => tokio::time::timeout_at(deadline, handshake(stream))
                .await
                .map_err(|_| Error::ConnectionTimeout)??,
            Scheme::Https => {
                let name = server_name(&target.origin().host)?;
                let tls = tokio::time::timeout_at(deadline, self.tls.connect(name, stream))
                    .await
                    .map_err(|_| Error::ConnectionTimeout)?
                    .map_err(Error::Tls)?;
                tokio::time::timeout_at(deadline, handshake(tls))
                    .await
                    .map_err(|_| Error::ConnectionTimeout)??
            }
        };

        // The connection future must run while the request waits for its response; after
        // that, the caller drives it until the body is read or dropped.
        let mut connection = Box::pin(connection);
        let mut connection_closed = false;
        let response = sender.send_request(request);
        tokio::pin!(response);
        let first_byte = tokio::time::sleep(limits.first_byte_timeout);
        tokio::pin!(first_byte);
        let response = loop {
            tokio::select! {
                result = &mut response => break result.map_err(Error::from)?,
                result = &mut connection, if !connection_closed => {
                    // A clean close leaves the response future to report why it ended.
                    result.map_err(Error::from)?;
                    connection_closed = true;
                }
                () = &mut first_byte => return Err(Error::ConnectionReadTimeout.into()),
            }
        };

        // Both here and in the body, the error's payload is the operator's cap, which is the
        // number a user's error message needs.
        if let Some(length) = declared_length(&response) {
            if length > limits.response_body_bytes {
                return Err(Error::HttpResponseBodySize(Some(limits.response_body_bytes)).into());
            }
        }
        let response = response.map(|incoming| CappedBody::new(incoming, &limits).boxed_unsync());
        let connection = async move {
            if connection_closed {
                return Ok(());
            }
            connection.await.map_err(Error::from)
        };
        Ok((response, Box::new(connection)))
    }

    /// Returns the addresses of the target's host: the literal, the static table's entry, or
    /// what DNS returns.
    async fn resolve(&self, target: &AllowedTarget) -> Result<Vec<IpAddr>, Error> {
        let name = match &target.origin().host {
            Host::Ip(address) => return Ok(vec![*address]),
            Host::Name(name) => name,
        };
        if let Some(addresses) = self.static_hosts.get(name) {
            return Ok(addresses.clone());
        }
        let found = tokio::net::lookup_host((name.as_str(), target.origin().port))
            .await
            .map_err(|error| Error::DnsError {
                rcode: Some(error.to_string()),
                info_code: None,
            })?;
        let mut addresses: Vec<IpAddr> = Vec::new();
        for address in found.map(|socket| socket.ip()) {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        if addresses.is_empty() {
            return Err(Error::DestinationNotFound);
        }
        Ok(addresses)
    }
}

/// Connects to the first checked address that accepts.
async fn connect(addresses: &[AllowedAddress], port: u16) -> Result<TcpStream, Error> {
    let mut last_error = Error::DestinationNotFound;
    for allowed in addresses {
        match TcpStream::connect(SocketAddr::new(allowed.address(), port)).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last_error = Error::Connect(error),
        }
    }
    Err(last_error)
}

type Handshake = (
    hyper::client::conn::http1::SendRequest<WasiBody>,
    hyper::client::conn::http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>,
);

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T> Stream for T where T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

async fn handshake(stream: impl Stream) -> Result<Handshake, Error> {
    let stream: Box<dyn Stream> = Box::new(stream);
    Ok(hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?)
}

/// Formats the `Host` header value: the host, and the port unless it is the scheme's default.
fn host_header(target: &AllowedTarget) -> String {
    let origin = target.origin();
    if origin.port == origin.scheme.default_port() {
        origin.host.to_string()
    } else {
        format!("{}:{}", origin.host, origin.port)
    }
}

fn server_name(host: &Host) -> Result<rustls_pki_types::ServerName<'static>, Error> {
    match host {
        Host::Ip(address) => Ok(rustls_pki_types::ServerName::IpAddress((*address).into())),
        Host::Name(name) => {
            rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| Error::DnsError {
                rcode: Some("invalid DNS name".into()),
                info_code: None,
            })
        }
    }
}

fn declared_length<B>(response: &http::Response<B>) -> Option<u64> {
    response
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A response body that fails once it exceeds the byte cap or stays silent longer than the
/// between-bytes timeout.
///
/// NOTE: wasmtime-wasi-http 48 hands an error raised while the component reads a body to the
/// component as `internal-error` carrying the error's text ("connection read timeout", "HTTP
/// response body size exceeds limit: N bytes"), not as the matching error code.
struct CappedBody {
    incoming: Incoming,
    received: u64,
    max_bytes: u64,
    between_bytes: Duration,
    silence: Pin<Box<Sleep>>,
}

impl CappedBody {
    fn new(incoming: Incoming, limits: &Limits) -> CappedBody {
        CappedBody {
            incoming,
            received: 0,
            max_bytes: limits.response_body_bytes,
            between_bytes: limits.between_bytes_timeout,
            silence: Box::pin(tokio::time::sleep(limits.between_bytes_timeout)),
        }
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.max_bytes {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                            this.max_bytes,
                        )))));
                    }
                }
                let next = Instant::now() + this.between_bytes;
                this.silence.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Error::from(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.silence.as_mut().poll(context) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// Builds the TLS client configuration: the system trust store plus the operator's CA file,
/// with aws-lc-rs as the crypto provider so the process needs no default provider.
pub fn tls_connector(settings: &Settings) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use anyhow::Context as _;

    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for certificate in native.certs {
        // Unusable entries in the system store are skipped, as browsers skip them.
        let _ = roots.add(certificate);
    }
    if let Some(path) = &settings.outbound_ca_file {
        use rustls_pki_types::pem::PemObject;
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .with_context(|| format!("failed to read --outbound-ca-file {}", path.display()))?;
        for certificate in certificates {
            let certificate = certificate.with_context(|| {
                format!(
                    "invalid certificate in --outbound-ca-file {}",
                    path.display()
                )
            })?;
            roots.add(certificate).with_context(|| {
                format!(
                    "unusable certificate in --outbound-ca-file {}",
                    path.display()
                )
            })?;
        }
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("failed to configure TLS for outbound requests")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
