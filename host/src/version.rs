//! `logical.PluginVersion/Version`: the plugin's semantic version.
//!
//! Vault requests it at registration: when the operator passes `-version`, the reported
//! version must be the same string (`v0.1.0` is not `0.1.0`), and without `-version` it must
//! parse as a semantic version. The version is the crate version with a `v` prefix, the form
//! Vault's own plugins use.

use tonic::{Request, Response, Status};

use crate::proto::logical::plugin_version_server::{PluginVersion, PluginVersionServer};
use crate::proto::logical::{Empty, VersionReply};

/// The version this plugin reports, such as `v0.1.0`.
pub const PLUGIN_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// The `logical.PluginVersion` service.
pub struct Version;

impl Version {
    pub fn service() -> PluginVersionServer<Self> {
        PluginVersionServer::new(Self)
    }
}

#[tonic::async_trait]
impl PluginVersion for Version {
    async fn version(&self, _request: Request<Empty>) -> Result<Response<VersionReply>, Status> {
        Ok(Response::new(VersionReply {
            plugin_version: PLUGIN_VERSION.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_version_is_v_prefixed_semver() {
        let parts: Vec<&str> = PLUGIN_VERSION.trim_start_matches('v').split('.').collect();

        assert!(PLUGIN_VERSION.starts_with('v'), "version: {PLUGIN_VERSION}");
        assert_eq!(parts.len(), 3, "version: {PLUGIN_VERSION}");
        assert!(
            parts.iter().all(|part| part.parse::<u64>().is_ok()),
            "version: {PLUGIN_VERSION}"
        );
    }
}
