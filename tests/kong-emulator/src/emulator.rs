//! The emulator's lifecycle: binding, the server thread, and the handle tests hold.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::Admin;
use crate::clock::Clock;
use crate::faults::Faults;
use crate::info::Version;
use crate::options::Options;
use crate::record::{RecordedRequest, RequestLog};
use crate::schema;
use crate::server::{accept_loop, Listener, Shared};
use crate::store::{Ctx, Store};
use crate::tls;

/// A running emulator: an Admin API listener and a proxy listener on 127.0.0.1.
///
/// Dropping it stops both listeners and joins the thread that serves them.
pub struct Emulator {
    admin_url: String,
    proxy_url: String,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// Why [`Emulator::seed`] could not store an entity.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("workspace {0:?} not found; pass \"default\" or one named in Options::workspaces")]
    UnknownWorkspace(String),
    #[error("collection {0:?} not found; pass an Admin API collection such as \"consumers\" or \"key-auths\"")]
    UnknownCollection(String),
    #[error("entity is not a JSON object; pass the body a POST would carry")]
    NotAnObject,
    #[error("entity rejected with status {status}: {body}")]
    Rejected { status: u16, body: Value },
}

impl Emulator {
    /// Binds both listeners and starts serving them from a dedicated thread.
    ///
    /// Fails when a port cannot be bound, when `version` is not `major.minor.patch`, or when the
    /// TLS material does not parse.
    pub fn start(options: Options) -> io::Result<Emulator> {
        let version = Version::parse(&options.version).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "version {:?} is invalid; pass major.minor.patch, e.g. 3.9.1",
                    options.version
                ),
            )
        })?;
        let tls_config = options.tls.as_ref().map(tls::server_config).transpose()?;

        let admin_listener = std::net::TcpListener::bind(("127.0.0.1", options.admin_port))?;
        let proxy_listener = std::net::TcpListener::bind(("127.0.0.1", options.proxy_port))?;
        admin_listener.set_nonblocking(true)?;
        proxy_listener.set_nonblocking(true)?;
        let admin_addr: SocketAddr = admin_listener.local_addr()?;
        let proxy_addr: SocketAddr = proxy_listener.local_addr()?;

        let scheme = if tls_config.is_some() {
            "https"
        } else {
            "http"
        };
        let admin_url = format!("{scheme}://{admin_addr}");
        let proxy_url = format!("http://{proxy_addr}");

        let enterprise = options.admin_token.is_some() || !options.workspaces.is_empty();
        let admin = Admin {
            store: Mutex::new(Store::new(&options.workspaces)),
            clock: Arc::new(Clock::default()),
            version_text: options.version.clone(),
            version,
            db_less: options.db_less,
            enterprise,
            node_id: uuid::Uuid::new_v4().to_string(),
            keep_expired: options.ttl_ignored_by_proxy,
            admin_listen: format!(
                "{admin_addr}{}",
                if tls_config.is_some() { " ssl" } else { "" }
            ),
            proxy_listen: proxy_addr.to_string(),
        };
        let shared = Arc::new(Shared {
            admin,
            faults: Faults::default(),
            log: RequestLog::default(),
            token: options.admin_token.clone(),
            ttl_ignored_by_proxy: options.ttl_ignored_by_proxy,
        });

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kong-emulator-worker")
            .enable_all()
            .build()?;
        let (admin_listener, proxy_listener) = {
            // Converting std listeners needs the runtime's reactor.
            let _guard = runtime.enter();
            (
                TcpListener::from_std(admin_listener)?,
                TcpListener::from_std(proxy_listener)?,
            )
        };

        let (shutdown, shutdown_rx) = watch::channel(false);
        let acceptor = tls_config.map(TlsAcceptor::from);
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kong-emulator".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let admin = accept_loop(
                        admin_listener,
                        Listener::Admin,
                        served.clone(),
                        acceptor,
                        shutdown_rx.clone(),
                    );
                    let proxy =
                        accept_loop(proxy_listener, Listener::Proxy, served, None, shutdown_rx);
                    tokio::join!(admin, proxy);
                });
                // Dropping the runtime here cancels connections still open.
                drop(runtime);
            })?;

        Ok(Emulator {
            admin_url,
            proxy_url,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Base URL of the Admin API, e.g. `http://127.0.0.1:8001` (`https` with TLS).
    pub fn admin_url(&self) -> String {
        self.admin_url.clone()
    }

    /// Base URL of the proxy, e.g. `http://127.0.0.1:8000`.
    pub fn proxy_url(&self) -> String {
        self.proxy_url.clone()
    }

    /// Returns the handle that switches Admin API faults on and off.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Returns every Admin API request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Moves emulator time forward, so that `ttl` expiry happens without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.admin.clock.advance(by);
    }

    /// Stops emulator time from following the system clock, so that only
    /// [`advance_clock`](Emulator::advance_clock) moves it and remaining `ttl` values are exact.
    pub fn pause_clock(&self) {
        self.shared.admin.clock.pause();
    }

    /// Returns every live (unexpired) key-auth credential of every workspace, as the Admin API
    /// renders it, for "nothing left behind" assertions.
    pub fn key_auth_credentials(&self) -> Vec<Value> {
        let ctx = self.shared.admin.ctx();
        self.shared.admin.lock_store().live_key_auths(&ctx)
    }

    /// Stores an entity as `POST /{collection}` would, bypassing the admin token, faults and
    /// DB-less mode. This is how a test gives a DB-less node its declarative configuration.
    ///
    /// `collection` is a top-level Admin API collection (`consumers`, `key-auths`, ...), and a
    /// credential names its consumer with `{"consumer": {"id": ...}}`. Returns the stored entity.
    pub fn seed(
        &self,
        workspace: &str,
        collection: &str,
        entity: Value,
    ) -> Result<Value, SeedError> {
        let schema = schema::by_admin_name(collection)
            .ok_or_else(|| SeedError::UnknownCollection(collection.to_owned()))?;
        let Value::Object(mut body) = entity else {
            return Err(SeedError::NotAnObject);
        };
        let ttl = if schema.ttl { body.remove("ttl") } else { None };
        let ctx = Ctx {
            db_less: false,
            ..self.shared.admin.ctx()
        };

        let mut store = self.shared.admin.lock_store();
        let workspace_store = store
            .workspace_mut(workspace)
            .ok_or_else(|| SeedError::UnknownWorkspace(workspace.to_owned()))?;
        workspace_store
            .insert(schema, body, ttl.as_ref(), &ctx)
            .map_err(|error| SeedError::Rejected {
                status: error.status(),
                body: error.body(),
            })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("kong emulator thread panicked");
            }
        }
    }
}
