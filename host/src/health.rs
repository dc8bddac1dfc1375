//! `grpc.health.v1.Health`: the standard gRPC health service, reporting service `plugin`.
//!
//! Vault's plugin client checks exactly the service name `plugin` when it pings a plugin. The
//! service is marked serving before the handshake line goes out and not serving once the
//! shutdown starts.

use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::controller::Shutdown;

/// The service name Vault's plugin client checks.
pub const SERVICE_NAME: &str = "plugin";

/// Builds the health service with `plugin` serving until `shutdown` starts.
pub async fn service(shutdown: &Shutdown) -> HealthServer<impl Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;

    let stopping = shutdown.triggered();
    tokio::spawn(report_stop(reporter, stopping));

    service
}

async fn report_stop(reporter: HealthReporter, stopping: impl std::future::Future<Output = ()>) {
    stopping.await;
    reporter
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
}
