//! The outbound policy's decisions and the denial text the engine passes on to the user.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::networks::{NetworkDenial, NetworkRules};
use super::origin::{AllowedOrigin, Host, Origin};
use crate::settings::Settings;

/// The policy's decision against a request. Its `Display` is the reason the engine reads through
/// `outbound.denial-reason`: it names the origin, the rule and the setting that would allow
/// the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// `scheme://host:port` of the request, or the raw scheme and authority when they do not
    /// form an origin.
    pub origin: String,
    pub rule: DeniedBy,
}

/// The rule that denied a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeniedBy {
    /// A scheme other than http and https. No setting allows it.
    UnsupportedScheme,
    /// The operator listed allowed origins, and this origin is not one of them.
    OriginNotAllowed,
    /// The host is, or resolves to, an address in a network the operator denied.
    DeniedNetwork {
        host: Host,
        address: IpAddr,
        network: IpNet,
    },
    /// The host is, or resolves to, an address in a built-in denied network.
    BuiltInNetwork {
        host: Host,
        address: IpAddr,
        network: IpNet,
        description: &'static str,
    },
    /// The engine already sent the most requests allowed while handling one Vault request.
    RequestLimit { limit: u32 },
}

impl DeniedBy {
    /// Returns a short name of the rule, for log fields.
    pub fn name(&self) -> &'static str {
        match self {
            DeniedBy::UnsupportedScheme => "unsupported-scheme",
            DeniedBy::OriginNotAllowed => "origin-not-allowed",
            DeniedBy::DeniedNetwork { .. } => "denied-network",
            DeniedBy::BuiltInNetwork { .. } => "built-in-denied-network",
            DeniedBy::RequestLimit { .. } => "request-limit",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the plugin's outbound policy denied {}: ", self.origin)?;
        let resolved = |host: &Host, address: &IpAddr| match host {
            Host::Ip(_) => format!("{address} is"),
            Host::Name(name) => format!("{name} resolves to {address}, which is"),
        };
        match &self.rule {
            DeniedBy::UnsupportedScheme => f.write_str("only http and https are allowed"),
            DeniedBy::OriginNotAllowed => f.write_str(
                "the origin is not in the allowed origins; a Vault operator can add it with \
                 --allowed-origins or KONG_SECRETS_ALLOWED_ORIGINS",
            ),
            DeniedBy::DeniedNetwork {
                host,
                address,
                network,
            } => write!(
                f,
                "{} in the denied network {network}; a Vault operator can remove it from \
                 --denied-networks or KONG_SECRETS_DENIED_NETWORKS",
                resolved(host, address)
            ),
            DeniedBy::BuiltInNetwork {
                host,
                address,
                network,
                description,
            } => write!(
                f,
                "{} in the built-in denied network {network} ({description}); a Vault operator \
                 can exempt it with --allowed-networks or KONG_SECRETS_ALLOWED_NETWORKS",
                resolved(host, address)
            ),
            DeniedBy::RequestLimit { limit } => write!(
                f,
                "the engine already sent {limit} requests for this Vault request, the most \
                 allowed; a Vault operator can raise --max-outbound-requests-per-call or \
                 KONG_SECRETS_MAX_OUTBOUND_REQUESTS_PER_CALL"
            ),
        }
    }
}

/// An origin the policy allowed. Only [`Policy::check_origin`] creates one, so the client
/// cannot connect anywhere the origin rules did not approve.
#[derive(Clone, Debug)]
pub struct AllowedTarget {
    origin: Origin,
}

impl AllowedTarget {
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

/// An address the network rules allowed for an allowed target. Only
/// [`Policy::check_address`] creates one, so every socket the client opens was checked.
#[derive(Clone, Copy, Debug)]
pub struct AllowedAddress {
    address: IpAddr,
}

impl AllowedAddress {
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

/// The origin allow-list and the network rules. Pure decisions: nothing here resolves a name
/// or opens a connection.
#[derive(Clone, Debug)]
pub struct Policy {
    allowed_origins: Vec<AllowedOrigin>,
    networks: NetworkRules,
}

impl Policy {
    pub fn from_settings(settings: &Settings) -> Policy {
        Policy {
            allowed_origins: settings.allowed_origins.clone(),
            networks: NetworkRules::new(
                settings.denied_networks.clone(),
                settings.allowed_networks.clone(),
            ),
        }
    }

    /// Returns whether any origin is allowed (no allow-list was given).
    pub fn is_open(&self) -> bool {
        self.allowed_origins.is_empty()
    }

    /// Checks a request's origin against the allow-list.
    pub fn check_origin(&self, origin: Origin) -> Result<AllowedTarget, Denial> {
        if self.is_open()
            || self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.matches(&origin))
        {
            return Ok(AllowedTarget { origin });
        }
        Err(Denial {
            origin: origin.to_string(),
            rule: DeniedBy::OriginNotAllowed,
        })
    }

    /// Checks one address that the target's host is, or resolves to.
    pub fn check_address(
        &self,
        target: &AllowedTarget,
        address: IpAddr,
    ) -> Result<AllowedAddress, Denial> {
        let host = target.origin.host.clone();
        let rule = match self.networks.check(address) {
            Ok(()) => return Ok(AllowedAddress { address }),
            Err(NetworkDenial::Operator { network }) => DeniedBy::DeniedNetwork {
                host,
                address,
                network,
            },
            Err(NetworkDenial::BuiltIn {
                network,
                description,
            }) => DeniedBy::BuiltInNetwork {
                host,
                address,
                network,
                description,
            },
        };
        Err(Denial {
            origin: target.origin.to_string(),
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn policy(arguments: &[&str]) -> Policy {
        let mut all = vec!["plugin"];
        all.extend_from_slice(arguments);
        Policy::from_settings(&Settings::try_parse_from(all).expect("valid settings"))
    }

    fn origin(url: &str) -> Origin {
        Origin::from_uri(&url.parse().unwrap()).unwrap()
    }

    #[test]
    fn open_policy_allows_any_origin() {
        let open = policy(&[]);
        assert!(open.is_open());
        assert!(open.check_origin(origin("https://anything.test")).is_ok());
    }

    #[test]
    fn unlisted_origin_denial_text() {
        let strict = policy(&["--allowed-origins=http://127.0.0.1:8001"]);
        let denial = strict
            .check_origin(origin("http://127.0.0.2:8001/consumers"))
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "the plugin's outbound policy denied http://127.0.0.2:8001: the origin is not in the \
             allowed origins; a Vault operator can add it with --allowed-origins or \
             KONG_SECRETS_ALLOWED_ORIGINS"
        );
    }

    #[test]
    fn metadata_address_denial_text() {
        let open = policy(&[]);
        let target = open.check_origin(origin("http://metadata.test")).unwrap();
        let denial = open
            .check_address(&target, "169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "the plugin's outbound policy denied http://metadata.test:80: metadata.test resolves \
             to 169.254.169.254, which is in the built-in denied network 169.254.0.0/16 (IPv4 \
             link-local, which includes the cloud metadata address 169.254.169.254); a Vault \
             operator can exempt it with --allowed-networks or KONG_SECRETS_ALLOWED_NETWORKS"
        );
    }

    #[test]
    fn denied_network_literal_text() {
        let strict = policy(&["--denied-networks=10.0.0.0/8"]);
        let target = strict.check_origin(origin("http://10.1.2.3:8001")).unwrap();
        let denial = strict
            .check_address(&target, "10.1.2.3".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "the plugin's outbound policy denied http://10.1.2.3:8001: 10.1.2.3 is in the denied \
             network 10.0.0.0/8; a Vault operator can remove it from --denied-networks or \
             KONG_SECRETS_DENIED_NETWORKS"
        );
    }

    #[test]
    fn allowed_origin_still_checks_addresses() {
        let strict = policy(&["--allowed-origins=http://[fe80::1]:8001"]);
        let target = strict
            .check_origin(origin("http://[fe80::1]:8001"))
            .expect("listed origin");
        let denial = strict
            .check_address(&target, "fe80::1".parse().unwrap())
            .unwrap_err();
        assert_eq!(denial.rule.name(), "built-in-denied-network", "{denial}");
    }
}
