//! `paybridge-sandbox` as a process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example scenario paybridge's docs and demo use.
fn example_scenario() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/every-key.toml")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

#[tokio::test]
async fn the_sandbox_starts_with_a_scenario_serves_and_stops_on_sigterm() {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge-sandbox"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--seed", "42", "--scenario"])
        .arg(example_scenario())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    // Ready means answering: the scenario's 25 initial notifications are there.
    let http = reqwest::Client::new();
    let stats = loop {
        let answer = http.get(format!("http://127.0.0.1:{port}/_sandbox/ripplenet/stats")).send().await;
        if let Ok(response) = answer
            && response.status() == 200
        {
            break response.text().await.unwrap_or_default();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "sandbox never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--scenario"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("client_idd"), "{stderr}");
}

#[test]
fn the_example_scenario_parses() {
    let text = std::fs::read_to_string(example_scenario()).unwrap_or_default();
    let scenario = paybridge_sandbox::Scenario::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.ripplenet.initial_notifications, 25);
    assert_eq!(scenario.ripplenet.webhook_max_retries, 12);
    assert_eq!(scenario.payments_direct.initial_payments, 10);
}

#[test]
fn the_demo_and_compose_scenarios_parse_and_drive_every_provider() {
    for (file, key_file) in [
        ("sandbox/scenarios/demo.toml", "\"checkout-client.pub.pem\""),
        ("deploy/compose/sandbox.toml", "\"/keys/checkout-client.pub.pem\""),
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // The key file is made when the demo or the compose file starts.
        assert!(text.contains(&format!("\nclient_public_key_file = {key_file}")), "{file}: {text}");
        let text = text.replace("\nclient_public_key_file", "\n# client_public_key_file");
        let scenario = paybridge_sandbox::Scenario::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let rates = scenario.generator.unwrap_or_else(|| panic!("{file}: no traffic"));
        assert!(rates.ripplenet_per_second > 0.0 && rates.payments_direct_per_second > 0.0, "{file}");
        assert!(rates.checkout_per_second > 0.0, "{file}");
        let webhooks = [&scenario.ripplenet.callback_url, &scenario.payments_direct.callback_url];
        assert!(webhooks.iter().all(|u| u.is_some()), "{file}");
    }
}

#[test]
fn help_describes_the_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge-sandbox")).arg("--help").output();
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for flag in ["--listen", "--seed", "--scenario"] {
        assert!(help.contains(flag), "{help}");
    }
}
