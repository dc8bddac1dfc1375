//! Fault injection for the Admin API listener, switched on and off by tests while it runs.
//!
//! Each `*_next(n, ..)` fault responds to the next `n` Admin API requests in place of the Admin API.
//! When several are armed, one request consumes one of them, in this order: dropped connection,
//! chosen status, body that is not JSON, oversized body, redirect. Added latency applies to every
//! request, faulted or not, before the response is sent.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Cheap clonable handle to the fault settings of one emulator.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    latency: Duration,
    drop: u32,
    fail: u32,
    fail_status: u16,
    non_json: u32,
    oversized: u32,
    oversized_bytes: usize,
    redirect: u32,
    redirect_location: String,
}

/// What the Admin API listener does with one request instead of serving it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Close the connection without writing a response.
    Drop,
    /// Respond with this status and Kong's generic error body for it.
    Status(u16),
    /// Respond 200 with an HTML body.
    NonJson,
    /// Respond 200 with a JSON body of this many bytes.
    Oversized(usize),
    /// Respond 307 with this `Location`.
    Redirect(String),
}

impl Faults {
    /// Adds this delay before every Admin API response. `Duration::ZERO` removes it.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Responds to the next `n` Admin API requests with `status` and a `{"message": ...}` body.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut state = self.lock();
        state.fail = n;
        state.fail_status = status;
    }

    /// Closes the connection of the next `n` Admin API requests without a response.
    pub fn drop_next(&self, n: u32) {
        self.lock().drop = n;
    }

    /// Responds to the next `n` Admin API requests with 200 and an HTML body.
    pub fn non_json_next(&self, n: u32) {
        self.lock().non_json = n;
    }

    /// Responds to the next `n` Admin API requests with 200 and a JSON body of `bytes` bytes.
    pub fn oversized_next(&self, n: u32, bytes: usize) {
        let mut state = self.lock();
        state.oversized = n;
        state.oversized_bytes = bytes;
    }

    /// Responds to the next `n` Admin API requests with 307 and `Location: location`.
    ///
    /// 307 keeps the method and body, so a client that follows redirects would replay a write
    /// to the other origin. A test can prove that the client does not.
    pub fn redirect_next(&self, n: u32, location: impl Into<String>) {
        let mut state = self.lock();
        state.redirect = n;
        state.redirect_location = location.into();
    }

    /// Switches every fault off, latency included.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    /// Returns the added latency.
    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Consumes and returns the fault for the request being served, if one is armed.
    pub(crate) fn take(&self) -> Option<Fault> {
        let mut state = self.lock();
        if state.drop > 0 {
            state.drop -= 1;
            return Some(Fault::Drop);
        }
        if state.fail > 0 {
            state.fail -= 1;
            return Some(Fault::Status(state.fail_status));
        }
        if state.non_json > 0 {
            state.non_json -= 1;
            return Some(Fault::NonJson);
        }
        if state.oversized > 0 {
            state.oversized -= 1;
            return Some(Fault::Oversized(state.oversized_bytes));
        }
        if state.redirect > 0 {
            state.redirect -= 1;
            return Some(Fault::Redirect(state.redirect_location.clone()));
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding this lock cannot leave the counters inconsistent, so a poisoned
        // lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_follows_precedence_order() {
        let faults = Faults::default();
        faults.redirect_next(1, "http://127.0.0.1:1/");
        faults.oversized_next(1, 10);
        faults.non_json_next(1);
        faults.fail_next(1, 503);
        faults.drop_next(1);

        let taken: Vec<Option<Fault>> = (0..6).map(|_| faults.take()).collect();

        assert_eq!(
            taken,
            vec![
                Some(Fault::Drop),
                Some(Fault::Status(503)),
                Some(Fault::NonJson),
                Some(Fault::Oversized(10)),
                Some(Fault::Redirect("http://127.0.0.1:1/".to_owned())),
                None,
            ]
        );
    }
}
