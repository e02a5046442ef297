//! The `paybridge` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use paybridge::config::{self, LogFormat};
use paybridge::schemas;

/// Moves payment-provider notifications into Kafka; nothing is acknowledged upstream
/// before the broker has confirmed the event.
#[derive(Parser)]
#[command(name = "paybridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge until SIGTERM or SIGINT.
    Run {
        /// The TOML configuration file.
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a JSON Schema generated from the code.
    Schema {
        #[arg(value_enum)]
        which: SchemaKind,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file (with the environment applied); exit 0 when valid, 2 otherwise.
    Validate {
        #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaKind {
    /// The Kafka record value: a CloudEvents envelope around the payment event.
    Event,
    /// The configuration file.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema { which } => {
            let schema = match which {
                SchemaKind::Event => schemas::event_schema(),
                SchemaKind::Config => schemas::config_schema(),
            };
            print!("{}", schemas::render(&schema));
            ExitCode::SUCCESS
        }
        Command::Config { command: ConfigCommand::Validate { config } } => match config::load_file(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{}: {errors}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let loaded = match config::load_file(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprint!("{}: {errors}", config.display());
                    return ExitCode::from(2);
                }
            };
            init_tracing(&loaded.log);
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

fn init_tracing(log: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(config: config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    Ok(runtime.block_on(paybridge::run_until_signal(config))?)
}
