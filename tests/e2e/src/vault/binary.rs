//! Locating the Vault binary: `tests/vault/build-vault.sh` builds it when it is missing or its
//! pinned inputs changed, and prints its path as the last line of stdout.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Path found by the first successful call, so later tests in the same process skip the script.
static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Returns the path of the pinned Vault binary, building it first if needed.
///
/// The first build downloads Vault's modules through the Go module proxy and takes several
/// minutes. The script's progress goes to this process's stderr, and a lock file in the cache
/// folder makes concurrent test binaries wait for one build.
pub fn vault_binary() -> Result<PathBuf> {
    let mut cached = BINARY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = cached.as_ref() {
        return Ok(path.clone());
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vault/build-vault.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("failed to run {}: is bash installed?", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed with {}: its stderr above says why",
            script.display(),
            output.status
        );
    }

    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(last_line) = stdout.lines().rev().find(|line| !line.trim().is_empty()) else {
        bail!("{} printed no binary path on stdout", script.display());
    };
    let path = PathBuf::from(last_line.trim());
    if !path.is_file() {
        bail!(
            "{} printed {}, which is not a file",
            script.display(),
            path.display()
        );
    }

    *cached = Some(path.clone());
    Ok(path)
}
