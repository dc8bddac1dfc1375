//! The Kong secrets engine for HashiCorp Vault, built as a WASI 0.2 component.
//!
//! Layers, from generic to specific:
//! - [`framework`]: paths, fields, routing, secret types, help and OpenAPI for any Vault
//!   backend;
//! - [`services`] and [`http`]: the small traits through which the engine reaches Vault's
//!   storage and system view, the log, the clock and outbound HTTP;
//! - [`kong`]: the engine itself, built on the two layers above;
//! - `component` (only on `wasm32`): the adapter that implements those traits with the WIT
//!   imports and exports the backend through wit-bindgen.
//!
//! Everything except the adapter is plain Rust, so `cargo test` runs the same logic natively.

#![deny(unsafe_code)]

pub mod framework;
pub mod http;
pub mod kong;
pub mod services;

#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod component;

/// Bindings that wit-bindgen generates for the `vault-backend` world. Generated code needs
/// `unsafe` for the canonical ABI; nothing else in this crate may use it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "vault-backend",
        generate_all,
    });

    use crate::component::Component;

    export!(Component);
}
