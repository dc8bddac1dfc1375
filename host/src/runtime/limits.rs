//! Per-call resource limits: memory growth, CPU ticks, and the bound on concurrent calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::engine::EPOCH_TICK;

/// Rejects memory growth past the operator's cap and remembers that it did, so that the trap
/// that follows reads as "out of memory".
pub struct MemoryLimiter {
    max_bytes: usize,
    denied: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: u64) -> MemoryLimiter {
        MemoryLimiter {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            denied: false,
        }
    }

    /// Returns whether the instance requested more memory than the cap.
    pub fn denied(&self) -> bool {
        self.denied
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's slot size.
        Ok(true)
    }
}

/// Counts the epoch ticks in which a call's guest code ran, and ends the call when the count
/// passes the budget.
///
/// The epoch callback fires when running code crosses a tick. A call that computes without
/// pause crosses every tick, one tick after the previous callback. A call that waited (for
/// Kong, for storage, for a timer) resumes several ticks later, and those waiting ticks are
/// not counted. The count is an estimate with [`EPOCH_TICK`] resolution, and a hard bound on
/// busy loops; the wall-clock limit bounds everything else.
pub struct CpuMeter {
    ticks: Arc<AtomicU64>,
    last_seen: u64,
    used: u64,
    budget: u64,
}

/// The error that ends a call which used up its CPU budget.
#[derive(Debug, thiserror::Error)]
#[error("the call used up its CPU time budget")]
pub struct CpuBudgetExhausted;

impl CpuMeter {
    pub fn new(ticks: Arc<AtomicU64>, max_cpu_time: Duration) -> CpuMeter {
        let budget = (max_cpu_time.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        let last_seen = ticks.load(Ordering::Relaxed);
        CpuMeter {
            ticks,
            last_seen,
            used: 0,
            budget,
        }
    }

    /// Records one epoch callback; errors once the budget is used up.
    pub fn on_epoch(&mut self) -> Result<(), CpuBudgetExhausted> {
        let now = self.ticks.load(Ordering::Relaxed);
        // Two ticks of slack: a busy guest that yielded to a busy executor may resume one
        // tick late and still counts.
        if now.saturating_sub(self.last_seen) <= 2 {
            self.used += 1;
        }
        self.last_seen = now;
        if self.used > self.budget {
            return Err(CpuBudgetExhausted);
        }
        Ok(())
    }
}

/// Bounds the calls that run at once. A call waits up to `max_wait` for a slot.
pub struct ConcurrencyGate {
    slots: Arc<Semaphore>,
    max_calls: u32,
    max_wait: Duration,
}

/// The rejection of a call that got no slot.
#[derive(Debug)]
pub struct NoSlot {
    pub max_calls: u32,
    pub waited: Duration,
}

impl ConcurrencyGate {
    pub fn new(max_calls: u32, max_wait: Duration) -> ConcurrencyGate {
        ConcurrencyGate {
            slots: Arc::new(Semaphore::new(max_calls as usize)),
            max_calls,
            max_wait,
        }
    }

    /// Waits for a free slot; the slot is released when the permit drops.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, NoSlot> {
        let acquire = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.max_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed, so only the timeout can end the wait.
            Ok(Err(_)) | Err(_) => Err(NoSlot {
                max_calls: self.max_calls,
                waited: self.max_wait,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_meter_counts_busy_ticks_only() {
        let ticks = Arc::new(AtomicU64::new(100));
        let mut meter = CpuMeter::new(Arc::clone(&ticks), Duration::from_millis(30));

        ticks.store(101, Ordering::Relaxed);
        assert!(meter.on_epoch().is_ok(), "first busy tick");
        ticks.store(150, Ordering::Relaxed);
        assert!(meter.on_epoch().is_ok(), "a resume after waiting 49 ticks");
        assert_eq!(meter.used, 1, "waiting ticks are not counted");

        for tick in 151..=153 {
            ticks.store(tick, Ordering::Relaxed);
            let result = meter.on_epoch();
            assert_eq!(
                result.is_err(),
                tick == 153,
                "busy tick {tick} with a budget of 3"
            );
        }
    }

    #[tokio::test]
    async fn gate_rejects_after_wait() {
        let gate = ConcurrencyGate::new(1, Duration::from_millis(20));
        let held = gate.enter().await.expect("the first call gets the slot");
        let refused = gate
            .enter()
            .await
            .expect_err("the second call waits and fails");
        assert_eq!(refused.max_calls, 1);
        drop(held);
        assert!(gate.enter().await.is_ok(), "the slot is free again");
    }
}
