//! Harness for the end-to-end tests and the demo: real components started on 127.0.0.1 only.
//!
//! [`vault`] builds HashiCorp Vault from the Go module proxy (once, cached under
//! `<repo>/.cache/vault/`) and runs it as a dev server that each test owns and that stops when
//! the test drops it. [`plugin`] installs, registers and mounts our plugin binary in such a
//! server.

pub mod plugin;
pub mod vault;
