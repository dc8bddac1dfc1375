//! The plugin binary that Vault starts.
//!
//! Stdout carries exactly one line, the handshake; everything else goes to stderr as JSON log
//! lines, which Vault copies into its own log. The order of the start matters:
//!
//! 1. parse the operator's settings, so that `--help` and `--version` work by hand;
//! 2. check that Vault started us (cookie, protocol version 5, Vault's certificate), or say
//!    on stderr how to register the plugin and exit with status 1;
//! 3. take over SIGINT (Vault stops its plugins itself, so a Ctrl-C at Vault's terminal must
//!    not kill them) and SIGTERM;
//! 4. load the Kong engine, create our certificate and the plugin socket;
//! 5. print the handshake line and serve until Vault calls Shutdown, closes its connection,
//!    or SIGTERM arrives.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};
use tokio::signal::unix::{signal, SignalKind};
use tonic::transport::Server;

use vault_plugin_secrets_kong::backend::BackendService;
use vault_plugin_secrets_kong::broker::Broker;
use vault_plugin_secrets_kong::controller::{Controller, Shutdown};
use vault_plugin_secrets_kong::handshake::{self, LaunchEnvironment};
use vault_plugin_secrets_kong::runtime::Runtime;
use vault_plugin_secrets_kong::settings::Settings;
use vault_plugin_secrets_kong::stdio::Stdio;
use vault_plugin_secrets_kong::tls::{self, PinnedCertificate, PluginIdentity};
use vault_plugin_secrets_kong::version::{Version, PLUGIN_VERSION};
use vault_plugin_secrets_kong::{health, log, server};

/// How long open streams and calls may take to finish once the shutdown has started. Vault
/// kills the process two seconds after calling Shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let settings = parse_settings();

    let launch = match LaunchEnvironment::from_process() {
        Ok(launch) => launch,
        Err(error) => {
            eprintln!("vault-plugin-secrets-kong: {error}");
            return ExitCode::FAILURE;
        }
    };

    log::init(log::level_from_environment());

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(settings, launch));
    // Work still running (a call Vault gave up on) must not delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "plugin stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Parses the plugin arguments and environment; prints help, the version or a usage error
/// and exits when that is what they ask for.
///
/// Under Vault (the magic cookie is set), a usage error goes out as an error-level JSON log
/// line instead, because Vault shows the plugin's plain stderr text only at debug level and
/// reports nothing but "failed to read any lines from plugin's stdout" to the operator.
fn parse_settings() -> Settings {
    let parsed = Settings::command()
        .version(PLUGIN_VERSION)
        .try_get_matches()
        .and_then(|matches| Settings::from_arg_matches(&matches));
    let error = match parsed {
        Ok(settings) => return settings,
        Err(error) => error,
    };

    let started_by_vault = std::env::var(handshake::COOKIE_KEY).is_ok();
    let asks_for_output = matches!(
        error.kind(),
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
    );
    if started_by_vault && !asks_for_output {
        log::init(log::level_from_environment());
        tracing::error!(
            error = %error.render().to_string().trim(),
            "invalid plugin arguments or environment: fix the -args or -env given to vault plugin register"
        );
        std::process::exit(2);
    }
    error.exit()
}

async fn run(settings: Settings, launch: LaunchEnvironment) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    handle_signals(&shutdown).context("cannot install signal handlers")?;

    let engine = Runtime::new(&settings).context("cannot load the Kong engine")?;

    let identity = PluginIdentity::generate()?;
    let vault_certificate = PinnedCertificate::from_pem(&launch.vault_certificate_pem)?;
    let server_tls = tls::server_config(&identity, &vault_certificate)?;
    let broker = Broker::new(
        tls::client_config(&identity, &vault_certificate)?,
        shutdown.clone(),
    );

    let router = Server::builder()
        .add_service(BackendService::new(engine, Arc::clone(&broker)).into_server())
        .add_service(broker.service())
        .add_service(Controller::service(shutdown.clone()))
        .add_service(Stdio::service(shutdown.clone()))
        .add_service(health::service(&shutdown).await)
        .add_service(Version::service());

    let (listener, socket) = handshake::bind_socket(&launch)?;
    let incoming = server::accept_tls(listener, server_tls, shutdown.clone());

    if launch.multiplex_requested {
        tracing::warn!(
            "Vault asked for a multiplexed broker, which this plugin does not offer; \
             Vault will report that multiplexing is not supported"
        );
    }
    let line = handshake::handshake_line(
        &socket.path,
        identity.certificate_der(),
        launch.multiplex_requested,
    );
    handshake::announce(&line).context("cannot write the handshake line to stdout")?;
    tracing::info!(socket = %socket.path.display(), version = PLUGIN_VERSION, "plugin listening");

    let serving = router.serve_with_incoming_shutdown(incoming, shutdown.triggered());
    tokio::select! {
        result = serving => result.context("the plugin server failed")?,
        () = grace_expired(&shutdown) => tracing::debug!("stopping with calls still open"),
    }
    Ok(())
}

/// Ignores SIGINT and starts the shutdown on SIGTERM.
fn handle_signals(shutdown: &Shutdown) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        while interrupt.recv().await.is_some() {
            tracing::debug!("ignoring SIGINT: Vault stops its plugins itself");
        }
    });

    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if terminate.recv().await.is_some() {
            shutdown.trigger("received SIGTERM");
        }
    });
    Ok(())
}

/// Completes [`SHUTDOWN_GRACE`] after the shutdown started.
async fn grace_expired(shutdown: &Shutdown) {
    shutdown.triggered().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}
