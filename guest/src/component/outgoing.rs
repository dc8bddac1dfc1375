//! [`HttpClient`] over the raw `wasi:http/outgoing-handler` import.
//!
//! One request, step by step: build the outgoing request and its headers, set the connect,
//! first-byte and between-bytes timeouts to the request timeout, hand the request to the
//! host, write and finish the body, then wait for the response and read its body. Waiting
//! polls against a monotonic deadline of the request timeout too, so the whole exchange ends
//! within about that time even if the host ignores the timeouts.
//!
//! The host's `error-code` is mapped exactly: `HTTP-request-denied` is a policy denial whose
//! reason comes from `outbound.denial-reason`; DNS, refused connections and TLS failures mean
//! Kong was not reached; timeouts say whether a connection existed.

#![forbid(unsafe_code)]

use crate::bindings::vault::backend::outbound;
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    self as http, ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse,
    OutgoingBody, OutgoingRequest, RequestOptions,
};
use crate::bindings::wasi::io::poll;
use crate::bindings::wasi::io::streams::StreamError;
use crate::http::{
    HttpClient, HttpRequest, HttpResponse, Method, Scheme, TransportError, MAX_RESPONSE_BYTES,
};

/// Bytes per write; `blocking-write-and-flush` takes at most 4096 at a time.
const WRITE_CHUNK_BYTES: usize = 4096;

/// Bytes asked for per read.
const READ_CHUNK_BYTES: u64 = 64 * 1024;

const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;

/// The `wasi:http` client.
pub struct WasiHttpClient;

/// What one exchange needs to name in its errors.
struct Exchange<'a> {
    url: String,
    timeout_seconds: u64,
    deadline: monotonic_clock::Instant,
    request: &'a HttpRequest,
}

impl HttpClient for WasiHttpClient {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let timeout_nanoseconds = request
            .timeout_seconds
            .saturating_mul(NANOSECONDS_PER_SECOND);
        let exchange = Exchange {
            url: request.url.to_string(),
            timeout_seconds: request.timeout_seconds,
            deadline: monotonic_clock::now().saturating_add(timeout_nanoseconds),
            request,
        };

        let outgoing = exchange.build()?;
        let options = RequestOptions::new();
        // A host may refuse to set a timeout; the deadline below still bounds the call.
        let _ = options.set_connect_timeout(Some(timeout_nanoseconds));
        let _ = options.set_first_byte_timeout(Some(timeout_nanoseconds));
        let _ = options.set_between_bytes_timeout(Some(timeout_nanoseconds));

        let body = outgoing
            .body()
            .map_err(|()| exchange.failed("the request body was already taken".into()))?;
        let future = outgoing_handler::handle(outgoing, Some(options))
            .map_err(|code| exchange.error_code(code, false))?;
        // A failed write means the connection failed, and the response future then holds the
        // host's exact error code, so the write result itself is not needed.
        exchange.write_body(body);

        let response = exchange.wait_for_response(&future)?;
        let status = response.status();
        let body = exchange.read_body(response)?;
        Ok(HttpResponse { status, body })
    }
}

impl Exchange<'_> {
    fn build(&self) -> Result<OutgoingRequest, TransportError> {
        let headers = Fields::new();
        let mut list: Vec<(String, Vec<u8>)> = self
            .request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
            .collect();
        if let Some(body) = &self.request.body {
            list.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        for (name, value) in &list {
            // The value may be the admin token, so the message names only the header.
            headers.append(name, value).map_err(|error| {
                self.failed(format!("the host rejected header {name}: {error:?}"))
            })?;
        }

        let outgoing = OutgoingRequest::new(headers);
        let method = match self.request.method {
            Method::Get => http::Method::Get,
            Method::Post => http::Method::Post,
            Method::Put => http::Method::Put,
            Method::Patch => http::Method::Patch,
            Method::Delete => http::Method::Delete,
        };
        let scheme = match self.request.url.scheme {
            Scheme::Http => http::Scheme::Http,
            Scheme::Https => http::Scheme::Https,
        };
        outgoing
            .set_method(&method)
            .map_err(|()| self.failed("the host rejected the method".into()))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| self.failed("the host rejected the scheme".into()))?;
        outgoing
            .set_authority(Some(&self.request.url.authority))
            .map_err(|()| self.failed("the host rejected the host and port".into()))?;
        outgoing
            .set_path_with_query(Some(&self.request.url.path_and_query))
            .map_err(|()| self.failed("the host rejected the path".into()))?;
        Ok(outgoing)
    }

    fn write_body(&self, body: OutgoingBody) {
        if let Some(bytes) = &self.request.body {
            if let Ok(stream) = body.write() {
                for chunk in bytes.chunks(WRITE_CHUNK_BYTES) {
                    if stream.blocking_write_and_flush(chunk).is_err() {
                        break;
                    }
                }
                // The stream must go before the body is finished.
                drop(stream);
            }
        }
        let _ = OutgoingBody::finish(body, None);
    }

    fn wait_for_response(
        &self,
        future: &FutureIncomingResponse,
    ) -> Result<IncomingResponse, TransportError> {
        loop {
            if let Some(result) = future.get() {
                return match result {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(code)) => Err(self.error_code(code, true)),
                    Err(()) => Err(self.failed("the response was already taken".into())),
                };
            }
            let ready = future.subscribe();
            if !self.wait(&ready) {
                return Err(self.timed_out(true));
            }
        }
    }

    fn read_body(&self, response: IncomingResponse) -> Result<Vec<u8>, TransportError> {
        let incoming = response
            .consume()
            .map_err(|()| self.failed("the response body was already taken".into()))?;
        let stream = incoming
            .stream()
            .map_err(|()| self.failed("the response body stream was already taken".into()))?;

        let mut bytes = Vec::new();
        loop {
            let readable = stream.subscribe();
            if !self.wait(&readable) {
                return Err(self.timed_out(true));
            }
            drop(readable);

            match stream.read(READ_CHUNK_BYTES) {
                Ok(chunk) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(TransportError::TooLarge {
                            url: self.url.clone(),
                            limit_bytes: Some(MAX_RESPONSE_BYTES as u64),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    return Err(match http::http_error_code(&error) {
                        Some(code) => self.error_code(code, true),
                        None => TransportError::ConnectionLost {
                            url: self.url.clone(),
                            detail: error.to_debug_string(),
                        },
                    });
                }
            }
        }

        // The stream must go before the body is finished; trailers are not used.
        drop(stream);
        let _trailers = IncomingBody::finish(incoming);
        Ok(bytes)
    }

    /// Blocks until `pollable` is ready (true) or the deadline passes (false).
    fn wait(&self, pollable: &poll::Pollable) -> bool {
        let timer = monotonic_clock::subscribe_instant(self.deadline);
        let ready = poll::poll(&[pollable, &timer]);
        ready.contains(&0)
    }

    fn timed_out(&self, connected: bool) -> TransportError {
        TransportError::TimedOut {
            url: self.url.clone(),
            timeout_seconds: self.timeout_seconds,
            connected,
        }
    }

    fn failed(&self, detail: String) -> TransportError {
        TransportError::Failed {
            url: self.url.clone(),
            detail,
        }
    }

    /// Maps the host's error code. `sent` tells whether the request had been handed over,
    /// which decides whether an unclassified failure may have reached the server.
    fn error_code(&self, code: ErrorCode, sent: bool) -> TransportError {
        let url = self.url.clone();
        let unreachable = |detail: &str| TransportError::Unreachable {
            url: self.url.clone(),
            detail: detail.to_string(),
        };
        match code {
            ErrorCode::HttpRequestDenied => TransportError::Denied {
                url,
                reason: outbound::denial_reason()
                    .unwrap_or_else(|| "the plugin's outbound policy gave no reason".to_string()),
            },
            ErrorCode::DnsTimeout | ErrorCode::ConnectionTimeout => self.timed_out(false),
            ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => self.timed_out(true),
            ErrorCode::DnsError(payload) => unreachable(&format!(
                "DNS lookup failed{}",
                payload
                    .rcode
                    .map(|rcode| format!(" ({rcode})"))
                    .unwrap_or_default()
            )),
            ErrorCode::DestinationNotFound => unreachable("destination not found"),
            ErrorCode::DestinationUnavailable => unreachable("destination unavailable"),
            ErrorCode::DestinationIpProhibited => unreachable("destination IP address prohibited"),
            ErrorCode::DestinationIpUnroutable => unreachable("destination IP address unroutable"),
            ErrorCode::ConnectionRefused => unreachable("connection refused"),
            ErrorCode::ConnectionLimitReached => unreachable("connection limit reached"),
            ErrorCode::TlsProtocolError => unreachable("TLS protocol error"),
            ErrorCode::TlsCertificateError => {
                unreachable("TLS certificate not trusted for this host")
            }
            ErrorCode::TlsAlertReceived(payload) => unreachable(&format!(
                "TLS alert received{}",
                payload
                    .alert_message
                    .map(|message| format!(": {message}"))
                    .unwrap_or_default()
            )),
            ErrorCode::ConnectionTerminated => TransportError::ConnectionLost {
                url,
                detail: "connection closed before the response was complete".into(),
            },
            ErrorCode::HttpResponseIncomplete => TransportError::ConnectionLost {
                url,
                detail: "incomplete response".into(),
            },
            // The host's payload is its own limit, which the operator may have set below the
            // engine's, so the message names that one.
            ErrorCode::HttpResponseBodySize(limit_bytes) => {
                TransportError::TooLarge { url, limit_bytes }
            }
            other => {
                let detail = match other {
                    ErrorCode::InternalError(Some(message)) => message,
                    other => format!("{other:?}"),
                };
                if sent {
                    TransportError::Failed { url, detail }
                } else {
                    TransportError::Unreachable { url, detail }
                }
            }
        }
    }
}
