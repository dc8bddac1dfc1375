//! Plugin start-up: the time from exec to the handshake line on stdout, which is how long Vault
//! waits before it can connect to a newly started plugin process. Prints its figures.
//!
//! Each run starts the release binary with the environment Vault gives a backend plugin (a
//! fresh P-521 certificate in `PLUGIN_CLIENT_CERT`), reads the first stdout line, and kills the
//! process. The runtime compiles the engine in the background, so this does not include it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};

const PLUGIN_BINARY: &str = env!("CARGO_BIN_EXE_vault-plugin-secrets-kong");
const WARM_UP_RUNS: usize = 3;
const MEASURED_RUNS: usize = 30;

fn main() {
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("P-521 key");
    let certificate = CertificateParams::new(vec!["localhost".to_string()])
        .expect("certificate parameters")
        .self_signed(&key_pair)
        .expect("self-signed certificate");
    let certificate_pem = certificate.pem();
    let socket_dir = tempfile::tempdir().expect("temporary directory");

    for _ in 0..WARM_UP_RUNS {
        time_to_handshake(&certificate_pem, socket_dir.path());
    }
    let mut samples: Vec<Duration> = (0..MEASURED_RUNS)
        .map(|_| time_to_handshake(&certificate_pem, socket_dir.path()))
        .collect();
    samples.sort();

    let percentile = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!("plugin start, exec to handshake line, {MEASURED_RUNS} runs:");
    println!("  min    {:>8.2} ms", millis(samples[0]));
    println!("  median {:>8.2} ms", millis(percentile(50)));
    println!("  p90    {:>8.2} ms", millis(percentile(90)));
    println!("  max    {:>8.2} ms", millis(samples[samples.len() - 1]));
}

/// Starts the plugin once and returns the time until its handshake line arrived.
fn time_to_handshake(certificate_pem: &str, socket_dir: &std::path::Path) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(PLUGIN_BINARY)
        .env_clear()
        .env(
            "VAULT_BACKEND_PLUGIN",
            "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .env("PLUGIN_MIN_PORT", "0")
        .env("PLUGIN_MAX_PORT", "0")
        .env("PLUGIN_CLIENT_CERT", certificate_pem)
        .env("VAULT_PLUGIN_AUTOMTLS_ENABLED", "true")
        .env("KONG_SECRETS_LOG_LEVEL", "off")
        .env("TMPDIR", socket_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the plugin binary");

    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the handshake line");
    let elapsed = started.elapsed();
    assert!(
        line.starts_with("1|5|unix|"),
        "unexpected handshake line: {line:?}"
    );

    child.kill().expect("killing the plugin");
    child.wait().expect("waiting for the plugin");
    elapsed
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
