//! Test doubles for native unit tests: in-memory storage, a settable system view, a recording
//! log, a manual clock, a fake Kong, and [`TestBackend`], which wires them to the engine.
//!
//! Time is manual: nothing sleeps, and a test moves the clock that both the engine and the
//! fake Kong read.

mod fake_kong;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

pub use fake_kong::FakeKong;

use crate::framework::{Error, Operation, Request, Response};
use crate::kong::config::AccessConfig;
use crate::kong::{self, Env};
use crate::services::{Clock, Level, Log, Storage, SystemView};

/// Seconds since the Unix epoch at which every test starts.
pub const START_TIME: u64 = 1_700_000_000;

/// Vault's default for both lease TTLs: 768 hours.
const VAULT_DEFAULT_TTL_SECONDS: u64 = 768 * 3600;

/// Storage in memory that remembers whether each entry was seal-wrapped.
#[derive(Default)]
pub struct MemoryStorage {
    entries: RefCell<BTreeMap<String, (Vec<u8>, bool)>>,
}

impl MemoryStorage {
    /// Stores raw bytes, as another writer (such as the older Go plugin) would have.
    pub fn insert(&self, key: &str, value: &[u8]) {
        self.entries
            .borrow_mut()
            .insert(key.to_string(), (value.to_vec(), false));
    }

    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }

    /// Reports whether `key` was written seal-wrapped; `None` when it does not exist.
    pub fn seal_wrapped(&self, key: &str) -> Option<bool> {
        self.entries.borrow().get(key).map(|(_, wrapped)| *wrapped)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .entries
            .borrow()
            .get(key)
            .map(|(value, _)| value.clone()))
    }

    fn put(&self, key: &str, value: &[u8], seal_wrap: bool) -> Result<(), String> {
        if key.split('/').any(|segment| segment == "..") {
            return Err(format!("invalid key {key:?}: relative paths not supported"));
        }
        self.entries
            .borrow_mut()
            .insert(key.to_string(), (value.to_vec(), seal_wrap));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut children: Vec<String> = Vec::new();
        for key in self.entries.borrow().keys() {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
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

/// A system view whose TTLs a test sets.
pub struct FakeSystemView {
    ttls: Cell<(u64, u64)>,
}

impl Default for FakeSystemView {
    fn default() -> Self {
        Self {
            ttls: Cell::new((VAULT_DEFAULT_TTL_SECONDS, VAULT_DEFAULT_TTL_SECONDS)),
        }
    }
}

impl FakeSystemView {
    pub fn set(&self, default_seconds: u64, max_seconds: u64) {
        self.ttls.set((default_seconds, max_seconds));
    }
}

impl SystemView for FakeSystemView {
    fn default_lease_ttl_seconds(&self) -> Result<u64, String> {
        Ok(self.ttls.get().0)
    }

    fn max_lease_ttl_seconds(&self) -> Result<u64, String> {
        Ok(self.ttls.get().1)
    }
}

/// One recorded log line: level, message and fields.
pub type LogLine = (String, String, Vec<(String, String)>);

/// A log that keeps every line for assertions.
#[derive(Default)]
pub struct RecordingLog {
    lines: RefCell<Vec<LogLine>>,
}

impl RecordingLog {
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.borrow().clone()
    }

    pub fn messages(&self) -> Vec<String> {
        self.lines
            .borrow()
            .iter()
            .map(|(_, message, _)| message.clone())
            .collect()
    }

    /// Returns the fields of the first line with `message`.
    pub fn find(&self, message: &str) -> Option<Vec<(String, String)>> {
        self.lines
            .borrow()
            .iter()
            .find(|(_, candidate, _)| candidate == message)
            .map(|(_, _, fields)| fields.clone())
    }

    /// Fails when any message, field name or field value contains `secret`.
    pub fn assert_never_contains(&self, secret: &str) {
        for line in self.lines.borrow().iter() {
            let (_, message, fields) = line;
            let leaked = message.contains(secret)
                || fields
                    .iter()
                    .any(|(name, value)| name.contains(secret) || value.contains(secret));
            assert!(!leaked, "log line holds {secret:?}: {line:?}");
        }
    }
}

impl Log for RecordingLog {
    fn write(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.lines.borrow_mut().push((
            level.to_string(),
            message.to_string(),
            fields
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        ));
    }
}

/// A clock that moves only when a test moves it. Clones share the time.
#[derive(Clone)]
pub struct ManualClock {
    now: Rc<Cell<u64>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            now: Rc::new(Cell::new(START_TIME)),
        }
    }
}

impl ManualClock {
    pub fn now(&self) -> u64 {
        self.now.get()
    }

    pub fn advance(&self, seconds: u64) {
        self.now.set(self.now.get() + seconds);
    }
}

impl Clock for ManualClock {
    fn now_unix_seconds(&self) -> u64 {
        self.now.get()
    }
}

/// The engine on test doubles.
pub struct TestBackend {
    pub storage: MemoryStorage,
    pub system_view: FakeSystemView,
    pub log: RecordingLog,
    pub clock: ManualClock,
    pub kong: FakeKong,
}

impl TestBackend {
    pub fn new() -> Self {
        let clock = ManualClock::default();
        Self {
            storage: MemoryStorage::default(),
            system_view: FakeSystemView::default(),
            log: RecordingLog::default(),
            kong: FakeKong::new(clock.clone()),
            clock,
        }
    }

    pub fn env(&self) -> Env<'_> {
        Env {
            storage: &self.storage,
            system_view: &self.system_view,
            log: &self.log,
            http: &self.kong,
            clock: &self.clock,
        }
    }

    /// Sends one request to the engine.
    pub fn call(&self, request: Request) -> Result<Option<Response>, Error> {
        kong::backend().handle_request(&self.env(), &request)
    }

    /// Sends one request that must succeed.
    pub fn ok(&self, request: Request) -> Option<Response> {
        let label = format!("{} {:?}", request.operation.name(), request.path);
        self.call(request)
            .unwrap_or_else(|error| panic!("{label} failed: {error:?}"))
    }

    /// Runs the existence check for a write to `path`.
    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        let request = Request::new(Operation::Update, path);
        kong::backend()
            .handle_existence_check(&self.env(), &request)
            .map(|existence| {
                assert!(existence.check_found, "{path} has no existence check");
                existence.exists
            })
    }

    pub fn stored_config(&self) -> Option<AccessConfig> {
        kong::config::load(&self.env()).expect("config loads")
    }
}

/// Builders for requests.
pub mod request {
    use serde_json::Value;

    use crate::framework::{Operation, Request, Secret};

    pub fn read(path: &str) -> Request {
        Request::new(Operation::Read, path)
    }

    pub fn list(path: &str) -> Request {
        Request::new(Operation::List, path)
    }

    pub fn update(path: &str, data: Value) -> Request {
        Request::new(Operation::Update, path).with_data(data)
    }

    pub fn delete(path: &str) -> Request {
        Request::new(Operation::Delete, path)
    }

    /// Builds a renew or revoke of `secret`, as Vault sends it.
    pub fn lease(operation: Operation, path: &str, secret: Secret) -> Request {
        Request::new(operation, path).with_secret(secret)
    }
}
