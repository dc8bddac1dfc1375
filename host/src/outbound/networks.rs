//! Network rules: which IP addresses the engine may connect to.
//!
//! Every address is checked, whether the request named it as a literal or DNS returned it.
//! An IPv6 address that embeds an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, the NAT64
//! prefix `64:ff9b::/96`, or 6to4 `2002::/16`) is checked as both, so that a denied IPv4
//! network cannot be reached through an IPv6 spelling.
//!
//! Order of the rules: the operator's denied networks always deny. Then the built-in denied
//! networks deny, unless the operator exempted the address with an allowed network. Every
//! other address is allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Networks denied even when the operator configured nothing, with the reason shown in a
/// denial. Link-local covers the metadata services of AWS, Google Cloud, Azure, Oracle Cloud,
/// DigitalOcean and OpenStack at 169.254.169.254; the others are listed one by one.
pub const BUILT_IN_DENIED_NETWORKS: &[(&str, &str)] = &[
    (
        "0.0.0.0/8",
        "unspecified addresses, which reach the local host",
    ),
    (
        "169.254.0.0/16",
        "IPv4 link-local, which includes the cloud metadata address 169.254.169.254",
    ),
    ("100.100.100.200/32", "Alibaba Cloud metadata service"),
    ("168.63.129.16/32", "Azure platform endpoint"),
    ("192.0.0.192/32", "Oracle Cloud legacy metadata service"),
    ("224.0.0.0/4", "IPv4 multicast"),
    ("255.255.255.255/32", "IPv4 broadcast"),
    (
        "::/128",
        "the unspecified IPv6 address, which reaches the local host",
    ),
    ("fe80::/10", "IPv6 link-local"),
    ("fd00:ec2::254/128", "AWS metadata service over IPv6"),
    ("ff00::/8", "IPv6 multicast"),
];

/// The rule that denies an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkDenial {
    /// In a network the operator listed in `--denied-networks`.
    Operator { network: IpNet },
    /// In a built-in denied network that no `--allowed-networks` entry exempts.
    BuiltIn {
        network: IpNet,
        description: &'static str,
    },
}

/// The operator's network settings combined with the built-in denials.
#[derive(Clone, Debug)]
pub struct NetworkRules {
    denied: Vec<IpNet>,
    exempt: Vec<IpNet>,
    built_in: Vec<(IpNet, &'static str)>,
}

impl NetworkRules {
    pub fn new(denied: Vec<IpNet>, exempt: Vec<IpNet>) -> NetworkRules {
        let built_in = BUILT_IN_DENIED_NETWORKS
            .iter()
            .map(|(network, description)| {
                // The table is a constant, and a unit test parses every entry.
                (
                    network.parse().expect("built-in networks are valid CIDR"),
                    *description,
                )
            })
            .collect();
        NetworkRules {
            denied,
            exempt,
            built_in,
        }
    }

    /// Decides whether the engine may connect to `address`. Makes no connection.
    pub fn check(&self, address: IpAddr) -> Result<(), NetworkDenial> {
        let candidates = spellings(address);

        for candidate in &candidates {
            if let Some(network) = self
                .denied
                .iter()
                .find(|network| network.contains(candidate))
            {
                return Err(NetworkDenial::Operator { network: *network });
            }
        }

        for candidate in &candidates {
            if self
                .exempt
                .iter()
                .any(|network| network.contains(candidate))
            {
                continue;
            }
            if let Some((network, description)) = self
                .built_in
                .iter()
                .find(|(network, _)| network.contains(candidate))
            {
                return Err(NetworkDenial::BuiltIn {
                    network: *network,
                    description,
                });
            }
        }
        Ok(())
    }
}

/// Returns the address itself plus any IPv4 address it embeds.
fn spellings(address: IpAddr) -> Vec<IpAddr> {
    let mut candidates = vec![address];
    if let IpAddr::V6(v6) = address {
        if let Some(v4) = embedded_ipv4(v6) {
            candidates.push(IpAddr::V4(v4));
        }
    }
    candidates
}

fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = address.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = address.segments();
    let octets = address.octets();
    // NAT64 well-known prefix 64:ff9b::/96 carries the IPv4 address in the last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    // 6to4 2002:V4ADDR::/48 carries it in bits 16 to 48.
    if segments[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_rules() -> NetworkRules {
        NetworkRules::new(vec![], vec![])
    }

    fn built_in(network: &str) -> Result<(), String> {
        Err(format!("built-in {network}"))
    }

    fn decision(rules: &NetworkRules, address: &str) -> Result<(), String> {
        rules
            .check(address.parse().expect("valid address"))
            .map_err(|denial| match denial {
                NetworkDenial::Operator { network } => format!("operator {network}"),
                NetworkDenial::BuiltIn { network, .. } => format!("built-in {network}"),
            })
    }

    #[test]
    fn built_in_table_parses() {
        for (network, _) in BUILT_IN_DENIED_NETWORKS {
            assert!(
                network.parse::<IpNet>().is_ok(),
                "{network} is not valid CIDR"
            );
        }
    }

    #[test]
    fn defaults_deny_metadata_and_link_local() {
        let rules = open_rules();
        let cases = [
            ("169.254.169.254", built_in("169.254.0.0/16")),
            ("169.254.1.1", built_in("169.254.0.0/16")),
            ("100.100.100.200", built_in("100.100.100.200/32")),
            ("168.63.129.16", built_in("168.63.129.16/32")),
            ("192.0.0.192", built_in("192.0.0.192/32")),
            ("0.0.0.0", built_in("0.0.0.0/8")),
            ("224.0.0.1", built_in("224.0.0.0/4")),
            ("255.255.255.255", built_in("255.255.255.255/32")),
            ("::", built_in("::/128")),
            ("fe80::1", built_in("fe80::/10")),
            ("fd00:ec2::254", built_in("fd00:ec2::254/128")),
            ("ff02::1", built_in("ff00::/8")),
            ("::ffff:169.254.169.254", built_in("169.254.0.0/16")),
            ("64:ff9b::a9fe:a9fe", built_in("169.254.0.0/16")),
            ("2002:a9fe:a9fe::1", built_in("169.254.0.0/16")),
        ];
        for (address, expected) in cases {
            assert_eq!(decision(&rules, address), expected, "address {address}");
        }
    }

    #[test]
    fn defaults_allow_private_loopback_and_public() {
        let rules = open_rules();
        for address in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "fd12::1",
            "203.0.113.7",
            "2001:db8::1",
        ] {
            assert_eq!(decision(&rules, address), Ok(()), "address {address}");
        }
    }

    #[test]
    fn operator_denies_private_ranges() {
        let denied = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
            "127.0.0.2/32",
        ];
        let rules = NetworkRules::new(denied.iter().map(|n| n.parse().unwrap()).collect(), vec![]);
        let cases = [
            ("10.1.2.3", Err("operator 10.0.0.0/8".to_string())),
            ("172.20.0.1", Err("operator 172.16.0.0/12".to_string())),
            ("192.168.1.1", Err("operator 192.168.0.0/16".to_string())),
            ("fd12::1", Err("operator fc00::/7".to_string())),
            ("::ffff:10.0.0.1", Err("operator 10.0.0.0/8".to_string())),
            ("127.0.0.2", Err("operator 127.0.0.2/32".to_string())),
            ("127.0.0.1", Ok(())),
        ];
        for (address, expected) in cases {
            assert_eq!(decision(&rules, address), expected, "address {address}");
        }
    }

    #[test]
    fn exemption_lifts_built_in_only() {
        let rules = NetworkRules::new(
            vec!["169.254.169.0/24".parse().unwrap()],
            vec!["169.254.0.0/16".parse().unwrap()],
        );
        assert_eq!(
            decision(&rules, "169.254.10.10"),
            Ok(()),
            "exempted link-local address"
        );
        assert_eq!(
            decision(&rules, "169.254.169.254"),
            Err("operator 169.254.169.0/24".to_string()),
            "operator denial wins over the exemption"
        );
        assert_eq!(
            decision(&rules, "fe80::1"),
            built_in("fe80::/10"),
            "IPv6 link-local stays denied"
        );
    }
}
