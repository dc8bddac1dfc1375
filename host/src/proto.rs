//! Rust types and gRPC stubs for Vault's plugin protocol, generated at build time from
//! `proto/*.proto`.
//!
//! - [`plugin`]: the plugin framework's broker, controller and stdio services.
//! - [`logical`]: the version service and the server facts of the system view.
//! - [`pb`]: the backend service, and the storage and system view services behind the broker.

#![allow(clippy::all, missing_docs)]

pub mod plugin {
    tonic::include_proto!("plugin");
}

pub mod logical {
    tonic::include_proto!("logical");
}

pub mod pb {
    tonic::include_proto!("pb");

    impl std::fmt::Debug for Secret {
        /// Shows the lease options and hides the internal data, which holds what a later
        /// revoke needs (such as credential ids) and never belongs in a log.
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter
                .debug_struct("Secret")
                .field("lease_options", &self.lease_options)
                .field(
                    "internal_data",
                    &format_args!("<{} bytes>", self.internal_data.len()),
                )
                .field("lease_id", &self.lease_id)
                .finish()
        }
    }
}
