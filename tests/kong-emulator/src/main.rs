//! `kong-emulator`: serves the Kong Admin API emulator and its key-auth proxy on 127.0.0.1 until
//! it gets SIGINT or SIGTERM, then exits 0.
//!
//! Stdout carries one line per listener saying where it listens; logs go to stderr.

use anyhow::Context;
use clap::Parser;
use kong_emulator::{AdminToken, Emulator, Options, TlsOptions};

/// Kong Admin API emulator with a key-auth proxy, listening on 127.0.0.1 only.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Admin API port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 8001)]
    admin_port: u16,

    /// Proxy port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 8000)]
    proxy_port: u16,

    /// Admin token that every Admin API request must carry (Kong Enterprise RBAC); none by default.
    #[arg(long, env = "KONG_EMULATOR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Header that carries the admin token.
    #[arg(long, default_value = "Kong-Admin-Token", requires = "admin_token")]
    admin_token_header: String,

    /// Workspace besides "default", reachable as a path prefix (/NAME/consumers); repeatable.
    #[arg(long = "workspace", value_name = "NAME")]
    workspaces: Vec<String>,

    /// DB-less mode: every Admin API write gets 405 with code 12, and GET / reports database "off".
    #[arg(long)]
    db_less: bool,

    /// PEM certificate chain for an HTTPS Admin API listener.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// PEM CA certificates; with it, Admin API clients must present a certificate signed by one.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// Kong version that GET / reports (major.minor.patch); 3.3 and later give consumers updated_at.
    #[arg(long, default_value = "3.9.1")]
    kong_version: String,

    /// Let the proxy accept expired keys that were not deleted, like data planes before Kong 3.5.
    #[arg(long)]
    ttl_ignored_by_proxy: bool,
}

fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let cli = Cli::parse();
    let options = options_from(&cli)?;

    let emulator = Emulator::start(options).context("failed to start the kong emulator")?;
    println!("kong-emulator admin listening on {}", emulator.admin_url());
    println!("kong-emulator proxy listening on {}", emulator.proxy_url());
    tracing::info!(admin = %emulator.admin_url(), proxy = %emulator.proxy_url(), "started");

    wait_for_signal()?;

    drop(emulator);
    tracing::info!("stopped");
    Ok(())
}

fn options_from(cli: &Cli) -> anyhow::Result<Options> {
    let admin_token = cli.admin_token.as_ref().map(|value| AdminToken {
        header: cli.admin_token_header.clone(),
        value: value.clone(),
    });

    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
    };
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(TlsOptions {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: cli.tls_client_ca.as_deref().map(read).transpose()?,
        }),
        _ => None,
    };

    Ok(Options {
        admin_token,
        workspaces: cli.workspaces.clone(),
        db_less: cli.db_less,
        tls,
        version: cli.kong_version.clone(),
        admin_port: cli.admin_port,
        proxy_port: cli.proxy_port,
        ttl_ignored_by_proxy: cli.ttl_ignored_by_proxy,
    })
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to build the signal runtime")?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut terminate =
                signal(SignalKind::terminate()).context("failed to watch SIGTERM")?;
            tokio::select! {
                result = tokio::signal::ctrl_c() => result.context("failed to watch SIGINT")?,
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("failed to watch Ctrl-C")?;
        anyhow::Ok(())
    })?;
    Ok(())
}
