//! Protocol tests of `pb.Backend/Setup` and the broker. The plugin finds Vault's storage
//! through an announcement on the broker stream, whenever that arrives. It also copes with
//! what real Vault rarely sends: garbage on the stream, storage failures, and calls while
//! Setup still waits.

mod protocol_vault;

use std::collections::HashMap;
use std::time::Duration;

use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;

use vault_plugin_secrets_kong::proto::logical::plugin_version_client::PluginVersionClient;
use vault_plugin_secrets_kong::proto::pb;
use vault_plugin_secrets_kong::proto::pb::backend_client::BackendClient;
use vault_plugin_secrets_kong::proto::plugin::conn_info::Knock;
use vault_plugin_secrets_kong::proto::plugin::grpc_controller_client::GrpcControllerClient;
use vault_plugin_secrets_kong::proto::plugin::{ConnInfo, Empty};

use protocol_vault::{announcement, BrokerStream, FakeBroker, Plugin, STEP_TIMEOUT};

/// Setup as Vault sends it when it mounts the plugin.
fn setup_args(broker_id: u32) -> pb::SetupArgs {
    let config = HashMap::from([
        ("plugin_name".to_string(), "kong".to_string()),
        ("plugin_type".to_string(), "secret".to_string()),
        (
            "plugin_version".to_string(),
            format!("v{}", env!("CARGO_PKG_VERSION")),
        ),
    ]);
    pb::SetupArgs {
        broker_id,
        config,
        backend_uuid: "5f0a7a2e-3c2d-4f7e-9a51-0d6f1c2b7e11".into(),
    }
}

async fn setup(channel: &Channel, args: pb::SetupArgs) -> pb::SetupReply {
    let mut client = BackendClient::new(channel.clone());
    tokio::time::timeout(STEP_TIMEOUT, client.setup(args))
        .await
        .expect("Setup returns in time")
        .expect("Setup call")
        .into_inner()
}

fn read_request(path: &str) -> pb::HandleRequestArgs {
    let request = pb::Request {
        id: "0c8a5a6e".into(),
        operation: "read".into(),
        path: path.into(),
        data: "null".into(),
        mount_point: "kong/".into(),
        ..Default::default()
    };
    pb::HandleRequestArgs {
        storage_id: 0,
        request: Some(request),
    }
}

#[tokio::test]
async fn setup_uses_earlier_announcement() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let broker = FakeBroker::start(&plugin).await;
    let stream = BrokerStream::open(channel.clone()).await;

    stream.announce(announcement(1, &broker.socket)).await;
    let reply = setup(&channel, setup_args(1)).await;

    assert_eq!(reply.err, "", "Setup failed");
}

#[tokio::test]
async fn setup_waits_for_later_announcement() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let broker = FakeBroker::start(&plugin).await;
    let stream = BrokerStream::open(channel.clone()).await;

    let setting_up = tokio::spawn({
        let channel = channel.clone();
        async move { setup(&channel, setup_args(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.announce(announcement(1, &broker.socket)).await;

    let reply = setting_up.await.unwrap();
    assert_eq!(reply.err, "", "Setup failed");
}

#[tokio::test]
async fn setup_at_registration_touches_no_storage() {
    let mut plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let broker = FakeBroker::start(&plugin).await;
    *broker.storage.missing.lock().unwrap() = true;
    let stream = BrokerStream::open(channel.clone()).await;
    stream.announce(announcement(1, &broker.socket)).await;

    let reply = setup(
        &channel,
        pb::SetupArgs {
            broker_id: 1,
            ..Default::default()
        },
    )
    .await;
    let version = PluginVersionClient::new(channel.clone())
        .version(vault_plugin_secrets_kong::proto::logical::Empty {})
        .await;
    GrpcControllerClient::new(channel)
        .shutdown(Empty {})
        .await
        .unwrap();
    let status = plugin.wait_exit(Duration::from_secs(2)).await;

    assert_eq!(reply.err, "", "Setup failed at registration");
    assert_eq!(
        version.unwrap().into_inner().plugin_version,
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        *broker.storage.calls.lock().unwrap(),
        [],
        "Setup called storage"
    );
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "stderr: {}",
        plugin.output.stderr()
    );
}

#[tokio::test]
async fn broker_skips_unrelated_messages() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let broker = FakeBroker::start(&plugin).await;
    let stream = BrokerStream::open(channel.clone()).await;

    let knock = Knock {
        knock: true,
        ack: false,
        error: String::new(),
    };
    stream
        .announce(ConnInfo {
            service_id: 2,
            network: String::new(),
            address: String::new(),
            knock: Some(knock),
        })
        .await;
    stream
        .announce(ConnInfo {
            service_id: 3,
            network: "udp".into(),
            address: "nowhere".into(),
            knock: None,
        })
        .await;
    stream
        .announce(announcement(4, std::path::Path::new("/nonexistent/socket")))
        .await;
    stream.announce(announcement(2, &broker.socket)).await;
    let reply = setup(&channel, setup_args(2)).await;

    assert_eq!(reply.err, "", "Setup failed");
}

#[tokio::test]
async fn setup_rejects_unsupported_network() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let stream = BrokerStream::open(channel.clone()).await;

    stream
        .announce(ConnInfo {
            service_id: 1,
            network: "udp".into(),
            address: "127.0.0.1:9".into(),
            knock: None,
        })
        .await;
    let reply = setup(&channel, setup_args(1)).await;

    assert_eq!(
        reply.err,
        "Vault announced broker id 1 on network \"udp\", but only `unix` and `tcp` are supported"
    );
}

#[tokio::test]
async fn broker_garbage_fails_setup_cleanly() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();

    // Bytes that are no valid protobuf message: a field with the reserved wire type 7.
    let garbage = tokio_stream::iter(vec![vec![0x0f, 0xff, 0xff, 0xff]]);
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/plugin.GRPCBroker/StartStream");
    let _stream = client
        .streaming(tonic::Request::new(garbage), path, RawCodec)
        .await;
    let reply = setup(&channel, setup_args(1)).await;

    assert!(
        reply.err.starts_with("Vault did not announce broker id 1 on the broker stream within 5 s (the broker stream failed: "),
        "Setup error: {:?}",
        reply.err
    );
    assert!(
        plugin
            .output
            .stderr()
            .contains("stopped reading Vault's broker stream"),
        "stderr: {}",
        plugin.output.stderr()
    );
    let type_reply = BackendClient::new(channel).r#type(pb::Empty {}).await;
    assert_eq!(
        type_reply.map(|reply| reply.into_inner().r#type).ok(),
        Some(1),
        "the plugin stopped serving"
    );
}

#[tokio::test]
async fn request_during_setup_is_rejected() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;
    let broker = FakeBroker::start(&plugin).await;
    let stream = BrokerStream::open(channel.clone()).await;

    let setting_up = tokio::spawn({
        let channel = channel.clone();
        async move { setup(&channel, setup_args(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = BackendClient::new(channel.clone())
        .handle_request(read_request("config/access"))
        .await;
    stream.announce(announcement(1, &broker.socket)).await;
    let reply = setting_up.await.unwrap();

    let early = early.expect("the early request got no reply").into_inner();
    assert!(
        early.response.is_none(),
        "the early request got a response: {:?}",
        early.response
    );
    let err = early.err.expect("the early request got no error");
    assert_eq!(
        (err.err_type, err.err_msg.as_str()),
        (
            2,
            "the backend is not ready: Setup is still waiting for Vault's broker connection"
        )
    );
    assert_eq!(reply.err, "", "Setup failed after the early request");
}

#[tokio::test]
async fn request_before_setup_is_rejected() {
    let plugin = Plugin::start().await;
    let channel = plugin.connect().await;

    let reply = BackendClient::new(channel)
        .handle_request(read_request("config/access"))
        .await
        .unwrap()
        .into_inner();

    let err = reply.err.expect("the request got no error");
    assert_eq!(
        (err.err_type, err.err_msg.as_str()),
        (
            2,
            "the backend is not set up: Vault has not completed Setup for this plugin process"
        )
    );
}

/// Sends raw bytes as gRPC messages and decodes replies as raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buffer: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        bytes::BufMut::put_slice(buffer, &item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buffer: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let remaining = bytes::Buf::remaining(buffer);
        Ok(Some(bytes::Buf::copy_to_bytes(buffer, remaining).to_vec()))
    }
}
