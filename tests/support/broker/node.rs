//! A broker process that cannot outlive the test process: it runs under a small bash
//! keeper that holds a pipe from the test process and kills the broker (SIGKILL, like a
//! crash) when the pipe closes: on [`Node::kill`], on drop, and when the test process
//! exits however it exits (a broker shared by a test binary is never dropped).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The keeper: starts the broker, writes its pid, waits for its own stdin to close, then
/// kills the broker, waits for it, and removes `remove` (a shared broker's folder, which no
/// destructor removes) when it names one.
const KEEPER: &str = r#"
pidfile=$1 remove=$2; shift 2
"$@" </dev/null &
broker=$!
echo "$broker" >"$pidfile"
read -r _ || true
kill -KILL "$broker" 2>/dev/null
wait "$broker" 2>/dev/null
if [[ -n "$remove" ]]; then rm -rf -- "$remove"; fi
exit 0
"#;

/// One running broker process.
pub struct Node {
    keeper: Child,
    stdin: Option<ChildStdin>,
    pidfile: PathBuf,
}

impl Node {
    /// Starts `program args` in `dir`, its stdout and stderr appended to `log`; `remove_dir`:
    /// the keeper removes `dir` once the broker is gone.
    pub fn spawn(dir: &Path, log: &Path, program: &Path, args: &[String], remove_dir: bool) -> Node {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("broker log {}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("broker log: {e}"));
        let pidfile = dir.join("broker.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut keeper = Command::new("bash")
            .current_dir(dir)
            .args(["-c", KEEPER, "keeper"])
            .arg(&pidfile)
            .arg(if remove_dir { dir.as_os_str() } else { std::ffi::OsStr::new("") })
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdin = keeper.stdin.take();
        Node { keeper, stdin, pidfile }
    }

    /// The broker's own process id (not the keeper's), once it is known.
    pub fn pid(&self) -> Option<u32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&self.pidfile).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                return Some(pid);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the broker has exited (then the keeper has too).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.keeper.try_wait().ok().flatten()
    }

    /// Kills the broker with SIGKILL and waits for it (a crash: nothing is flushed).
    pub fn kill(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.keeper.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.keeper.try_wait().ok().flatten().is_none() {
            if let Some(pid) = self.pid() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            let _ = self.keeper.kill();
            let _ = self.keeper.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
