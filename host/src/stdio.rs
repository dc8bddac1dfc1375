//! `plugin.GRPCStdio/StreamStdio`: the stream through which Vault would read the plugin's
//! stdout and stderr.
//!
//! Vault opens it right after connecting, discards what arrives and logs a warning ("stdio
//! service not available") when the service is missing. This plugin never writes to stdout
//! after the handshake line and writes its logs straight to stderr, which Vault reads
//! separately, so the stream stays open without data until the plugin shuts down.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::controller::Shutdown;
use crate::proto::plugin::grpc_stdio_server::{GrpcStdio, GrpcStdioServer};
use crate::proto::plugin::StdioData;

/// The `plugin.GRPCStdio` service.
pub struct Stdio {
    shutdown: Shutdown,
}

impl Stdio {
    pub fn service(shutdown: Shutdown) -> GrpcStdioServer<Self> {
        GrpcStdioServer::new(Self { shutdown })
    }
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = Pin<Box<dyn Stream<Item = Result<StdioData, Status>> + Send>>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(self.shutdown.idle_stream())))
    }
}
