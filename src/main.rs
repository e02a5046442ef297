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
    /// Serve simulators of the providers' APIs (RippleNet v4 so far) for tests and local development.
    Sandbox {
        /// `IP:port` to listen on.
        #[arg(long, default_value = "127.0.0.1:8800")]
        listen: std::net::SocketAddr,
        /// Seed of the generated ids and data (same seed, same data).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A TOML scenario: credentials, callback URLs, token lifetime, initial data.
        #[arg(long)]
        scenario: Option<PathBuf>,
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
        Command::Sandbox { listen, seed, scenario } => match sandbox(listen, seed, scenario) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("paybridge sandbox: {e:#}");
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

fn sandbox(listen: std::net::SocketAddr, seed: u64, scenario: Option<PathBuf>) -> anyhow::Result<()> {
    let scenario = match scenario {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            paybridge::sandbox::Scenario::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => paybridge::sandbox::Scenario::default(),
    };
    init_tracing(&config::LogConfig::default());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr().unwrap_or(listen);
        let state = paybridge::sandbox::state(seed, scenario);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            trigger.cancel();
        });
        #[cfg(unix)]
        {
            let trigger = shutdown.clone();
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                tokio::spawn(async move {
                    term.recv().await;
                    trigger.cancel();
                });
            }
        }
        println!("paybridge sandbox listening on http://{addr}");
        paybridge::sandbox::serve(listener, state, shutdown).await.context("serving")
    })
}
