//! Flame graphs: `perf record` attached to one `paybridge run` (sampling its user-space
//! stacks, DWARF-unwound, at a low rate), folded and drawn by inferno. Only the profile pass
//! at the end of a full run attaches it, so no measured scenario carries its cost. Without
//! `perf` or `inferno-flamegraph` on the PATH it says so once and draws nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Samples per second and thread: enough for a flame graph of a 10–20 s run, small enough
/// that the recording stays in the tens of MiB.
const FREQUENCY: &str = "199";

/// The flame graph the next `Running::start` draws (armed by the profile pass).
static NEXT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The next `Running::start` is profiled into `svg`.
pub fn arm(svg: PathBuf) {
    *NEXT.lock().unwrap_or_else(|p| p.into_inner()) = Some(svg);
}

/// Whether `perf`, `inferno-collapse-perf` and `inferno-flamegraph` can be run.
pub fn available() -> bool {
    ["perf", "inferno-collapse-perf", "inferno-flamegraph"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
}

/// A recording in progress.
pub struct Profile {
    perf: Child,
    data: PathBuf,
    svg: PathBuf,
}

impl Profile {
    /// Starts recording `pid` if a flame graph was armed.
    pub fn attach_if_armed(pid: u32) -> Option<Self> {
        let svg = NEXT.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let data = svg.with_extension("perf.data");
        let perf = Command::new("perf")
            .args(["record", "-q", "-F", FREQUENCY, "--call-graph", "dwarf,16384", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("bench: perf record did not start ({e}); no flame graph"))
            .ok()?;
        // perf needs a moment to attach to every thread.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(Profile { perf, data, svg })
    }

    /// Stops the recording (before the process it records ends).
    pub fn stop(mut self) -> Self {
        let _ = Command::new("kill").args(["-INT", &self.perf.id().to_string()]).status();
        let _ = self.perf.wait();
        self
    }

    /// Draws the flame graph of a stopped recording; the recording is removed.
    pub fn draw(self) {
        match draw(&self.data, &self.svg) {
            Ok(()) => eprintln!("bench: flame graph {}", self.svg.display()),
            Err(e) => eprintln!("bench: no flame graph {}: {e}", self.svg.display()),
        }
        let _ = std::fs::remove_file(&self.data);
    }
}

/// `perf script | inferno-collapse-perf | inferno-flamegraph > svg`.
fn draw(data: &Path, svg: &Path) -> Result<(), String> {
    let script = Command::new("perf")
        .args(["script", "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("perf script: {e}"))?;
    let folded = pipe("inferno-collapse-perf", &[], &script.stdout)?;
    if std::env::var_os("PAYBRIDGE_BENCH_KEEP_FOLDED").is_some() {
        std::fs::write(svg.with_extension("folded"), &folded).map_err(|e| e.to_string())?;
    }
    let title = svg.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let drawn = pipe("inferno-flamegraph", &["--title", &title, "--width", "1600", "--minwidth", "0.5"], &folded)?;
    std::fs::write(svg, drawn).map_err(|e| e.to_string())
}

fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{tool}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("{tool}: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("{tool} exited with {}", out.status));
    }
    Ok(out.stdout)
}
