//! The outbound policy: the only way the engine reaches the network.
//!
//! The engine imports `wasi:http/outgoing-handler` and nothing else that touches the network.
//! Every request it sends passes [`hooks::OutboundHooks`], which applies, in order:
//!
//! 1. the scheme: only `http` and `https`;
//! 2. the count: at most `--max-outbound-requests-per-call` requests per Vault request;
//! 3. the origin (scheme, host, port) against `--allowed-origins`, when the operator gave any;
//! 4. every address the host is or resolves to, against `--denied-networks` and the built-in
//!    denied networks (link-local, cloud metadata, unspecified, multicast, broadcast), minus
//!    the `--allowed-networks` exemptions. The client connects only to the addresses it
//!    checked, so DNS rebinding between check and connection is not possible.
//!
//! A denial fails the request with `HTTP-request-denied`, logs a warning, and stores the
//! reason for `outbound.denial-reason`. No redirect is followed, the engine cannot set `Host`,
//! its timeouts are capped at the operator's maximums and a response body stops at the
//! byte cap.
//!
//! Security assumption: only the Vault operator sets the policy, through plugin arguments or
//! environment at `vault plugin register`. A user who can write `config/access` chooses the
//! URL, never the policy.

pub mod client;
pub mod hooks;
pub mod networks;
pub mod origin;
pub mod policy;

pub use networks::{NetworkDenial, NetworkRules, BUILT_IN_DENIED_NETWORKS};
pub use origin::{AllowedOrigin, Host, Origin, Scheme};
pub use policy::{Denial, DeniedBy, Policy};
