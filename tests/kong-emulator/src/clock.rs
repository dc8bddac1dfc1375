//! Emulator time: the system clock plus an offset that tests move forward, optionally paused.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Marks a clock that follows the system clock.
const RUNNING: i64 = i64::MIN;

/// System time shifted by an offset, in milliseconds since the Unix epoch.
#[derive(Debug)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
    /// System time at which the clock was paused, or [`RUNNING`].
    paused_at_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            offset_ms: AtomicI64::new(0),
            paused_at_ms: AtomicI64::new(RUNNING),
        }
    }
}

impl Clock {
    /// Returns the current emulator time in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let base = match self.paused_at_ms.load(Ordering::SeqCst) {
            RUNNING => system_now_ms(),
            paused_at => paused_at,
        };
        base + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Moves emulator time forward.
    pub(crate) fn advance(&self, by: Duration) {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    /// Stops emulator time from following the system clock, so only `advance` moves it.
    pub(crate) fn pause(&self) {
        let _ = self.paused_at_ms.compare_exchange(
            RUNNING,
            system_now_ms(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

fn system_now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(since_epoch).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_clock_moves_only_by_advance() {
        let clock = Clock::default();
        clock.pause();
        let paused = clock.now_ms();

        std::thread::sleep(Duration::from_millis(20));
        let still = clock.now_ms();
        clock.advance(Duration::from_millis(1500));

        assert_eq!(still, paused);
        assert_eq!(clock.now_ms(), paused + 1500);
    }
}
