//! Compiles the `.proto` files of Vault's plugin protocol into Rust.

pub fn compile() {
    // TODO: compile host/proto/*.proto with protox and tonic's code generator.
}
