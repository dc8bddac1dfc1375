//! The wasmtime engine: Cranelift, async, epoch interruption and the pooling allocator sized
//! from the operator's limits, plus the ticker thread that drives the epochs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::settings::Settings;

/// One epoch tick. CPU time is counted in these ticks, so it is also the resolution of
/// `--max-cpu-time`.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances one component instance may create. A Rust `wasm32-wasip2` component has a
/// handful (the program plus small shim modules); the bound only sizes the pool.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Linear memories and tables per component instance, for sizing the pool.
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// Builds the engine with one pool slot per concurrent call.
///
/// The memory cap is enforced by each store's resource limiter, not by the pool's slot size:
/// wasmtime also consults the limiter for an instance's initial memory. A cap below what the
/// component needs to start then fails as "out of memory" at the call, not as a compile error.
pub fn build(settings: &Settings) -> anyhow::Result<Engine> {
    let slots = settings.max_concurrent_calls;

    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .total_stacks(slots);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("failed to create the WebAssembly engine")
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] and counts the ticks, until
/// it is dropped.
pub struct Ticker {
    ticks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub fn start(engine: &Engine) -> anyhow::Result<Ticker> {
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".to_string())
            .spawn({
                let engine = engine.clone();
                let ticks = Arc::clone(&ticks);
                let stop = Arc::clone(&stop);
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        ticks.fetch_add(1, Ordering::Relaxed);
                        engine.increment_epoch();
                    }
                }
            })
            .context("failed to start the epoch ticker thread")?;
        Ok(Ticker {
            ticks,
            stop,
            thread: Some(thread),
        })
    }

    /// Returns the tick counter, which CPU accounting compares between epoch callbacks.
    pub fn ticks(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.ticks)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
