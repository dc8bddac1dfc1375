//! `pb.Backend`: the service through which Vault drives the secrets engine.
//!
//! Vault calls `Setup` first, with the broker id of its storage and system view listener.
//! The plugin dials that listener (see [`crate::broker`]) and keeps the channel as the
//! mount's services until `Cleanup`. Setup only dials: at registration Vault calls it with an empty
//! configuration and nothing behind the broker, so it must succeed without touching storage.
//! Then come `Type` (always 1, a logical backend), `SpecialPaths`, `Initialize`, and the
//! traffic: `HandleExistenceCheck` and `HandleRequest`.
//!
//! Each call is translated (see [`crate::translation`]) and handed to a [`LogicalBackend`],
//! in production the WebAssembly runtime. Application errors travel in the replies' error
//! fields, because Vault reports a gRPC error status as a bare 500. A failure of the runtime
//! itself (a trap, a timeout, too many calls) becomes a 500 with its message, and the plugin
//! keeps serving.

use std::fmt::Display;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tonic::{Request, Response, Status};

use crate::broker::Broker;
use crate::proto::pb;
use crate::proto::pb::backend_server::{Backend, BackendServer};
use crate::runtime::wit;
use crate::services::MountServices;
use crate::translation::{self, err_type, proto_error};

/// `TypeReply.type` of a logical backend (a secrets engine).
const LOGICAL_BACKEND_TYPE: u32 = 1;

/// What runs the engine's calls: the WebAssembly runtime, or a fake in tests.
///
/// The outer `Result` is the runtime's own failure, the inner one the engine's result.
#[async_trait]
pub trait LogicalBackend: Send + Sync + 'static {
    /// A failure to run the call at all.
    type CallError: CallFailure;

    async fn special_paths(&self) -> Result<wit::Paths, Self::CallError>;

    async fn initialize(
        &self,
        services: &MountServices,
    ) -> Result<Result<(), wit::Error>, Self::CallError>;

    async fn handle_request(
        &self,
        services: &MountServices,
        request: wit::Request,
    ) -> Result<Result<Option<wit::Response>, wit::Error>, Self::CallError>;

    async fn handle_existence_check(
        &self,
        services: &MountServices,
        request: wit::Request,
    ) -> Result<Result<wit::Existence, wit::Error>, Self::CallError>;

    async fn invalidate(
        &self,
        services: &MountServices,
        key: String,
    ) -> Result<(), Self::CallError>;

    async fn cleanup(&self, services: &MountServices) -> Result<(), Self::CallError>;
}

/// A failure to run an engine call at all, reported to Vault with its message.
pub trait CallFailure: Display + Send {
    /// Returns the HTTP status of Vault's response: 500 unless the failure has its own.
    fn status(&self) -> u16 {
        500
    }
}

impl CallFailure for crate::runtime::CallError {
    /// 503 when the plugin is too busy to run the call, so that clients may retry.
    fn status(&self) -> u16 {
        match self {
            crate::runtime::CallError::Overloaded { .. } => 503,
            _ => 500,
        }
    }
}

#[async_trait]
impl LogicalBackend for crate::runtime::Runtime {
    type CallError = crate::runtime::CallError;

    async fn special_paths(&self) -> Result<wit::Paths, Self::CallError> {
        crate::runtime::Runtime::special_paths(self).await
    }

    async fn initialize(
        &self,
        services: &MountServices,
    ) -> Result<Result<(), wit::Error>, Self::CallError> {
        crate::runtime::Runtime::initialize(self, services).await
    }

    async fn handle_request(
        &self,
        services: &MountServices,
        request: wit::Request,
    ) -> Result<Result<Option<wit::Response>, wit::Error>, Self::CallError> {
        crate::runtime::Runtime::handle_request(self, services, request).await
    }

    async fn handle_existence_check(
        &self,
        services: &MountServices,
        request: wit::Request,
    ) -> Result<Result<wit::Existence, wit::Error>, Self::CallError> {
        crate::runtime::Runtime::handle_existence_check(self, services, request).await
    }

    async fn invalidate(
        &self,
        services: &MountServices,
        key: String,
    ) -> Result<(), Self::CallError> {
        crate::runtime::Runtime::invalidate(self, services, key).await
    }

    async fn cleanup(&self, services: &MountServices) -> Result<(), Self::CallError> {
        crate::runtime::Runtime::cleanup(self, services).await
    }
}

/// Where the mount is in its life.
#[derive(Clone)]
enum Mount {
    /// Vault has not called Setup yet, or Cleanup ended the mount, or Setup failed.
    NotSetUp,
    /// Setup is waiting for the broker announcement or dialing it.
    SettingUp,
    Ready(MountServices),
}

/// The `pb.Backend` service over a [`LogicalBackend`].
pub struct BackendService<B> {
    backend: Arc<B>,
    broker: Arc<Broker>,
    mount: Mutex<Mount>,
}

impl<B: LogicalBackend> BackendService<B> {
    pub fn new(backend: Arc<B>, broker: Arc<Broker>) -> Self {
        Self {
            backend,
            broker,
            mount: Mutex::new(Mount::NotSetUp),
        }
    }

    /// The gRPC server for this service, with message limits raised to what Vault allows:
    /// requests and responses may be larger than tonic's 4 MiB default.
    pub fn into_server(self) -> BackendServer<Self> {
        BackendServer::new(self)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    fn set_mount(&self, mount: Mount) {
        *self
            .mount
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = mount;
    }

    /// The mount's services, or the error Vault gets when a call comes before Setup ends.
    fn services(&self) -> Result<MountServices, pb::ProtoError> {
        let mount = self
            .mount
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let message = match mount {
            Mount::Ready(services) => return Ok(services),
            Mount::SettingUp => {
                "the backend is not ready: Setup is still waiting for Vault's broker connection"
            }
            Mount::NotSetUp => {
                "the backend is not set up: Vault has not completed Setup for this plugin process"
            }
        };
        Err(proto_error(err_type::INTERNAL_ERROR, message.to_string()))
    }
}

/// Logs a runtime failure and turns it into the error Vault reports: an internal error
/// (500), or a coded error when the failure has another status.
fn call_failed(call: &str, error: impl CallFailure) -> pb::ProtoError {
    let message = error.to_string();
    tracing::error!(
        call,
        error = message.as_str(),
        "the Kong engine call failed"
    );
    match error.status() {
        500 => proto_error(err_type::INTERNAL_ERROR, message),
        status => pb::ProtoError {
            err_type: err_type::CODED_ERROR,
            err_msg: message,
            err_code: i64::from(status),
        },
    }
}

#[async_trait]
impl<B: LogicalBackend> Backend for BackendService<B> {
    async fn setup(
        &self,
        request: Request<pb::SetupArgs>,
    ) -> Result<Response<pb::SetupReply>, Status> {
        let args = request.into_inner();
        let setting = |key: &str| args.config.get(key).cloned().unwrap_or_default();
        tracing::info!(
            broker_id = args.broker_id,
            plugin_name = setting("plugin_name"),
            plugin_version = setting("plugin_version"),
            "Vault is setting up the backend"
        );

        self.set_mount(Mount::SettingUp);
        let err = match self.broker.dial(args.broker_id).await {
            Ok(channel) => {
                self.set_mount(Mount::Ready(crate::vault_services::mount_services(channel)));
                String::new()
            }
            Err(error) => {
                self.set_mount(Mount::NotSetUp);
                let message = error.to_string();
                tracing::error!(error = message.as_str(), "backend setup failed");
                message
            }
        };
        Ok(Response::new(pb::SetupReply { err }))
    }

    async fn r#type(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::TypeReply>, Status> {
        Ok(Response::new(pb::TypeReply {
            r#type: LOGICAL_BACKEND_TYPE,
        }))
    }

    async fn special_paths(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::SpecialPathsReply>, Status> {
        match self.backend.special_paths().await {
            Ok(paths) => Ok(Response::new(pb::SpecialPathsReply {
                paths: Some(translation::special_paths(paths)),
            })),
            // The reply has no error field; Vault fails the mount on this status.
            Err(error) => Err(Status::internal(
                call_failed("special-paths", error).err_msg,
            )),
        }
    }

    async fn initialize(
        &self,
        _request: Request<pb::InitializeArgs>,
    ) -> Result<Response<pb::InitializeReply>, Status> {
        let services = match self.services() {
            Ok(services) => services,
            Err(error) => return Ok(Response::new(pb::InitializeReply { err: Some(error) })),
        };
        let err = match self.backend.initialize(&services).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(translation::error_for_vault(error)),
            Err(error) => Some(call_failed("initialize", error)),
        };
        Ok(Response::new(pb::InitializeReply { err }))
    }

    async fn handle_request(
        &self,
        request: Request<pb::HandleRequestArgs>,
    ) -> Result<Response<pb::HandleRequestReply>, Status> {
        let reply = |response, err| Ok(Response::new(pb::HandleRequestReply { response, err }));

        let services = match self.services() {
            Ok(services) => services,
            Err(error) => return reply(None, Some(error)),
        };
        let incoming = request.into_inner().request.unwrap_or_default();
        let (id, operation, path) = (
            incoming.id.clone(),
            incoming.operation.clone(),
            incoming.path.clone(),
        );
        tracing::debug!(id, operation, path, "handling request");

        let translated = match translation::request(incoming) {
            Ok(translated) => translated,
            Err(error) => return reply(None, Some(error.to_proto())),
        };

        match self.backend.handle_request(&services, translated).await {
            Ok(Ok(None)) => reply(None, None),
            Ok(Ok(Some(response))) => match translation::response(response) {
                Ok(response) => reply(Some(response), None),
                Err(error) => {
                    tracing::error!(id, operation, path, error = %error, "cannot return the Kong engine's response");
                    reply(None, Some(error.to_proto()))
                }
            },
            Ok(Err(error)) => {
                let (response, err) = translation::request_error(&operation, error);
                reply(response, err)
            }
            Err(error) => reply(None, Some(call_failed("handle-request", error))),
        }
    }

    async fn handle_existence_check(
        &self,
        request: Request<pb::HandleExistenceCheckArgs>,
    ) -> Result<Response<pb::HandleExistenceCheckReply>, Status> {
        let failed = |err| {
            Ok(Response::new(pb::HandleExistenceCheckReply {
                err: Some(err),
                ..Default::default()
            }))
        };

        let services = match self.services() {
            Ok(services) => services,
            Err(error) => return failed(error),
        };
        let incoming = request.into_inner().request.unwrap_or_default();
        tracing::debug!(
            id = incoming.id,
            operation = incoming.operation,
            path = incoming.path,
            "checking existence"
        );

        let translated = match translation::request(incoming) {
            Ok(translated) => translated,
            Err(error) => return failed(error.to_proto()),
        };

        match self
            .backend
            .handle_existence_check(&services, translated)
            .await
        {
            Ok(Ok(existence)) => Ok(Response::new(pb::HandleExistenceCheckReply {
                check_found: existence.check_found,
                exists: existence.exists,
                err: None,
            })),
            Ok(Err(error)) => failed(translation::existence_error(error)),
            Err(error) => failed(call_failed("handle-existence-check", error)),
        }
    }

    async fn invalidate_key(
        &self,
        request: Request<pb::InvalidateKeyArgs>,
    ) -> Result<Response<pb::Empty>, Status> {
        let key = request.into_inner().key;
        // Without a mount there is nothing derived from storage to drop.
        if let Ok(services) = self.services() {
            if let Err(error) = self.backend.invalidate(&services, key).await {
                call_failed("invalidate", error);
            }
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn cleanup(&self, _request: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        tracing::info!("Vault is cleaning up the backend");
        if let Ok(services) = self.services() {
            if let Err(error) = self.backend.cleanup(&services).await {
                call_failed("cleanup", error);
            }
        }
        // Dropping the services closes the broker channel.
        self.set_mount(Mount::NotSetUp);
        Ok(Response::new(pb::Empty {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::controller::Shutdown;
    use crate::services::{MemoryStorage, StaticSystemView};
    use crate::tls::{client_config, PinnedCertificate, PluginIdentity};

    /// A runtime failure with a chosen status.
    #[derive(Debug)]
    struct FakeFailure(u16);

    impl Display for FakeFailure {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(formatter, "fake failure with status {}", self.0)
        }
    }

    impl CallFailure for FakeFailure {
        fn status(&self) -> u16 {
            self.0
        }
    }

    /// What the fake's `handle_request` returns.
    type Outcome = Result<Result<Option<wit::Response>, wit::Error>, FakeFailure>;

    /// A backend whose requests all end with `outcome`, recording what it receives.
    struct FakeBackend {
        outcome: Mutex<Option<Outcome>>,
        received: Mutex<Vec<wit::Request>>,
    }

    #[async_trait]
    impl LogicalBackend for FakeBackend {
        type CallError = FakeFailure;

        async fn special_paths(&self) -> Result<wit::Paths, FakeFailure> {
            Err(FakeFailure(500))
        }

        async fn initialize(
            &self,
            _services: &MountServices,
        ) -> Result<Result<(), wit::Error>, FakeFailure> {
            Ok(Err(wit::Error::Internal("cannot read config".into())))
        }

        async fn handle_request(
            &self,
            _services: &MountServices,
            request: wit::Request,
        ) -> Outcome {
            self.received.lock().unwrap().push(request);
            self.outcome
                .lock()
                .unwrap()
                .take()
                .expect("one outcome per test")
        }

        async fn handle_existence_check(
            &self,
            _services: &MountServices,
            _request: wit::Request,
        ) -> Result<Result<wit::Existence, wit::Error>, FakeFailure> {
            Ok(Err(wit::Error::BadRequest("name is invalid".into())))
        }

        async fn invalidate(
            &self,
            _services: &MountServices,
            _key: String,
        ) -> Result<(), FakeFailure> {
            Ok(())
        }

        async fn cleanup(&self, _services: &MountServices) -> Result<(), FakeFailure> {
            Ok(())
        }
    }

    fn service(outcome: Outcome) -> (BackendService<FakeBackend>, Arc<FakeBackend>) {
        let identity = PluginIdentity::generate().unwrap();
        let pinned = PinnedCertificate::from_der(identity.certificate_der().clone()).unwrap();
        let broker = Broker::new(client_config(&identity, &pinned).unwrap(), Shutdown::new());
        let backend = Arc::new(FakeBackend {
            outcome: Mutex::new(Some(outcome)),
            received: Mutex::new(Vec::new()),
        });
        let service = BackendService::new(Arc::clone(&backend), broker);
        service.set_mount(Mount::Ready(MountServices {
            storage: Arc::new(MemoryStorage::default()),
            system_view: Arc::new(StaticSystemView::default()),
        }));
        (service, backend)
    }

    fn request(operation: &str) -> Request<pb::HandleRequestArgs> {
        let request = pb::Request {
            operation: operation.into(),
            path: "creds/app".into(),
            data: "null".into(),
            ..Default::default()
        };
        Request::new(pb::HandleRequestArgs {
            storage_id: 0,
            request: Some(request),
        })
    }

    #[tokio::test]
    async fn request_reaches_backend_translated() {
        let (service, backend) = service(Ok(Ok(None)));

        let reply = service
            .handle_request(request("read"))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(
            reply,
            pb::HandleRequestReply {
                response: None,
                err: None
            }
        );
        let received = backend.received.lock().unwrap();
        assert_eq!(received[0].path, "creds/app");
        assert_eq!(received[0].data, "{}");
    }

    #[tokio::test]
    async fn request_runtime_failure_is_internal_error() {
        let (service, _) = service(Err(FakeFailure(500)));

        let reply = service
            .handle_request(request("read"))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(
            reply.err,
            Some(proto_error(
                err_type::INTERNAL_ERROR,
                "fake failure with status 500".into()
            ))
        );
    }

    #[tokio::test]
    async fn request_overload_keeps_its_status() {
        let (service, _) = service(Err(FakeFailure(503)));

        let reply = service
            .handle_request(request("read"))
            .await
            .unwrap()
            .into_inner();

        let err = reply.err.expect("no error in the reply");
        assert_eq!(
            (err.err_type, err.err_code),
            (err_type::CODED_ERROR, 503),
            "error: {err:?}"
        );
    }

    #[tokio::test]
    async fn request_bad_request_returns_error_response() {
        let (service, _) = service(Ok(Err(wit::Error::BadRequest("ttl is invalid".into()))));

        let reply = service
            .handle_request(request("update"))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(
            reply.response.map(|response| response.data),
            Some(r#"{"error":"ttl is invalid"}"#.to_string())
        );
        assert_eq!(reply.err, None);
    }

    #[tokio::test]
    async fn request_unknown_operation_skips_backend() {
        let (service, backend) = service(Ok(Ok(None)));

        let reply = service
            .handle_request(request("scan"))
            .await
            .unwrap()
            .into_inner();

        let err = reply.err.expect("no error in the reply");
        assert_eq!(
            err.err_type,
            err_type::UNSUPPORTED_OPERATION,
            "error: {err:?}"
        );
        assert!(
            backend.received.lock().unwrap().is_empty(),
            "the backend received the request"
        );
    }

    #[tokio::test]
    async fn existence_bad_request_is_user_error() {
        let (service, _) = service(Ok(Ok(None)));
        let args = pb::HandleExistenceCheckArgs {
            storage_id: 0,
            request: request("create").into_inner().request,
        };

        let reply = service
            .handle_existence_check(Request::new(args))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(
            reply.err,
            Some(proto_error(err_type::USER_ERROR, "name is invalid".into()))
        );
    }

    #[tokio::test]
    async fn initialize_error_is_returned() {
        let (service, _) = service(Ok(Ok(None)));

        let reply = service
            .initialize(Request::new(pb::InitializeArgs {}))
            .await
            .unwrap()
            .into_inner();

        assert_eq!(
            reply.err,
            Some(proto_error(
                err_type::INTERNAL_ERROR,
                "cannot read config".into()
            ))
        );
    }

    #[tokio::test]
    async fn special_paths_failure_is_status() {
        let (service, _) = service(Ok(Ok(None)));

        let status = service
            .special_paths(Request::new(pb::Empty {}))
            .await
            .unwrap_err();

        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::Internal, "fake failure with status 500")
        );
    }

    #[tokio::test]
    async fn cleanup_ends_the_mount() {
        let (service, _) = service(Ok(Ok(None)));

        service.cleanup(Request::new(pb::Empty {})).await.unwrap();
        let reply = service
            .handle_request(request("read"))
            .await
            .unwrap()
            .into_inner();

        let err = reply.err.expect("no error in the reply");
        assert_eq!(
            err.err_msg,
            "the backend is not set up: Vault has not completed Setup for this plugin process"
        );
    }
}
