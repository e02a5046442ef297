//! `paybridge cursor show|set`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use paybridge::cursor_command::{self, SetReport, SetRequest, Shown};

use super::{Format, init_command_tracing, load_or_explain};

#[derive(Args)]
pub struct CursorArgs {
    #[command(subcommand)]
    command: CursorCommand,
}

#[derive(Subcommand)]
enum CursorCommand {
    /// The position in force of a Payments Direct source: where the next window starts, the
    /// window being read and its last settled page, the tenure (epoch) and who wrote it, and
    /// how far behind now it is. Exit 0 when there is a position, 1 when there is none yet
    /// or it cannot be read, 2 on bad input.
    Show {
        #[command(flatten)]
        common: Common,
    },
    /// Moves the position of a Payments Direct source, on a running deployment too: it
    /// claims the cursor as a replica taking over does, then writes the new position; the
    /// running owner steps aside at its next epoch check (within seconds) and the next
    /// window starts at --to. Moving back publishes that stretch again with the same event
    /// ids; moving forward skips states and needs --yes. Exit 0 when written, 1 when it
    /// could not be, 2 on bad input or a refused move.
    Set {
        #[command(flatten)]
        common: Common,
        /// The new position: RFC 3339, a date (UTC), or a duration ago (10m, 2h). At most
        /// now − the source's safety_lag.
        #[arg(long, value_parser = paybridge::trace::parse_since)]
        to: chrono::DateTime<chrono::Utc>,
        /// Allow moving forward (the states in between are never published).
        #[arg(long)]
        yes: bool,
        /// kafka.exactly_once only: every replica is stopped (the position is written
        /// without a claim; a running owner would overwrite it).
        #[arg(long)]
        stopped: bool,
        /// How long to wait for a running owner to take over from the new position.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
}

#[derive(Args)]
struct Common {
    /// The TOML configuration file (the one `paybridge run` reads).
    #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
    config: PathBuf,
    /// The Payments Direct source's `name`.
    #[arg(long)]
    source: String,
    #[arg(long, value_enum, default_value = "pretty")]
    format: Format,
}

pub fn run(args: CursorArgs) -> ExitCode {
    let common = match &args.command {
        CursorCommand::Show { common } | CursorCommand::Set { common, .. } => common,
    };
    let loaded = match load_or_explain(&common.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_command_tracing(&loaded.log);
    let format = common.format;
    let result = match &args.command {
        CursorCommand::Show { common } => cursor_command::show(&loaded, &common.source).map(|shown| {
            print_shown(&shown, format);
            if shown.after.is_some() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }),
        CursorCommand::Set { common, to, yes, stopped, wait } => {
            let operator = format!(
                "{}@{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
                paybridge::sink::state::this_owner()
            );
            let request = SetRequest {
                source: common.source.clone(),
                to: *to,
                yes: *yes,
                stopped: *stopped,
                wait: *wait,
                operator,
            };
            if format == Format::Pretty {
                eprintln!(
                    "cursor: claiming {} and writing the new position; waiting up to {wait:?} for a running owner to take over",
                    common.source
                );
            }
            cursor_command::set(&loaded, &request).map(|report| {
                print_set(&report, format);
                ExitCode::SUCCESS
            })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("paybridge cursor: {e}");
        if e.is_bad_input() { ExitCode::from(2) } else { ExitCode::FAILURE }
    })
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn print_shown(shown: &Shown, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(shown).unwrap_or_default());
        return;
    }
    let partition = shown.partition.map_or_else(|| "-".into(), |p| p.to_string());
    println!("source      {} (state topic {}, partition {partition})", shown.source, shown.state_topic);
    match (&shown.after, &shown.unparsable) {
        (Some(after), _) => {
            let behind = shown.behind_seconds.map_or_else(
                || "-".into(),
                |s| humantime::format_duration(std::time::Duration::from_secs(s.max(0).unsigned_abs())).to_string(),
            );
            println!(
                "position    the next window starts at {} ({behind} behind now; safety_lag {}s)",
                time(Some(*after)),
                shown.safety_lag_seconds
            );
        }
        (None, Some(text)) => println!("position    cannot be read: {text:?} (set it with paybridge cursor set)"),
        (None, None) => println!("position    none yet (the source starts from its start_from)"),
    }
    if shown.window_before.is_some() {
        println!(
            "window      {} → {}, {} page(s) settled{}",
            time(shown.window_from),
            time(shown.window_before),
            shown.pages,
            shown.page_token.as_ref().map(|t| format!(", next page token {t}")).unwrap_or_default()
        );
    }
    println!(
        "tenure      epoch {} (claim at offset {}); written by {} at {}{}",
        shown.epoch,
        shown.claim_offset,
        shown.owner.as_deref().unwrap_or("-"),
        time(shown.committed_at),
        if shown.reset { " (set by an operator, not taken over yet)" } else { "" }
    );
}

fn print_set(report: &SetReport, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    let direction = match report.from {
        Some(from) if report.to < from => "back: that stretch is published again, with the same event ids",
        Some(from) if report.to > from => "forward: the states in between are not published",
        Some(_) => "to where it was",
        None => "(there was no position)",
    };
    println!("{}: position {} → {} ({direction})", report.source, time(report.from), time(Some(report.to)));
    let epoch = report.written.epoch.map_or_else(|| "without a claim".into(), |e| format!("under epoch {e}"));
    println!("written {epoch} in partition {} at offset {}", report.written.partition, report.written.position_offset);
    match &report.taken_over_by {
        Some((epoch, owner)) => {
            println!("the owner took over from it under epoch {epoch} ({})", owner.as_deref().unwrap_or("-"))
        }
        None => println!("no running owner took over within the wait; the next one to start begins there"),
    }
}
