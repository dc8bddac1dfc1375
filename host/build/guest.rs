//! Builds the Kong engine component for `wasm32-wasip2` and tells the host where it is.

pub fn embed() {
    // TODO: build guest/ in release mode and export its path for `include_bytes!`.
}
