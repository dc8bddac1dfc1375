//! Build steps for the plugin host: compile Vault's plugin protocol definitions and embed the
//! release Kong engine component, so that one binary is the whole plugin.

#[path = "build/guest.rs"]
mod guest;
#[path = "build/proto.rs"]
mod proto;

fn main() {
    proto::compile();
    guest::embed();
}
