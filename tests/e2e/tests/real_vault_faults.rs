//! Fault cases of the real-Vault suite: the plugin's outbound policy and limits as a Vault user
//! meets them through `vault read kong/creds/foo`.
//!
//! Each test owns a Vault dev server with our plugin enabled at `kong/` and a Kong emulator
//! whose Admin API is the only origin the plugin may reach. It injects one fault, asserts
//! Vault's status and the exact error text, checks that Kong holds no credential without a
//! lease, and then reads credentials again through the same mount. Everything listens on
//! 127.0.0.0/8. The plugin binary must be built first (`cargo build --release -p
//! vault-plugin-secrets-kong`).

use std::thread;
use std::time::{Duration, Instant};

use e2e::plugin;
use e2e::vault::VaultDevServer;
use kong_emulator::{Emulator, Options};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A Kong emulator with consumer `foo` and a Vault mount of our plugin at `kong/`, whose
/// outbound policy allows only the emulator's Admin API.
struct Faulty {
    kong: Emulator,
    vault: VaultDevServer,
    // Deleted after the server that runs binaries from it has stopped.
    _plugin_dir: TempDir,
}

impl Faulty {
    /// Starts both, registers the plugin with `--allowed-origins=<emulator>` and
    /// `extra_register_args`, and writes `consumers/foo`. `config/access` is left to the test.
    fn start(extra_register_args: &[&str]) -> Self {
        let kong = Emulator::start(Options::default()).expect("the Kong emulator starts");
        kong.seed("default", "consumers", json!({ "username": "foo" }))
            .expect("the consumer is stored in the emulator");

        let plugin_dir = tempfile::tempdir().expect("a plugin directory");
        let vault = VaultDevServer::start(plugin_dir.path()).expect("the Vault dev server starts");
        let installed = plugin::install(plugin_dir.path()).expect("the plugin binary is installed");
        let allowed = format!("-args=--allowed-origins={}", kong.admin_url());
        let mut register_args = vec![allowed.as_str()];
        register_args.extend_from_slice(extra_register_args);
        plugin::register_and_enable(&vault, &installed, &register_args, "kong")
            .expect("the plugin registers and mounts");

        let faulty = Faulty {
            kong,
            vault,
            _plugin_dir: plugin_dir,
        };
        faulty.cli_ok(&["write", "kong/consumers/foo", "ttl=60s", "max_ttl=600s"]);
        faulty
    }

    /// Writes `config/access` with `baseurl` and any further `key=value` fields.
    fn write_access(&self, baseurl: &str, fields: &[&str]) {
        let baseurl = format!("baseurl={baseurl}");
        let mut args = vec!["write", "kong/config/access", baseurl.as_str()];
        args.extend_from_slice(fields);
        self.cli_ok(&args);
    }

    /// Runs `vault ARGS` and fails the test unless it exits 0.
    fn cli_ok(&self, args: &[&str]) {
        let output = self.vault.cli(args);
        assert!(
            output.status.success(),
            "vault {} failed: {}",
            args.join(" "),
            output.stderr.trim()
        );
    }

    /// Reads `kong/creds/foo` through the HTTP API and returns Vault's status and its `errors`.
    fn read_creds_error(&self) -> (u16, Value) {
        let (status, body) = self.vault.api("GET", "kong/creds/foo", None);
        (status, body["errors"].clone())
    }

    /// Reads `kong/creds/foo` with the CLI, as users do, and fails the test unless a lease on a
    /// credential that Kong stores comes back.
    fn assert_creds_work(&self) {
        let output = self.vault.cli(&["read", "-format=json", "kong/creds/foo"]);
        assert!(
            output.status.success(),
            "vault read kong/creds/foo failed after the fault: {}",
            output.stderr.trim()
        );
        let read: Value = serde_json::from_str(&output.stdout).unwrap_or_else(|error| {
            panic!("vault read printed invalid JSON ({error}): {output:?}")
        });
        let lease_id = read["lease_id"].as_str().unwrap_or_default();
        assert!(lease_id.starts_with("kong/creds/foo/"), "read: {read}");
        assert_eq!(
            self.credential_ids(),
            vec![read["data"]["id"].as_str().unwrap_or_default().to_string()],
            "credentials in Kong after a successful read: {read}"
        );
    }

    /// Fails the test when Kong stores any key-auth credential, because the tests call this
    /// before any read has succeeded, so no lease exists.
    fn assert_no_credential_left(&self) {
        assert_eq!(
            self.credential_ids(),
            Vec::<String>::new(),
            "Kong stores credentials that no lease tracks"
        );
    }

    fn credential_ids(&self) -> Vec<String> {
        self.kong
            .key_auth_credentials()
            .iter()
            .map(|credential| credential["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Returns the emulator's Admin API port.
    fn port(&self) -> String {
        let url = self.kong.admin_url();
        url.rsplit(':').next().unwrap_or_default().to_string()
    }
}

/// Returns `message` as Vault 1.21 renders an error that carries its own HTTP status. Vault
/// collects a backend's errors in a go-multierror list, and only an error in that list can set
/// the status, so the text keeps the list's wrapping.
fn coded(message: &str) -> String {
    format!("1 error occurred:\n\t* {message}\n\n")
}

/// Returns Vault's `errors` with the request ids in tags replaced by `{id}`.
fn redacted_errors(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .unwrap_or_else(|| panic!("errors is not an array: {errors}"))
        .iter()
        .map(|error| redact_request_tags(error.as_str().unwrap_or_default()))
        .collect()
}

/// Replaces the request id in every `vault-request-<id>` tag of `message` with `{id}`, after
/// checking that all tags carry the same id, so a message can be compared exactly.
fn redact_request_tags(message: &str) -> String {
    const PREFIX: &str = "vault-request-";
    let mut redacted = String::new();
    let mut ids = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find(PREFIX) {
        let after = &rest[start + PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~".contains(c)))
            .unwrap_or(after.len());
        redacted.push_str(&rest[..start + PREFIX.len()]);
        redacted.push_str("{id}");
        ids.push(&after[..end]);
        rest = &after[end..];
    }
    redacted.push_str(rest);
    assert!(
        ids.windows(2).all(|pair| pair[0] == pair[1]),
        "tags name different requests: {message}"
    );
    redacted
}

#[test]
fn denied_origin_names_origin_and_setting() {
    let faulty = Faulty::start(&[]);
    let port = faulty.port();
    faulty.write_access(&format!("http://127.0.0.2:{port}"), &[]);

    let cli = faulty.vault.cli(&["read", "kong/creds/foo"]);
    let (status, errors) = faulty.read_creds_error();

    let message = format!(
        "request to http://127.0.0.2:{port}/consumers/foo/key-auth was denied: the plugin's \
         outbound policy denied http://127.0.0.2:{port}: the origin is not in the allowed \
         origins; a Vault operator can add it with --allowed-origins or \
         KONG_SECRETS_ALLOWED_ORIGINS"
    );
    assert!(
        !cli.status.success(),
        "vault read succeeded: {}",
        cli.stdout
    );
    assert_eq!(
        cli.stderr.trim_end(),
        format!(
            "Error reading kong/creds/foo: Error making API request.\n\n\
             URL: GET {}/v1/kong/creds/foo\n\
             Code: 403. Errors:\n\n\
             * {}",
            faulty.vault.addr(),
            coded(&message).trim_end()
        ),
        "vault read stderr"
    );
    assert_eq!(status, 403, "errors: {errors}");
    assert_eq!(errors, json!([coded(&message)]), "Vault's errors");
    assert_eq!(
        faulty.kong.requests().len(),
        0,
        "requests that reached Kong"
    );
    faulty.assert_no_credential_left();

    faulty.write_access(&faulty.kong.admin_url(), &[]);
    faulty.assert_creds_work();
}

#[test]
fn kong_503_names_status_then_recovers() {
    let faulty = Faulty::start(&[]);
    faulty.write_access(&faulty.kong.admin_url(), &[]);
    faulty.kong.faults().fail_next(1, 503);

    let (status, errors) = faulty.read_creds_error();

    assert_eq!(status, 502, "errors: {errors}");
    assert_eq!(
        errors,
        json!([coded(&format!(
            "kong returned 503 for POST {}/consumers/foo/key-auth: Service Unavailable",
            faulty.kong.admin_url()
        ))]),
        "Vault's errors"
    );
    faulty.assert_no_credential_left();

    faulty.assert_creds_work();
}

#[test]
fn redirect_is_not_followed() {
    let faulty = Faulty::start(&[]);
    faulty.write_access(&faulty.kong.admin_url(), &[]);
    // The target is allowed and serves the Admin API, so only a followed redirect would reach it.
    let location = format!("{}/consumers/foo/key-auth", faulty.kong.admin_url());
    faulty.kong.faults().redirect_next(1, location);

    let (status, errors) = faulty.read_creds_error();

    assert_eq!(status, 502, "errors: {errors}");
    assert_eq!(
        errors,
        json!([coded(&format!(
            "kong returned 307 for POST {}/consumers/foo/key-auth: Temporary Redirect; the \
             plugin follows no redirects, so set baseurl in config/access to the address that \
             serves the Admin API itself",
            faulty.kong.admin_url()
        ))]),
        "Vault's errors"
    );
    let requests = faulty.kong.requests();
    assert_eq!(
        requests.len(),
        1,
        "requests that reached Kong: {requests:?}"
    );
    faulty.assert_no_credential_left();

    faulty.assert_creds_work();
}

#[test]
fn slow_kong_times_out_naming_url() {
    let faulty = Faulty::start(&[]);
    faulty.write_access(&faulty.kong.admin_url(), &["request_timeout=1s"]);
    let latency = Duration::from_secs(6);
    faulty.kong.faults().set_latency(latency);

    let started = Instant::now();
    let (status, errors) = faulty.read_creds_error();
    let elapsed = started.elapsed();

    // One timed-out create and one timed-out lookup of its tag take about 2 s. Waiting out the
    // emulator's latency even once would take 6 s.
    assert!(elapsed < Duration::from_secs(5), "creds took {elapsed:?}");
    assert_eq!(status, 504, "errors: {errors}");
    let admin = faulty.kong.admin_url();
    assert_eq!(
        redacted_errors(&errors),
        vec![coded(&format!(
            "no response from {admin}/consumers/foo/key-auth within 1s; check that Kong is \
             healthy, or raise request_timeout in config/access; Kong may have created the \
             credential anyway, and looking for it failed (no response from \
             {admin}/key-auths?tags=vault-request-{{id}} within 1s); delete key-auth \
             credentials tagged vault-request-{{id}} in Kong"
        ))],
        "Vault's errors: {errors}"
    );

    let requests = faulty.kong.requests();
    assert_eq!(
        requests.len(),
        2,
        "requests that reached Kong: {requests:?}"
    );

    // Once the latency has passed, a create that the emulator went on serving would be stored.
    // NOTE: the emulator drops a delayed request whose client has closed the connection, but a
    // real Kong may finish the create, which is why the message names the tag to delete.
    thread::sleep(latency);
    faulty.assert_no_credential_left();
    faulty.kong.faults().clear();

    faulty.assert_creds_work();
}

#[test]
fn oversized_body_names_host_limit() {
    let faulty = Faulty::start(&["-args=--max-response-body-bytes=4KiB"]);
    faulty.write_access(&faulty.kong.admin_url(), &[]);
    faulty.kong.faults().oversized_next(1, 64 * 1024);

    let (status, errors) = faulty.read_creds_error();

    assert_eq!(status, 502, "errors: {errors}");
    assert_eq!(
        redacted_errors(&errors),
        vec![coded(&format!(
            "response from {}/consumers/foo/key-auth is larger than 4096 bytes; Kong held no \
             credential tagged vault-request-{{id}} when the engine looked; if Kong still \
             completes the create, the key expires at its Kong-side ttl, or delete it by that tag",
            faulty.kong.admin_url()
        ))],
        "Vault's errors: {errors}"
    );
    faulty.assert_no_credential_left();

    faulty.assert_creds_work();
}
