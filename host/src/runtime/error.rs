//! Failures of a call into the engine as a whole, as opposed to errors the engine returns.
//!
//! Every variant ends that one call; the instance is dropped and nothing of it is reused. The
//! protocol layer turns each into a 500 (503 for [`CallError::Overloaded`]) whose message is
//! this type's `Display`.

use std::time::Duration;

/// A failed call into the engine.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The engine hit a WebAssembly trap (a bug in the engine, such as an out-of-bounds
    /// access).
    #[error("the engine failed with a WebAssembly trap: {message}")]
    Trap { message: String },

    /// The engine panicked; `location` is the source position the panic reported.
    #[error("the engine panicked at {location}: {message}")]
    GuestPanic { location: String, message: String },

    /// The engine asked for more memory than `--max-memory-bytes`.
    #[error(
        "the engine ran out of memory: it needed more than {limit_bytes} bytes; a Vault operator \
         can raise --max-memory-bytes"
    )]
    OutOfMemory { limit_bytes: u64 },

    /// The engine computed for longer than `--max-cpu-time`.
    #[error(
        "the engine used more than {} of CPU time on this request; a Vault operator can raise \
         --max-cpu-time",
        format_duration(limit)
    )]
    CpuLimit { limit: Duration },

    /// The call took longer than `--max-call-duration`, waiting included.
    #[error(
        "the engine did not finish this request within {}; a Vault operator can raise \
         --max-call-duration",
        format_duration(limit)
    )]
    Timeout { limit: Duration },

    /// `--max-concurrent-calls` calls were running and none finished within
    /// `--max-queue-wait`.
    #[error(
        "the plugin is busy: {max_calls} requests are already running and no slot freed up \
         within {}; retry later, or have a Vault operator raise --max-concurrent-calls",
        format_duration(waited)
    )]
    Overloaded { max_calls: u32, waited: Duration },

    /// The component could not be instantiated for this call.
    #[error("failed to start the engine for this request: {message}")]
    Instantiation { message: String },
}

/// Formats a limit as people write it: `250ms`, `2s`, `1.5s`.
fn format_duration(duration: &Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// Splits a Rust panic report from the guest's stderr into its location and message.
///
/// The report reads `thread '<name>' panicked at src/lib.rs:10:5:` followed by the message
/// on the next lines and, optionally, a `note:` line.
pub(crate) fn parse_panic(stderr: &str) -> Option<(String, String)> {
    let start = stderr.find("panicked at ")? + "panicked at ".len();
    let rest = &stderr[start..];
    let (location, after) = rest.split_once('\n').unwrap_or((rest, ""));
    let location = location.trim_end().trim_end_matches(':').to_string();
    let message: Vec<&str> = after
        .lines()
        .take_while(|line| !line.starts_with("note:"))
        .collect();
    Some((location, message.join("\n").trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_error_messages() {
        let cases = [
            (
                CallError::OutOfMemory { limit_bytes: 1024 },
                "the engine ran out of memory: it needed more than 1024 bytes; a Vault operator can raise --max-memory-bytes",
            ),
            (
                CallError::CpuLimit { limit: Duration::from_millis(250) },
                "the engine used more than 250ms of CPU time on this request; a Vault operator can raise --max-cpu-time",
            ),
            (
                CallError::Timeout { limit: Duration::from_secs(60) },
                "the engine did not finish this request within 60s; a Vault operator can raise --max-call-duration",
            ),
            (
                CallError::Overloaded { max_calls: 64, waited: Duration::from_millis(1500) },
                "the plugin is busy: 64 requests are already running and no slot freed up within 1.5s; retry later, or have a Vault operator raise --max-concurrent-calls",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected, "{error:?}");
        }
    }

    #[test]
    fn panic_report_parses() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:62:24:\nhostile guest panicked on purpose\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        let parsed = parse_panic(stderr);
        assert_eq!(
            parsed,
            Some((
                "src/lib.rs:62:24".to_string(),
                "hostile guest panicked on purpose".to_string()
            ))
        );
    }
}
