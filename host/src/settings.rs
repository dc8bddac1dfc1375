//! Operator settings: the outbound policy and the resource limits of the sandbox.
//!
//! Only a Vault operator sets these, as plugin arguments (`vault plugin register -args=...`)
//! or as environment variables (`-env=...`). Vault users, including anyone who may write the
//! engine's `config/access`, cannot change them. Every flag has an environment variable of the
//! same meaning; a flag given on the command line wins over its variable.
//!
//! [`Settings::default`] is the safe default that the flags also default to: an open origin
//! policy that still denies link-local and cloud metadata addresses, and every limit at its
//! documented value.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use ipnet::IpNet;

use crate::outbound::AllowedOrigin;

/// Sandbox settings of the Kong secrets engine plugin.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "vault-plugin-secrets-kong",
    about = "Vault secrets engine for Kong, run as a sandboxed WebAssembly component",
    long_about = None,
    after_help = "Vault starts this program as a plugin; run by hand it only prints this help \
                  or its version. The environment variable KONG_SECRETS_LOG_LEVEL sets the log \
                  level: trace, debug (the default), info, warn, error or off. Vault filters \
                  plugin log lines by its own level as well."
)]
pub struct Settings {
    /// Origins the engine may send requests to, as `scheme://host:port` (the port defaults to
    /// 80 for http and 443 for https). `https://*.example.com:8444` allows every subdomain of
    /// example.com, but not example.com itself. With none given, every origin is allowed,
    /// apart from the denied networks, and the plugin logs a warning at start-up.
    #[arg(
        long = "allowed-origins",
        env = "KONG_SECRETS_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ',',
        value_parser = AllowedOrigin::parse
    )]
    pub allowed_origins: Vec<AllowedOrigin>,

    /// Networks (CIDR, such as 10.0.0.0/8 or fd00::/8) the engine may never connect to, in
    /// addition to the built-in ones. Checked on every address a host name resolves to.
    #[arg(
        long = "denied-networks",
        env = "KONG_SECRETS_DENIED_NETWORKS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub denied_networks: Vec<IpNet>,

    /// Networks (CIDR) exempt from the built-in denied networks (link-local, cloud metadata,
    /// unspecified, multicast and broadcast addresses). Does not override --denied-networks.
    #[arg(
        long = "allowed-networks",
        env = "KONG_SECRETS_ALLOWED_NETWORKS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub allowed_networks: Vec<IpNet>,

    /// PEM file of extra certificate authorities to trust for https origins, besides the
    /// system's trust store.
    #[arg(
        long = "outbound-ca-file",
        env = "KONG_SECRETS_OUTBOUND_CA_FILE",
        value_name = "PATH"
    )]
    pub outbound_ca_file: Option<PathBuf>,

    /// Maximum time to establish a connection (DNS, TCP and TLS), such as `10s` or `500ms`.
    /// The engine may request less, never more.
    #[arg(
        long = "max-connect-timeout",
        env = "KONG_SECRETS_MAX_CONNECT_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub max_connect_timeout: Duration,

    /// Maximum wait for the response headers after the request was sent.
    #[arg(
        long = "max-first-byte-timeout",
        env = "KONG_SECRETS_MAX_FIRST_BYTE_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub max_first_byte_timeout: Duration,

    /// Maximum silence between two chunks of a response body.
    #[arg(
        long = "max-between-bytes-timeout",
        env = "KONG_SECRETS_MAX_BETWEEN_BYTES_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub max_between_bytes_timeout: Duration,

    /// Maximum size of a response body the engine may receive, in bytes (suffixes KiB, MiB, GiB).
    #[arg(
        long = "max-response-body-bytes",
        env = "KONG_SECRETS_MAX_RESPONSE_BODY_BYTES",
        value_name = "BYTES",
        default_value = "4MiB",
        value_parser = parse_byte_size
    )]
    pub max_response_body_bytes: u64,

    /// Maximum number of outbound requests the engine may send while handling one Vault request.
    #[arg(
        long = "max-outbound-requests-per-call",
        env = "KONG_SECRETS_MAX_OUTBOUND_REQUESTS_PER_CALL",
        value_name = "COUNT",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_outbound_requests_per_call: u32,

    /// Maximum linear memory of one engine instance, in bytes (suffixes KiB, MiB, GiB).
    #[arg(
        long = "max-memory-bytes",
        env = "KONG_SECRETS_MAX_MEMORY_BYTES",
        value_name = "BYTES",
        default_value = "64MiB",
        value_parser = parse_byte_size
    )]
    pub max_memory_bytes: u64,

    /// CPU time the engine may use for one Vault request, counted in 10 ms ticks in which it
    /// ran. Time spent waiting for Kong or for Vault's storage does not count.
    #[arg(
        long = "max-cpu-time",
        env = "KONG_SECRETS_MAX_CPU_TIME",
        value_name = "DURATION",
        default_value = "2s",
        value_parser = parse_duration
    )]
    pub max_cpu_time: Duration,

    /// Maximum time one Vault request may take in the engine, waiting included.
    #[arg(
        long = "max-call-duration",
        env = "KONG_SECRETS_MAX_CALL_DURATION",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub max_call_duration: Duration,

    /// Maximum number of Vault requests the engine handles at once. Each one uses an instance
    /// with up to --max-memory-bytes of memory.
    #[arg(
        long = "max-concurrent-calls",
        env = "KONG_SECRETS_MAX_CONCURRENT_CALLS",
        value_name = "COUNT",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub max_concurrent_calls: u32,

    /// How long a request waits for a free slot when --max-concurrent-calls are running,
    /// before it fails as overloaded.
    #[arg(
        long = "max-queue-wait",
        env = "KONG_SECRETS_MAX_QUEUE_WAIT",
        value_name = "DURATION",
        default_value = "2s",
        value_parser = parse_duration
    )]
    pub max_queue_wait: Duration,

    /// Host names resolved from this table instead of DNS, for embedders and tests. Keys are
    /// lowercase names without a trailing dot. Not an operator flag, and addresses found here
    /// still pass the network rules.
    #[arg(skip)]
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
}

impl Default for Settings {
    /// Returns the documented defaults, ignoring the `KONG_SECRETS_*` environment variables.
    fn default() -> Self {
        let command = Settings::command().mut_args(|argument| argument.env(None));
        let matches = command
            .try_get_matches_from(["vault-plugin-secrets-kong"])
            .expect("every setting has a default or is optional");
        Settings::from_arg_matches(&matches).expect("defaults parse into settings")
    }
}

impl Settings {
    /// Returns whether the operator left the origin allow-list empty, so any origin is allowed.
    pub fn outbound_policy_is_open(&self) -> bool {
        self.allowed_origins.is_empty()
    }
}

/// Parses a duration such as `250ms`, `10s`, `2m` or `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let invalid =
        || format!("invalid duration `{text}`: use a whole number with ms, s, m or h, such as 10s");
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(invalid()),
    };
    if duration.is_zero() {
        return Err(format!(
            "invalid duration `{text}`: must be greater than zero"
        ));
    }
    Ok(duration)
}

/// Parses a byte size such as `65536`, `512KiB`, `64MiB` or `1GiB`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let invalid = || {
        format!(
            "invalid byte size `{text}`: use a whole number with KiB, MiB or GiB, such as 64MiB"
        )
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    match number.checked_mul(multiplier) {
        Some(0) => Err(format!(
            "invalid byte size `{text}`: must be greater than zero"
        )),
        Some(bytes) => Ok(bytes),
        None => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_match_documented_values() {
        let settings = Settings::default();
        assert!(settings.outbound_policy_is_open(), "{settings:?}");
        assert_eq!(settings.max_connect_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_first_byte_timeout, Duration::from_secs(30));
        assert_eq!(settings.max_between_bytes_timeout, Duration::from_secs(30));
        assert_eq!(settings.max_response_body_bytes, 4 << 20);
        assert_eq!(settings.max_outbound_requests_per_call, 32);
        assert_eq!(settings.max_memory_bytes, 64 << 20);
        assert_eq!(settings.max_cpu_time, Duration::from_secs(2));
        assert_eq!(settings.max_call_duration, Duration::from_secs(60));
        assert_eq!(settings.max_concurrent_calls, 64);
        assert_eq!(settings.max_queue_wait, Duration::from_secs(2));
    }

    #[test]
    fn default_ignores_environment() {
        // No other test reads this variable, so setting it cannot disturb a parallel test.
        std::env::set_var("KONG_SECRETS_MAX_QUEUE_WAIT", "9s");
        let from_environment = Settings::try_parse_from(["plugin"]).expect("valid settings");
        let default = Settings::default();
        std::env::remove_var("KONG_SECRETS_MAX_QUEUE_WAIT");

        assert_eq!(
            from_environment.max_queue_wait,
            Duration::from_secs(9),
            "the variable applies to parsing"
        );
        assert_eq!(
            default.max_queue_wait,
            Duration::from_secs(2),
            "the default ignores the variable"
        );
    }

    #[test]
    fn arguments_parse_lists_and_units() {
        let settings = Settings::try_parse_from([
            "plugin",
            "--allowed-origins=https://kong.example.com:8444,http://127.0.0.1:8001",
            "--denied-networks",
            "10.0.0.0/8",
            "--max-memory-bytes=32MiB",
            "--max-cpu-time=500ms",
        ])
        .expect("valid arguments");
        assert_eq!(settings.allowed_origins.len(), 2, "{settings:?}");
        assert_eq!(
            settings.denied_networks,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert_eq!(settings.max_memory_bytes, 32 << 20);
        assert_eq!(settings.max_cpu_time, Duration::from_millis(500));
    }

    #[test]
    fn duration_parse_rejects_bad_text() {
        let cases = [
            ("10s", Ok(Duration::from_secs(10))),
            ("250ms", Ok(Duration::from_millis(250))),
            ("2m", Ok(Duration::from_secs(120))),
            ("7", Ok(Duration::from_secs(7))),
            (
                "ten",
                Err(
                    "invalid duration `ten`: use a whole number with ms, s, m or h, such as 10s"
                        .to_string(),
                ),
            ),
            (
                "0s",
                Err("invalid duration `0s`: must be greater than zero".to_string()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "parsing {text:?}");
        }
    }

    #[test]
    fn byte_size_parse_rejects_bad_text() {
        let cases = [
            ("65536", Ok(65536)),
            ("512KiB", Ok(512 << 10)),
            ("1GiB", Ok(1 << 30)),
            (
                "64MB",
                Err("invalid byte size `64MB`: use a whole number with KiB, MiB or GiB, such as 64MiB".to_string()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_byte_size(text), expected, "parsing {text:?}");
        }
    }
}
