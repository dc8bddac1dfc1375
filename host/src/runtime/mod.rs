//! The runtime: runs the engine component once per Vault request inside the sandbox.
//!
//! One [`Runtime`] per process contains one wasmtime engine (Cranelift, async, epoch
//! interruption, pooling allocator), the component compiled once, and one pre-instantiated
//! component (`InstancePre`) with every import linked. Each call then:
//!
//! 1. waits for one of `--max-concurrent-calls` slots, at most `--max-queue-wait`;
//! 2. creates a fresh `Store` with an empty WASI context, the mount's services, the outbound
//!    hooks, a memory limiter and a CPU meter;
//! 3. instantiates the component in it and calls one export, all within
//!    `--max-call-duration`;
//! 4. drops the store, and with it the instance, whatever happened.
//!
//! Nothing survives from one call to the next, so a trap, an out-of-memory, a timeout or a
//! panic fails that call only ([`CallError`]) and the process keeps serving.

mod bindings;
mod engine;
mod error;
mod limits;
mod store;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

pub use error::CallError;

use crate::outbound::client::{tls_connector, Client, Limits};
use crate::outbound::hooks::{CallOutbound, OutboundHooks};
use crate::outbound::Policy;
use crate::services::{MemoryStorage, MountServices, StaticSystemView};
use crate::settings::Settings;
use bindings::{VaultBackend, VaultBackendPre};
use limits::{ConcurrencyGate, CpuBudgetExhausted, CpuMeter, MemoryLimiter};
use store::CallState;

/// The types of the `vault:backend` world, as the protocol layer translates them.
pub mod wit {
    pub use super::bindings::vault::backend::types::{
        CodedError, Error, Existence, Header, Operation, Paths, Request, Response, Secret,
    };

    /// The special paths record (`paths` in the WIT world).
    pub type SpecialPaths = Paths;
}

/// The Kong engine component, built in release mode by the build script.
static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("KONG_ENGINE_WASM"));

/// Runs the engine component with a fresh instance per call. `Send + Sync`; share it in an
/// `Arc`.
pub struct Runtime {
    engine: Engine,
    prepared: Prepared,
    client: Arc<Client>,
    gate: ConcurrencyGate,
    ticks: Arc<AtomicU64>,
    max_memory_bytes: u64,
    max_cpu_time: Duration,
    max_call_duration: Duration,
    max_outbound_requests: u32,
    // Last, so that the ticker thread stops after everything else is dropped.
    _ticker: engine::Ticker,
}

/// The compiled component with its imports linked, once it is ready, or why it failed.
type Prepared = watch::Receiver<Option<Result<VaultBackendPre<CallState>, String>>>;

/// Compiles `bytes` and links every import.
fn prepare(engine: &Engine, bytes: &[u8]) -> anyhow::Result<VaultBackendPre<CallState>> {
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("failed to compile the component")?;
    let mut linker = Linker::new(engine);
    bindings::add_to_linker(&mut linker).context("failed to link the component's imports")?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .context("the component needs an import the host does not provide")?;
    VaultBackendPre::new(pre)
        .map_err(anyhow::Error::from)
        .context("the component does not export the vault-backend world")
}

/// One export call with its arguments.
enum Call {
    SpecialPaths,
    Initialize,
    HandleRequest(wit::Request),
    HandleExistenceCheck(wit::Request),
    Invalidate(String),
    Cleanup,
}

impl Call {
    fn name(&self) -> &'static str {
        match self {
            Call::SpecialPaths => "special-paths",
            Call::Initialize => "initialize",
            Call::HandleRequest(_) => "handle-request",
            Call::HandleExistenceCheck(_) => "handle-existence-check",
            Call::Invalidate(_) => "invalidate",
            Call::Cleanup => "cleanup",
        }
    }
}

/// The result of an export call.
enum Returned {
    SpecialPaths(wit::Paths),
    Initialize(Result<(), wit::Error>),
    HandleRequest(Result<Option<wit::Response>, wit::Error>),
    HandleExistenceCheck(Result<wit::Existence, wit::Error>),
    Nothing,
}

impl Runtime {
    /// Prepares the Kong engine embedded in this binary.
    ///
    /// Compiling the component takes a few hundred milliseconds, so it runs on a background
    /// thread and this function returns at once. Calls wait until the component is ready, and
    /// a compilation failure fails every call with [`CallError::Instantiation`].
    pub fn new(settings: &Settings) -> anyhow::Result<Arc<Runtime>> {
        let engine = engine::build(settings)?;
        let (ready, prepared) = watch::channel(None);
        std::thread::Builder::new()
            .name("compile-engine".to_string())
            .spawn({
                let engine = engine.clone();
                move || {
                    let started = Instant::now();
                    let result = prepare(&engine, EMBEDDED_COMPONENT)
                        .context("failed to prepare the embedded Kong engine component")
                        .map_err(|error| format!("{error:#}"));
                    match &result {
                        Ok(_) => tracing::debug!(
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "engine component compiled"
                        ),
                        Err(error) => tracing::error!(%error, "engine component failed to compile"),
                    }
                    let _ = ready.send(Some(result));
                }
            })
            .context("failed to start the thread that compiles the engine component")?;
        Runtime::assemble(engine, prepared, settings)
    }

    /// Prepares any component of the `vault-backend` world, such as a test component, and
    /// compiles it before returning.
    pub fn from_component_bytes(bytes: &[u8], settings: &Settings) -> anyhow::Result<Arc<Runtime>> {
        let engine = engine::build(settings)?;
        let pre = prepare(&engine, bytes)?;
        let (_, prepared) = watch::channel(Some(Ok(pre)));
        Runtime::assemble(engine, prepared, settings)
    }

    fn assemble(
        engine: Engine,
        prepared: Prepared,
        settings: &Settings,
    ) -> anyhow::Result<Arc<Runtime>> {
        let client = Arc::new(Client {
            policy: Policy::from_settings(settings),
            limits: Limits::from_settings(settings),
            tls: tls_connector(settings)?,
            static_hosts: settings.static_hosts.clone(),
        });
        log_policy(settings);

        let ticker = engine::Ticker::start(&engine)?;
        Ok(Arc::new(Runtime {
            ticks: ticker.ticks(),
            engine,
            prepared,
            client,
            gate: ConcurrencyGate::new(settings.max_concurrent_calls, settings.max_queue_wait),
            max_memory_bytes: settings.max_memory_bytes,
            max_cpu_time: settings.max_cpu_time,
            max_call_duration: settings.max_call_duration,
            max_outbound_requests: settings.max_outbound_requests_per_call,
            _ticker: ticker,
        }))
    }

    /// Returns the backend's special paths. Runs with empty in-memory storage, because Vault
    /// requests them before the mount's storage is reachable.
    pub async fn special_paths(&self) -> Result<wit::SpecialPaths, CallError> {
        let services = MountServices {
            storage: Arc::new(MemoryStorage::default()),
            system_view: Arc::new(StaticSystemView::default()),
        };
        match self.call(services, Call::SpecialPaths).await? {
            Returned::SpecialPaths(paths) => Ok(paths),
            _ => unreachable!("special-paths returns paths"),
        }
    }

    pub async fn initialize(
        &self,
        services: &MountServices,
    ) -> Result<Result<(), wit::Error>, CallError> {
        match self.call(services.clone(), Call::Initialize).await? {
            Returned::Initialize(result) => Ok(result),
            _ => unreachable!("initialize returns its result"),
        }
    }

    pub async fn handle_request(
        &self,
        services: &MountServices,
        request: wit::Request,
    ) -> Result<Result<Option<wit::Response>, wit::Error>, CallError> {
        match self
            .call(services.clone(), Call::HandleRequest(request))
            .await?
        {
            Returned::HandleRequest(result) => Ok(result),
            _ => unreachable!("handle-request returns its result"),
        }
    }

    pub async fn handle_existence_check(
        &self,
        services: &MountServices,
        request: wit::Request,
    ) -> Result<Result<wit::Existence, wit::Error>, CallError> {
        match self
            .call(services.clone(), Call::HandleExistenceCheck(request))
            .await?
        {
            Returned::HandleExistenceCheck(result) => Ok(result),
            _ => unreachable!("handle-existence-check returns its result"),
        }
    }

    pub async fn invalidate(&self, services: &MountServices, key: String) -> Result<(), CallError> {
        self.call(services.clone(), Call::Invalidate(key))
            .await
            .map(|_| ())
    }

    pub async fn cleanup(&self, services: &MountServices) -> Result<(), CallError> {
        self.call(services.clone(), Call::Cleanup).await.map(|_| ())
    }

    /// Runs one call within the concurrency and wall-clock bounds, and logs a failure.
    async fn call(&self, services: MountServices, call: Call) -> Result<Returned, CallError> {
        let function = call.name();
        let pre = self
            .compiled()
            .await
            .inspect_err(|error| tracing::warn!(function, %error, "engine call failed"))?;
        let _slot = self
            .gate
            .enter()
            .await
            .map_err(|refused| CallError::Overloaded {
                max_calls: refused.max_calls,
                waited: refused.waited,
            })
            .inspect_err(|error| tracing::warn!(function, %error, "engine call rejected"))?;

        let started = Instant::now();
        // The store lives inside this future, so a timeout drops the instance with it.
        let result = match tokio::time::timeout(
            self.max_call_duration,
            self.run(&pre, services, call),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                limit: self.max_call_duration,
            }),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match &result {
            Ok(_) => tracing::debug!(function, elapsed_us, "engine call finished"),
            Err(error) => tracing::warn!(function, elapsed_us, %error, "engine call failed"),
        }
        result
    }

    /// Waits until the component is compiled and returns it.
    async fn compiled(&self) -> Result<VaultBackendPre<CallState>, CallError> {
        let mut prepared = self.prepared.clone();
        let ready =
            prepared
                .wait_for(Option::is_some)
                .await
                .map_err(|_| CallError::Instantiation {
                    message: "the thread compiling the component stopped without a result"
                        .to_string(),
                })?;
        match ready.as_ref() {
            Some(Ok(pre)) => Ok(pre.clone()),
            Some(Err(message)) => Err(CallError::Instantiation {
                message: message.clone(),
            }),
            None => unreachable!("wait_for returns a compiled component or an error"),
        }
    }

    /// Instantiates the component in a fresh store and calls one export.
    async fn run(
        &self,
        pre: &VaultBackendPre<CallState>,
        services: MountServices,
        call: Call,
    ) -> Result<Returned, CallError> {
        let outbound = Arc::new(CallOutbound::default());
        let hooks = OutboundHooks::new(
            Arc::clone(&self.client),
            Arc::clone(&outbound),
            self.max_outbound_requests,
        );
        let state = CallState::new(
            services,
            hooks,
            outbound,
            MemoryLimiter::new(self.max_memory_bytes),
            CpuMeter::new(Arc::clone(&self.ticks), self.max_cpu_time),
        );

        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| match context.data_mut().cpu.on_epoch() {
            // Yielding lets other calls and the I/O they wait for run on this thread.
            Ok(()) => Ok(UpdateDeadline::Yield(1)),
            Err(exhausted) => Err(exhausted.into()),
        });

        let result = match pre.instantiate_async(&mut store).await {
            Ok(instance) => call_export(&instance, &mut store, call).await,
            Err(error) if store.data().memory.denied() || error.is::<CpuBudgetExhausted>() => {
                Err(error)
            }
            Err(error) => {
                return Err(CallError::Instantiation {
                    message: format!("{error:#}"),
                })
            }
        };

        let state = store.data();
        let stderr = state.stderr.contents();
        if !stderr.is_empty() {
            tracing::debug!(target: "engine", stderr = %stderr.trim_end(), "engine wrote to stderr");
        }
        if state.log_lines_dropped > 0 {
            tracing::warn!(
                dropped = state.log_lines_dropped,
                "engine log lines over the per-call limit were dropped"
            );
        }
        result.map_err(|error| self.classify(&error, state, &stderr))
    }

    /// Names the cause of a failed call from the error and what the store observed.
    fn classify(&self, error: &wasmtime::Error, state: &CallState, stderr: &str) -> CallError {
        if error.is::<CpuBudgetExhausted>() {
            return CallError::CpuLimit {
                limit: self.max_cpu_time,
            };
        }
        if state.memory.denied() {
            return CallError::OutOfMemory {
                limit_bytes: self.max_memory_bytes,
            };
        }
        if let Some((location, message)) = error::parse_panic(stderr) {
            return CallError::GuestPanic { location, message };
        }
        let message = match error.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{error:#}"),
        };
        CallError::Trap { message }
    }
}

async fn call_export(
    instance: &VaultBackend,
    store: &mut Store<CallState>,
    call: Call,
) -> wasmtime::Result<Returned> {
    let backend = instance.vault_backend_backend();
    Ok(match call {
        Call::SpecialPaths => {
            Returned::SpecialPaths(backend.call_special_paths(&mut *store).await?)
        }
        Call::Initialize => Returned::Initialize(backend.call_initialize(&mut *store).await?),
        Call::HandleRequest(request) => {
            Returned::HandleRequest(backend.call_handle_request(&mut *store, &request).await?)
        }
        Call::HandleExistenceCheck(request) => Returned::HandleExistenceCheck(
            backend
                .call_handle_existence_check(&mut *store, &request)
                .await?,
        ),
        Call::Invalidate(key) => {
            backend.call_invalidate(&mut *store, &key).await?;
            Returned::Nothing
        }
        Call::Cleanup => {
            backend.call_cleanup(&mut *store).await?;
            Returned::Nothing
        }
    })
}

/// Logs the outbound policy once at start-up, with a warning when it is open.
fn log_policy(settings: &Settings) {
    if settings.outbound_policy_is_open() {
        tracing::warn!(
            "outbound policy is open: the engine may send requests to any origin outside the \
             denied networks; set --allowed-origins or KONG_SECRETS_ALLOWED_ORIGINS to restrict it"
        );
    } else {
        let origins: Vec<String> = settings
            .allowed_origins
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(allowed_origins = %origins.join(","), "outbound policy allows only the listed origins");
    }
    let networks = |list: &[ipnet::IpNet]| -> String {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    tracing::info!(
        denied_networks = %networks(&settings.denied_networks),
        allowed_networks = %networks(&settings.allowed_networks),
        "outbound policy networks besides the built-in denied ones"
    );
    // Vault's log reads JSON numbers as floats and would print 64 MiB as 6.7108864e+07, so
    // the size goes out as text.
    tracing::info!(
        max_memory_bytes = %settings.max_memory_bytes,
        max_cpu_time_ms = settings.max_cpu_time.as_millis() as u64,
        max_call_duration_ms = settings.max_call_duration.as_millis() as u64,
        max_concurrent_calls = settings.max_concurrent_calls,
        max_outbound_requests_per_call = settings.max_outbound_requests_per_call,
        "engine sandbox limits"
    );
}
