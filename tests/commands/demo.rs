//! `./scripts/demo` end to end: events of all three providers, a clean stop on Ctrl-C
//! (SIGINT), a summary, and nothing left running. Uses the binaries this test run built
//! (`cargo test --workspace` builds paybridge-sandbox too) instead of a release build.
//!
//! The demo runs in a process group of its own. Should it not stop within its deadline after
//! SIGINT, the test sends SIGTERM, then kills the whole group, and fails with what it saw:
//! the suite never waits for it for ever.

use crate::support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::child::{OutputWithin, QUICK, exit_within, kill_group, signal, wait_within};

const DEMO_PORTS: [u16; 4] = [19092, 18800, 18080, 19090];

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// The demo's ports are fixed: one demo at a time.
static ONE_DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_shows_all_three_providers_and_stops_cleanly_on_ctrl_c() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|p| p.into_inner());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_paybridge")).parent().unwrap_or_else(|| panic!("no bin dir"));
    assert!(
        bin_dir.join("paybridge-sandbox").exists(),
        "paybridge-sandbox is not built next to paybridge: run the suite with `cargo test --workspace`"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(root.join("scripts/demo"))
        .env("PAYBRIDGE_DEMO_BIN_DIR", bin_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
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
    let stderr_text = support::child::read_in_background(child.stderr.take());
    // Ctrl-C. Should the demo still run 30 s later, SIGTERM (so it can still stop what it
    // started), then SIGKILL to its whole group; either way the test fails.
    signal(&child, "INT");
    let interrupted = Instant::now();
    let status = match exit_within(&mut child, Duration::from_secs(30)) {
        Some(status) => Ok(status),
        None => {
            signal(&child, "TERM");
            match wait_within(&mut child, Duration::from_secs(30)) {
                Some(_) => Err("SIGINT did not stop it within 30 s; SIGTERM did"),
                None => Err("neither SIGINT nor SIGTERM stopped it within 30 s each; its process group was killed"),
            }
        }
    };
    // Anything the demo left behind in its group is a failure (checked below), and killed.
    let left_behind = group_members(&child);
    kill_group(&child, "KILL");
    let rest: Vec<String> = lines_until_closed(&rx, Duration::from_secs(10));
    let stderr =
        String::from_utf8_lossy(&stderr_text.recv_timeout(Duration::from_secs(5)).unwrap_or_default()).into_owned();
    let tail_of = |lines: &[String]| lines.iter().rev().take(15).rev().cloned().collect::<Vec<_>>().join("\n");
    let status =
        status.unwrap_or_else(|why| panic!("the demo did not stop on Ctrl-C: {why}\n{}\n{stderr}", tail_of(&rest)));
    assert!(providers.iter().all(|(_, s)| *s), "{providers:?} after 60 s:\n{}\n{stderr}", tail_of(&seen));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let took = interrupted.elapsed();
    assert!(took < Duration::from_secs(10), "Ctrl-C took {took:?} to stop everything:\n{}", tail_of(&rest));

    let summary = rest.iter().find(|l| l.starts_with("events in Kafka:"));
    let summary = summary.unwrap_or_else(|| panic!("no summary:\n{}\n{stderr}", tail_of(&rest)));
    for provider in ["checkout", "payments_direct", "ripplenet"] {
        assert!(summary.contains(&format!("{provider} ")), "{summary}");
    }
    assert!(rest.iter().any(|l| l.trim_start().starts_with("ripplenet-demo ")), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("sent to the DLQ:")), "{rest:?}");
    // Nothing left behind: no process of its group, and every port the demo used is closed.
    assert!(left_behind.is_empty(), "processes still running after the demo stopped: {left_behind}");
    let open: Vec<u16> = DEMO_PORTS.into_iter().filter(|p| listening(*p)).collect();
    assert!(open.is_empty(), "still listening after the demo: {open:?}");
}

/// A first run, as a newcomer starts it: `./scripts/demo | tee demo.log` with no broker
/// installed yet. The install shows what it is doing and how long it takes (a stand-in for
/// `cargo install` prints as cargo does and puts the tansu binary in place); then Ctrl-C,
/// which the terminal sends to every process of the job (tee, the demo, the broker,
/// paybridge, in whatever order they die), stops all of them within 10 s and leaves no port open.
#[test]
fn a_first_run_piped_through_tee_shows_the_broker_install_and_ctrl_c_stops_everything() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|p| p.into_inner());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_paybridge")).parent().unwrap_or_else(|| panic!("no bin dir"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = std::env::var("HOME").unwrap_or_default();
    let real_tansu = std::env::var("TANSU_BIN").unwrap_or_else(|_| {
        let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
        format!("{cargo_home}/bin/tansu")
    });
    assert!(Path::new(&real_tansu).exists(), "tansu is not installed at {real_tansu} (./scripts/install-broker)");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake_bin = dir.path().join("path");
    std::fs::create_dir_all(&fake_bin).unwrap_or_else(|e| panic!("{e}"));
    let cargo = fake_bin.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n# Stands in for `cargo install tansu`: prints as cargo does, puts the binary in place.\n\
         echo '    Updating crates.io index' >&2\necho '   Compiling tansu v0.6.0' >&2\n\
         mkdir -p \"$CARGO_HOME/bin\" && ln -sf \"$REAL_TANSU\" \"$CARGO_HOME/bin/tansu\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("demo.log");
    let path = format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut job = Command::new("bash")
        .arg("-c")
        .arg(format!("{} 2>&1 | tee {}", root.join("scripts/demo").display(), log.display()))
        .env("PAYBRIDGE_DEMO_BIN_DIR", bin_dir)
        .env("CARGO_HOME", dir.path().join("cargo-home"))
        .env("REAL_TANSU", &real_tansu)
        .env("PATH", path)
        .env_remove("TANSU_BIN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while !read().contains("== events as they land in Kafka") && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3)); // some events flowing
    let before = read();
    // The terminal's Ctrl-C: SIGINT to every process of the job.
    kill_group(&job, "INT");
    let interrupted = Instant::now();
    let mut members = group_members(&job);
    while (job.try_wait().ok().flatten().is_none() || !members.is_empty())
        && interrupted.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
        members = group_members(&job);
    }
    let took = interrupted.elapsed();
    kill_group(&job, "KILL");
    let _ = wait_within(&mut job, Duration::from_secs(5));
    let open: Vec<u16> = DEMO_PORTS.into_iter().filter(|p| listening(*p)).collect();
    assert!(
        before.contains("== installing the demo's broker, tansu 0.6.0, with cargo install: about 10 minutes")
            && before.contains("Compiling tansu v0.6.0")
            && before.contains("== broker installed in "),
        "the install is not shown:\n{before}"
    );
    assert!(before.contains("== events as they land in Kafka"), "the demo did not get going:\n{before}");
    assert!(members.is_empty(), "still running {took:?} after Ctrl-C:\n{members}\n{}", read());
    assert!(took < Duration::from_secs(10), "Ctrl-C took {took:?} to stop everything:\n{}", read());
    assert!(open.is_empty(), "still listening after the demo: {open:?}");
}

/// The lines still to come on `rx`, until the writer closed its end (or `limit` passed).
fn lines_until_closed(rx: &std::sync::mpsc::Receiver<String>, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    lines
}

/// The processes (pid and command) of the process group `child` leads, but for `child`.
fn group_members(child: &std::process::Child) -> String {
    let out = Command::new("ps").args(["-o", "pid=,pgid=,args=", "-e"]).output_within(QUICK);
    let text = String::from_utf8_lossy(&out.stdout);
    let group = child.id().to_string();
    text.lines()
        .filter(|l| {
            let mut fields = l.split_whitespace();
            let (pid, pgid) = (fields.next(), fields.next());
            pgid == Some(group.as_str()) && pid != Some(group.as_str())
        })
        .collect::<Vec<_>>()
        .join("\n")
}
