//! Builds the Kong engine component (`guest/`) and the hostile test component
//! (`tests/hostile-guest/`) for `wasm32-wasip2` in release mode, and tells the host where they
//! are through `KONG_ENGINE_WASM` and `HOSTILE_GUEST_WASM` for `include_bytes!`.
//!
//! Each component is its own cargo workspace with its own target directory, built by a nested
//! cargo whose environment is cleared of the outer build's settings (`CARGO_*`, `RUSTFLAGS`,
//! the target triple), which would otherwise leak into the wasm build.
//!
//! Setting `KONG_ENGINE_WASM` to a component file in the build's environment embeds that file
//! instead of building `guest/`, for builds that already have a release component.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

pub fn embed() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the repository root")
        .to_path_buf();
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    require_target();

    println!("cargo:rerun-if-env-changed=KONG_ENGINE_WASM");
    let engine = match env::var_os("KONG_ENGINE_WASM") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            path
        }
        None => build_component(&root.join("guest"), "kong_engine"),
    };
    println!("cargo:rustc-env=KONG_ENGINE_WASM={}", engine.display());

    let hostile = build_component(&root.join("tests/hostile-guest"), "hostile_guest");
    println!("cargo:rustc-env=HOSTILE_GUEST_WASM={}", hostile.display());
}

/// Fails the build with the fix when the standard library for the wasm target is missing.
fn require_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|error| panic!("failed to run `{rustc} --print sysroot`: {error}"));
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let target_lib = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    if !target_lib.exists() {
        panic!(
            "the {TARGET} target is not installed for {sysroot}: run `rustup target add {TARGET}` \
             and build again"
        );
    }
}

/// Builds the workspace at `dir` and returns the path of `<artifact>.wasm`.
fn build_component(dir: &Path, artifact: &str) -> PathBuf {
    for input in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", dir.join(input).display());
    }
    let target_dir = dir.join("target");
    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{artifact}.wasm"));

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(&cargo);
    command
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        let leaks = (name.starts_with("CARGO_") && name != "CARGO_HOME")
            || name.starts_with("RUSTC_")
            || matches!(
                name.as_ref(),
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if leaks {
            command.env_remove(name.as_ref());
        }
    }

    let status = command
        .status()
        .unwrap_or_else(|error| panic!("failed to run {cargo} for {}: {error}", dir.display()));
    if !status.success() {
        panic!(
            "building the component in {} failed ({status}); run `cargo build --release --target {TARGET}` \
             there to see why",
            dir.display()
        );
    }
    if !wasm.exists() {
        panic!("building {} produced no {}", dir.display(), wasm.display());
    }
    wasm
}
