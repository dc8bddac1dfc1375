//! A Vault backend component that misbehaves on request, for the host's sandbox tests.
//!
//! It implements the same `vault-backend` world as the Kong engine. The request path selects
//! the behaviour, and request data (JSON) gives its parameters:
//!
//! - `echo`: returns the request data unchanged, proof that the host still serves.
//! - `counter`: increments a static counter and returns it; a fresh instance returns 1.
//! - `loop`: spins forever without calling the host.
//! - `sleep`: waits `ms` milliseconds on the monotonic clock, using no CPU.
//! - `allocate`: allocates and touches memory in 1 MiB steps until it is stopped.
//! - `panic`: panics with a fixed message.
//! - `fetch`: sends one request to `url` (with optional `method`, `headers`, `options`) and
//!   returns the status, `location` header, body size, error code and denial reason.
//! - `flood`: sends `count` requests to `url` and returns how each one ended.
//! - `set-host`: tries to set a `Host` header and returns the header error.
//! - `storage`: writes, reads, lists and deletes a key through the host's storage.
//! - `system`: returns the result of every system-view function.
//! - `log`: writes one log line per level and one to stderr.
//! - `environment`: returns what WASI exposes: variables, arguments and the root directory.
//!
//! Results are JSON objects in the response data. The component exists only for tests and is
//! never embedded in the plugin.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Map, Value};

wit_bindgen::generate!({
    path: "../../wit",
    world: "vault:backend/vault-backend",
    generate_all,
});

use exports::vault::backend::backend::Guest;
use vault::backend::types::{Error, Existence, Paths, Request, Response};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, RequestOptions, Scheme};
use wasi::io::streams::StreamError;

struct HostileGuest;

/// Counts `counter` requests in this instance; state a host must not carry between calls.
static CALLS: AtomicU32 = AtomicU32::new(0);

export!(HostileGuest);

impl Guest for HostileGuest {
    fn special_paths() -> Paths {
        Paths {
            root: vec!["root/*".to_string()],
            unauthenticated: vec!["public".to_string()],
            local_storage: vec![],
            seal_wrap_storage: vec!["config/".to_string()],
        }
    }

    fn initialize() -> Result<(), Error> {
        vault::backend::storage::put("initialized", b"yes", false).map_err(Error::Internal)
    }

    fn handle_request(request: Request) -> Result<Option<Response>, Error> {
        let data: Value = serde_json::from_str(&request.data)
            .map_err(|error| Error::BadRequest(format!("request data is not JSON: {error}")))?;
        let result = match request.path.as_str() {
            "echo" => data,
            "counter" => json!({ "count": CALLS.fetch_add(1, Ordering::SeqCst) + 1 }),
            "loop" => spin_forever(),
            "sleep" => sleep(&data),
            "allocate" => allocate_without_bound(),
            "panic" => panic!("hostile guest panicked on purpose"),
            "fetch" => fetch(&data),
            "flood" => flood(&data),
            "set-host" => set_host(),
            "storage" => storage_round_trip(&data)?,
            "system" => system_view()?,
            "log" => write_logs(),
            "environment" => environment(),
            _ => return Err(Error::UnsupportedPath),
        };
        Ok(Some(Response {
            data: Some(result.to_string()),
            secret: None,
            warnings: vec![],
            headers: vec![],
        }))
    }

    fn handle_existence_check(request: Request) -> Result<Existence, Error> {
        match request.path.as_str() {
            "echo" => Ok(Existence {
                check_found: true,
                exists: true,
            }),
            "loop" => spin_forever(),
            _ => Err(Error::UnsupportedPath),
        }
    }

    fn invalidate(key: String) {
        if key == "panic" {
            panic!("hostile guest panicked on invalidate");
        }
    }

    fn cleanup() {}
}

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        // `black_box` keeps the optimizer from proving the loop has no effect.
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn sleep(data: &Value) -> Value {
    let milliseconds = data["ms"].as_u64().unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(milliseconds));
    json!({ "slept_ms": milliseconds })
}

fn allocate_without_bound() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touching every block makes the memory real rather than merely reserved.
        blocks.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&blocks);
    }
}

/// The parts of a URL that `wasi:http` takes separately.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

fn parse_url(url: &str) -> Option<Target> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    Some(Target {
        scheme,
        authority: authority.to_string(),
        path_with_query: path.to_string(),
    })
}

/// Sends one request as `data` describes and returns how it ended.
fn fetch(data: &Value) -> Value {
    let url = data["url"].as_str().unwrap_or_default();
    let Some(target) = parse_url(url) else {
        return json!({ "error": "invalid url" });
    };

    let headers = Fields::new();
    if let Some(pairs) = data["headers"].as_object() {
        for (name, value) in pairs {
            let value = value.as_str().unwrap_or_default().as_bytes().to_vec();
            if let Err(error) = headers.append(name, &value) {
                return json!({ "error": format!("header {name}: {error:?}") });
            }
        }
    }

    let request = OutgoingRequest::new(headers);
    let method = match data["method"].as_str().unwrap_or("GET") {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        _ => Method::Get,
    };
    let _ = request.set_method(&method);
    let _ = request.set_scheme(Some(&target.scheme));
    let _ = request.set_authority(Some(&target.authority));
    let _ = request.set_path_with_query(Some(&target.path_with_query));

    let options = RequestOptions::new();
    let nanoseconds = |key: &str| data["options"][key].as_u64().map(|ms| ms * 1_000_000);
    if let Some(timeout) = nanoseconds("connect_timeout_ms") {
        let _ = options.set_connect_timeout(Some(timeout));
    }
    if let Some(timeout) = nanoseconds("first_byte_timeout_ms") {
        let _ = options.set_first_byte_timeout(Some(timeout));
    }
    if let Some(timeout) = nanoseconds("between_bytes_timeout_ms") {
        let _ = options.set_between_bytes_timeout(Some(timeout));
    }

    let mut outcome = Map::new();
    match send(request, options) {
        Ok((status, location, body)) => {
            outcome.insert("status".into(), json!(status));
            outcome.insert("location".into(), json!(location));
            match body {
                Ok(bytes) => {
                    outcome.insert("body_bytes".into(), json!(bytes.len()));
                    outcome.insert("body".into(), json!(String::from_utf8_lossy(&bytes)));
                }
                Err(error) => {
                    outcome.insert("body_error".into(), json!(error_name(&error)));
                    outcome.insert("body_error_detail".into(), json!(format!("{error:?}")));
                }
            }
        }
        Err(error) => {
            outcome.insert("error".into(), json!(error_name(&error)));
            outcome.insert("error_detail".into(), json!(format!("{error:?}")));
        }
    }
    outcome.insert(
        "denial_reason".into(),
        json!(vault::backend::outbound::denial_reason()),
    );
    Value::Object(outcome)
}

/// Response status, `location` header and body of one request, or the error code.
type Exchange = (u16, Option<String>, Result<Vec<u8>, ErrorCode>);

fn send(request: OutgoingRequest, options: RequestOptions) -> Result<Exchange, ErrorCode> {
    let pending = outgoing_handler::handle(request, Some(options))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .expect("the response is ready after its pollable")
        .expect("the response is taken once")?;

    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned());
    let body = response.consume().expect("the body is consumed once");
    let stream = body.stream().expect("the body stream is taken once");

    let mut bytes = Vec::new();
    let read = loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => {
                let code = wasi::http::types::http_error_code(&error)
                    .unwrap_or(ErrorCode::InternalError(Some(error.to_debug_string())));
                break Err(code);
            }
        }
    };
    drop(stream);
    Ok((status, location, read))
}

/// Returns the name of an error code's case, which tests compare.
fn error_name(error: &ErrorCode) -> String {
    let debug = format!("{error:?}");
    debug
        .trim_start_matches("ErrorCode::")
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sends `count` requests to `url` and counts how they ended, by status or error code.
fn flood(data: &Value) -> Value {
    let count = data["count"].as_u64().unwrap_or(1);
    let mut outcomes: Map<String, Value> = Map::new();
    for _ in 0..count {
        let result = fetch(data);
        let key = match (&result["status"], &result["error"]) {
            (Value::Number(status), _) => status.to_string(),
            (_, Value::String(error)) => error.clone(),
            _ => "other".to_string(),
        };
        let seen = outcomes.get(&key).and_then(Value::as_u64).unwrap_or(0);
        outcomes.insert(key, json!(seen + 1));
    }
    json!({
        "outcomes": outcomes,
        "denial_reason": vault::backend::outbound::denial_reason(),
    })
}

fn set_host() -> Value {
    let headers = Fields::new();
    let result = headers.append("host", b"attacker.test");
    json!({ "result": format!("{result:?}") })
}

fn storage_round_trip(data: &Value) -> Result<Value, Error> {
    use vault::backend::storage;

    let key = data["key"].as_str().unwrap_or("entry");
    let value = data["value"].as_str().unwrap_or("value");
    storage::put(key, value.as_bytes(), false).map_err(Error::Internal)?;
    let read = storage::get(key).map_err(Error::Internal)?;
    let listed = storage::list("").map_err(Error::Internal)?;
    storage::delete(key).map_err(Error::Internal)?;
    let after_delete = storage::get(key).map_err(Error::Internal)?;
    Ok(json!({
        "read": read.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        "listed": listed,
        "after_delete": after_delete.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    }))
}

fn system_view() -> Result<Value, Error> {
    use vault::backend::system_view as view;

    Ok(json!({
        "default_lease_ttl_seconds": view::default_lease_ttl_seconds().map_err(Error::Internal)?,
        "max_lease_ttl_seconds": view::max_lease_ttl_seconds().map_err(Error::Internal)?,
        "tainted": view::tainted().map_err(Error::Internal)?,
        "local_mount": view::local_mount().map_err(Error::Internal)?,
        "replication_state": view::replication_state().map_err(Error::Internal)?,
        "vault_version": view::vault_version().map_err(Error::Internal)?,
    }))
}

fn write_logs() -> Value {
    use vault::backend::log::{write, Level};

    let fields = vec![("consumer".to_string(), "app".to_string())];
    for level in [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ] {
        write(level, &format!("hostile guest log at {level:?}"), &fields);
    }
    eprintln!("hostile guest wrote to stderr");
    json!({ "written": 5 })
}

fn environment() -> Value {
    let variables: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
    let arguments: Vec<String> = std::env::args().collect();
    let root = match std::fs::read_dir("/") {
        Ok(entries) => format!("{} entries", entries.count()),
        Err(error) => format!("error: {error}"),
    };
    let cwd = std::env::current_dir()
        .map(|path| path.display().to_string())
        .ok();
    json!({
        "variables": variables,
        "arguments": arguments,
        "root": root,
        "cwd": cwd,
    })
}
