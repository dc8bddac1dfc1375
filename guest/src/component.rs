//! The WebAssembly glue: implements the engine's service traits with the WIT imports and
//! exports the backend. Compiled only for `wasm32`.
//!
//! Every call builds the backend afresh and keeps nothing afterwards, because the host may
//! run each call in a new instance. Conversions between WIT records and the framework's
//! types are the only logic here, so that native tests cover everything else.

#![forbid(unsafe_code)]

mod outgoing;

use serde_json::{Map, Value};

use crate::bindings::exports::vault::backend::backend::Guest;
use crate::bindings::vault::backend::types as wit;
use crate::bindings::vault::backend::{log, storage, system_view};
use crate::bindings::wasi::clocks::wall_clock;
use crate::framework::{self, request::parse_data, Operation, Timestamp};
use crate::kong::{self, Env};
use crate::services::{Clock, Level, Log, Storage, SystemView};

/// The exported component.
pub struct Component;

impl Guest for Component {
    fn special_paths() -> wit::Paths {
        let paths = kong::special_paths();
        wit::Paths {
            root: paths.root,
            unauthenticated: paths.unauthenticated,
            local_storage: paths.local_storage,
            seal_wrap_storage: paths.seal_wrap_storage,
        }
    }

    fn initialize() -> Result<(), wit::Error> {
        // Nothing to set up: storage needs no migration, and nothing lives in memory.
        Ok(())
    }

    fn handle_request(request: wit::Request) -> Result<Option<wit::Response>, wit::Error> {
        let request = from_wit_request(request).map_err(to_wit_error)?;
        WitLog.write(
            Level::Debug,
            "handling request",
            &[
                ("operation", request.operation.name()),
                ("path", &request.path),
                ("request_id", &request.id),
            ],
        );
        with_env(|env| kong::backend().handle_request(env, &request))
            .map(|response| response.map(to_wit_response))
            .map_err(to_wit_error)
    }

    fn handle_existence_check(request: wit::Request) -> Result<wit::Existence, wit::Error> {
        let request = from_wit_request(request).map_err(to_wit_error)?;
        with_env(|env| kong::backend().handle_existence_check(env, &request))
            .map(|existence| wit::Existence {
                check_found: existence.check_found,
                exists: existence.exists,
            })
            .map_err(to_wit_error)
    }

    fn invalidate(_key: String) {
        // The engine caches nothing, so a changed key needs no action.
    }

    fn cleanup() {
        // `initialize` acquires nothing.
    }
}

/// Runs `call` with the environment backed by the WIT imports.
fn with_env<T>(call: impl FnOnce(&Env<'_>) -> T) -> T {
    let env = Env {
        storage: &WitStorage,
        system_view: &WitSystemView,
        log: &WitLog,
        http: &outgoing::WasiHttpClient,
        clock: &WitClock,
    };
    call(&env)
}

struct WitStorage;

impl Storage for WitStorage {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        storage::get(key)
    }

    fn put(&self, key: &str, value: &[u8], seal_wrap: bool) -> Result<(), String> {
        storage::put(key, value, seal_wrap)
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        storage::delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        storage::list(prefix)
    }
}

struct WitSystemView;

impl SystemView for WitSystemView {
    fn default_lease_ttl_seconds(&self) -> Result<u64, String> {
        system_view::default_lease_ttl_seconds()
    }

    fn max_lease_ttl_seconds(&self) -> Result<u64, String> {
        system_view::max_lease_ttl_seconds()
    }
}

struct WitLog;

impl Log for WitLog {
    fn write(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        log::write(level, message, &fields);
    }
}

struct WitClock;

impl Clock for WitClock {
    fn now_unix_seconds(&self) -> u64 {
        wall_clock::now().seconds
    }
}

fn from_wit_request(request: wit::Request) -> Result<framework::Request, framework::Error> {
    let operation = match request.operation {
        wit::Operation::Create => Operation::Create,
        wit::Operation::Read => Operation::Read,
        wit::Operation::Update => Operation::Update,
        wit::Operation::Patch => Operation::Patch,
        wit::Operation::Delete => Operation::Delete,
        wit::Operation::List => Operation::List,
        wit::Operation::Help => Operation::Help,
        wit::Operation::AliasLookahead => Operation::AliasLookahead,
        wit::Operation::ResolveRole => Operation::ResolveRole,
        wit::Operation::Header => Operation::Header,
        wit::Operation::Renew => Operation::Renew,
        wit::Operation::Revoke => Operation::Revoke,
        wit::Operation::Rollback => Operation::Rollback,
    };
    let secret = request.secret.map(from_wit_secret).transpose()?;
    Ok(framework::Request {
        id: request.id,
        operation,
        path: request.path,
        data: parse_data(&request.data)?,
        secret,
        mount_point: request.mount_point,
        mount_accessor: request.mount_accessor,
    })
}

fn from_wit_secret(secret: wit::Secret) -> Result<framework::Secret, framework::Error> {
    let internal_data = parse_data(&secret.internal_data).map_err(|error| {
        framework::Error::internal(format!(
            "the lease's internal data is not a JSON object: {error}"
        ))
    })?;
    Ok(framework::Secret {
        ttl_seconds: secret.ttl_seconds,
        max_ttl_seconds: secret.max_ttl_seconds,
        renewable: secret.renewable,
        increment_seconds: secret.increment_seconds,
        issue_time: secret.issue_time.map(|time| Timestamp {
            seconds: time.seconds,
            nanoseconds: time.nanoseconds,
        }),
        internal_data,
    })
}

fn to_wit_response(response: framework::Response) -> wit::Response {
    wit::Response {
        data: response.data.map(json_text),
        secret: response.secret.map(|secret| wit::Secret {
            ttl_seconds: secret.ttl_seconds,
            max_ttl_seconds: secret.max_ttl_seconds,
            renewable: secret.renewable,
            increment_seconds: secret.increment_seconds,
            issue_time: secret.issue_time.map(|time| wall_clock::Datetime {
                seconds: time.seconds,
                nanoseconds: time.nanoseconds,
            }),
            internal_data: json_text(secret.internal_data),
        }),
        warnings: response.warnings,
        headers: Vec::new(),
    }
}

fn json_text(map: Map<String, Value>) -> String {
    Value::Object(map).to_string()
}

fn to_wit_error(error: framework::Error) -> wit::Error {
    match error {
        framework::Error::UnsupportedPath => wit::Error::UnsupportedPath,
        framework::Error::UnsupportedOperation => wit::Error::UnsupportedOperation,
        framework::Error::BadRequest(message) => wit::Error::BadRequest(message),
        framework::Error::PermissionDenied => wit::Error::PermissionDenied,
        framework::Error::Coded { status, message } => {
            wit::Error::Coded(wit::CodedError { status, message })
        }
        framework::Error::Internal(message) => wit::Error::Internal(message),
    }
}
