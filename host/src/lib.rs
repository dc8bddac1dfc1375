//! The native host of the Kong secrets engine.
//!
//! Vault starts this program as an external plugin. The program speaks Vault's plugin
//! protocol and runs the Kong engine, a WebAssembly component embedded in the binary, once
//! per request inside a sandbox that only the Vault operator configures.

#![forbid(unsafe_code)]

pub mod backend;
pub mod broker;
pub mod controller;
pub mod handshake;
pub mod health;
pub mod log;
pub mod outbound;
pub mod proto;
pub mod runtime;
pub mod server;
pub mod services;
pub mod settings;
pub mod stdio;
pub mod tls;
pub mod translation;
pub mod vault_services;
pub mod version;
