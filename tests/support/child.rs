//! Child processes with deadlines: a test never waits for a child for ever. Past its limit a
//! child is killed (with everything it started: it runs in a process group of its own) and
//! the test fails with what the child printed.
#![allow(dead_code)]

use std::io::{BufRead, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// [`Command::output`] with a deadline: `output_within(limit)` runs the command to its end
/// with stdout and stderr captured, in a process group of its own; past `limit` it kills the
/// group and panics with what was printed so far.
pub trait OutputWithin {
    fn output_within(&mut self, limit: Duration) -> Output;
}

/// The limit for a command that should answer at once (config validation, --help, openssl).
pub const QUICK: Duration = Duration::from_secs(60);

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> Output {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {self:?}: {e}"));
        let stdout = read_in_background(child.stdout.take());
        let stderr = read_in_background(child.stderr.take());
        let status = wait_within(&mut child, limit);
        // The pipes close when the child and whatever it started are gone; a grandchild that
        // outlived a killed group cannot hold the test either.
        let stdout = stdout.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        let stderr = stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        let Some(status) = status else {
            panic!(
                "{self:?} did not finish within {limit:?}; killed it.\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            )
        };
        Output { status, stdout, stderr }
    }
}

/// Waits at most `limit` for `child` to exit. Past it, kills the child's process group (or
/// the child, when it leads none) with SIGKILL, reaps it and returns `None`.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = exit_within(child, limit);
    if status.is_none() {
        kill_group(child, "KILL");
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Waits at most `limit` for `child` to exit; `None` (the child still running) past it.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// Sends `signal` (e.g. "INT", "TERM") to `child` alone.
pub fn signal(child: &Child, signal: &str) {
    let _ = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
}

/// Sends `signal` (e.g. "STOP", "CONT") to process `pid`.
pub fn signal_pid(pid: u32, signal: &str) {
    let sent = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid} failed");
}

/// Sends `signal` to the process group `child` leads (started with `process_group(0)`);
/// harmless when it leads none.
pub fn kill_group(child: &Child, signal: &str) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Reads a pipe to its end on a thread of its own; the bytes arrive on the channel.
pub fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    rx
}

/// The lines of a pipe as they come, read on a thread of their own; the channel closes with
/// the pipe.
pub fn lines_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
