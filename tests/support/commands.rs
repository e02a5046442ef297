//! The operator commands as processes: `paybridge <command> ARGS --config FILE`, each with a
//! deadline, and the config file they read.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::child::OutputWithin;

/// What a finished command printed.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// stdout as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    /// Both outputs, for failure messages.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `paybridge <command> <args> --config <config>` to its end (at most three minutes).
pub fn paybridge(command: &str, config: &Path, args: &[&str]) -> Ran {
    let output = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .arg(command)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .output_within(Duration::from_secs(180));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ran { code: output.status.code(), stdout: text(&output.stdout), stderr: text(&output.stderr) }
}

/// Writes a `paybridge run` config for a command into `dir` (a command serves neither admin
/// nor intake: any two distinct ports do).
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("paybridge.toml");
    let text = text.replace("{admin}", "1").replace("{intake}", "2");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// The `event_id` of each entry of the list `report[key]`.
pub fn sample_ids(report: &Value, key: &str) -> BTreeSet<String> {
    report[key].as_array().into_iter().flatten().filter_map(|s| s["event_id"].as_str().map(str::to_owned)).collect()
}
