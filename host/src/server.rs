//! The gRPC server on the plugin socket: TLS accepted here, HTTP/2 and gRPC by tonic.
//!
//! Each accepted connection does its TLS handshake in its own task, so a slow or failed
//! handshake never delays the next connection. A failed one is logged and dropped. Vault
//! keeps one connection open for the life of the plugin. When the last connection closes,
//! nobody is left to call the plugin (a restarted Vault starts a new process), so the plugin
//! shuts down instead of lingering.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::controller::Shutdown;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener`, completes their TLS handshake with `tls`, and yields
/// the encrypted streams for tonic's `serve_with_incoming`.
pub fn accept_tls(
    listener: UnixListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: Shutdown,
) -> ReceiverStream<io::Result<TlsConnection>> {
    let (sender, receiver) = mpsc::channel(16);
    let acceptor = TlsAcceptor::from(tls);
    let open = Arc::new(AtomicUsize::new(0));

    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Running out of file descriptors is the usual cause; pausing lets
                        // open connections finish instead of spinning.
                        tracing::warn!(error = %error, "cannot accept a connection on the plugin socket");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.triggered() => return,
            };
            tokio::spawn(handshake(
                stream,
                acceptor.clone(),
                sender.clone(),
                Arc::clone(&open),
                shutdown.clone(),
            ));
        }
    });

    ReceiverStream::new(receiver)
}

async fn handshake(
    stream: UnixStream,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<io::Result<TlsConnection>>,
    open: Arc<AtomicUsize>,
    shutdown: Shutdown,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            open.fetch_add(1, Ordering::SeqCst);
            tracing::debug!("Vault connected to the plugin socket");
            let connection = TlsConnection {
                stream,
                _guard: ConnectionGuard { open, shutdown },
            };
            // The receiver is gone only when the server has stopped.
            let _ = sender.send(Ok(connection)).await;
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "rejected a connection on the plugin socket: TLS handshake failed")
        }
        Err(_) => tracing::warn!(
            timeout_seconds = HANDSHAKE_TIMEOUT.as_secs(),
            "rejected a connection on the plugin socket: TLS handshake timed out"
        ),
    }
}

/// Counts open connections and starts the shutdown when the last one closes.
struct ConnectionGuard {
    open: Arc<AtomicUsize>,
    shutdown: Shutdown,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shutdown
                .trigger("Vault closed its connection to the plugin");
        }
    }
}

/// A TLS connection from Vault, as tonic serves it.
pub struct TlsConnection {
    stream: TlsStream<UnixStream>,
    _guard: ConnectionGuard,
}

impl Connected for TlsConnection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
