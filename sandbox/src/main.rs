//! `paybridge-sandbox`: serves the provider simulators until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use paybridge_sandbox::Scenario;
use tokio_util::sync::CancellationToken;

/// Simulators of the RippleNet v4, Payments Direct 2.0 and J.P. Morgan Checkout
/// notification APIs (OAuth, webhooks, faults, a ledger) for paybridge's tests, demo and
/// local development. Not for production.
#[derive(Parser)]
#[command(name = "paybridge-sandbox", version, about)]
struct Cli {
    /// `IP:port` to listen on.
    #[arg(long, default_value = "127.0.0.1:8800")]
    listen: std::net::SocketAddr,
    /// Seed of the generated ids and data (same seed, same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A TOML scenario: credentials, callback URLs, token lifetime, initial data, traffic.
    #[arg(long)]
    scenario: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paybridge-sandbox: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    let scenario = match &cli.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Scenario::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Scenario::default(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listen = cli.listen;
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr().unwrap_or(listen);
        let state = paybridge_sandbox::state(cli.seed, scenario);
        let shutdown = CancellationToken::new();
        stop_on_signals(&shutdown);
        println!("paybridge-sandbox listening on http://{addr}");
        paybridge_sandbox::serve(listener, state, shutdown).await.context("serving")
    })
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM.
fn stop_on_signals(shutdown: &CancellationToken) {
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
}
