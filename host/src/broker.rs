//! The broker: how the plugin finds Vault's storage and system view.
//!
//! Right after connecting, Vault opens `plugin.GRPCBroker/StartStream` and keeps it open.
//! For each mount it creates a listener that serves `pb.Storage` and `pb.SystemView`,
//! announces it on that stream as a `ConnInfo` with a broker id, and calls
//! `pb.Backend/Setup` with the same id. Vault does both concurrently, so the announcement may
//! arrive before or after Setup starts: [`Broker`] records every announcement by id, and
//! [`Broker::dial`] waits for the one it needs for up to [`ANNOUNCEMENT_TIMEOUT`].
//!
//! The plugin dials the announced socket as TLS client, presenting the certificate it
//! advertised in the handshake and accepting only Vault's, and speaks gRPC on it with the
//! dummy authority `unused`, like Vault's own plugins.
//!
//! The plugin never announces listeners of its own, so it sends nothing on the stream, but it
//! keeps its side open until shutdown: Vault stops its broker when the stream ends.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use crate::controller::Shutdown;
use crate::proto::plugin::grpc_broker_server::{GrpcBroker, GrpcBrokerServer};
use crate::proto::plugin::ConnInfo;

/// How long Setup waits for Vault to announce its broker id; Vault's own plugins wait as long.
pub const ANNOUNCEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting and the TLS handshake to an announced listener may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the plugin could not reach Vault's listener for a broker id.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "Vault did not announce broker id {broker_id} on the broker stream within {} s{}",
        ANNOUNCEMENT_TIMEOUT.as_secs(),
        stream_problem.as_deref().map(|problem| format!(" ({problem})")).unwrap_or_default()
    )]
    NotAnnounced {
        broker_id: u32,
        stream_problem: Option<String>,
    },

    #[error("Vault announced broker id {broker_id} on network {network:?}, but only `unix` and `tcp` are supported")]
    UnsupportedNetwork { broker_id: u32, network: String },

    #[error("cannot connect to Vault's broker listener {network}:{address} for broker id {broker_id}: {reason}")]
    Dial {
        broker_id: u32,
        network: String,
        address: String,
        reason: String,
    },
}

/// Announcements received from Vault, by broker id.
pub struct Broker {
    announcements: Mutex<Announcements>,
    announced: Notify,
    tls: TlsConnector,
    shutdown: Shutdown,
}

#[derive(Default)]
struct Announcements {
    by_id: HashMap<u32, ConnInfo>,
    /// Why the last broker stream ended early, for the error of a Setup that then waits in
    /// vain.
    stream_problem: Option<String>,
}

impl Broker {
    /// A broker that dials with `tls` (the plugin's certificate, Vault's pinned).
    pub fn new(tls: Arc<rustls::ClientConfig>, shutdown: Shutdown) -> Arc<Self> {
        Arc::new(Self {
            announcements: Mutex::new(Announcements::default()),
            announced: Notify::new(),
            tls: TlsConnector::from(tls),
            shutdown,
        })
    }

    /// The `plugin.GRPCBroker` service feeding this broker.
    pub fn service(self: &Arc<Self>) -> GrpcBrokerServer<BrokerService> {
        GrpcBrokerServer::new(BrokerService {
            broker: Arc::clone(self),
        })
    }

    /// Waits for Vault to announce `broker_id`, then connects to that listener and returns
    /// the gRPC channel to it.
    pub async fn dial(&self, broker_id: u32) -> Result<Channel, BrokerError> {
        let announcement = self.wait_for(broker_id).await?;
        let network = announcement.network.clone();
        let address = announcement.address.clone();
        let dial_error = |reason: String| BrokerError::Dial {
            broker_id,
            network: network.clone(),
            address: address.clone(),
            reason,
        };

        if network != "unix" && network != "tcp" {
            return Err(BrokerError::UnsupportedNetwork { broker_id, network });
        }

        let connector = BrokerConnector {
            network: network.clone(),
            address: address.clone(),
            tls: self.tls.clone(),
        };
        // The URI only fills in the HTTP/2 authority; `unused` is what Vault's plugins send.
        let endpoint = Endpoint::from_static("http://unused");
        let connecting = endpoint.connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move { connector.connect().await.map(TokioIo::new) }
        }));

        match tokio::time::timeout(DIAL_TIMEOUT, connecting).await {
            Ok(Ok(channel)) => {
                tracing::debug!(
                    broker_id,
                    network,
                    address,
                    "connected to Vault's broker listener"
                );
                Ok(channel)
            }
            Ok(Err(error)) => Err(dial_error(error_chain(&error))),
            Err(_) => Err(dial_error(format!(
                "timed out after {} s",
                DIAL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Returns the announcement for `broker_id`, waiting for it if it has not arrived yet.
    async fn wait_for(&self, broker_id: u32) -> Result<ConnInfo, BrokerError> {
        let deadline = tokio::time::Instant::now() + ANNOUNCEMENT_TIMEOUT;
        loop {
            // Registering interest before looking avoids missing an announcement that
            // arrives in between.
            let announced = self.announced.notified();
            tokio::pin!(announced);
            announced.as_mut().enable();

            if let Some(announcement) = self.lookup(broker_id) {
                return Ok(announcement);
            }
            if self.shutdown.is_triggered()
                || tokio::time::timeout_at(deadline, announced).await.is_err()
            {
                let stream_problem = self.lock().stream_problem.clone();
                return Err(BrokerError::NotAnnounced {
                    broker_id,
                    stream_problem,
                });
            }
        }
    }

    fn lookup(&self, broker_id: u32) -> Option<ConnInfo> {
        self.lock().by_id.get(&broker_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Announcements> {
        self.announcements
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one message from the broker stream.
    fn record(&self, announcement: ConnInfo) {
        if announcement.knock.is_some() {
            // Knocks belong to the multiplexed broker, which this plugin does not offer.
            tracing::debug!(
                broker_id = announcement.service_id,
                "ignoring a knock on the broker stream"
            );
            return;
        }
        tracing::debug!(
            broker_id = announcement.service_id,
            network = announcement.network,
            address = announcement.address,
            "Vault announced a broker listener"
        );
        self.lock()
            .by_id
            .insert(announcement.service_id, announcement);
        self.announced.notify_waiters();
    }

    /// Reads Vault's announcements until the stream ends.
    async fn read_stream(self: Arc<Self>, mut stream: Streaming<ConnInfo>) {
        let problem = loop {
            match stream.message().await {
                Ok(Some(announcement)) => self.record(announcement),
                Ok(None) => break None,
                Err(status) => {
                    break Some(format!("the broker stream failed: {}", status.message()))
                }
            }
        };

        match &problem {
            Some(problem) if !self.shutdown.is_triggered() => {
                tracing::warn!(
                    problem = problem.as_str(),
                    "stopped reading Vault's broker stream"
                )
            }
            _ => tracing::debug!("Vault closed the broker stream"),
        }
        self.lock().stream_problem =
            Some(problem.unwrap_or_else(|| "Vault closed the broker stream".to_string()));
        self.announced.notify_waiters();
    }
}

/// The `plugin.GRPCBroker` service.
pub struct BrokerService {
    broker: Arc<Broker>,
}

#[tonic::async_trait]
impl GrpcBroker for BrokerService {
    type StartStreamStream = Pin<Box<dyn Stream<Item = Result<ConnInfo, Status>> + Send>>;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        tokio::spawn(Arc::clone(&self.broker).read_stream(request.into_inner()));
        Ok(Response::new(Box::pin(self.broker.shutdown.idle_stream())))
    }
}

/// A byte stream to Vault's listener, unix or TCP.
trait BrokerIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> BrokerIo for T {}

/// Opens TLS connections to one announced listener.
#[derive(Clone)]
struct BrokerConnector {
    network: String,
    address: String,
    tls: TlsConnector,
}

impl BrokerConnector {
    async fn connect(&self) -> std::io::Result<tokio_rustls::client::TlsStream<Box<dyn BrokerIo>>> {
        let stream: Box<dyn BrokerIo> = if self.network == "unix" {
            Box::new(tokio::net::UnixStream::connect(&self.address).await?)
        } else {
            Box::new(tokio::net::TcpStream::connect(&self.address).await?)
        };
        self.tls.connect(crate::tls::server_name(), stream).await
    }
}

/// Formats an error with its causes, which tonic's transport errors keep in `source`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> Arc<Broker> {
        let identity = crate::tls::PluginIdentity::generate().unwrap();
        let pinned =
            crate::tls::PinnedCertificate::from_der(identity.certificate_der().clone()).unwrap();
        Broker::new(
            crate::tls::client_config(&identity, &pinned).unwrap(),
            Shutdown::new(),
        )
    }

    fn announcement(broker_id: u32, network: &str) -> ConnInfo {
        ConnInfo {
            service_id: broker_id,
            network: network.into(),
            address: "/nonexistent/plugin1".into(),
            knock: None,
        }
    }

    #[tokio::test]
    async fn wait_finds_earlier_announcement() {
        let broker = broker();
        broker.record(announcement(7, "unix"));

        let found = broker.wait_for(7).await.expect("announcement is found");

        assert_eq!(found.address, "/nonexistent/plugin1");
    }

    #[tokio::test]
    async fn wait_finds_later_announcement() {
        let broker = broker();
        let waiting = tokio::spawn({
            let broker = Arc::clone(&broker);
            async move { broker.wait_for(3).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;

        broker.record(announcement(2, "unix"));
        broker.record(announcement(3, "unix"));

        let found = waiting.await.unwrap().expect("announcement is found");
        assert_eq!(found.service_id, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_times_out_without_announcement() {
        let broker = broker();
        broker.record(announcement(1, "unix"));

        let error = broker
            .wait_for(2)
            .await
            .expect_err("broker id 2 was never announced");

        assert_eq!(
            error.to_string(),
            "Vault did not announce broker id 2 on the broker stream within 5 s"
        );
    }

    #[tokio::test]
    async fn knock_is_not_an_announcement() {
        let broker = broker();
        let mut knock = announcement(4, "");
        knock.knock = Some(crate::proto::plugin::conn_info::Knock {
            knock: true,
            ack: false,
            error: String::new(),
        });

        broker.record(knock);

        assert!(
            broker.lookup(4).is_none(),
            "a knock was recorded as an announcement"
        );
    }

    #[tokio::test]
    async fn dial_rejects_unknown_network() {
        let broker = broker();
        broker.record(announcement(5, "udp"));

        let error = broker.dial(5).await.expect_err("network udp is accepted");

        assert_eq!(
            error.to_string(),
            "Vault announced broker id 5 on network \"udp\", but only `unix` and `tcp` are supported"
        );
    }

    #[tokio::test]
    async fn dial_reports_missing_socket() {
        let broker = broker();
        broker.record(announcement(6, "unix"));

        let error = broker
            .dial(6)
            .await
            .expect_err("a missing socket is reachable")
            .to_string();

        assert!(
            error.starts_with("cannot connect to Vault's broker listener unix:/nonexistent/plugin1 for broker id 6: "),
            "error: {error}"
        );
    }
}
