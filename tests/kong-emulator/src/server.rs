//! The two listeners: accept loops, optional TLS, and the HTTP services.
//!
//! An Admin API request is first recorded, then delayed by any added latency, then served by
//! an armed fault if there is one, then checked for the admin token, and only then routed. The
//! proxy listener has no faults, no token and no request log.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::{Admin, AdminRequest};
use crate::errors::ApiError;
use crate::faults::{Fault, Faults};
use crate::options::AdminToken;
use crate::proxy;
use crate::record::{RecordedRequest, RequestLog};

/// State both listeners share.
pub(crate) struct Shared {
    pub(crate) admin: Admin,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    pub(crate) token: Option<AdminToken>,
    pub(crate) ttl_ignored_by_proxy: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Listener {
    Admin,
    Proxy,
}

/// The error a service returns to make hyper close the connection without a response.
#[derive(Debug)]
struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DroppedConnection {}

/// Accepts connections until `shutdown` changes.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    kind: Listener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(?kind, %error, "accept failed, still listening");
                continue;
            }
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, kind, shared).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => serve_connection(stream, kind, shared).await,
                    Err(error) => tracing::debug!(?kind, %error, "tls handshake failed"),
                },
            }
        });
    }
}

async fn serve_connection<S>(stream: S, kind: Listener, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move {
            match kind {
                Listener::Admin => serve_admin(request, &shared).await,
                Listener::Proxy => Ok(serve_proxy(request, &shared).await),
            }
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(?kind, %error, "connection closed with an error");
    }
}

async fn serve_admin(
    request: Request<Incoming>,
    shared: &Shared,
) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    shared.log.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), "admin request");

    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    if let Some(fault) = shared.faults.take() {
        return fault_response(fault, &shared.admin.version_text);
    }

    if let Err(error) = check_token(shared.token.as_ref(), &parts.headers) {
        return Ok(json_response(
            error.status(),
            Some(&error.body()),
            &shared.admin.version_text,
        ));
    }

    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let admin_request = AdminRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        content_type,
        body: &body,
    };
    let reply = shared.admin.handle(&admin_request);
    Ok(json_response(
        reply.status,
        reply.body.as_ref(),
        &shared.admin.version_text,
    ))
}

/// Checks the admin token, with Kong Enterprise's 401 bodies.
fn check_token(token: Option<&AdminToken>, headers: &http::HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    match headers.get(token.header.as_str()) {
        None => Err(ApiError::message(
            401,
            "Invalid credentials. Token or User credentials required",
        )),
        Some(value) if value.as_bytes() == token.value.as_bytes() => Ok(()),
        Some(_) => Err(ApiError::message(401, "Invalid RBAC credentials")),
    }
}

fn fault_response(fault: Fault, version: &str) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let response = match fault {
        Fault::Drop => return Err(DroppedConnection),
        Fault::Status(status) => {
            let message = match status {
                500 => "An unexpected error occurred".to_owned(),
                _ => StatusCode::from_u16(status)
                    .ok()
                    .and_then(|status| status.canonical_reason())
                    .unwrap_or("Injected fault")
                    .to_owned(),
            };
            json_response(
                status,
                Some(&serde_json::json!({ "message": message })),
                version,
            )
        }
        Fault::NonJson => {
            let html =
                "<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>";
            let mut response = Response::new(Full::new(Bytes::from_static(html.as_bytes())));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html"),
            );
            response
        }
        Fault::Oversized(bytes) => {
            let skeleton = r#"{"data":[],"next":null,"padding":""}"#;
            let padding = "x".repeat(bytes.saturating_sub(skeleton.len()));
            let body = format!(r#"{{"data":[],"next":null,"padding":"{padding}"}}"#);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        Fault::Redirect(location) => {
            let body = serde_json::json!({ "message": "Temporary Redirect" });
            let mut response = json_response(307, Some(&body), version);
            if let Ok(location) = HeaderValue::from_str(&location) {
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
            }
            response
        }
    };
    Ok(response)
}

async fn serve_proxy(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // The body is read so that keep-alive connections stay usable; the proxy ignores it.
    let _ = body.collect().await;

    let now_ms = shared.admin.clock.now_ms();
    let reply = {
        let store = shared.admin.lock_store();
        proxy::handle(
            &store,
            now_ms,
            shared.ttl_ignored_by_proxy,
            &parts.headers,
            parts.uri.query(),
        )
    };

    let mut response = json_response(reply.status, Some(&reply.body), &shared.admin.version_text);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Builds a JSON response with the headers Kong adds to Admin API and proxy responses.
fn json_response(
    status: u16,
    body: Option<&serde_json::Value>,
    version: &str,
) -> Response<Full<Bytes>> {
    let bytes = body
        .map(|body| Bytes::from(body.to_string()))
        .unwrap_or_default();
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if body.is_some() {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if let Ok(server) = HeaderValue::from_str(&format!("kong/{version}")) {
        headers.insert(http::header::SERVER, server);
    }
    response
}
