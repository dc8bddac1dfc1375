//! Stopping the plugin: `plugin.GRPCController/Shutdown` and the shutdown signal every
//! long-lived part of the server watches.
//!
//! Vault calls Shutdown when it closes a plugin (after `pb.Backend/Cleanup`), waits two
//! seconds for the process to exit and then kills it. The plugin therefore ends its open
//! streams, lets the Shutdown reply go out and exits promptly. The same signal is raised when
//! Vault's connection goes away or the process receives SIGTERM.

use std::future::Future;

use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use crate::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use crate::proto::plugin::Empty;

/// A one-way switch from serving to stopping, shared by everything that must stop.
#[derive(Clone)]
pub struct Shutdown {
    sender: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Self {
            sender: std::sync::Arc::new(sender),
        }
    }

    /// Starts the shutdown; `reason` goes to the log. Later calls do nothing.
    pub fn trigger(&self, reason: &str) {
        let started = self
            .sender
            .send_if_modified(|stopping| !std::mem::replace(stopping, true));
        if started {
            tracing::info!(reason, "plugin shutting down");
        }
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Completes once the shutdown has started.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            // The sender lives as long as any `Shutdown`, and this future owns none, so an
            // error means that every owner is gone. Stopping is then right too.
            let _ = receiver.wait_for(|stopping| *stopping).await;
        }
    }

    /// Returns a response stream that sends nothing and ends when the shutdown starts. The broker
    /// and stdio streams are open for the whole session, and Vault treats their end as the
    /// end of the plugin.
    pub fn idle_stream<T: Send + 'static>(
        &self,
    ) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
        WatchStream::new(self.sender.subscribe())
            .take_while(|stopping| !*stopping)
            .filter_map(|_| None)
    }
}

/// The `plugin.GRPCController` service.
pub struct Controller {
    shutdown: Shutdown,
}

impl Controller {
    pub fn service(shutdown: Shutdown) -> GrpcControllerServer<Self> {
        GrpcControllerServer::new(Self { shutdown })
    }
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.shutdown.trigger("Vault called Shutdown");
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[tokio::test]
    async fn idle_stream_ends_on_shutdown() {
        let shutdown = Shutdown::new();
        let mut stream = Box::pin(shutdown.idle_stream::<u32>());

        let before = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(
            before.is_err(),
            "stream yielded before the shutdown: {before:?}"
        );

        shutdown.trigger("test");
        let after = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert_eq!(
            after.map(|item| item.is_none()),
            Ok(true),
            "stream did not end after the shutdown"
        );
    }

    #[tokio::test]
    async fn triggered_completes_after_trigger() {
        let shutdown = Shutdown::new();
        let waiting = tokio::spawn(shutdown.triggered());

        shutdown.trigger("test");

        let result = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(
            matches!(result, Ok(Ok(()))),
            "triggered() did not complete: {result:?}"
        );
        assert!(shutdown.is_triggered());
    }
}
