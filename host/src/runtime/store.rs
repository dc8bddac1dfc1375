//! The state of one call: the data of a fresh `Store`, dropped with it when the call ends.
//!
//! The WASI context is empty: no preopened directories, no environment variables, no
//! arguments, no stdin, stdout discarded, no sockets and no name lookups. The guest's stderr
//! is kept (up to [`STDERR_CAPACITY`] bytes) to read a panic report and is logged at debug.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::{CpuMeter, MemoryLimiter};
use crate::outbound::hooks::{CallOutbound, OutboundHooks};
use crate::services::MountServices;

/// Maximum stderr bytes kept per call. The rest is accepted and dropped.
pub const STDERR_CAPACITY: usize = 16 * 1024;

/// Maximum log lines the engine may write per call. Further lines are counted and dropped.
pub const LOG_LINES_PER_CALL: u32 = 256;

/// Maximum log message length kept, in bytes. Longer messages are cut.
pub const LOG_MESSAGE_BYTES: usize = 4096;

/// The data of one call's store.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) hooks: OutboundHooks,
    pub(crate) outbound: Arc<CallOutbound>,
    pub(crate) services: MountServices,
    pub(crate) memory: MemoryLimiter,
    pub(crate) cpu: CpuMeter,
    pub(crate) stderr: CapturedStderr,
    pub(crate) log_lines: u32,
    pub(crate) log_lines_dropped: u32,
}

impl CallState {
    pub fn new(
        services: MountServices,
        hooks: OutboundHooks,
        outbound: Arc<CallOutbound>,
        memory: MemoryLimiter,
        cpu: CpuMeter,
    ) -> CallState {
        let stderr = CapturedStderr::default();
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks,
            outbound,
            services,
            memory,
            cpu,
            stderr,
            log_lines: 0,
            log_lines_dropped: 0,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The guest's stderr: kept in memory up to [`STDERR_CAPACITY`] bytes. Writes never fail, so
/// that a chatty guest cannot turn a full buffer into a panic.
#[derive(Clone, Default)]
pub struct CapturedStderr {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CapturedStderr {
    /// Returns what the guest wrote so far, as text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().expect("stderr lock poisoned")).into_owned()
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().expect("stderr lock poisoned");
        let room = STDERR_CAPACITY.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for CapturedStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedStderr {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedStderr {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStderr {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _context: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(bytes);
        std::task::Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
