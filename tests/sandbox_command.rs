//! `paybridge sandbox` as a process.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, http_get};

#[test]
fn sandbox_starts_with_a_scenario_and_serves() {
    let port = free_port();
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sandbox.toml");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}"), "--seed", "42", "--scenario"])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    // Ready means answering: the scenario's 25 initial notifications are there.
    let stats = loop {
        if let Ok((200, _, body)) = http_get(([127, 0, 0, 1], port).into(), "/_sandbox/ripplenet/stats") {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "sandbox never answered");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(stats.contains("\"NEW\":25"), "{stats}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_scenario_is_an_error_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[ripplenet]\nclient_idd = \"x\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("client_idd"), "{stderr}");
}

#[test]
fn the_example_scenario_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sandbox.toml");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let scenario = paybridge::sandbox::Scenario::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.ripplenet.initial_notifications, 25);
    assert_eq!(scenario.ripplenet.webhook_max_retries, 12);
    assert_eq!(scenario.payments_direct.initial_payments, 10);
}
