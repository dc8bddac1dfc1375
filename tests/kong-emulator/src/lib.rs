//! A stand-in for Kong's Admin API and for a proxy guarded by the key-auth plugin, for tests and
//! the demo of the Vault secrets engine for Kong.
//!
//! It serves the part of the Admin API that the engine touches: consumers, the key-auth,
//! basic-auth, hmac-auth, jwt and acls credentials (nested under a consumer and global), and
//! `GET /`. Status codes, error JSON, pagination, tag filters, key `ttl` expiry and cascade
//! delete follow Kong Gateway 3.x with a Postgres database. Start options add what an Enterprise
//! node or a DB-less node does differently. They set an RBAC token header, workspaces as a path
//! prefix, a mode where every write is rejected, TLS with an optional client certificate, and the
//! version that `GET /` reports.
//!
//! # Contract
//! - [`Emulator::start`] binds `127.0.0.1` only (port 0 unless the options name one), once for
//!   the Admin API and once for the proxy. It serves both from its own thread and tokio runtime,
//!   so sync and async tests can use it alike. Dropping the [`Emulator`] stops both listeners and
//!   joins that thread.
//! - Time is the system clock plus an offset that [`Emulator::advance_clock`] moves, so tests of
//!   `ttl` expiry never sleep. [`Emulator::pause_clock`] stops it from following the system clock.
//! - [`Faults`] change only the Admin API listener, and only while a test has them switched on.
//! - [`Emulator::requests`] lists every Admin API request in arrival order, including those that
//!   a fault answered or dropped.
//!
//! # Non-features
//! - Only the entities above exist. Services, routes, plugins and the rest answer 404, because the
//!   engine never calls them.
//! - There is no RBAC permission model: one token grants everything, as the engine needs only that.
//! - The proxy does not forward anywhere. It answers itself, which is all a test needs to prove
//!   that a key works or no longer works.

mod admin;
mod body;
mod clock;
mod emulator;
mod errors;
mod faults;
mod info;
mod options;
mod paging;
mod proxy;
mod record;
mod schema;
mod server;
mod store;
mod tls;
mod validate;

pub use emulator::{Emulator, SeedError};
pub use faults::Faults;
pub use options::{AdminToken, Options, TlsOptions};
pub use record::RecordedRequest;
