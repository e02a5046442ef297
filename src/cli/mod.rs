//! The command line's own parts: argument types, printing and exit codes of the operator
//! commands (the library returns typed results).

pub mod backfill;
pub mod cursor;
pub mod dlq;
pub mod doctor;
pub mod progress;
pub mod reconcile;
pub mod reference;
pub mod schema_register;
pub mod shell;
pub mod tail;
pub mod trace;

use std::path::Path;
use std::process::ExitCode;

use paybridge::config::{self, LogFormat};

/// The configuration at `path`, or its errors on stderr and exit code 2.
pub fn load_or_explain(path: &Path) -> Result<config::Config, ExitCode> {
    config::load_file(path).map_err(|errors| {
        eprint!("{}: {errors}", path.display());
        ExitCode::from(2)
    })
}

/// [`load_or_explain`], and every file the configuration names exists and is readable
/// (`paybridge run`, which uses all of them; an operator command uses one source's and
/// names a missing file when it reads it).
pub fn load_with_files_or_explain(path: &Path) -> Result<config::Config, ExitCode> {
    let loaded = load_or_explain(path)?;
    let missing = config::file_errors(&loaded);
    if missing.is_empty() {
        return Ok(loaded);
    }
    eprint!("{}: {}", path.display(), config::ConfigErrors(missing));
    Err(ExitCode::from(2))
}

pub fn init_tracing(log: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // librdkafka's repeated connection warnings: once per kind and minute, one a second.
    let writer = paybridge::log_limit::LimitedStderr::default();
    // Colours only for a person at a terminal: not in files, pipes or log collectors, and
    // not when NO_COLOR is set (https://no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Warnings and errors only unless RUST_LOG says otherwise: the command's output is the output.
pub fn init_command_tracing(log: &config::LogConfig) {
    let quiet = config::LogConfig { level: "warn".into(), ..log.clone() };
    init_tracing(&quiet);
}

/// How an operator command prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Pretty,
    /// JSON for scripts (one object per line for lists).
    Json,
}
