//! A stand-in for Vault's side of the plugin protocol, for the protocol tests.
//!
//! It starts the built plugin binary the way Vault does, with the cookie, the protocol
//! versions and a fresh P-521 certificate marked as a CA in the environment. It reads the
//! handshake line and connects with mutual TLS. It serves `pb.Storage` and `pb.SystemView`
//! on its own broker listener, announced on the broker stream like Vault's. Storage lives in
//! memory and can be told to fail.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

use vault_plugin_secrets_kong::handshake::{COOKIE_KEY, COOKIE_VALUE};
use vault_plugin_secrets_kong::proto::logical::PluginEnvironment;
use vault_plugin_secrets_kong::proto::pb::{self, storage_server, system_view_server};
use vault_plugin_secrets_kong::proto::plugin::grpc_broker_client::GrpcBrokerClient;
use vault_plugin_secrets_kong::proto::plugin::ConnInfo;
use vault_plugin_secrets_kong::tls::{self, PinnedCertificate, PluginIdentity};

pub const PLUGIN_BINARY: &str = env!("CARGO_BIN_EXE_vault-plugin-secrets-kong");

/// How long any single step of a test may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Generates a certificate like the one Vault generates for each plugin: ECDSA P-521, self-signed,
/// marked as a CA, for `localhost`, usable by TLS clients and servers.
pub fn vault_like_identity() -> PluginIdentity {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };

    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("P-521 key");
    let mut params =
        CertificateParams::new(vec!["localhost".to_string()]).expect("certificate name");
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "localhost");
    name.push(DnType::OrganizationName, "HashiCorp");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let certificate = params
        .self_signed(&key_pair)
        .expect("self-signed certificate");
    PluginIdentity::from_der(
        certificate.der().clone(),
        PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
    )
}

/// PEM text of a DER certificate, as Vault puts it in `PLUGIN_CLIENT_CERT`.
pub fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Everything a launched plugin printed, collected in the background.
#[derive(Clone, Default)]
pub struct Output {
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr_lines().join("\n")
    }
}

/// Returns the environment Vault 1.21 gives a backend plugin it starts, with `dir` as the
/// temporary directory.
pub fn vault_environment(vault_certificate_pem: &str, dir: &Path) -> Vec<(String, String)> {
    [
        (COOKIE_KEY, COOKIE_VALUE),
        ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        ("PLUGIN_MIN_PORT", "0"),
        ("PLUGIN_MAX_PORT", "0"),
        ("PLUGIN_CLIENT_CERT", vault_certificate_pem),
        ("VAULT_VERSION", "1.21.4"),
        ("VAULT_PLUGIN_AUTOMTLS_ENABLED", "true"),
        ("VAULT_PLUGIN_METADATA_MODE", "false"),
        ("TMPDIR", dir.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

/// Starts the plugin binary with exactly `environment` (plus `PATH`) and collects its output.
pub fn spawn(environment: &[(String, String)]) -> (Child, Output) {
    let mut command = Command::new(PLUGIN_BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            environment
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the plugin binary starts");

    let output = Output::default();
    let mut stdout = child.stdout.take().unwrap();
    let collected = Arc::clone(&output.stdout);
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stdout.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            collected.lock().unwrap().extend_from_slice(&buffer[..read]);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let collected = Arc::clone(&output.stderr);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            collected.lock().unwrap().push(line);
        }
    });
    (child, output)
}

/// Runs the plugin with `environment` until it exits, and returns its status and output.
pub async fn run_to_exit(environment: &[(String, String)]) -> (ExitStatus, Output) {
    let (mut child, output) = spawn(environment);
    let status = tokio::time::timeout(STEP_TIMEOUT, child.wait())
        .await
        .expect("the plugin exits in time")
        .expect("the plugin's status is readable");
    // Let the readers drain the pipes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (status, output)
}

/// The fields of the handshake line.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub line: String,
    pub socket: PathBuf,
    pub certificate_der: Vec<u8>,
}

impl Handshake {
    pub fn parse(line: &str) -> Self {
        let fields: Vec<&str> = line.trim_end_matches('\n').split('|').collect();
        assert_eq!(
            fields.len(),
            6,
            "handshake line {line:?} does not have six fields"
        );
        let certificate_der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(fields[5])
            .unwrap_or_else(|error| {
                panic!("certificate field of {line:?} is not raw standard base64: {error}")
            });
        Self {
            line: line.to_string(),
            socket: PathBuf::from(fields[3]),
            certificate_der,
        }
    }
}

/// A plugin process started like Vault starts it, with its handshake read.
pub struct Plugin {
    pub child: Child,
    pub output: Output,
    pub handshake: Handshake,
    pub vault: Arc<PluginIdentity>,
    pub dir: tempfile::TempDir,
}

impl Plugin {
    /// Starts the plugin as Vault does and waits for its handshake line.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let vault = Arc::new(vault_like_identity());
        let environment = vault_environment(&pem(vault.certificate_der()), dir.path());
        let (mut child, output) = spawn(&environment);

        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        let line = loop {
            let stdout = output.stdout();
            if let Some(end) = stdout.find('\n') {
                break stdout[..=end].to_string();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the plugin exited with {status} before its handshake; stderr:\n{}",
                    output.stderr()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no handshake line; stderr:\n{}",
                output.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };

        Self {
            child,
            output,
            handshake: Handshake::parse(&line),
            vault,
            dir,
        }
    }

    /// Pins the plugin's certificate from the handshake.
    pub fn pinned_plugin_certificate(&self) -> PinnedCertificate {
        PinnedCertificate::from_der(CertificateDer::from(self.handshake.certificate_der.clone()))
            .unwrap()
    }

    /// Connects to the plugin socket as Vault does.
    pub async fn connect(&self) -> Channel {
        self.connect_as(&self.vault)
            .await
            .expect("Vault's connection to the plugin")
    }

    /// Connects to the plugin socket presenting `identity` as the client certificate.
    pub async fn connect_as(&self, identity: &PluginIdentity) -> Result<Channel, String> {
        let config = tls::client_config(identity, &self.pinned_plugin_certificate()).unwrap();
        let connector = tokio_rustls::TlsConnector::from(config);
        let socket = self.handshake.socket.clone();
        let endpoint = Endpoint::from_static("http://unused");
        let connecting = endpoint.connect_with_connector(tower::service_fn(move |_| {
            let (connector, socket) = (connector.clone(), socket.clone());
            async move {
                let stream = UnixStream::connect(socket).await?;
                connector
                    .connect(tls::server_name(), stream)
                    .await
                    .map(TokioIo::new)
            }
        }));
        match tokio::time::timeout(STEP_TIMEOUT, connecting).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(error)) => Err(error_chain(&error)),
            Err(_) => Err("timed out".to_string()),
        }
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|status| status.unwrap())
    }
}

pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The broker stream as Vault keeps it open: announcements go out through `announce`.
pub struct BrokerStream {
    sender: mpsc::Sender<ConnInfo>,
    pub responses: tonic::Streaming<ConnInfo>,
}

impl BrokerStream {
    /// Opens `plugin.GRPCBroker/StartStream` on `channel`.
    pub async fn open(channel: Channel) -> Self {
        let (sender, receiver) = mpsc::channel(16);
        let responses = GrpcBrokerClient::new(channel)
            .start_stream(ReceiverStream::new(receiver))
            .await
            .expect("the broker stream opens")
            .into_inner();
        Self { sender, responses }
    }

    pub async fn announce(&self, info: ConnInfo) {
        self.sender
            .send(info)
            .await
            .expect("the broker stream is open");
    }
}

/// Builds the announcement of a unix listener for `broker_id`.
pub fn announcement(broker_id: u32, socket: &Path) -> ConnInfo {
    ConnInfo {
        service_id: broker_id,
        network: "unix".into(),
        address: socket.to_str().unwrap().into(),
        knock: None,
    }
}

/// One storage call the plugin made, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageCall {
    Get(String),
    Put(String, usize),
    Delete(String),
    List(String),
}

/// Vault's storage for one mount, in memory.
#[derive(Default)]
pub struct FakeStorage {
    pub entries: Mutex<BTreeMap<String, Vec<u8>>>,
    pub calls: Mutex<Vec<StorageCall>>,
    /// Text Vault puts in every reply's `err`, as when its storage backend fails.
    pub failure: Mutex<Option<String>>,
    /// Whether every call fails with a gRPC error, as at registration, when Vault serves the
    /// broker without a storage behind it.
    pub missing: Mutex<bool>,
}

/// Vault's message when the broker has no storage behind it.
pub const MISSING_STORAGE: &str =
    "missing storage implementation: this method should not be called during plugin Setup, but only during and after Initialize";

impl FakeStorage {
    fn check(&self, call: StorageCall) -> Result<Option<String>, Status> {
        self.calls.lock().unwrap().push(call);
        if *self.missing.lock().unwrap() {
            return Err(Status::internal(MISSING_STORAGE));
        }
        Ok(self.failure.lock().unwrap().clone())
    }
}

struct StorageService(Arc<FakeStorage>);

#[tonic::async_trait]
impl storage_server::Storage for StorageService {
    async fn list(
        &self,
        request: Request<pb::StorageListArgs>,
    ) -> Result<Response<pb::StorageListReply>, Status> {
        let prefix = request.into_inner().prefix;
        if let Some(err) = self.0.check(StorageCall::List(prefix.clone()))? {
            return Ok(Response::new(pb::StorageListReply { keys: vec![], err }));
        }
        let entries = self.0.entries.lock().unwrap();
        let mut keys: Vec<String> = Vec::new();
        for key in entries.keys().filter(|key| key.starts_with(&prefix)) {
            let rest = &key[prefix.len()..];
            let child = match rest.find('/') {
                Some(slash) => rest[..=slash].to_string(),
                None => rest.to_string(),
            };
            if keys.last() != Some(&child) {
                keys.push(child);
            }
        }
        Ok(Response::new(pb::StorageListReply {
            keys,
            err: String::new(),
        }))
    }

    async fn get(
        &self,
        request: Request<pb::StorageGetArgs>,
    ) -> Result<Response<pb::StorageGetReply>, Status> {
        let key = request.into_inner().key;
        if let Some(err) = self.0.check(StorageCall::Get(key.clone()))? {
            return Ok(Response::new(pb::StorageGetReply { entry: None, err }));
        }
        let entry = self
            .0
            .entries
            .lock()
            .unwrap()
            .get(&key)
            .map(|value| pb::StorageEntry {
                key: key.clone(),
                value: value.clone(),
                seal_wrap: false,
            });
        Ok(Response::new(pb::StorageGetReply {
            entry,
            err: String::new(),
        }))
    }

    async fn put(
        &self,
        request: Request<pb::StoragePutArgs>,
    ) -> Result<Response<pb::StoragePutReply>, Status> {
        let entry = request
            .into_inner()
            .entry
            .ok_or_else(|| Status::invalid_argument("put without an entry"))?;
        if let Some(err) = self
            .0
            .check(StorageCall::Put(entry.key.clone(), entry.value.len()))?
        {
            return Ok(Response::new(pb::StoragePutReply { err }));
        }
        self.0
            .entries
            .lock()
            .unwrap()
            .insert(entry.key, entry.value);
        Ok(Response::new(pb::StoragePutReply { err: String::new() }))
    }

    async fn delete(
        &self,
        request: Request<pb::StorageDeleteArgs>,
    ) -> Result<Response<pb::StorageDeleteReply>, Status> {
        let key = request.into_inner().key;
        if let Some(err) = self.0.check(StorageCall::Delete(key.clone()))? {
            return Ok(Response::new(pb::StorageDeleteReply { err }));
        }
        self.0.entries.lock().unwrap().remove(&key);
        Ok(Response::new(pb::StorageDeleteReply { err: String::new() }))
    }
}

struct SystemViewService;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

#[tonic::async_trait]
impl system_view_server::SystemView for SystemViewService {
    async fn default_lease_ttl(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::TtlReply>, Status> {
        Ok(Response::new(pb::TtlReply {
            ttl_ns: 32 * DAY_NS,
        }))
    }

    async fn max_lease_ttl(&self, _: Request<pb::Empty>) -> Result<Response<pb::TtlReply>, Status> {
        Ok(Response::new(pb::TtlReply {
            ttl_ns: 32 * DAY_NS,
        }))
    }

    async fn tainted(&self, _: Request<pb::Empty>) -> Result<Response<pb::TaintedReply>, Status> {
        Ok(Response::new(pb::TaintedReply { tainted: false }))
    }

    async fn replication_state(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ReplicationStateReply>, Status> {
        Ok(Response::new(pb::ReplicationStateReply { state: 0 }))
    }

    async fn local_mount(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::LocalMountReply>, Status> {
        Ok(Response::new(pb::LocalMountReply { local: false }))
    }

    async fn plugin_env(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::PluginEnvReply>, Status> {
        let environment = PluginEnvironment {
            vault_version: "1.21.4".into(),
            ..Default::default()
        };
        Ok(Response::new(pb::PluginEnvReply {
            plugin_environment: Some(environment),
            err: String::new(),
        }))
    }
}

/// Vault's broker listener for one mount: `pb.Storage` and `pb.SystemView` over mutual TLS.
pub struct FakeBroker {
    pub socket: PathBuf,
    pub storage: Arc<FakeStorage>,
    /// TLS handshakes that failed, with their error.
    pub rejected: Arc<Mutex<Vec<String>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeBroker {
    /// Listens in the plugin's temporary directory with Vault's certificate, accepting only
    /// the plugin's.
    pub async fn start(plugin: &Plugin) -> Self {
        let socket = plugin
            .dir
            .path()
            .join(format!("vault-broker-{}", rand_suffix()));
        let listener = UnixListener::bind(&socket).expect("broker socket");
        let config =
            tls::server_config(&plugin.vault, &plugin.pinned_plugin_certificate()).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let storage = Arc::new(FakeStorage::default());
        let rejected = Arc::new(Mutex::new(Vec::new()));

        let accepted = {
            let rejected = Arc::clone(&rejected);
            UnixListenerStream::new(listener).then(move |stream| {
                let (acceptor, rejected) = (acceptor.clone(), Arc::clone(&rejected));
                async move {
                    let result = acceptor.accept(stream?).await;
                    if let Err(error) = &result {
                        rejected.lock().unwrap().push(error.to_string());
                    }
                    result.map(TlsServerStream)
                }
            })
        };
        // A failed handshake must not end the listener, so failures are filtered out.
        let incoming = accepted.filter(|result| result.is_ok());

        let server = Server::builder()
            .add_service(
                storage_server::StorageServer::new(StorageService(Arc::clone(&storage)))
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
            )
            .add_service(system_view_server::SystemViewServer::new(SystemViewService))
            .serve_with_incoming(incoming);
        let server = tokio::spawn(async move {
            let _ = server.await;
        });

        Self {
            socket,
            storage,
            rejected,
            _server: server,
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

/// A server-side TLS stream that tonic can serve.
pub struct TlsServerStream(tokio_rustls::server::TlsStream<UnixStream>);

impl tonic::transport::server::Connected for TlsServerStream {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl tokio::io::AsyncRead for TlsServerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl tokio::io::AsyncWrite for TlsServerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, buffer)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
    }
}

/// Checks that every stderr line has the shape Vault's plugin logger parses, and returns
/// them parsed.
pub fn parse_log_lines(output: &Output) -> Vec<serde_json::Value> {
    output
        .stderr_lines()
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("stderr line {line:?} is not JSON: {error}"));
            let level = value["@level"].as_str().unwrap_or_default();
            assert!(
                ["trace", "debug", "info", "warn", "error"].contains(&level),
                "stderr line {line:?} has no valid @level"
            );
            assert!(
                value["@message"].is_string(),
                "stderr line {line:?} has no @message"
            );
            let timestamp = value["@timestamp"].as_str().unwrap_or_default();
            assert!(
                is_go_timestamp(timestamp),
                "stderr line {line:?} has @timestamp in another layout"
            );
            value
        })
        .collect()
}

/// Checks whether `text` matches Go's layout `2006-01-02T15:04:05.000000Z07:00` in UTC.
fn is_go_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_at = |positions: &[usize]| {
        positions
            .iter()
            .all(|&index| bytes.get(index).is_some_and(u8::is_ascii_digit))
    };
    bytes.len() == 27
        && digits_at(&[
            0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25,
        ])
        && text.get(4..5) == Some("-")
        && text.get(7..8) == Some("-")
        && text.get(10..11) == Some("T")
        && text.get(13..14) == Some(":")
        && text.get(16..17) == Some(":")
        && text.get(19..20) == Some(".")
        && text.ends_with('Z')
}
