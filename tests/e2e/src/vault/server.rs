//! A Vault dev server owned by one test: started on a free port of 127.0.0.1, driven through its
//! CLI and HTTP API with the root token, stopped on drop.
//!
//! Contract:
//! - The server runs `vault server -dev` with in-memory storage, so nothing outlives it. Its
//!   root token is random per server and reaches it through `VAULT_DEV_ROOT_TOKEN_ID`, so it
//!   never shows in a process listing.
//! - Every Vault process the harness starts gets a scratch folder as `HOME` and working
//!   directory, and none of the caller's `VAULT_*` variables, so a developer's `~/.vault-token`
//!   or `VAULT_ADDR` can neither leak in nor be overwritten.
//! - stdout and stderr of the server go to `vault.log` in the scratch folder, at log level
//!   `trace` so that the lines external plugins write show up too.
//! - Drop sends SIGTERM, which makes Vault stop its plugin processes before it exits, waits up
//!   to [`STOP_GRACE`], then kills it and deletes the scratch folder. A test that is panicking
//!   gets the end of the server log printed to stderr first.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use super::vault_binary;

/// Time a fresh dev server gets until `/v1/sys/health` returns 200. It usually needs about one
/// second, but tests often run while other suites build on the same machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts tried before giving up when another process takes the free port first.
const START_ATTEMPTS: usize = 3;

/// Time Vault gets after SIGTERM to stop its plugins and exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Timeout of one HTTP request to the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest HTTP response body read, above the size of Vault's OpenAPI document.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Server log lines printed when a panicking test drops the server.
const LOG_TAIL_LINES: usize = 200;

/// Result of one `vault` CLI command.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A running Vault dev server listening on 127.0.0.1.
pub struct VaultDevServer {
    child: Child,
    binary: PathBuf,
    addr: String,
    token: String,
    log_path: PathBuf,
    agent: ureq::Agent,
    // Dropped after `Drop::drop` has stopped the server, so the folder is gone only once no
    // Vault process writes to it.
    scratch_dir: TempDir,
}

impl VaultDevServer {
    /// Starts a dev server whose plugin directory is `plugin_dir` and waits until it is
    /// unsealed, which `/v1/sys/health` shows by returning 200.
    ///
    /// The server does not register the files in `plugin_dir` at start
    /// (`-dev-plugin-init=false`), so each test registers its plugin with the SHA-256, type and
    /// version it chooses. Builds Vault first when [`vault_binary`] has no cached binary.
    pub fn start(plugin_dir: &Path) -> Result<Self> {
        let binary = vault_binary()?;
        // Vault compares each plugin's symlink-resolved folder with the plugin directory as
        // given, so a directory under a symlink (such as /tmp on macOS) would reject every plugin.
        let plugin_dir = plugin_dir.canonicalize().with_context(|| {
            format!(
                "plugin directory {} not found: create it before starting Vault",
                plugin_dir.display()
            )
        })?;

        let mut attempt = 1;
        loop {
            match Self::start_once(&binary, &plugin_dir) {
                Ok(server) => return Ok(server),
                Err(error) if attempt < START_ATTEMPTS && is_port_taken(&error) => {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Returns the base URL, such as `http://127.0.0.1:38211`, as `VAULT_ADDR` expects it.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Returns the root token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Returns the process ID of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the scratch folder: `HOME` of every Vault process started here, and the place
    /// of `vault.log`. Drop deletes it.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch_dir.path()
    }

    /// Runs the `vault` CLI with `args`, `VAULT_ADDR` and the root token as `VAULT_TOKEN`, and
    /// waits for it to exit.
    ///
    /// # Panics
    ///
    /// Panics when the binary cannot be started at all. A command that fails returns its exit
    /// status and output instead.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut command = self.vault_command();
        command
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .stdin(Stdio::null());

        let output = command
            .output()
            .unwrap_or_else(|error| panic!("failed to run vault {args:?}: {error}"));
        CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Sends `method` (`GET`, `PUT`, `LIST`, ...) to `/v1/<path>` with the root token and an
    /// optional JSON body, and returns the status code and the response body.
    ///
    /// An empty body comes back as `Value::Null` and a body that is not JSON as
    /// `Value::String`, so error pages still reach the caller's assert message.
    ///
    /// # Panics
    ///
    /// Panics when the request cannot be sent or the response cannot be read, for example when
    /// the server has exited.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("X-Vault-Token", &self.token);

        let sent = match body {
            Some(body) => request
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .map(|request| self.agent.run(request)),
            None => request.body(()).map(|request| self.agent.run(request)),
        };
        let response = sent
            .unwrap_or_else(|error| panic!("invalid request {method} {url}: {error}"))
            .unwrap_or_else(|error| panic!("request {method} {url} failed: {error}"));

        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .unwrap_or_else(|error| {
                panic!("reading the response to {method} {url} failed: {error}")
            });
        (status, parse_body(text))
    }

    /// Returns the server's stdout and stderr so far.
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => format!("(failed to read {}: {error})", self.log_path.display()),
        }
    }

    fn start_once(binary: &Path, plugin_dir: &Path) -> Result<Self> {
        let scratch_dir = tempfile::Builder::new()
            .prefix("vault-dev-")
            .tempdir()
            .context("failed to create a scratch folder for the Vault dev server")?;
        let log_path = scratch_dir.path().join("vault.log");
        let log = File::create(&log_path)
            .with_context(|| format!("failed to create {}", log_path.display()))?;
        let port = free_port()?;
        let token = random_token()?;

        let mut command = vault_command(binary, scratch_dir.path());
        command
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-plugin-dir={}", plugin_dir.display()))
            .arg("-dev-plugin-init=false")
            .arg("-dev-no-store-token")
            .arg("-log-level=trace")
            .env("VAULT_DEV_ROOT_TOKEN_ID", &token)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("failed to share the log file")?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;

        // From here on, Drop stops the process if waiting fails.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        let mut server = VaultDevServer {
            child,
            binary: binary.to_path_buf(),
            addr: format!("http://127.0.0.1:{port}"),
            token,
            log_path,
            agent,
            scratch_dir,
        };
        server.wait_until_healthy()?;
        Ok(server)
    }

    fn wait_until_healthy(&mut self) -> Result<()> {
        let url = format!("{}/v1/sys/health", self.addr);
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let deadline = Instant::now() + START_TIMEOUT;

        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("failed to poll the Vault process")?
            {
                bail!(
                    "vault dev server exited with {status} before {url} returned 200; its log:\n{}",
                    self.log()
                );
            }
            if let Ok(response) = probe.get(&url).call() {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "vault dev server timed out: {url} did not return 200 within {} s; its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn vault_command(&self) -> Command {
        vault_command(&self.binary, self.scratch_dir.path())
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }

        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }

        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for VaultDevServer {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- last {} lines of the Vault dev server log ({}) ---\n{}",
                tail.len(),
                self.addr,
                tail.join("\n")
            );
        }
        self.stop();
    }
}

/// A `vault` command isolated from the caller's Vault settings (see the module docs).
fn vault_command(binary: &Path, scratch_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VAULT_") {
            command.env_remove(name);
        }
    }
    command.env("HOME", scratch_dir).current_dir(scratch_dir);
    command
}

/// Returns a port that was free on 127.0.0.1 a moment ago. Another process may take it before
/// Vault binds it, which [`VaultDevServer::start`] handles by trying again.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).context("failed to find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("failed to generate a root token: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn is_port_taken(error: &anyhow::Error) -> bool {
    error.to_string().contains("address already in use")
}

fn parse_body(text: String) -> Value {
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}
