//! `paybridge tail`: the events of the topic as they land, one line each (or the JSON); the
//! summary on stderr. Exit 0 when stopped, 1 when the topic cannot be read.

use std::io::Write;
use std::process::ExitCode;

use paybridge::config::KafkaConfig;
use paybridge::event::CanonicalEvent;
use paybridge::tail::Record;

/// How each event is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One aligned line: time, provider, payment, state change, type, id.
    Pretty,
    /// The record value as it is (one CloudEvent JSON object per line).
    Json,
}

/// Tails the topic until a signal.
pub fn run(kafka: &KafkaConfig, from_beginning: bool, format: Format) -> ExitCode {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        eprintln!("paybridge tail: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            paybridge::wait_for_signal().await;
            trigger.cancel();
        });
        let mut out = std::io::stdout();
        paybridge::tail::tail(kafka, from_beginning, &stop, |record| {
            let text = match record {
                Record::Event { event, .. } if format == Format::Pretty => line(event),
                Record::Event { value, .. } => String::from_utf8_lossy(value).into_owned(),
                Record::Unreadable { partition, offset, error } => {
                    format!("partition {partition} offset {offset}: not a paybridge event ({error})")
                }
            };
            writeln!(out, "{text}").and_then(|()| out.flush())
        })
        .await
    });
    match result {
        Ok(summary) => {
            let per: Vec<String> = summary.per_provider.iter().map(|(p, n)| format!("{p} {n}")).collect();
            eprintln!(
                "{} events ({}); {} records that are not paybridge events",
                summary.events(),
                per.join(", "),
                summary.unreadable
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paybridge tail: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One event as one line: time, provider, account, payment, state change, type, id.
pub fn line(event: &CanonicalEvent) -> String {
    let data = &event.data;
    let change = match &data.previous_provider_state {
        Some(previous) => format!("{previous} → {}", data.provider_state),
        None => data.provider_state.clone(),
    };
    let terminal = if data.terminal { " (final)" } else { "" };
    format!(
        "{}  {:<15} {:<12} {:<38} {}{terminal}  [{}]  {}",
        event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        data.provider.as_str(),
        data.account,
        data.payment_id,
        change,
        data.notification_type.as_deref().unwrap_or(event.event_type.as_str()),
        event.id
    )
}
