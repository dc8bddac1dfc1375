//! `GET /`: the node information that clients use as a capability probe, and the reported
//! version that decides version-dependent behaviour.

use serde_json::{json, Map, Value};

use crate::schema::CREDENTIALS;

/// A Kong version's first three numbers. Enterprise versions such as `3.4.3.2` compare by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(pub(crate) u32, pub(crate) u32, pub(crate) u32);

impl Version {
    /// Parses `major.minor.patch` with optional further dot-separated parts.
    pub(crate) fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|part| part.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next()??;
        Some(Version(major, minor, patch))
    }

    pub(crate) fn at_least(self, (major, minor): (u32, u32)) -> bool {
        (self.0, self.1) >= (major, minor)
    }
}

/// Plugin priorities of the credential plugins in Kong 3.x, as `GET /` reports them.
fn priority(plugin: &str) -> u32 {
    match plugin {
        "jwt" => 1450,
        "key-auth" => 1250,
        "basic-auth" => 1100,
        "hmac-auth" => 1030,
        "acl" => 950,
        _ => 0,
    }
}

/// Facts about the node that `GET /` reports.
pub(crate) struct NodeInfo<'a> {
    pub(crate) version: &'a str,
    pub(crate) node_id: &'a str,
    pub(crate) db_less: bool,
    pub(crate) enterprise: bool,
    pub(crate) admin_listen: String,
    pub(crate) proxy_listen: String,
}

/// Builds the `GET /` body.
///
/// From Kong 3.0 on, `plugins.available_on_server` maps each plugin to its version and priority;
/// before that, it maps each plugin to `true`.
pub(crate) fn root_body(info: &NodeInfo<'_>, version: Version) -> Value {
    let mut available = Map::new();
    for schema in CREDENTIALS {
        // The acls credentials belong to the plugin named `acl`.
        let plugin = match schema.nested_name {
            Some("acls") => "acl",
            Some(name) => name,
            None => continue,
        };
        let entry = if version.at_least((3, 0)) {
            json!({ "version": info.version, "priority": priority(plugin) })
        } else {
            json!(true)
        };
        available.insert(plugin.to_owned(), entry);
    }

    json!({
        "version": info.version,
        "edition": if info.enterprise { "enterprise" } else { "community" },
        "tagline": "Welcome to kong",
        "hostname": "kong-emulator",
        "node_id": info.node_id,
        "lua_version": "LuaJIT 2.1.0-20231117",
        "plugins": {
            "available_on_server": available,
            "enabled_in_cluster": ["key-auth"],
        },
        "configuration": {
            "database": if info.db_less { "off" } else { "postgres" },
            "role": "traditional",
            "admin_listen": [info.admin_listen],
            "proxy_listen": [info.proxy_listen],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parse_table() {
        let cases = [
            ("3.9.1", Some(Version(3, 9, 1))),
            ("3.4.3.2", Some(Version(3, 4, 3))),
            ("2.8.0", Some(Version(2, 8, 0))),
            ("3.9", None),
            ("latest", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Version::parse(text), expected, "Version::parse({text:?})");
        }
    }
}
