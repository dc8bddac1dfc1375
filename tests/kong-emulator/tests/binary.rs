//! The `kong-emulator` binary: its help, the lines it prints, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_kong-emulator");

#[test]
fn binary_help_lists_every_option() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);

    assert!(output.status.success(), "{help}");
    for option in [
        "--admin-port",
        "--proxy-port",
        "--admin-token ",
        "--admin-token-header",
        "--workspace",
        "--db-less",
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "--kong-version",
        "--ttl-ignored-by-proxy",
    ] {
        assert!(help.contains(option), "help lacks {option}:\n{help}");
    }
}

#[test]
fn binary_serves_until_sigterm() {
    let mut child = Command::new(BINARY)
        .args([
            "--admin-port",
            "0",
            "--proxy-port",
            "0",
            "--db-less",
            "--workspace",
            "team-a",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let admin_line = lines.next().unwrap().unwrap();
    let proxy_line = lines.next().unwrap().unwrap();
    let admin_url = admin_line.rsplit(' ').next().unwrap().to_owned();

    let workspace_list = reqwest::blocking::get(format!("{admin_url}/team-a/key-auths")).unwrap();
    let root: serde_json::Value = reqwest::blocking::get(format!("{admin_url}/"))
        .and_then(|response| response.json())
        .unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();

    assert!(
        admin_line.starts_with("kong-emulator admin listening on http://127.0.0.1:"),
        "{admin_line}"
    );
    assert!(
        proxy_line.starts_with("kong-emulator proxy listening on http://127.0.0.1:"),
        "{proxy_line}"
    );
    assert_eq!(workspace_list.status().as_u16(), 200);
    assert_eq!(root["configuration"]["database"], "off", "{root}");
    assert!(killed.success());
    assert_eq!(status.code(), Some(0), "{status:?}");
}
