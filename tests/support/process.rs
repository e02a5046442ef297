//! `paybridge run` as a child process with a given config; stopped with SIGTERM on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Paybridge {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    pub admin_port: u16,
    pub intake_port: u16,
}

impl Paybridge {
    /// Writes `config` (with `{admin}` and `{intake}` replaced by free ports) and starts
    /// `paybridge run`. Does not wait.
    pub fn spawn(config: &str) -> Self {
        Self::spawn_with_env(config, &[])
    }

    /// [`Paybridge::spawn`] with extra environment variables.
    pub fn spawn_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_inner(config, env, Some("paybridge=debug,info"))
    }

    /// Starts without RUST_LOG, so the config's own log level applies, and waits for
    /// "paybridge started".
    pub fn start_default_log(config: &str) -> Self {
        let p = Self::spawn_inner(config, &[], None);
        p.wait_for_log("paybridge started", Duration::from_secs(30));
        p
    }

    /// Starts without RUST_LOG (the config's own log level applies); does not wait.
    pub fn spawn_default_log(config: &str) -> Self {
        Self::spawn_inner(config, &[], None)
    }

    /// Starts on the given ports (a restart that providers' callbacks must find again),
    /// with `rust_log` as RUST_LOG; does not wait.
    pub fn spawn_on_ports(config: &str, env: &[(&str, &str)], rust_log: &str, ports: (u16, u16)) -> Self {
        Self::spawn_at(config, env, Some(rust_log), ports)
    }

    /// Kills the process with SIGKILL (no shutdown at all) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn_inner(config: &str, env: &[(&str, &str)], rust_log: Option<&str>) -> Self {
        Self::spawn_at(config, env, rust_log, (super::free_port(), super::free_port()))
    }

    fn spawn_at(config: &str, env: &[(&str, &str)], rust_log: Option<&str>, ports: (u16, u16)) -> Self {
        let (admin_port, intake_port) = ports;
        let text = config.replace("{admin}", &admin_port.to_string()).replace("{intake}", &intake_port.to_string());
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path: PathBuf = dir.path().join("paybridge.toml");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        // PAYBRIDGE_TEST_BIN runs another build (the benchmark's before-and-after comparisons).
        let binary = std::env::var_os("PAYBRIDGE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_paybridge").into());
        let mut command = Command::new(binary);
        match rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start paybridge: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        Self { child, log, _dir: dir, admin_port, intake_port }
    }

    /// Starts and waits for "paybridge started".
    pub fn start(config: &str) -> Self {
        let p = Self::spawn(config);
        p.wait_for_log("paybridge started", Duration::from_secs(30));
        p
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "paybridge never logged {needle:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn intake(&self) -> String {
        format!("http://127.0.0.1:{}", self.intake_port)
    }

    /// The process id (for /proc readings such as peak RSS).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(exit code)` once the process has exited (the code is `None` after a signal).
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// Waits at most `limit` for the process to exit by itself: its exit code (None after a
    /// signal or when it is still running; then it is left running).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Paybridge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

impl Paybridge {
    /// [`eventually`], failing with the tail of this process's log.
    pub async fn eventually<F, Fut>(&self, what: &str, limit: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        while !check().await {
            if Instant::now() > deadline {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!("timed out waiting for: {what}; paybridge's log ends with:\n{}", tail.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until `check` is true, polling every 100 ms; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_every(what, limit, Duration::from_millis(100), check).await
}

/// [`eventually`], polling every `every` (the benchmark times drains this way).
pub async fn eventually_every<F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(every).await;
    }
}

/// The lines a child writes to `stdout`, as they come (read on their own thread).
pub fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
