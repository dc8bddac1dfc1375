//! A real HashiCorp Vault for tests: the binary built from the Go module proxy and a dev server
//! around it.
//!
//! [`vault_binary`] runs `tests/vault/build-vault.sh`, which builds the pinned Vault release once
//! into `<repo>/.cache/vault/` and reuses it afterwards. [`VaultDevServer`] starts that binary in
//! dev mode (in-memory storage, unsealed, a random root token) on a free port of 127.0.0.1, and
//! stops it and deletes its scratch folder on drop.

mod binary;
mod server;

pub use binary::vault_binary;
pub use server::{CliOutput, VaultDevServer};
