//! The `paybridge` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use cli::{init_command_tracing as init_backfill_tracing, init_tracing, load_or_explain, load_with_files_or_explain};
use paybridge::config;
use paybridge::schemas;

/// `paybridge --version`: the crate's version and the commit it was built from.
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PAYBRIDGE_COMMIT"), ")");

/// Moves payment-provider notifications into Kafka; nothing is acknowledged upstream
/// before the broker has confirmed the event.
#[derive(Parser)]
#[command(name = "paybridge", version = LONG_VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a shell completion script, e.g.
    /// `paybridge completions bash > ~/.local/share/bash-completion/completions/paybridge`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `paybridge man > paybridge.1 && man ./paybridge.1`;
    /// with `--out-dir DIR`, write it and one page per subcommand there (for MANPATH).
    Man {
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Run the bridge until SIGTERM or SIGINT.
    Run {
        /// The TOML configuration file.
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Publish a Checkout source's notifications of a past period (at most 30 days back)
    /// with the same event ids the live path gives them. Nothing is acknowledged upstream.
    Backfill {
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
        /// The source's `name` (kind "checkout").
        #[arg(long)]
        source: String,
        /// Start of the period: RFC 3339 (2026-11-01T08:00:00Z) or a date (2026-11-01, UTC).
        #[arg(long, value_parser = paybridge::backfill::period::parse_time)]
        from: chrono::DateTime<chrono::Utc>,
        /// End of the period (exclusive); default and latest: now.
        #[arg(long, value_parser = paybridge::backfill::period::parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// The period is read slice by slice, oldest first; a stopped run resumes from the
        /// start of the slice it was in.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        slice: std::time::Duration,
        /// Messages per page of the period query (1 to 1000).
        #[arg(long, default_value_t = 100)]
        page_size: usize,
    },
    /// Print the events of the configured topic as they land in Kafka, one line each
    /// (a plain consumer: no group membership, no commits). Stops on Ctrl-C or SIGTERM.
    Tail {
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
        /// Start at the beginning of every partition instead of at the end.
        #[arg(long)]
        from_beginning: bool,
        #[arg(long, value_enum, default_value = "pretty")]
        format: cli::tail::Format,
    },
    /// Every event of one payment in the events topic and the DLQ, in order (time, state
    /// change, event id, topic/partition@offset, the DLQ reason). Reads only the partition
    /// the payment's key maps to. Exit 0: events found; 1: none, or Kafka could not be read;
    /// 2: bad input.
    Trace {
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
        /// The payment id as the provider writes it (RippleNet payment_id, Checkout order
        /// id, Payments Direct paymentId).
        payment_id: String,
        /// Only this source's events (its provider and account); default: every source's.
        #[arg(long)]
        source: Option<String>,
        /// Only records written since then: RFC 3339, a date (UTC), or a duration ago (2h, 3d).
        #[arg(long, value_parser = paybridge::trace::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "pretty")]
        format: cli::trace::Format,
    },
    /// The dead-letter topic: list its records with why they are there, show one whole,
    /// redrive chosen ones to their topic once the cause is fixed.
    Dlq(cli::dlq::DlqArgs),
    /// The position of a Payments Direct source: show it, or move it (back to publish a
    /// stretch again, forward to skip one) on a running deployment.
    Cursor(cli::cursor::CursorArgs),
    /// Prove from the provider's own records that every notification of a period reached
    /// Kafka, and publish what is missing (--repair).
    Reconcile(cli::reconcile::ReconcileArgs),
    /// Check a deployment before its first event: brokers reachable, TLS trusted,
    /// authenticated (mechanism and principal), each topic visible and durable, the ACLs the
    /// mode needs (by trying what it does), the schema registry, each provider's token
    /// endpoint and clock, the intake's TLS and webhook protection. One line per check, ✓ or
    /// ✗ with the fix; exit 0 when none fails, 1 otherwise. Nothing is published or
    /// acknowledged.
    Doctor(cli::doctor::DoctorArgs),
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the JSON Schemas generated from the code, or register the event schema in a
    /// schema registry.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the schema of the Kafka record value: a CloudEvents envelope around the payment event.
    Event,
    /// Print the schema of the configuration file.
    Config,
    /// Register the event schema in a Confluent-compatible schema registry (Confluent,
    /// Apicurio ccompat, Karapace, Redpanda), after the registry's compatibility check.
    Register(cli::schema_register::RegisterArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file (with the environment applied) and that the files it
    /// names exist and are readable; exit 0 when valid, 2 otherwise.
    Validate {
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
        /// Skip the files check: for a configuration meant for another machine (a pod
        /// whose Secrets are mounted there), checked here for everything else.
        #[arg(long)]
        no_file_checks: bool,
    },
    /// Print the configuration reference (Markdown), generated from the configuration's
    /// schema: every key with its type, default and meaning.
    Reference,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => cli::shell::completions(Cli::command(), shell),
        Command::Man { out_dir } => cli::shell::man(Cli::command(), out_dir.as_deref()),
        Command::Schema { command: SchemaCommand::Register(args) } => cli::schema_register::run(args),
        Command::Schema { command } => {
            let schema = if matches!(command, SchemaCommand::Event) {
                schemas::event_schema()
            } else {
                schemas::config_schema()
            };
            print!("{}", schemas::render(&schema));
            ExitCode::SUCCESS
        }
        Command::Config { command: ConfigCommand::Reference } => {
            print!("{}", cli::reference::markdown(&schemas::config_schema()));
            ExitCode::SUCCESS
        }
        Command::Config { command: ConfigCommand::Validate { config, no_file_checks } } => {
            match config::load_file(&config).and_then(|loaded| match no_file_checks {
                true => Ok(loaded),
                false => {
                    let missing = config::file_errors(&loaded);
                    if missing.is_empty() { Ok(loaded) } else { Err(config::ConfigErrors(missing)) }
                }
            }) {
                Ok(loaded) => {
                    for warning in config::exposure_warnings(&loaded) {
                        eprintln!("warning: {warning}");
                    }
                    println!("{}: valid", config.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprint!("{}: {errors}", config.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Tail { config, from_beginning, format } => {
            let loaded = match load_or_explain(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_backfill_tracing(&loaded.log);
            cli::tail::run(&loaded.kafka, from_beginning, format)
        }
        Command::Dlq(args) => cli::dlq::run(args),
        Command::Doctor(args) => cli::doctor::run(args),
        Command::Cursor(args) => cli::cursor::run(args),
        Command::Reconcile(args) => cli::reconcile::run(args),
        Command::Trace { config, payment_id, source, since, format } => {
            let loaded = match load_or_explain(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_backfill_tracing(&loaded.log);
            let request = paybridge::trace::Request { payment_id, source, since };
            cli::trace::run(&loaded, &request, format)
        }
        Command::Backfill { config, source, from, to, slice, page_size } => {
            let loaded = match load_or_explain(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_backfill_tracing(&loaded.log);
            let request = paybridge::backfill::Request { source, from, to, slice, page_size };
            cli::backfill::run(&config, loaded, request)
        }
        Command::Run { config } => {
            let loaded = match load_with_files_or_explain(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(&loaded.log);
            for warning in config::exposure_warnings(&loaded) {
                tracing::warn!("{warning}");
            }
            match run(loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "paybridge stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(config: config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(paybridge::run_until_signal(config));
    // The shutdown is over (everything it waits for is bounded by shutdown.timeout); a
    // blocking broker probe still running must not hold the exit for its own timeout.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(result?)
}
