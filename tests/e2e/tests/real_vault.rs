//! The real-Vault suite: a Vault dev server built from the pinned release registers our plugin
//! binary with its SHA-256 and version, enables it at `kong/`, and drives it against the Kong
//! emulator with the commands users type.
//!
//! Every server, emulator and plugin process listens on 127.0.0.1 and belongs to one test. The
//! plugin binary must be built first (`cargo build --release -p vault-plugin-secrets-kong`,
//! which `cargo test --release --workspace` does). Lease expiry uses short TTLs and polls to a
//! deadline, because Vault's expiration manager runs on wall-clock time.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use e2e::plugin::{self, InstalledPlugin, PLUGIN_NAME, PLUGIN_VERSION};
use e2e::vault::{CliOutput, VaultDevServer};
use kong_emulator::{Emulator, Options};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tempfile::TempDir;

/// Maximum wait for something Vault does in the background: a queued revocation, an expired
/// lease's revocation, a plugin process ending.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(60);

/// A Kong consumer and a Vault mount of our plugin at `kong/`, configured with the older Go
/// plugin's commands.
struct Mounted {
    kong: Emulator,
    vault: VaultDevServer,
    plugin: InstalledPlugin,
    http: ureq::Agent,
    // Deleted after the server that runs binaries from it has stopped.
    _plugin_dir: TempDir,
}

/// A lease on a key-auth credential, as `vault read -format=json kong/creds/<name>` prints it.
#[derive(Debug)]
struct Lease {
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    token: String,
    credential_id: String,
}

impl Mounted {
    /// Starts the emulator with consumers `foo` and `short`, a Vault dev server with our plugin
    /// registered and enabled at `kong/`, and configures access, `foo` (ttl 20s, max_ttl 600s)
    /// and `short` (ttl 3s).
    fn start() -> Self {
        let kong = Emulator::start(Options::default()).expect("the Kong emulator starts");
        for username in ["foo", "short"] {
            kong.seed("default", "consumers", json!({ "username": username }))
                .expect("the consumer is stored in the emulator");
        }

        let plugin_dir = tempfile::tempdir().expect("a plugin directory");
        let vault = VaultDevServer::start(plugin_dir.path()).expect("the Vault dev server starts");
        let plugin = plugin::install(plugin_dir.path()).expect("the plugin binary is installed");

        // The operator's outbound policy allows the emulator's Admin API and nothing else.
        let allowed = format!("-args=--allowed-origins={}", kong.admin_url());
        plugin::register_and_enable(&vault, &plugin, &[&allowed], "kong")
            .expect("the plugin registers and mounts");

        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mounted = Mounted {
            kong,
            vault,
            plugin,
            http,
            _plugin_dir: plugin_dir,
        };

        let baseurl = format!("baseurl={}", mounted.kong.admin_url());
        mounted.cli_ok(&["write", "kong/config/access", &baseurl]);
        mounted.cli_ok(&["write", "kong/consumers/foo", "max_ttl=600s", "ttl=20s"]);
        mounted.cli_ok(&["write", "kong/consumers/short", "max_ttl=600s", "ttl=3s"]);
        mounted
    }

    /// Runs `vault ARGS` and fails the test unless it exits 0.
    fn cli_ok(&self, args: &[&str]) -> CliOutput {
        let output = self.vault.cli(args);
        assert!(
            output.status.success(),
            "vault {} failed: {}\n{}",
            args.join(" "),
            output.stderr.trim(),
            output.stdout
        );
        output
    }

    /// Runs a `vault` command that prints JSON (`-format=json`) and parses its stdout.
    fn cli_json(&self, args: &[&str]) -> Value {
        let output = self.cli_ok(args);
        serde_json::from_str(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "vault {} printed invalid JSON ({error}): {}",
                args.join(" "),
                output.stdout
            )
        })
    }

    /// Reads `kong/creds/<role>` and returns the lease.
    fn issue(&self, role: &str) -> Lease {
        let path = format!("kong/creds/{role}");
        let read = self.cli_json(&["read", "-format=json", &path]);
        let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
        let lease = Lease {
            lease_id: text(&read["lease_id"]),
            lease_duration: read["lease_duration"].as_u64().unwrap_or_default(),
            renewable: read["renewable"].as_bool().unwrap_or_default(),
            token: text(&read["data"]["token"]),
            credential_id: text(&read["data"]["id"]),
        };
        assert!(
            lease.lease_id.starts_with(&format!("{path}/")),
            "lease: {read}"
        );
        assert!(!lease.token.is_empty(), "no token in {read}");
        assert!(!lease.credential_id.is_empty(), "no id in {read}");
        lease
    }

    /// Calls the emulator's proxy with `key` and returns the HTTP status.
    fn proxy_status(&self, key: &str) -> u16 {
        let url = format!("{}/anything", self.kong.proxy_url());
        let response = self
            .http
            .get(&url)
            .header("apikey", key)
            .call()
            .unwrap_or_else(|error| panic!("GET {url} failed: {error}"));
        response.status().as_u16()
    }

    /// Returns the ids of the key-auth credentials alive in the emulator.
    fn credential_ids(&self) -> Vec<String> {
        self.kong
            .key_auth_credentials()
            .iter()
            .map(|credential| credential["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Returns the process ids of our plugin binary that this test's Vault started.
    fn plugin_pids(&self) -> Vec<i32> {
        plugin_processes(&self.plugin.path)
    }
}

/// Polls `condition` until it is true or [`BACKGROUND_DEADLINE`] passes, and returns whether
/// it became true.
fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + BACKGROUND_DEADLINE;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Lists the processes whose program is `binary`, from `/proc`.
fn plugin_processes(binary: &Path) -> Vec<i32> {
    let binary = binary
        .canonicalize()
        .unwrap_or_else(|_| binary.to_path_buf());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let program = cmdline.split(|byte| *byte == 0).next().unwrap_or_default();
        if Path::new(std::str::from_utf8(program).unwrap_or_default()) == binary {
            pids.push(pid);
        }
    }
    pids
}

/// Fails the test when Vault's log has a warning or error about our plugin or its protocol:
/// stdio, handshake, decoding, a plugin that did not exit, or a log line Vault could not parse.
fn assert_no_plugin_warnings(vault: &VaultDevServer) {
    let log = vault.log();
    let suspicious = [
        PLUGIN_NAME,
        "stdio",
        "handshake",
        "decod",
        "Unrecognized remote plugin",
        "gracefully",
    ];
    let problems: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("[WARN]") || line.contains("[ERROR]"))
        .filter(|line| suspicious.iter().any(|word| line.contains(word)))
        .collect();
    assert!(
        problems.is_empty(),
        "Vault logged problems with the plugin:\n{}",
        problems.join("\n")
    );

    // Vault logs a plugin's stderr line verbatim only when it cannot parse it as a JSON log line.
    let raw: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("\"@level\""))
        .collect();
    assert!(
        raw.is_empty(),
        "Vault could not parse these plugin log lines:\n{}",
        raw.join("\n")
    );
}

#[test]
fn register_pins_sha256_and_version() {
    let mounted = Mounted::start();

    let info = mounted.cli_json(&[
        "plugin",
        "info",
        "-format=json",
        &format!("-version={PLUGIN_VERSION}"),
        "secret",
        PLUGIN_NAME,
    ]);
    let mounts = mounted.cli_json(&["secrets", "list", "-format=json"]);

    assert_eq!(
        info["sha256"],
        json!(mounted.plugin.sha256),
        "plugin info: {info}"
    );
    assert_eq!(
        info["version"],
        json!(PLUGIN_VERSION),
        "plugin info: {info}"
    );
    assert_eq!(
        mounts["kong/"]["type"],
        json!(PLUGIN_NAME),
        "mounts: {mounts}"
    );
    assert_eq!(
        mounts["kong/"]["running_plugin_version"],
        json!(PLUGIN_VERSION),
        "mounts: {mounts}"
    );
    assert_eq!(
        mounts["kong/"]["running_sha256"],
        json!(mounted.plugin.sha256),
        "mounts: {mounts}"
    );
}

#[test]
fn register_without_version_adopts_reported() {
    let mounted = Mounted::start();
    let sha256 = format!("-sha256={}", mounted.plugin.sha256);
    let command = format!("-command={}", plugin::PLUGIN_COMMAND);

    mounted.cli_ok(&[
        "plugin",
        "register",
        &sha256,
        &command,
        "secret",
        "kong-unversioned",
    ]);
    let list = mounted.cli_json(&["plugin", "list", "-format=json", "-detailed", "secret"]);

    let entry = list["details"]
        .as_array()
        .and_then(|plugins| {
            plugins
                .iter()
                .find(|plugin| plugin["name"] == "kong-unversioned")
        })
        .unwrap_or_else(|| panic!("kong-unversioned is not in {list}"));
    assert_eq!(
        entry["version"],
        json!(PLUGIN_VERSION),
        "catalog entry: {entry}"
    );
}

#[test]
fn older_plugin_commands_work_unchanged() {
    let mounted = Mounted::start();

    let consumer = mounted.cli_json(&["read", "-format=json", "kong/consumers/foo"]);
    let lease = mounted.issue("foo");

    assert_eq!(consumer["data"]["ttl"], json!(20), "consumer: {consumer}");
    assert_eq!(
        consumer["data"]["max_ttl"],
        json!(600),
        "consumer: {consumer}"
    );
    assert_eq!(lease.lease_duration, 20, "lease: {lease:?}");
    assert!(lease.renewable, "lease is not renewable: {lease:?}");
    assert_eq!(
        mounted.credential_ids(),
        std::slice::from_ref(&lease.credential_id),
        "credentials in Kong"
    );
    assert_no_plugin_warnings(&mounted.vault);
}

#[test]
fn revoked_key_is_rejected_by_proxy() {
    let mounted = Mounted::start();
    let lease = mounted.issue("foo");
    assert_eq!(
        mounted.proxy_status(&lease.token),
        200,
        "the new key does not open the route"
    );

    mounted.cli_ok(&["lease", "revoke", &lease.lease_id]);

    assert!(
        wait_until(|| mounted.proxy_status(&lease.token) == 401),
        "the key still opens the route"
    );
    assert_eq!(
        mounted.credential_ids(),
        Vec::<String>::new(),
        "credentials left in Kong"
    );
}

#[test]
fn expired_lease_revokes_the_key() {
    let mounted = Mounted::start();
    let lease = mounted.issue("short");
    assert_eq!(lease.lease_duration, 3, "lease: {lease:?}");
    assert_eq!(
        mounted.proxy_status(&lease.token),
        200,
        "the new key does not open the route"
    );

    let revoked = wait_until(|| mounted.credential_ids().is_empty());

    assert!(
        revoked,
        "the credential outlived its 3 s lease: {:?}",
        mounted.credential_ids()
    );
    assert_eq!(
        mounted.proxy_status(&lease.token),
        401,
        "the expired key still opens the route"
    );
    let lookup = mounted.vault.cli(&["lease", "lookup", &lease.lease_id]);
    assert!(
        !lookup.status.success(),
        "the expired lease still exists: {}",
        lookup.stdout
    );
}

#[test]
fn renew_sets_requested_duration() {
    let mounted = Mounted::start();
    let lease = mounted.issue("foo");

    let renewed = mounted.cli_json(&[
        "lease",
        "renew",
        "-format=json",
        "-increment=120s",
        &lease.lease_id,
    ]);
    let lookup = mounted.cli_json(&["lease", "lookup", "-format=json", &lease.lease_id]);

    assert_eq!(renewed["lease_duration"], json!(120), "renew: {renewed}");
    assert_eq!(
        renewed["lease_id"],
        json!(lease.lease_id),
        "renew: {renewed}"
    );
    let ttl = lookup["data"]["ttl"].as_u64().unwrap_or_default();
    assert!(
        (100..=120).contains(&ttl),
        "lease TTL after renew is {ttl}: {lookup}"
    );
    assert_eq!(
        mounted.proxy_status(&lease.token),
        200,
        "the renewed key does not open the route"
    );
}

#[test]
fn renew_of_deleted_key_names_cause() {
    let mounted = Mounted::start();
    let lease = mounted.issue("foo");
    let url = format!(
        "{}/key-auths/{}",
        mounted.kong.admin_url(),
        lease.credential_id
    );
    let deleted = mounted
        .http
        .delete(&url)
        .call()
        .expect("the emulator answers");
    assert_eq!(deleted.status().as_u16(), 204, "DELETE {url}");

    let renew = mounted.vault.cli(&["lease", "renew", &lease.lease_id]);

    assert!(!renew.status.success(), "renew succeeded: {}", renew.stdout);
    let expected = format!(
        "credential {} no longer exists in Kong (it or its consumer was deleted), so the lease \
         cannot be renewed; read creds/foo for a new credential",
        lease.credential_id
    );
    assert!(
        renew.stderr.contains(&expected),
        "renew error does not name the cause: {}",
        renew.stderr
    );
    // Vault 1.21 prefixes every renew error with "failed to renew entry: resp: ... err:"; an
    // error response instead of an error would print the response's whole data map there.
    assert!(
        !renew.stderr.contains("Data:map"),
        "renew error is a dump of the response data: {}",
        renew.stderr
    );
    assert!(
        renew.stderr.contains("Code: 400"),
        "renew error is not a 400: {}",
        renew.stderr
    );
}

#[test]
fn revoke_prefix_leaves_no_credential() {
    let mounted = Mounted::start();
    let leases: Vec<Lease> = (0..3).map(|_| mounted.issue("foo")).collect();
    assert_eq!(
        mounted.credential_ids().len(),
        3,
        "credentials in Kong after three reads"
    );

    mounted.cli_ok(&["lease", "revoke", "-prefix", "kong/"]);

    assert!(
        wait_until(|| mounted.credential_ids().is_empty()),
        "credentials left: {:?}",
        mounted.credential_ids()
    );
    for lease in &leases {
        assert_eq!(
            mounted.proxy_status(&lease.token),
            401,
            "a revoked key still opens the route"
        );
    }
}

#[test]
fn secrets_disable_leaves_no_credential() {
    let mounted = Mounted::start();
    mounted.issue("foo");
    mounted.issue("short");

    mounted.cli_ok(&["secrets", "disable", "kong"]);

    assert_eq!(
        mounted.credential_ids(),
        Vec::<String>::new(),
        "credentials left in Kong"
    );
    assert!(
        wait_until(|| mounted.plugin_pids().is_empty()),
        "the plugin process outlived its mount"
    );
    assert_no_plugin_warnings(&mounted.vault);
}

#[test]
fn path_help_and_openapi_answer() {
    let mounted = Mounted::start();

    let help = mounted.cli_ok(&["path-help", "kong/creds/foo"]);
    let (status, openapi) = mounted.vault.api("GET", "sys/internal/specs/openapi", None);

    assert!(
        help.stdout.contains("username"),
        "path-help output: {}",
        help.stdout
    );
    assert_eq!(status, 200, "GET sys/internal/specs/openapi: {openapi}");
    let paths = openapi["paths"]
        .as_object()
        .map(|paths| paths.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        paths.iter().any(|path| path.starts_with("/kong/creds/")),
        "no kong/creds path in {paths:?}"
    );
    assert_no_plugin_warnings(&mounted.vault);
}

#[test]
fn killed_plugin_restarts_on_request() {
    let mounted = Mounted::start();
    let before = mounted.plugin_pids();
    assert_eq!(before.len(), 1, "plugin processes: {before:?}");

    kill(Pid::from_raw(before[0]), Signal::SIGKILL).expect("the plugin process is killed");
    assert!(
        wait_until(|| !mounted.plugin_pids().contains(&before[0])),
        "the killed process is still listed"
    );
    let consumer = mounted.cli_json(&["read", "-format=json", "kong/consumers/foo"]);
    let lease = mounted.issue("foo");

    assert_eq!(
        consumer["data"]["ttl"],
        json!(20),
        "consumer after the restart: {consumer}"
    );
    assert_eq!(
        mounted.proxy_status(&lease.token),
        200,
        "the key issued after the restart does not work"
    );
    let after = mounted.plugin_pids();
    assert_eq!(
        after.len(),
        1,
        "plugin processes after the restart: {after:?}"
    );
    assert_ne!(after, before, "no new plugin process");
}

#[test]
fn plugin_reload_keeps_leases_revocable() {
    let mounted = Mounted::start();
    let lease = mounted.issue("foo");
    let before = mounted.plugin_pids();

    mounted.cli_ok(&["plugin", "reload", &format!("-plugin={PLUGIN_NAME}")]);
    assert!(
        wait_until(|| !mounted.plugin_pids().contains(&before[0])),
        "the old process is still running"
    );
    mounted.cli_ok(&["lease", "revoke", "-sync", &lease.lease_id]);

    assert_eq!(
        mounted.credential_ids(),
        Vec::<String>::new(),
        "credentials left in Kong"
    );
    assert_eq!(
        mounted.proxy_status(&lease.token),
        401,
        "the revoked key still opens the route"
    );
    assert_eq!(
        mounted.plugin_pids().len(),
        1,
        "plugin processes after the reload"
    );
    assert_no_plugin_warnings(&mounted.vault);
}

#[test]
fn full_session_logs_no_plugin_warnings() {
    let mounted = Mounted::start();

    let lease = mounted.issue("foo");
    mounted.cli_ok(&["lease", "renew", &lease.lease_id]);
    mounted.cli_ok(&["lease", "revoke", "-sync", &lease.lease_id]);
    mounted.cli_ok(&["path-help", "kong/"]);
    mounted.issue("foo");
    mounted.cli_ok(&["secrets", "disable", "kong"]);
    assert!(
        wait_until(|| mounted.plugin_pids().is_empty()),
        "the plugin process outlived its mount"
    );

    assert_no_plugin_warnings(&mounted.vault);
    let log = mounted.vault.log();
    assert!(
        log.lines()
            .any(|line| line.contains("[INFO]") && line.contains("plugin listening:")),
        "the plugin's start line is not in Vault's log at info level"
    );
}
