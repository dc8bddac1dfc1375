//! Compiles the `.proto` files of Vault's plugin protocol (`proto/`) into Rust with `protox`,
//! a protobuf compiler written in Rust, so that no `protoc` binary has to be installed.
//!
//! The generated modules are included by `src/proto.rs`. Every service gets both a server
//! and a client: the plugin serves `pb.Backend` and calls `pb.Storage`, and the protocol tests
//! play Vault's side of each.

const PROTO_DIR: &str = "proto";
const PROTO_FILES: [&str; 3] = [
    "proto/plugin.proto",
    "proto/logical.proto",
    "proto/backend.proto",
];

pub fn compile() {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::compile(PROTO_FILES, [PROTO_DIR])
        .unwrap_or_else(|error| panic!("invalid protocol definition in {PROTO_DIR}/: {error:?}"));

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The secret's internal data holds revocation material: its Debug output is written
        // by hand in `src/proto.rs` so that it never reaches a log.
        .skip_debug([".pb.Secret"])
        .compile_fds(descriptors)
        .unwrap_or_else(|error| panic!("cannot generate Rust from {PROTO_DIR}/: {error}"));
}
