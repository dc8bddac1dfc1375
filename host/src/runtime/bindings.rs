//! Bindings of the `vault-backend` world, and the host side of its own imports: `storage`
//! and `system-view` (served by the mount's services), `log` (written to `tracing`) and
//! `outbound` (the call's last denial reason). `wasi:http` and the WASI imports come from
//! wasmtime-wasi and wasmtime-wasi-http.

use wasmtime::component::{HasSelf, Linker};

use super::store::{CallState, LOG_LINES_PER_CALL, LOG_MESSAGE_BYTES};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "vault:backend/vault-backend",
    imports: {
        "vault:backend/storage": async,
        "vault:backend/system-view": async,
    },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
    require_store_data_send: true,
});

use vault::backend::{log, outbound, storage, system_view};

/// Adds every import the component may use: WASI 0.2 (with the empty context of
/// [`CallState`]), `wasi:http` through the outbound policy, and the world's own interfaces.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    storage::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    system_view::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    log::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    outbound::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)?;
    Ok(())
}

impl storage::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        self.services.storage.get(&key).await
    }

    async fn put(&mut self, key: String, value: Vec<u8>, seal_wrap: bool) -> Result<(), String> {
        self.services.storage.put(&key, value, seal_wrap).await
    }

    async fn delete(&mut self, key: String) -> Result<(), String> {
        self.services.storage.delete(&key).await
    }

    async fn list(&mut self, prefix: String) -> Result<Vec<String>, String> {
        self.services.storage.list(&prefix).await
    }
}

impl system_view::Host for CallState {
    async fn default_lease_ttl_seconds(&mut self) -> Result<u64, String> {
        self.services.system_view.default_lease_ttl_seconds().await
    }

    async fn max_lease_ttl_seconds(&mut self) -> Result<u64, String> {
        self.services.system_view.max_lease_ttl_seconds().await
    }

    async fn tainted(&mut self) -> Result<bool, String> {
        self.services.system_view.tainted().await
    }

    async fn local_mount(&mut self) -> Result<bool, String> {
        self.services.system_view.local_mount().await
    }

    async fn replication_state(&mut self) -> Result<u32, String> {
        self.services.system_view.replication_state().await
    }

    async fn vault_version(&mut self) -> Result<String, String> {
        self.services.system_view.vault_version().await
    }
}

impl log::Host for CallState {
    /// Writes the line to `tracing` under the target `engine`, with the pairs as one logfmt
    /// field, because `tracing` field names must be known at compile time.
    fn write(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        if self.log_lines >= LOG_LINES_PER_CALL {
            self.log_lines_dropped += 1;
            return;
        }
        self.log_lines += 1;

        let message = truncate(&message, LOG_MESSAGE_BYTES);
        let fields = logfmt(&fields);
        match level {
            log::Level::Trace => tracing::trace!(target: "engine", fields = %fields, "{message}"),
            log::Level::Debug => tracing::debug!(target: "engine", fields = %fields, "{message}"),
            log::Level::Info => tracing::info!(target: "engine", fields = %fields, "{message}"),
            log::Level::Warn => tracing::warn!(target: "engine", fields = %fields, "{message}"),
            log::Level::Error => tracing::error!(target: "engine", fields = %fields, "{message}"),
        }
    }
}

impl outbound::Host for CallState {
    fn denial_reason(&mut self) -> Option<String> {
        self.outbound.denial_reason()
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Formats pairs as `key=value key="two words"`, each line of a value kept on one line.
fn logfmt(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in fields {
        if !out.is_empty() {
            out.push(' ');
        }
        let key: String = key
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .collect();
        out.push_str(&key);
        out.push('=');
        let value = truncate(value, LOG_MESSAGE_BYTES);
        if value.is_empty() || value.contains([' ', '"', '=', '\n', '\r', '\t']) {
            out.push_str(&format!("{value:?}"));
        } else {
            out.push_str(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_when_needed() {
        let fields = vec![
            ("consumer".to_string(), "app".to_string()),
            ("detail".to_string(), "two words".to_string()),
            ("empty".to_string(), String::new()),
        ];
        assert_eq!(
            logfmt(&fields),
            r#"consumer=app detail="two words" empty="""#
        );
    }

    #[test]
    fn truncate_keeps_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hello", 10), "hello");
    }
}
