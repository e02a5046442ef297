//! tansu 0.6.0 as the test broker (`PAYBRIDGE_TEST_BROKER=tansu`, and the demo's own):
//! one process on a free port with a fresh SQLite file.

use std::path::PathBuf;

/// Where the tansu binary is: `$TANSU_BIN`, else `~/.cargo/bin/tansu`, else `tansu` on PATH.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        let candidate = home.join("bin").join("tansu");
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("tansu")
}

/// The arguments of `tansu broker` on `port`, storing in `broker.db` of its folder.
pub fn broker_args(port: u16, authentication: bool) -> Vec<String> {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut args: Vec<String> =
        ["broker", "--listener-url", &url, "--advertised-listener-url", &url].iter().map(|s| (*s).to_owned()).collect();
    args.extend(["--storage-engine".to_owned(), "sqlite://broker.db".to_owned()]);
    if authentication {
        args.push("--authentication".to_owned());
    }
    args
}

/// Creates a SCRAM-SHA-512 user with `tansu user create`.
pub fn add_scram_user(port: u16, name: &str, password: &str) {
    use super::super::child::{OutputWithin, QUICK};
    let url = format!("tcp://127.0.0.1:{port}");
    let out = std::process::Command::new(binary())
        .args(["user", "create", "--broker", &url, "--mechanism", "scram512", name, password])
        .stdin(std::process::Stdio::null())
        .output_within(QUICK);
    assert!(out.status.success(), "tansu user create failed: {}", String::from_utf8_lossy(&out.stderr));
}
