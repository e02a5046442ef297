//! `./scripts/demo` end to end: events of all three providers, a clean stop on Ctrl-C
//! (SIGINT), a summary, and nothing left running. Uses the binaries this test run built
//! (`cargo test --workspace` builds paybridge-sandbox too) instead of a release build.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO_PORTS: [u16; 4] = [19092, 18800, 18080, 19090];

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

#[test]
fn the_demo_shows_all_three_providers_and_stops_cleanly_on_ctrl_c() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_paybridge")).parent().unwrap_or_else(|| panic!("no bin dir"));
    assert!(
        bin_dir.join("paybridge-sandbox").exists(),
        "paybridge-sandbox is not built next to paybridge: run the suite with `cargo test --workspace`"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(root.join("scripts/demo"))
        .env("PAYBRIDGE_DEMO_BIN_DIR", bin_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let rx = support::process::lines_of(stdout);

    // Events of every provider, within a minute of the start (nothing to build here).
    let started = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut providers = [("ripplenet", false), ("payments_direct", false), ("checkout", false)];
    while providers.iter().any(|(_, s)| !s) && started.elapsed() < Duration::from_secs(60) {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            for (name, s) in providers.iter_mut() {
                *s |= line.split_whitespace().nth(1) == Some(name);
            }
            seen.push(line);
        }
    }
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let rest: Vec<String> = rx.try_iter().collect();
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    let tail_of = |lines: &[String]| lines.iter().rev().take(15).rev().cloned().collect::<Vec<_>>().join("\n");
    assert!(providers.iter().all(|(_, s)| *s), "{providers:?} after 60 s:\n{}\n{stderr}", tail_of(&seen));
    assert_eq!(status.code(), Some(0), "{stderr}");

    let summary = rest.iter().find(|l| l.starts_with("events in Kafka:"));
    let summary = summary.unwrap_or_else(|| panic!("no summary:\n{}\n{stderr}", tail_of(&rest)));
    for provider in ["checkout", "payments_direct", "ripplenet"] {
        assert!(summary.contains(&format!("{provider} ")), "{summary}");
    }
    assert!(rest.iter().any(|l| l.trim_start().starts_with("ripplenet-demo ")), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("sent to the DLQ:")), "{rest:?}");
    // Nothing left behind: every port the demo used is closed.
    let open: Vec<u16> = DEMO_PORTS.into_iter().filter(|p| listening(*p)).collect();
    assert!(open.is_empty(), "still listening after the demo: {open:?}");
}
