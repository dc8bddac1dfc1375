//! The `wasi:http` hooks of one call: every outbound request of the engine passes here.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use http::uri::Scheme as UriScheme;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::client::{Client, SendError, Sent};
use super::origin::{Origin, OriginError};
use super::policy::{Denial, DeniedBy};

/// Outbound state of one call: the request count and the last denial reason. Shared with
/// the request futures, which may record a denial after the hook returned.
#[derive(Default)]
pub struct CallOutbound {
    requests_sent: AtomicU32,
    last_denial: Mutex<Option<String>>,
}

impl CallOutbound {
    /// Returns the reason of the most recent denial in this call, for `outbound.denial-reason`.
    pub fn denial_reason(&self) -> Option<String> {
        self.last_denial
            .lock()
            .expect("denial lock poisoned")
            .clone()
    }

    fn record(&self, denial: &Denial) {
        tracing::warn!(
            origin = %denial.origin,
            rule = denial.rule.name(),
            reason = %denial,
            "outbound request denied"
        );
        *self.last_denial.lock().expect("denial lock poisoned") = Some(denial.to_string());
    }
}

/// The hooks value that a call's store hands to `wasi:http`.
pub struct OutboundHooks {
    client: Arc<Client>,
    call: Arc<CallOutbound>,
    max_requests: u32,
}

impl OutboundHooks {
    pub fn new(client: Arc<Client>, call: Arc<CallOutbound>, max_requests: u32) -> OutboundHooks {
        OutboundHooks {
            client,
            call,
            max_requests,
        }
    }
}

type ResponseFuture = Box<dyn Future<Output = Result<Sent, Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    /// Accepts every scheme here so that an unsupported one reaches [`Self::send_request`]
    /// and fails as a policy denial with a reason, not as a bare protocol error.
    fn is_supported_scheme(&mut self, _scheme: &UriScheme) -> bool {
        true
    }

    /// Checks the request count and the origin at once, then leaves resolution, the address
    /// checks and the exchange to the returned future.
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_body_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let call = Arc::clone(&self.call);
        let deny = move |denial: Denial| -> ResponseFuture {
            call.record(&denial);
            Box::new(std::future::ready(Err(Error::HttpRequestDenied)))
        };

        let origin = match Origin::from_uri(request.uri()) {
            Ok(origin) => origin,
            Err(OriginError::UnsupportedScheme(scheme)) => {
                let authority = request
                    .uri()
                    .authority()
                    .map_or("", |authority| authority.as_str());
                return deny(Denial {
                    origin: format!("{scheme}://{authority}"),
                    rule: DeniedBy::UnsupportedScheme,
                });
            }
            Err(OriginError::InvalidAuthority(_)) => {
                return Box::new(std::future::ready(Err(Error::HttpRequestUriInvalid)));
            }
        };

        let sent = self.call.requests_sent.fetch_add(1, Ordering::Relaxed);
        if sent >= self.max_requests {
            return deny(Denial {
                origin: origin.to_string(),
                rule: DeniedBy::RequestLimit {
                    limit: self.max_requests,
                },
            });
        }

        let target = match self.client.policy.check_origin(origin) {
            Ok(target) => target,
            Err(denial) => return deny(denial),
        };
        tracing::debug!(origin = %target.origin(), method = %request.method(), "outbound request");

        let client = Arc::clone(&self.client);
        let call = Arc::clone(&self.call);
        Box::new(async move {
            match client.send(target, request, options).await {
                Ok(sent) => Ok(sent),
                Err(SendError::Denied(denial)) => {
                    call.record(&denial);
                    Err(Error::HttpRequestDenied)
                }
                Err(SendError::Failed(error)) => {
                    tracing::debug!(%error, "outbound request failed");
                    Err(error)
                }
            }
        })
    }

    /// Maps hyper's failures to the closest error code; a timeout or a closed connection is
    /// common and logged only at debug.
    fn p2_error_from_hyper(
        &mut self,
        error: &hyper::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

        tracing::debug!(%error, "outbound HTTP error");
        if error.is_timeout() {
            ErrorCode::ConnectionReadTimeout
        } else if error.is_incomplete_message() || error.is_closed() {
            ErrorCode::ConnectionTerminated
        } else {
            ErrorCode::HttpProtocolError
        }
    }

    fn p2_error_from_connect(
        &mut self,
        error: &std::io::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

        tracing::debug!(%error, "outbound connection failed");
        match error.kind() {
            std::io::ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                ErrorCode::ConnectionTerminated
            }
            _ => ErrorCode::ConnectionRefused,
        }
    }

    fn p2_error_from_tls(
        &mut self,
        error: &std::io::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

        tracing::debug!(%error, "outbound TLS handshake failed");
        let certificate = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
        if certificate {
            ErrorCode::TlsCertificateError
        } else {
            ErrorCode::TlsProtocolError
        }
    }
}
