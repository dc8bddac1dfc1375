//! The end-to-end demo: a real Vault dev server runs our plugin against the Kong emulator, and
//! every step prints the command a user would type and what came back.
//!
//! Everything listens on 127.0.0.1 and stops when the demo ends. The demo exits non-zero as
//! soon as a step does not behave as described, so it doubles as a smoke test.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use e2e::plugin::{self, PLUGIN_NAME};
use e2e::vault::{CliOutput, VaultDevServer};
use kong_emulator::{Emulator, Options};
use serde_json::Value;

/// Consumer that the demo creates in Kong and issues keys for.
const CONSUMER: &str = "foo";

fn main() -> ExitCode {
    match run() {
        Ok(()) => {
            println!("\nDemo finished: every step behaved as described.");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\ndemo failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    heading("Start the Kong emulator (Admin API and a key-auth proxy on 127.0.0.1)");
    let kong = Emulator::start(Options::default()).context("starting the Kong emulator")?;
    println!("Admin API: {}", kong.admin_url());
    println!("Proxy:     {}", kong.proxy_url());

    heading(&format!("Create the consumer {CONSUMER:?} in Kong"));
    let http = ureq::Agent::new_with_defaults();
    let consumer_url = format!("{}/consumers/{CONSUMER}", kong.admin_url());
    println!("$ curl -X PUT {consumer_url}");
    let response = http
        .put(&consumer_url)
        .send_empty()
        .context("creating the consumer in the Kong emulator")?;
    println!("HTTP {}", response.status().as_u16());

    heading("Start a Vault dev server and register the plugin with its SHA-256");
    let plugin_dir = tempfile::tempdir().context("creating the plugin directory")?;
    let vault = VaultDevServer::start(plugin_dir.path())?;
    println!("Vault: {} (dev mode, in-memory)", vault.addr());
    let installed = plugin::install(plugin_dir.path())?;
    // The allow-list limits the engine to this Kong, as an operator should in production.
    let allow_kong = format!("-args=--allowed-origins={}", kong.admin_url());
    let register = plugin::register_args(&installed, &[&allow_kong]);
    let register: Vec<&str> = register.iter().map(String::as_str).collect();
    expect_success(&vault, &register)?;
    expect_success(&vault, &["secrets", "enable", "-path=kong", PLUGIN_NAME])?;

    heading("Configure the engine exactly as with the older Go plugin");
    let baseurl = format!("baseurl={}", kong.admin_url());
    expect_success(&vault, &["write", "kong/config/access", &baseurl])?;
    expect_success(
        &vault,
        &["write", "kong/consumers/foo", "max_ttl=600s", "ttl=20s"],
    )?;
    expect_success(&vault, &["read", "kong/consumers/foo"])?;

    heading("Issue a key-auth credential under a Vault lease");
    let creds = expect_success(&vault, &["read", "-format=json", "kong/creds/foo"])?;
    let creds: Value = serde_json::from_str(&creds.stdout).context("parsing vault read output")?;
    let token = creds["data"]["token"]
        .as_str()
        .context("vault read kong/creds/foo returned no data.token")?;
    let lease_id = creds["lease_id"]
        .as_str()
        .context("vault read kong/creds/foo returned no lease_id")?
        .to_string();

    heading("The key opens the route behind Kong's key-auth plugin");
    expect_proxy_status(&http, &kong, token, 200)?;

    heading("Renew the lease");
    expect_success(&vault, &["lease", "renew", &lease_id])?;

    heading("Revoke the lease: the credential disappears from Kong");
    // -sync returns once the engine has deleted the credential; without it Vault only queues
    // the revocation, and the next step could still see the key.
    expect_success(&vault, &["lease", "revoke", "-sync", &lease_id])?;
    expect_proxy_status(&http, &kong, token, 401)?;
    let left = kong.key_auth_credentials().len();
    println!("key-auth credentials left in Kong: {left}");
    if left != 0 {
        bail!("{left} key-auth credentials are still in Kong after the revoke");
    }
    Ok(())
}

/// Prints a step title.
fn heading(title: &str) {
    println!("\n== {title}");
}

/// Runs `vault ARGS`, prints the command and its output, and fails unless it exited 0.
fn expect_success(vault: &VaultDevServer, args: &[&str]) -> Result<CliOutput> {
    println!("$ vault {}", args.join(" "));
    let output = vault.cli(args);
    print!("{}", output.stdout);
    if !output.status.success() {
        bail!("vault {} failed: {}", args.join(" "), output.stderr.trim());
    }
    Ok(output)
}

/// Calls the emulator's proxy with `key` in the `apikey` header and checks the status.
fn expect_proxy_status(
    http: &ureq::Agent,
    kong: &Emulator,
    key: &str,
    expected: u16,
) -> Result<()> {
    let url = format!("{}/anything", kong.proxy_url());
    println!("$ curl -H 'apikey: <the token>' {url}");
    let status = match http.get(&url).header("apikey", key).call() {
        Ok(response) => response.status().as_u16(),
        Err(ureq::Error::StatusCode(status)) => status,
        Err(error) => return Err(error).context("calling the Kong emulator's proxy"),
    };
    println!("HTTP {status}");
    if status != expected {
        bail!("the proxy returned {status} for the key, expected {expected}");
    }
    Ok(())
}
