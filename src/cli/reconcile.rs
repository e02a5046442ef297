//! `paybridge reconcile`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use paybridge::reconcile::{self, Report, Request};

use super::progress::StderrProgress;
use super::{Format, init_command_tracing, load_or_explain};

/// Proves from the provider's own records that every notification of a period reached Kafka
/// (Checkout: the period query; Payments Direct: the payments' state histories; RippleNet:
/// only the SENT notifications not acknowledged yet, as its API lists nothing else): accounted
/// for, missing from Kafka, in Kafka but unknown upstream, per state. --repair publishes the
/// missing ones with their event ids; nothing is acknowledged upstream. Exit 0 when nothing
/// is missing (or all was repaired) and nothing is unknown, 1 otherwise or when a side
/// cannot be read, 2 on bad input.
#[derive(Args)]
pub struct ReconcileArgs {
    /// The TOML configuration file (the one `paybridge run` reads).
    #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
    config: PathBuf,
    /// The source's `name`.
    #[arg(long)]
    source: String,
    /// Start of the period: RFC 3339, a date (UTC), or a duration ago (26h, 3d).
    #[arg(long, value_parser = paybridge::trace::parse_since)]
    from: chrono::DateTime<chrono::Utc>,
    /// End of the period (exclusive), not in the future; leave the last minutes out, where
    /// paybridge may still be publishing.
    #[arg(long, value_parser = paybridge::trace::parse_since)]
    to: chrono::DateTime<chrono::Utc>,
    /// Publish the missing events (same ids as the live path gives them).
    #[arg(long)]
    repair: bool,
    /// Push the result as metrics to this Prometheus Pushgateway (http(s)://host:port).
    #[arg(long, env = "PAYBRIDGE_PUSHGATEWAY")]
    push_metrics: Option<String>,
    #[arg(long, value_enum, default_value = "pretty")]
    format: Format,
}

pub fn run(args: ReconcileArgs) -> ExitCode {
    let loaded = match load_or_explain(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_command_tracing(&loaded.log);
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        eprintln!("paybridge reconcile: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let request = Request { source: args.source.clone(), from: args.from, to: args.to, repair: args.repair };
    let progress = StderrProgress::for_stderr("reconcile");
    let result = runtime.block_on(async {
        let report = reconcile::run(&loaded, &request, &progress).await?;
        let pushed = match &args.push_metrics {
            Some(gateway) => Some(reconcile::push::push(gateway, &report).await),
            None => None,
        };
        Ok::<_, reconcile::ReconcileError>((report, pushed))
    });
    match result {
        Ok((report, pushed)) => {
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
                Format::Pretty => print!("{}", render(&report)),
            }
            if let Some(Err(e)) = &pushed {
                eprintln!("paybridge reconcile: {e}");
                return ExitCode::FAILURE;
            }
            if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("paybridge reconcile: {e}");
            if e.is_bad_input() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn render(report: &Report) -> String {
    let d = &report.difference;
    let r = &report.upstream_read;
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut out = format!(
        "reconcile of {} ({}) from {} to {}\n",
        report.source,
        report.provider,
        stamp(report.from),
        stamp(report.to)
    );
    out.push_str(&format!(
        "  upstream: {} event(s) ({} page(s), {} item(s), {} histories, {} unreadable)\n",
        d.upstream, r.pages, r.items, r.histories, r.unreadable
    ));
    if r.truncated > 0 {
        out.push_str(&format!(
            "  WARNING: {} millisecond(s) held more notifications than a page: some were not seen\n",
            r.truncated
        ));
    }
    out.push_str(&format!("  Kafka: {} record(s) read\n", report.kafka_records_read));
    out.push_str(&format!("  accounted for: {} ({} only in the DLQ)\n", d.accounted, d.accounted_in_dlq));
    out.push_str(&format!("  missing from Kafka: {}\n", d.missing));
    match report.unknown_counted {
        true => out.push_str(&format!("  in Kafka but unknown upstream: {}\n", d.unknown_upstream)),
        false => out.push_str("  in Kafka but unknown upstream: not counted (see below)\n"),
    }
    if !d.per_state.is_empty() {
        out.push_str(&format!("  {:<24} {:>10} {:>8} {:>8}\n", "state", "accounted", "missing", "unknown"));
        for (state, c) in &d.per_state {
            out.push_str(&format!("  {state:<24} {:>10} {:>8} {:>8}\n", c.accounted, c.missing, c.unknown_upstream));
        }
    }
    for s in &d.missing_samples {
        out.push_str(&format!("  missing: {} {} payment {}\n", s.event_id, s.state, s.detail));
    }
    for s in &d.unknown_samples {
        out.push_str(&format!("  unknown upstream: {} {} at {}\n", s.event_id, s.state, s.detail));
    }
    if let Some(repaired) = &report.repaired {
        out.push_str(&format!(
            "  repaired: {} published, {} to the DLQ, {} not confirmed\n",
            repaired.published, repaired.dead_lettered, repaired.failed
        ));
    }
    for limit in &report.limits {
        out.push_str(&format!("  cannot see: {limit}\n"));
    }
    out
}
