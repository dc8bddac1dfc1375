//! Vault's services for one mount, as the runtime hands them to the component.
//!
//! The component imports `storage` and `system-view` (see `wit/backend.wit`). The runtime
//! answers those imports through these traits, so the same runtime runs against Vault's
//! broker channel in production and against [`MemoryStorage`] in tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

/// The mount's storage view. Errors are Vault's (or the host's) message as text, which the
/// component receives unchanged.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads `key`; `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Writes `value` at `key`.
    async fn put(&self, key: &str, value: Vec<u8>, seal_wrap: bool) -> Result<(), String>;

    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), String>;

    /// Lists the immediate children of `prefix`; children with children end in `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String>;
}

/// Facts about the mount and the Vault server. Durations are whole seconds.
#[async_trait]
pub trait SystemView: Send + Sync + 'static {
    async fn default_lease_ttl_seconds(&self) -> Result<u64, String>;
    async fn max_lease_ttl_seconds(&self) -> Result<u64, String>;
    async fn tainted(&self) -> Result<bool, String>;
    async fn local_mount(&self) -> Result<bool, String>;
    async fn replication_state(&self) -> Result<u32, String>;
    async fn vault_version(&self) -> Result<String, String>;
}

/// Everything a call needs from Vault for one mount.
#[derive(Clone)]
pub struct MountServices {
    pub storage: Arc<dyn Storage>,
    pub system_view: Arc<dyn SystemView>,
}

/// Storage in memory, for tests and for registration-time calls that must not touch Vault.
#[derive(Default)]
pub struct MemoryStorage {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    /// Returns a copy of every entry, for assertions.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.entries.lock().expect("storage lock poisoned").clone()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .entries
            .lock()
            .expect("storage lock poisoned")
            .get(key)
            .cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>, _seal_wrap: bool) -> Result<(), String> {
        if key.split('/').any(|segment| segment == "..") {
            return Err("relative paths not supported".to_string());
        }
        self.entries
            .lock()
            .expect("storage lock poisoned")
            .insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.entries
            .lock()
            .expect("storage lock poisoned")
            .remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let entries = self.entries.lock().expect("storage lock poisoned");
        let mut children: Vec<String> = Vec::new();
        for key in entries.keys().filter(|key| key.starts_with(prefix)) {
            let rest = &key[prefix.len()..];
            let child = match rest.find('/') {
                Some(slash) => &rest[..=slash],
                None => rest,
            };
            if children.last().map(String::as_str) != Some(child) {
                children.push(child.to_string());
            }
        }
        Ok(children)
    }
}

/// A system view with fixed answers, for tests and for calls made before Vault's system view
/// is reachable.
#[derive(Clone, Debug)]
pub struct StaticSystemView {
    pub default_lease_ttl_seconds: u64,
    pub max_lease_ttl_seconds: u64,
    pub vault_version: String,
}

impl Default for StaticSystemView {
    /// Vault's own defaults: 768 hours for both TTLs.
    fn default() -> Self {
        Self {
            default_lease_ttl_seconds: 768 * 3600,
            max_lease_ttl_seconds: 768 * 3600,
            vault_version: String::new(),
        }
    }
}

#[async_trait]
impl SystemView for StaticSystemView {
    async fn default_lease_ttl_seconds(&self) -> Result<u64, String> {
        Ok(self.default_lease_ttl_seconds)
    }

    async fn max_lease_ttl_seconds(&self) -> Result<u64, String> {
        Ok(self.max_lease_ttl_seconds)
    }

    async fn tainted(&self) -> Result<bool, String> {
        Ok(false)
    }

    async fn local_mount(&self) -> Result<bool, String> {
        Ok(false)
    }

    async fn replication_state(&self) -> Result<u32, String> {
        Ok(0)
    }

    async fn vault_version(&self) -> Result<String, String> {
        Ok(self.vault_version.clone())
    }
}
