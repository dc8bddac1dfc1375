//! Log lines on stderr in the JSON shape that Vault's plugin logger parses.
//!
//! Vault reads a plugin's stderr line by line. It logs a JSON object line at its `@level`
//! (`trace`, `debug`, `info`, `warn` or `error`) with its `@message` under the plugin's name,
//! provided the optional `@timestamp` has Go's layout `2006-01-02T15:04:05.000000Z07:00`.
//! Every other key becomes a key/value pair. A line in any other shape is logged as raw text
//! at debug level, so every line here has exactly that shape: `@level`, `@message`,
//! `@module` (where in this program the line comes from), `@timestamp` in UTC with
//! microseconds, then the event's fields, flat.
//!
//! Vault reads at most 64 KiB per line, so long values are cut to keep lines well below that.
//! Stdout is never written: it carries the handshake line only.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The Rust crate name of this program, which `@module` shortens to `kong`.
const OWN_CRATE: &str = "vault_plugin_secrets_kong";

/// Maximum length of a string value in a line, in bytes. Longer values are cut at a
/// character boundary and marked.
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// The environment variable that sets this program's log level: `trace`, `debug`, `info`,
/// `warn`, `error` or `off`.
pub const LEVEL_VARIABLE: &str = "KONG_SECRETS_LOG_LEVEL";

/// Reads the level from [`LEVEL_VARIABLE`], `debug` when unset. Vault filters plugin lines by its
/// own log level, so `debug` shows per-request lines exactly when Vault runs at debug level.
/// An unknown value falls back to `debug` and is reported on stderr.
pub fn level_from_environment() -> LevelFilter {
    let Ok(value) = std::env::var(LEVEL_VARIABLE) else {
        return LevelFilter::DEBUG;
    };
    match value.trim().parse::<LevelFilter>() {
        Ok(level) => level,
        Err(_) => {
            eprintln!(
                "{{\"@level\":\"warn\",\"@message\":\"{LEVEL_VARIABLE} must be one of trace, debug, info, warn, error or off; using debug\"}}"
            );
            LevelFilter::DEBUG
        }
    }
}

/// Installs the JSON line logger as the global `tracing` subscriber.
///
/// This program's own events pass at `level` and above, other crates' at `warn` and above,
/// because their debug output (HTTP/2 frames, Cranelift) would flood Vault's log.
pub fn init(level: LevelFilter) {
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target(OWN_CRATE, level);
    let subscriber = tracing_subscriber::registry().with(JsonLines.with_filter(filter));

    // A subscriber is already installed only when a test sets one up first; its logger
    // stays in place.
    let _ = subscriber.try_init();
}

/// A `tracing` layer that writes each event as one JSON line on stderr.
struct JsonLines;

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let line = format_line(event, OffsetDateTime::now_utc());

        // One write per line so that lines from concurrent tasks never interleave. A failed
        // write (Vault closed the pipe) has nowhere to be reported.
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
    }
}

/// Formats one event as a JSON object followed by a newline.
fn format_line(event: &Event<'_>, now: OffsetDateTime) -> String {
    let metadata = event.metadata();

    let mut fields = FieldCollector::default();
    event.record(&mut fields);

    let mut object = Map::new();
    object.insert("@level".into(), Value::from(level_name(metadata.level())));
    object.insert(
        "@message".into(),
        Value::from(fields.message.unwrap_or_default()),
    );
    object.insert(
        "@module".into(),
        Value::from(module_name(metadata.target())),
    );
    object.insert("@timestamp".into(), Value::from(format_timestamp(now)));
    for (key, value) in fields.values {
        object.entry(key).or_insert(value);
    }

    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// Returns the level name that Vault's logger recognizes.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Turns a Rust target such as `vault_plugin_secrets_kong::broker` into `kong.broker`;
/// other crates keep their name with `.` as separator.
fn module_name(target: &str) -> String {
    let target = match target.strip_prefix(OWN_CRATE) {
        Some(rest) => format!("kong{rest}"),
        None => target.to_string(),
    };
    target.replace("::", ".")
}

/// Formats `now` in Go's layout `2006-01-02T15:04:05.000000Z07:00`, which for UTC ends in `Z`.
fn format_timestamp(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

/// Cuts `text` to at most [`MAX_VALUE_BYTES`] and appends how many bytes were dropped.
fn truncate(mut text: String) -> String {
    if text.len() <= MAX_VALUE_BYTES {
        return text;
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = text.len() - end;
    text.truncate(end);
    let _ = write!(text, "... ({dropped} bytes cut)");
    text
}

/// Collects an event's `message` and its other fields as JSON values.
#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    values: Vec<(String, Value)>,
}

impl FieldCollector {
    fn insert(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            self.message = Some(truncate(text));
        } else {
            self.values.push((field.name().to_string(), value));
        }
    }
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(truncate(value.to_string())));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The error with its causes, as `anyhow` prints them with `{:#}`.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.insert(field, Value::from(truncate(text)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::from(truncate(format!("{value:?}"))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use time::macros::datetime;

    /// A layer that formats events like [`JsonLines`] into memory, at a fixed time.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Captured {
        fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
            let line = format_line(event, datetime!(2024-05-01 10:00:00.123456789 UTC));
            self.0.lock().unwrap().push(line);
        }
    }

    fn capture(emit: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(captured.clone());
        tracing::subscriber::with_default(subscriber, emit);
        let lines = captured.0.lock().unwrap().clone();
        lines
            .iter()
            .map(|line| {
                assert!(
                    line.ends_with('\n'),
                    "line does not end in a newline: {line:?}"
                );
                assert_eq!(
                    line.matches('\n').count(),
                    1,
                    "line has inner newlines: {line:?}"
                );
                serde_json::from_str(line).expect("line is JSON")
            })
            .collect()
    }

    #[test]
    fn log_line_has_vault_keys() {
        let lines = capture(|| tracing::warn!(mount = "kong/", attempt = 3, "retrying call"));
        let line = &lines[0];

        assert_eq!(line["@level"], "warn", "line: {line}");
        assert_eq!(line["@message"], "retrying call", "line: {line}");
        assert_eq!(line["@module"], "kong.log.tests", "line: {line}");
        assert_eq!(
            line["@timestamp"], "2024-05-01T10:00:00.123456Z",
            "line: {line}"
        );
        assert_eq!(line["mount"], "kong/", "line: {line}");
        assert_eq!(line["attempt"], 3, "line: {line}");
    }

    #[test]
    fn log_line_levels_use_vault_names() {
        let lines = capture(|| {
            tracing::trace!("t");
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        });
        let levels: Vec<&str> = lines
            .iter()
            .map(|line| line["@level"].as_str().unwrap())
            .collect();

        assert_eq!(levels, ["trace", "debug", "info", "warn", "error"]);
    }

    #[test]
    fn log_line_cuts_long_values() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        let lines = capture(|| tracing::info!(value = long.as_str(), "long value"));
        let value = lines[0]["value"].as_str().unwrap();

        assert!(
            value.len() < MAX_VALUE_BYTES + 64,
            "value kept {} bytes",
            value.len()
        );
        assert!(
            value.ends_with(&format!("... ({} bytes cut)", MAX_VALUE_BYTES)),
            "value ends: {}",
            &value[value.len() - 40..]
        );
    }

    #[test]
    fn timestamp_keeps_microseconds_in_utc() {
        let local = datetime!(2024-05-01 12:00:00.000007 +02:00);

        assert_eq!(format_timestamp(local), "2024-05-01T10:00:00.000007Z");
    }

    #[test]
    fn module_name_shortens_own_crate() {
        assert_eq!(module_name("vault_plugin_secrets_kong"), "kong");
        assert_eq!(
            module_name("vault_plugin_secrets_kong::broker"),
            "kong.broker"
        );
        assert_eq!(module_name("h2::proto"), "h2.proto");
    }
}
