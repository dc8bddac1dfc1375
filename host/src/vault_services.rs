//! Vault's storage and system view for one mount, reached over the broker channel.
//!
//! These implement the host's [`Storage`] and [`SystemView`] traits with `pb.Storage` and
//! `pb.SystemView` calls. Vault reports storage failures as text in each reply's `err` field.
//! A gRPC error means that the call did not reach a storage at all, for example at
//! registration, when Vault serves the broker with nothing behind it. Both become the error
//! text the component receives. Durations arrive in nanoseconds and leave in whole seconds.

use async_trait::async_trait;
use tonic::transport::Channel;

use crate::proto::pb::storage_client::StorageClient;
use crate::proto::pb::system_view_client::SystemViewClient;
use crate::proto::pb::{
    Empty, StorageDeleteArgs, StorageEntry, StorageGetArgs, StorageListArgs, StoragePutArgs,
};
use crate::services::{MountServices, Storage, SystemView};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Builds the mount's services on a channel to Vault's broker listener.
pub fn mount_services(channel: Channel) -> MountServices {
    MountServices {
        storage: std::sync::Arc::new(VaultStorage::new(channel.clone())),
        system_view: std::sync::Arc::new(VaultSystemView::new(channel)),
    }
}

/// `pb.Storage` behind the broker.
pub struct VaultStorage {
    client: StorageClient<Channel>,
}

impl VaultStorage {
    pub fn new(channel: Channel) -> Self {
        // Storage entries may be larger than tonic's 4 MiB default; Vault allows 2 GiB.
        let client = StorageClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Self { client }
    }
}

/// Turns a failed call into the text the component receives.
fn call_error(method: &str, status: tonic::Status) -> String {
    let message = status.message();
    let message = if message.is_empty() {
        status.code().description()
    } else {
        message
    };
    tracing::debug!(method, code = ?status.code(), message, "Vault's broker call failed");
    message.to_string()
}

/// Returns `Err(err)` when Vault put an error text in the reply.
fn reply_error(err: String) -> Result<(), String> {
    if err.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

#[async_trait]
impl Storage for VaultStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let request = StorageGetArgs {
            key: key.to_string(),
        };
        let reply = self
            .client
            .clone()
            .get(request)
            .await
            .map_err(|status| call_error("pb.Storage/Get", status))?;
        let reply = reply.into_inner();
        reply_error(reply.err)?;
        Ok(reply.entry.map(|entry| entry.value))
    }

    async fn put(&self, key: &str, value: Vec<u8>, seal_wrap: bool) -> Result<(), String> {
        let entry = StorageEntry {
            key: key.to_string(),
            value,
            seal_wrap,
        };
        let request = StoragePutArgs { entry: Some(entry) };
        let reply = self
            .client
            .clone()
            .put(request)
            .await
            .map_err(|status| call_error("pb.Storage/Put", status))?;
        reply_error(reply.into_inner().err)
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        let request = StorageDeleteArgs {
            key: key.to_string(),
        };
        let reply = self
            .client
            .clone()
            .delete(request)
            .await
            .map_err(|status| call_error("pb.Storage/Delete", status))?;
        reply_error(reply.into_inner().err)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let request = StorageListArgs {
            prefix: prefix.to_string(),
        };
        let reply = self
            .client
            .clone()
            .list(request)
            .await
            .map_err(|status| call_error("pb.Storage/List", status))?;
        let reply = reply.into_inner();
        reply_error(reply.err)?;
        Ok(reply.keys)
    }
}

/// `pb.SystemView` behind the broker.
pub struct VaultSystemView {
    client: SystemViewClient<Channel>,
}

impl VaultSystemView {
    pub fn new(channel: Channel) -> Self {
        let client = SystemViewClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Self { client }
    }
}

/// Whole seconds of a nanosecond duration; negative durations count as 0.
fn whole_seconds(nanoseconds: i64) -> u64 {
    u64::try_from(nanoseconds / NANOS_PER_SECOND).unwrap_or(0)
}

#[async_trait]
impl SystemView for VaultSystemView {
    async fn default_lease_ttl_seconds(&self) -> Result<u64, String> {
        let reply = self
            .client
            .clone()
            .default_lease_ttl(Empty {})
            .await
            .map_err(|status| call_error("pb.SystemView/DefaultLeaseTTL", status))?;
        Ok(whole_seconds(reply.into_inner().ttl_ns))
    }

    async fn max_lease_ttl_seconds(&self) -> Result<u64, String> {
        let reply = self
            .client
            .clone()
            .max_lease_ttl(Empty {})
            .await
            .map_err(|status| call_error("pb.SystemView/MaxLeaseTTL", status))?;
        Ok(whole_seconds(reply.into_inner().ttl_ns))
    }

    async fn tainted(&self) -> Result<bool, String> {
        let reply = self
            .client
            .clone()
            .tainted(Empty {})
            .await
            .map_err(|status| call_error("pb.SystemView/Tainted", status))?;
        Ok(reply.into_inner().tainted)
    }

    async fn local_mount(&self) -> Result<bool, String> {
        let reply = self
            .client
            .clone()
            .local_mount(Empty {})
            .await
            .map_err(|status| call_error("pb.SystemView/LocalMount", status))?;
        Ok(reply.into_inner().local)
    }

    async fn replication_state(&self) -> Result<u32, String> {
        let reply = self
            .client
            .clone()
            .replication_state(Empty {})
            .await
            .map_err(|status| call_error("pb.SystemView/ReplicationState", status))?;
        // The state is a bit set that Vault sends as a signed 32-bit integer.
        Ok(reply.into_inner().state as u32)
    }

    async fn vault_version(&self) -> Result<String, String> {
        let reply = self
            .client
            .clone()
            .plugin_env(Empty {})
            .await
            .map_err(|status| call_error("pb.SystemView/PluginEnv", status))?;
        let reply = reply.into_inner();
        reply_error(reply.err)?;
        Ok(reply
            .plugin_environment
            .map(|environment| environment.vault_version)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_rounds_down() {
        assert_eq!(whole_seconds(1_999_999_999), 1);
        assert_eq!(whole_seconds(2_764_800 * NANOS_PER_SECOND), 2_764_800);
        assert_eq!(whole_seconds(-5), 0);
    }
}
