//! `paybridge dlq list|show|redrive`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use paybridge::dead_letter::letter::{Filter, Letter, Position};
use paybridge::dead_letter::redrive::Report;
use paybridge::dead_letter::{self, DlqError, Wanted};
use paybridge::sink::scan::Next;

use super::progress::StderrProgress;
use super::{Format, init_command_tracing, load_or_explain};

#[derive(Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead letter: where, age, error code, source, payment, event id, reason,
    /// and where an earlier redrive wrote it. Exit 0 when the DLQ was read (whatever it
    /// holds), 1 when it could not be, 2 on bad input.
    List {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        filters: Filters,
    },
    /// One dead letter whole: headers, key and value. Exit 0 when found, 1 when not.
    Show {
        #[command(flatten)]
        common: Common,
        /// PARTITION@OFFSET in the DLQ (as `list` prints it), or an event id.
        record: String,
    },
    /// Writes the chosen dead letters to the topic they were meant for: same key, value and
    /// ce_ headers (the same event id), plus paybridge_redriven_from. Without --yes it only
    /// prints the plan. Records an earlier redrive wrote are skipped. Exit 0 when every
    /// chosen record is in its topic, 1 when the topic refused some (they stay in the DLQ).
    Redrive {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        filters: Filters,
        /// Print the plan (counts per error code and source) and write nothing (the default).
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
        /// Write them.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
struct Common {
    /// The TOML configuration file (the one `paybridge run` reads).
    #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
    config: PathBuf,
    #[arg(long, value_enum, default_value = "pretty")]
    format: Format,
}

#[derive(Args)]
struct Filters {
    /// Only this source's dead letters (its provider and account).
    #[arg(long)]
    source: Option<String>,
    /// Only this error code (MessageSizeTooLarge, any case) or reason text containing it.
    #[arg(long)]
    reason: Option<String>,
    /// Written at or after: RFC 3339, a date (UTC), or a duration ago (2h, 3d).
    #[arg(long, value_parser = paybridge::trace::parse_since)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Written before: RFC 3339, a date (UTC), or a duration ago.
    #[arg(long, value_parser = paybridge::trace::parse_since)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only the dead letter(s) of this event id.
    #[arg(long)]
    id: Option<String>,
    /// Only the record at PARTITION@OFFSET (repeatable).
    #[arg(long, value_parser = Position::parse)]
    at: Vec<Position>,
}

impl Filters {
    fn filter(self) -> Filter {
        Filter {
            source: self.source,
            reason: self.reason,
            since: self.since,
            until: self.until,
            event_id: self.id,
            at: self.at,
        }
    }
}

pub fn run(args: DlqArgs) -> ExitCode {
    let (common, work) = match args.command {
        DlqCommand::List { common, filters } => (common, Work::List(filters.filter())),
        DlqCommand::Show { common, record } => (common, Work::Show(Wanted::parse(&record))),
        DlqCommand::Redrive { common, filters, yes, .. } => (common, Work::Redrive(filters.filter(), yes)),
    };
    let loaded = match load_or_explain(&common.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_command_tracing(&loaded.log);
    let progress = StderrProgress::for_stderr("dlq");
    let (kafka, sources) = (&loaded.kafka, loaded.sources.as_slice());
    let result = match work {
        Work::List(filter) => list(kafka, sources, &filter, common.format, &progress),
        Work::Show(wanted) => dead_letter::show(kafka, sources, &wanted, &progress).map(|found| {
            print_show(&found, common.format);
            ExitCode::SUCCESS
        }),
        Work::Redrive(filter, yes) => {
            let report = if yes {
                dead_letter::redrive::redrive(kafka, sources, &filter, &progress)
            } else {
                dead_letter::redrive::plan(kafka, sources, &filter, &progress)
            };
            report.map(|r| {
                print_redrive(&r, common.format);
                if r.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("paybridge dlq: {e}");
        if e.is_bad_input() { ExitCode::from(2) } else { ExitCode::FAILURE }
    })
}

enum Work {
    List(Filter),
    Show(Wanted),
    Redrive(Filter, bool),
}

fn list(
    kafka: &paybridge::config::KafkaConfig,
    sources: &[paybridge::config::SourceConfig],
    filter: &Filter,
    format: Format,
    progress: &StderrProgress,
) -> Result<ExitCode, DlqError> {
    let read = dead_letter::scan(kafka, sources, filter, progress, |letter, _| {
        let text = match format {
            Format::Pretty => line(&letter),
            Format::Json => serde_json::to_string(&letter).unwrap_or_default(),
        };
        progress.say_out(&text);
        Next::Continue
    })?;
    eprintln!(
        "{} dead letter(s) chosen; {} record(s) read in {} partition(s) of {}",
        read.chosen,
        read.records_read,
        read.partitions.len(),
        kafka.dlq_topic
    );
    Ok(ExitCode::SUCCESS)
}

/// `0@17  3h 2m  MessageSizeTooLarge  rn  pay-1  <event id>  <reason>  [redriven → t/0@9]`.
fn line(letter: &Letter) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut text = format!(
        "{}  {}  {}  {}  {}  {}  {}",
        letter.position(),
        dead_letter::age(letter),
        dash(&letter.error_code),
        dash(&letter.source),
        dash(&letter.payment_id),
        dash(&letter.event_id),
        dash(&letter.reason),
    );
    if let Some(to) = &letter.redriven_to {
        text.push_str(&format!("  [redriven → {to}]"));
    }
    text
}

fn print_show(found: &[dead_letter::letter::Whole], format: Format) {
    for whole in found {
        match format {
            Format::Json => println!("{}", serde_json::to_string_pretty(whole).unwrap_or_default()),
            Format::Pretty => {
                println!("{}", line(&whole.letter));
                if let Some(at) = whole.letter.written_at {
                    println!("written at  {}", at.to_rfc3339());
                }
                println!("key         {}", whole.key.as_deref().unwrap_or("-"));
                for (name, value) in &whole.headers {
                    println!("header      {name}: {value}");
                }
                if let Some(id) = whole.schema_id {
                    println!("schema id   {id}");
                }
                println!("value ({} bytes)", whole.letter.value_bytes);
                println!("{}", serde_json::to_string_pretty(&whole.value).unwrap_or_default());
            }
        }
    }
}

fn print_redrive(report: &Report, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    println!(
        "{} dead letter(s) to redrive to their topics; {} already redriven (skipped)",
        report.chosen, report.already_redriven
    );
    for ((code, source), count) in &report.per_reason_source {
        println!("  {count:>8}  {code}  {source}");
    }
    if report.dry_run {
        println!("dry run: nothing written (run again with --yes to write them)");
        return;
    }
    println!(
        "{} redriven and confirmed by the broker; {} refused again (they stay in the DLQ)",
        report.redriven, report.refused
    );
    for refusal in &report.refusals {
        println!(
            "  refused: {} ({}) by {}: {} ({})",
            refusal.position,
            refusal.event_id.as_deref().unwrap_or("-"),
            refusal.topic,
            refusal.reason,
            refusal.error_code
        );
    }
    if report.unmarked > 0 {
        println!(
            "{} redriven but not marked: a later redrive writes them again, with the same event ids",
            report.unmarked
        );
    }
}
