//! The start of the plugin protocol: checking how Vault started us, opening the plugin socket
//! and printing the one handshake line.
//!
//! Vault starts the plugin with a magic cookie, the backend protocol versions it offers and
//! its own TLS certificate in the environment, then reads the first line of the plugin's
//! stdout: `1|5|unix|<socket path>|grpc|<certificate>`. That line is the only thing this
//! program ever writes to stdout; anything printed before it makes Vault fail with
//! "Unrecognized remote plugin message", and Vault discards whatever follows it.
//!
//! This plugin speaks only backend protocol version 5 (Vault 1.12 and newer) with AutoMTLS,
//! on a unix socket.

use std::fmt;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use tokio::net::UnixListener;

/// The environment variable and value by which Vault marks a backend plugin launch.
pub const COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
pub const COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";

/// The cookie Vault sets when it probes whether a plugin is a database plugin.
const DATABASE_COOKIE_KEY: &str = "VAULT_DATABASE_PLUGIN";

/// The plugin framework's core protocol version, field 1 of the handshake line.
const CORE_PROTOCOL_VERSION: u32 = 1;

/// The only backend protocol version this plugin speaks: AutoMTLS, Vault 1.12 and newer.
pub const BACKEND_PROTOCOL_VERSION: u32 = 5;

/// How to use this program, for the messages of a failed start.
const REGISTER_HINT: &str = "Register it with `vault plugin register -sha256=<SHA-256 of this \
    file> -version=<version> secret <name>` and enable it with `vault secrets enable -path=kong \
    <name>`; run it with --help to see its settings.";

/// Why Vault's launch environment is unusable. Each message says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    #[error(
        "this program is a Vault plugin and runs only when Vault starts it \
         ({COOKIE_KEY} is not set). {REGISTER_HINT}"
    )]
    MissingCookie,

    #[error(
        "Vault started this program as a database plugin ({DATABASE_COOKIE_KEY} is set), but it \
         is a secrets engine: register it with type `secret`. {REGISTER_HINT}"
    )]
    DatabaseCookie,

    #[error(
        "this program is a Vault plugin and runs only when Vault starts it ({COOKIE_KEY} has \
         an unexpected value). {REGISTER_HINT}"
    )]
    WrongCookie,

    #[error(
        "Vault offered backend plugin protocol versions {offered:?}, but this plugin speaks only \
         version 5, which Vault 1.12 and newer offer: upgrade Vault"
    )]
    UnsupportedVersions { offered: String },

    #[error(
        "PLUGIN_CLIENT_CERT is not set: this plugin needs the mutual TLS that Vault 1.12 and \
         newer set up for plugin protocol version 5"
    )]
    MissingClientCertificate,
}

/// What the plugin needs from its launch environment.
#[derive(Clone, PartialEq, Eq)]
pub struct LaunchEnvironment {
    /// Vault's certificate as PEM: the only certificate the plugin accepts from a peer.
    pub vault_certificate_pem: String,
    /// Where to create the plugin socket.
    pub socket_dir: PathBuf,
    /// The group that must be able to open the socket (containerized Vault plugins).
    pub socket_group: Option<String>,
    /// Whether Vault asked for a multiplexed broker, which this plugin does not offer.
    pub multiplex_requested: bool,
}

impl fmt::Debug for LaunchEnvironment {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LaunchEnvironment")
            .field("socket_dir", &self.socket_dir)
            .field("socket_group", &self.socket_group)
            .field("multiplex_requested", &self.multiplex_requested)
            .finish_non_exhaustive()
    }
}

impl LaunchEnvironment {
    /// Reads the launch environment of this process.
    pub fn from_process() -> Result<Self, LaunchError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Checks the cookie, picks protocol version 5 and reads the TLS and socket settings,
    /// looking each variable up with `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LaunchError> {
        match lookup(COOKIE_KEY) {
            Some(value) if value == COOKIE_VALUE => {}
            Some(_) => return Err(LaunchError::WrongCookie),
            None if lookup(DATABASE_COOKIE_KEY).is_some() => {
                return Err(LaunchError::DatabaseCookie)
            }
            None => return Err(LaunchError::MissingCookie),
        }

        // Vault always sends the list; without one, the plugin framework assumes the
        // plugin's own version.
        if let Some(offered) = lookup("PLUGIN_PROTOCOL_VERSIONS") {
            let supported = offered
                .split(',')
                .any(|version| version.trim().parse::<u32>() == Ok(BACKEND_PROTOCOL_VERSION));
            if !supported {
                return Err(LaunchError::UnsupportedVersions { offered });
            }
        }

        let vault_certificate_pem = lookup("PLUGIN_CLIENT_CERT")
            .filter(|pem| !pem.trim().is_empty())
            .ok_or(LaunchError::MissingClientCertificate)?;

        // NOTE: VAULT_PLUGIN_MLOCK_ENABLED (Vault running with mlock) is not honoured: the
        // plugin does not lock its memory, so the engine's memory may be swapped out.
        let socket_dir = lookup("PLUGIN_UNIX_SOCKET_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);

        Ok(Self {
            vault_certificate_pem,
            socket_dir,
            socket_group: lookup("PLUGIN_UNIX_SOCKET_GROUP").filter(|group| !group.is_empty()),
            multiplex_requested: lookup("PLUGIN_MULTIPLEX_GRPC")
                .is_some_and(|value| !value.is_empty()),
        })
    }
}

/// The handshake line, with its newline.
///
/// The certificate is DER in standard base64 without padding. The seventh field exists only
/// when Vault asked for broker multiplexing: older Vault releases split the line into at most
/// six fields, so an unrequested seventh field would corrupt the certificate.
pub fn handshake_line(socket: &Path, certificate_der: &[u8], multiplex_requested: bool) -> String {
    let certificate = base64::engine::general_purpose::STANDARD_NO_PAD.encode(certificate_der);
    let mut line = format!(
        "{CORE_PROTOCOL_VERSION}|{BACKEND_PROTOCOL_VERSION}|unix|{}|grpc|{certificate}",
        socket.display()
    );
    if multiplex_requested {
        line.push_str("|false");
    }
    line.push('\n');
    line
}

/// Writes the handshake line to stdout and flushes it.
pub fn announce(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()
}

/// The plugin socket's file, removed when this is dropped.
pub struct SocketFile {
    pub path: PathBuf,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates the plugin socket, named `plugin<digits>`, in the launch environment's socket
/// directory, open only to this user, or to the configured group too.
pub fn bind_socket(launch: &LaunchEnvironment) -> anyhow::Result<(UnixListener, SocketFile)> {
    use anyhow::Context as _;

    let (listener, path) = bind_unique(&launch.socket_dir).with_context(|| {
        format!(
            "cannot create the plugin socket in {}",
            launch.socket_dir.display()
        )
    })?;
    let file = SocketFile { path };

    let mode = match &launch.socket_group {
        None => 0o600,
        Some(group) => {
            let gid = group_id(group)?;
            nix::unistd::chown(&file.path, None, Some(gid)).with_context(|| {
                format!(
                    "cannot give socket {} to group {group}",
                    file.path.display()
                )
            })?;
            0o660
        }
    };
    std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions of socket {}", file.path.display()))?;

    Ok((listener, file))
}

/// Binds a fresh socket path in `dir`, trying new names while one is taken.
fn bind_unique(dir: &Path) -> io::Result<(UnixListener, PathBuf)> {
    let mut last_error = None;
    for attempt in 0..32u32 {
        let path = dir.join(format!("plugin{}", socket_suffix(attempt)));
        match UnixListener::bind(&path) {
            Ok(listener) => return Ok((listener, path)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free socket name")))
}

/// Digits that make a socket name unique: the process id and the clock, like the temporary
/// names of Go's plugin framework.
fn socket_suffix(attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{}{:09}{attempt}", std::process::id(), nanos)
}

/// Resolves a group name or a numeric group id.
fn group_id(group: &str) -> anyhow::Result<nix::unistd::Gid> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(gid));
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(entry)) => Ok(entry.gid),
        Ok(None) => {
            anyhow::bail!("PLUGIN_UNIX_SOCKET_GROUP names group {group:?}, which does not exist")
        }
        Err(error) => {
            anyhow::bail!("cannot look up group {group:?} from PLUGIN_UNIX_SOCKET_GROUP: {error}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Result<LaunchEnvironment, LaunchError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchEnvironment::from_lookup(|name| vars.get(name).cloned())
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn launch_without_cookie_is_rejected() {
        assert_eq!(launch(&[]), Err(LaunchError::MissingCookie));
    }

    #[test]
    fn launch_with_wrong_cookie_is_rejected() {
        assert_eq!(
            launch(&[(COOKIE_KEY, "nope")]),
            Err(LaunchError::WrongCookie)
        );
    }

    #[test]
    fn launch_as_database_plugin_is_rejected() {
        let result = launch(&[(DATABASE_COOKIE_KEY, "926a0820-aea2-be28-51d6-83cdf00e8edb")]);

        assert_eq!(result, Err(LaunchError::DatabaseCookie));
    }

    #[test]
    fn launch_offering_old_versions_is_rejected() {
        let result = launch(&[
            (COOKIE_KEY, COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "3,4"),
        ]);

        assert_eq!(
            result,
            Err(LaunchError::UnsupportedVersions {
                offered: "3,4".into()
            })
        );
    }

    #[test]
    fn launch_without_client_certificate_is_rejected() {
        let result = launch(&[
            (COOKIE_KEY, COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        ]);

        assert_eq!(result, Err(LaunchError::MissingClientCertificate));
    }

    #[test]
    fn launch_picks_version_five_from_list() {
        let result = launch(&[
            (COOKIE_KEY, COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "4, 5,x"),
            ("PLUGIN_CLIENT_CERT", PEM),
            ("PLUGIN_UNIX_SOCKET_DIR", "/run/plugins"),
        ])
        .expect("launch environment is valid");

        assert_eq!(result.vault_certificate_pem, PEM);
        assert_eq!(result.socket_dir, PathBuf::from("/run/plugins"));
        assert_eq!(result.socket_group, None);
        assert!(!result.multiplex_requested);
    }

    #[test]
    fn handshake_line_has_six_fields() {
        let line = handshake_line(Path::new("/tmp/plugin42"), &[0xfb, 0xff], false);

        assert_eq!(line, "1|5|unix|/tmp/plugin42|grpc|+/8\n");
    }

    #[test]
    fn handshake_line_declines_multiplexing_when_asked() {
        let line = handshake_line(Path::new("/tmp/plugin42"), &[1, 2, 3], true);

        assert_eq!(line, "1|5|unix|/tmp/plugin42|grpc|AQID|false\n");
    }

    #[test]
    fn cookie_message_names_the_fix() {
        let message = LaunchError::MissingCookie.to_string();

        assert!(
            message.contains("vault plugin register -sha256="),
            "message: {message}"
        );
    }
}
