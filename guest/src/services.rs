//! What the engine needs from its host, as small traits: Vault's storage and system view, a
//! log, and a wall clock.
//!
//! In the component these are the WIT imports. In native tests they are in-memory fakes, so
//! the engine's logic runs unchanged in both. Errors are the host's or Vault's message as text.

#![forbid(unsafe_code)]

/// The mount's storage in Vault. Keys are relative to the mount and use `/` as separator.
pub trait Storage {
    /// Reads `key`; `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Writes `value` at `key`; with `seal_wrap`, Vault encrypts the entry once more where the
    /// server supports seal wrapping.
    fn put(&self, key: &str, value: &[u8], seal_wrap: bool) -> Result<(), String>;

    /// Deletes `key`; a missing key is not an error.
    fn delete(&self, key: &str) -> Result<(), String>;

    /// Lists the immediate children of `prefix`; a child with children of its own ends in `/`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, String>;
}

/// Facts about the mount, in whole seconds.
pub trait SystemView {
    /// The mount's default lease TTL, or the server's when the mount has none.
    fn default_lease_ttl_seconds(&self) -> Result<u64, String>;

    /// The mount's maximum lease TTL, or the server's when the mount has none.
    fn max_lease_ttl_seconds(&self) -> Result<u64, String>;
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Structured log lines, written into Vault's log. Callers never pass a Kong key, an admin
/// token or a value of a lease's internal data other than ids.
pub trait Log {
    fn write(&self, level: Level, message: &str, fields: &[(&str, &str)]);
}

/// The wall clock.
pub trait Clock {
    /// Whole seconds since the Unix epoch.
    fn now_unix_seconds(&self) -> u64;
}
