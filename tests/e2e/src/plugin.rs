//! Our plugin binary as a Vault dev server runs it: found in the cargo target folder, copied into a dev
//! server's plugin directory, registered with its SHA-256 and version, and mounted.
//!
//! The binary is the release build of the `vault-plugin-secrets-kong` package. `cargo test
//! --release --workspace` builds it before any test runs; a run limited to this package
//! needs `cargo build --release -p vault-plugin-secrets-kong` first.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::vault::VaultDevServer;

/// File name of the plugin binary, which is also the command Vault runs.
pub const PLUGIN_COMMAND: &str = "vault-plugin-secrets-kong";

/// Name the tests and the demo register the plugin under in Vault's catalog: the command's
/// name, as the README's install steps use it.
pub const PLUGIN_NAME: &str = PLUGIN_COMMAND;

/// Version the plugin reports, with the leading `v` that `vault plugin register -version`
/// compares against exactly.
pub const PLUGIN_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Returns the release plugin binary in the cargo target folder this crate was built into.
pub fn plugin_binary() -> Result<PathBuf> {
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    };
    let binary = target_dir.join("release").join(PLUGIN_COMMAND);
    if !binary.is_file() {
        bail!(
            "plugin binary {} not found: run `cargo build --release -p {PLUGIN_COMMAND}` first",
            binary.display()
        );
    }
    Ok(binary)
}

/// Returns the SHA-256 of `path` in lowercase hex, as `vault plugin register -sha256` takes it.
pub fn sha256_hex(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The plugin installed in one dev server's plugin directory.
#[derive(Debug, Clone)]
pub struct InstalledPlugin {
    pub path: PathBuf,
    pub sha256: String,
}

/// Copies the plugin binary into `plugin_dir` under [`PLUGIN_COMMAND`].
pub fn install(plugin_dir: &Path) -> Result<InstalledPlugin> {
    let source = plugin_binary()?;
    let path = plugin_dir.join(PLUGIN_COMMAND);
    fs::copy(&source, &path)
        .with_context(|| format!("copying {} to {}", source.display(), path.display()))?;
    let sha256 = sha256_hex(&path)?;
    Ok(InstalledPlugin { path, sha256 })
}

/// Returns the arguments of `vault plugin register` for `plugin`, with extra `-args` or `-env`
/// options placed before the type and name.
pub fn register_args<'a>(plugin: &'a InstalledPlugin, extra: &[&'a str]) -> Vec<String> {
    let mut args = vec![
        "plugin".to_string(),
        "register".to_string(),
        format!("-sha256={}", plugin.sha256),
        format!("-version={PLUGIN_VERSION}"),
        format!("-command={PLUGIN_COMMAND}"),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args.push("secret".to_string());
    args.push(PLUGIN_NAME.to_string());
    args
}

/// Registers `plugin` and enables it at `mount` (without slashes, such as `kong`).
pub fn register_and_enable(
    server: &VaultDevServer,
    plugin: &InstalledPlugin,
    extra_register_args: &[&str],
    mount: &str,
) -> Result<()> {
    let args = register_args(plugin, extra_register_args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let register = server.cli(&args);
    if !register.status.success() {
        bail!("vault plugin register failed: {}", register.stderr.trim());
    }

    let path = format!("-path={mount}");
    let enable = server.cli(&["secrets", "enable", &path, PLUGIN_NAME]);
    if !enable.status.success() {
        bail!(
            "vault secrets enable {path} failed: {}",
            enable.stderr.trim()
        );
    }
    Ok(())
}
