//! `paybridge trace`: prints every record of one payment (lines or JSON); the summary on
//! stderr. Exit 0 when records were found, 1 when none (or Kafka unreadable), 2 on bad input.

use std::process::ExitCode;

use paybridge::config::Config;
use paybridge::trace::{Found, Request};

use super::progress::StderrProgress;

/// How the found records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per record: time, topic/partition@offset, state change, event id, DLQ reason.
    Pretty,
    /// One JSON document: the records, the keys, and every partition read.
    Json,
}

/// Prints what the trace found; the summary goes to stderr.
pub fn run(loaded: &Config, request: &Request, format: Format) -> ExitCode {
    let progress = StderrProgress::for_stderr("trace");
    match paybridge::trace::trace(&loaded.kafka, &loaded.sources, request, &progress) {
        Ok(report) => {
            let printed = match format {
                Format::Pretty => {
                    let mut out = String::new();
                    for found in &report.found {
                        out.push_str(&line(found));
                        out.push('\n');
                    }
                    out
                }
                Format::Json => serde_json::to_string_pretty(&report).map(|t| t + "\n").unwrap_or_default(),
            };
            print!("{printed}");
            let read: u64 = report.reads.iter().map(|r| r.records_read).sum();
            eprintln!(
                "{} record(s) of payment {} in {} partition(s) read ({read} records)",
                report.found.len(),
                report.payment_id,
                report.reads.len()
            );
            if let Some(why) = &report.whole_topic_because {
                eprintln!("note: {why}");
            }
            if report.found.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("paybridge trace: {e}");
            if e.is_bad_input() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

/// One found record as one line: when, where, the state change, the event id, and for a DLQ
/// record why it is there.
fn line(found: &Found) -> String {
    let when =
        found.written_at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let change = match (&found.previous_state, &found.state) {
        (Some(previous), Some(state)) => format!("{previous} → {state}"),
        (None, Some(state)) => state.clone(),
        _ if found.unreadable => "(not a paybridge event)".to_owned(),
        _ => "-".to_owned(),
    };
    let mut text = format!(
        "{when}  {}/{}@{}  {change}  {}",
        found.topic,
        found.partition,
        found.offset,
        found.event_id.as_deref().unwrap_or("-")
    );
    if let Some(reason) = &found.dlq_reason {
        text.push_str(&format!("  DLQ: {reason}"));
        if let Some(code) = &found.dlq_error_code {
            text.push_str(&format!(" ({code})"));
        }
    }
    text
}
