//! Helpers of the runtime and sandbox tests: the hostile component, a runtime built from
//! arguments, request builders, and a loopback HTTP server with misbehaving routes.
//!
//! The server binds an address of 127.0.0.0/8 only. Tests use 127.0.0.1 for "allowed" and
//! 127.0.0.2 for "denied", and never send a request anywhere else.

#![allow(dead_code)]

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vault_plugin_secrets_kong::runtime::{wit, CallError, Runtime};
use vault_plugin_secrets_kong::services::{MemoryStorage, MountServices, StaticSystemView};
use vault_plugin_secrets_kong::settings::Settings;

/// The hostile test component, built in release mode by the host's build script.
pub static HOSTILE_GUEST: &[u8] = include_bytes!(env!("HOSTILE_GUEST_WASM"));

/// Settings from plugin arguments, as an operator would give them.
pub fn settings(arguments: &[&str]) -> Settings {
    let mut all = vec!["vault-plugin-secrets-kong"];
    all.extend_from_slice(arguments);
    Settings::try_parse_from(all).expect("valid test settings")
}

/// Builds a runtime of the hostile component with these settings.
pub fn hostile_runtime(settings: &Settings) -> Arc<Runtime> {
    Runtime::from_component_bytes(HOSTILE_GUEST, settings).expect("the hostile component loads")
}

pub fn services() -> (MountServices, Arc<MemoryStorage>) {
    let storage = Arc::new(MemoryStorage::default());
    let services = MountServices {
        storage: storage.clone(),
        system_view: Arc::new(StaticSystemView {
            vault_version: "1.21.4".to_string(),
            ..Default::default()
        }),
    };
    (services, storage)
}

/// Builds a `read` request for `path` with JSON `data`.
pub fn request(path: &str, data: Value) -> wit::Request {
    wit::Request {
        id: "test-request".to_string(),
        operation: wit::Operation::Read,
        path: path.to_string(),
        data: data.to_string(),
        secret: None,
        headers: vec![],
        mount_point: "kong/".to_string(),
        mount_type: "kong".to_string(),
        mount_accessor: "kong_1234".to_string(),
        display_name: "token".to_string(),
        entity_id: String::new(),
        client_token_accessor: String::new(),
    }
}

/// Calls `path` and returns the response data as JSON, or the call error.
pub async fn call(runtime: &Runtime, path: &str, data: Value) -> Result<Value, CallError> {
    let (services, _) = services();
    let result = runtime
        .handle_request(&services, request(path, data))
        .await?;
    let response = result
        .unwrap_or_else(|error| panic!("the component returned an error for {path}: {error:?}"))
        .unwrap_or_else(|| panic!("the component returned no response for {path}"));
    let data = response.data.expect("the response carries data");
    Ok(serde_json::from_str(&data).expect("response data is JSON"))
}

/// Asserts that the runtime still serves: `echo` returns its data.
pub async fn assert_still_serves(runtime: &Runtime) {
    let echoed = call(runtime, "echo", serde_json::json!({ "still": "serving" })).await;
    let echoed = echoed.unwrap_or_else(|error| panic!("echo after a failed call: {error}"));
    assert_eq!(
        echoed,
        serde_json::json!({ "still": "serving" }),
        "echo after a failed call"
    );
}

thread_local! {
    /// The log lines of this thread while a capture runs, or `None` when none does.
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Writes each event as `LEVEL target field=value ...` into the current thread's capture.
struct ThreadCapture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ThreadCapture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }

        CAPTURED.with(|captured| {
            if let Some(lines) = captured.borrow_mut().as_mut() {
                let mut fields = Fields(String::new());
                event.record(&mut fields);
                let metadata = event.metadata();
                lines.push(format!(
                    "{} {}{}",
                    metadata.level(),
                    metadata.target(),
                    fields.0
                ));
            }
        });
    }
}

/// Runs `future` and returns its output with the log lines written on this thread meanwhile.
///
/// The capturing subscriber is the process's global default, installed once. A subscriber set
/// per test with `set_default` can miss events when tests in parallel register the same
/// callsites, because `tracing` caches each callsite's interest for the whole process. Run the
/// future on a current-thread runtime, so that every event of the call happens on this thread.
pub async fn capture_logs<F: std::future::Future>(future: F) -> (F::Output, Vec<String>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(ThreadCapture);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });

    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let output = future.await;
    let lines = CAPTURED
        .with(|captured| captured.borrow_mut().take())
        .unwrap_or_default();
    (output, lines)
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
}

/// A loopback HTTP/1.1 server with routes that misbehave on purpose:
///
/// - `/ok`: 200 with body `hello`;
/// - `/host`: 200 with the `Host` header it received as body;
/// - `/redirect`: 302 to `/ok` on the address in `?to=` (default: itself);
/// - `/slow-head?ms=N`: waits N ms before the response head;
/// - `/slow-body`: sends the head and one chunk, then stays silent for 30 s;
/// - `/big?bytes=N`: N bytes with a `Content-Length`;
/// - `/big-chunked?bytes=N`: N bytes, chunked, with no length.
pub struct TestServer {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server on `ip` (an address of 127.0.0.0/8) and a free port.
    pub async fn start(ip: &str) -> TestServer {
        let ip: IpAddr = ip.parse().expect("valid IP");
        assert!(
            ip.is_loopback(),
            "test servers bind loopback addresses only, not {ip}"
        );
        let listener = TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let received = Arc::clone(&received);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, address, Arc::clone(&received)));
                }
            }
        });
        TestServer {
            address,
            received,
            task,
        }
    }

    /// `http://ip:port` of this server.
    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Returns every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, own: SocketAddr, received: Arc<Mutex<Vec<Received>>>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let host = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().to_string());
    received.lock().unwrap().push(Received {
        method,
        path: target.clone(),
        host: host.clone(),
    });

    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let parameter = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    };
    let number = |name: &str| {
        parameter(name)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };

    let _ = match path {
        "/ok" => respond(&mut stream, "200 OK", &[], b"hello").await,
        "/host" => {
            respond(
                &mut stream,
                "200 OK",
                &[],
                host.unwrap_or_default().as_bytes(),
            )
            .await
        }
        "/redirect" => {
            let to = parameter("to").unwrap_or_else(|| own.to_string());
            let location = format!("Location: http://{to}/ok");
            respond(&mut stream, "302 Found", &[&location], b"").await
        }
        "/slow-head" => {
            tokio::time::sleep(Duration::from_millis(number("ms"))).await;
            respond(&mut stream, "200 OK", &[], b"late").await
        }
        "/slow-body" => {
            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nfirst\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
        "/big" => {
            let body = vec![b'x'; number("bytes") as usize];
            respond(&mut stream, "200 OK", &[], &body).await
        }
        "/big-chunked" => send_chunked(&mut stream, number("bytes") as usize).await,
        _ => respond(&mut stream, "404 Not Found", &[], b"not found").await,
    };
    let _ = stream.shutdown().await;
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for header in headers {
        response.push_str(header);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body).await
}

async fn send_chunked(stream: &mut TcpStream, total: usize) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let size = chunk.len().min(total - sent);
        stream.write_all(format!("{size:x}\r\n").as_bytes()).await?;
        stream.write_all(&chunk[..size]).await?;
        stream.write_all(b"\r\n").await?;
        sent += size;
    }
    stream.write_all(b"0\r\n\r\n").await
}
