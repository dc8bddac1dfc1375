//! A small framework for Vault backends, independent of Kong and of WebAssembly.
//!
//! It covers what Vault's Go `sdk/framework` gives a plugin and this engine needs: path
//! patterns with named segments, typed fields with validation, existence checks, secret types
//! dispatched on renew and revoke, help text and OpenAPI documents. Handlers are plain
//! functions over a context type `C` that the backend chooses, so tests run them natively.

#![forbid(unsafe_code)]

pub mod error;
pub mod field;
pub mod help;
pub mod openapi;
pub mod path;
pub mod request;
pub mod router;
pub mod secret;

pub use error::Error;
pub use field::{Field, FieldData, FieldType, FieldValue};
pub use path::PathPattern;
pub use request::{Operation, Request, Response, Secret, Timestamp};
pub use router::{Backend, Existence, Path};
pub use secret::SecretType;
