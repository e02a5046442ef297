//! `paybridge cursor show|set` for Payments Direct sources: the position in force (where the
//! next window starts, the window being read, its last settled page, the tenure and who
//! wrote it), and moving it the way a replica takes over (see [`crate::sink::state::set`]).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::config::{Config, PaymentsDirectSource, SourceConfig};
use crate::sink::state::set::{SetError, Written, await_takeover, set_position, view};
use crate::sink::state::{StateError, home_partition};
use crate::sources::payments_direct::position::Position;

#[derive(Debug, thiserror::Error)]
pub enum CursorCommandError {
    #[error("no source is named {0:?} in the configuration")]
    UnknownSource(String),
    #[error("source {name:?} is a {kind} source; only Payments Direct sources have a cursor")]
    NotCursorSource { name: String, kind: &'static str },
    #[error(
        "--to {to} is later than now − safety_lag ({limit}): states of that stretch may still be being written upstream, and moving there would skip them"
    )]
    TooRecent { to: String, limit: String },
    #[error(
        "--to {to} is later than the position in force ({from}): moving forward skips every state between them; add --yes to do it"
    )]
    ForwardNeedsYes { to: String, from: String },
    #[error(
        "with kafka.exactly_once the running owner cannot be asked to step aside: stop every replica, then run this again with --stopped"
    )]
    ExactlyOnceRunning,
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl CursorCommandError {
    /// Bad input (exit 2) rather than a problem found on the way (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::UnknownSource(_)
                | Self::NotCursorSource { .. }
                | Self::TooRecent { .. }
                | Self::ForwardNeedsYes { .. }
                | Self::ExactlyOnceRunning
        )
    }
}

/// The position of one source as the state topic holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Shown {
    pub source: String,
    pub state_topic: String,
    /// The partition that holds the source's records.
    pub partition: Option<i32>,
    /// The newest tenure: its epoch and the offset of its claim.
    pub epoch: u64,
    pub claim_offset: i64,
    /// Who wrote the position in force (a replica's host name or `paybridge cursor set`).
    pub owner: Option<String>,
    pub committed_at: Option<DateTime<Utc>>,
    /// Set by an operator and not taken over yet.
    pub reset: bool,
    /// Where the next window starts (everything that changed state before is in Kafka).
    pub after: Option<DateTime<Utc>>,
    /// The window being read, when the position was written in its middle.
    pub window_from: Option<DateTime<Utc>>,
    pub window_before: Option<DateTime<Utc>>,
    /// Pages of that window settled.
    pub pages: u64,
    pub page_token: Option<String>,
    /// How far the position is behind now, in seconds.
    pub behind_seconds: Option<i64>,
    pub safety_lag_seconds: u64,
    /// The record's text when it is not a Payments Direct position.
    pub unparsable: Option<String>,
}

fn payments_direct<'a>(config: &'a Config, name: &str) -> Result<&'a PaymentsDirectSource, CursorCommandError> {
    match config.sources.iter().find(|s| s.name() == name) {
        None => Err(CursorCommandError::UnknownSource(name.to_owned())),
        Some(SourceConfig::PaymentsDirect(source)) => Ok(source),
        Some(other) => Err(CursorCommandError::NotCursorSource {
            name: name.to_owned(),
            kind: match other {
                SourceConfig::Ripplenet(_) => "RippleNet",
                _ => "Checkout",
            },
        }),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CursorCommandError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(CursorCommandError::Runtime)
}

/// The position in force of Payments Direct source `name`.
pub fn show(config: &Config, name: &str) -> Result<Shown, CursorCommandError> {
    let source = payments_direct(config, name)?;
    let state = runtime()?.block_on(view(&config.kafka, name))?;
    let record = state.record.as_ref();
    let parsed = record.map(|r| Position::parse(&r.cursor));
    let position = parsed.as_ref().and_then(|p| p.as_ref().ok());
    Ok(Shown {
        source: name.to_owned(),
        state_topic: config.kafka.state_topic.clone(),
        partition: home_partition(name, state.partitions),
        epoch: state.writer.0,
        claim_offset: state.writer.1,
        owner: record.and_then(|r| r.owner.clone()),
        committed_at: record.map(|r| r.committed_at),
        reset: record.is_some_and(|r| r.reset),
        after: position.map(|p| p.after),
        window_from: position.and_then(|p| p.before.map(|_| p.from.unwrap_or(p.after))),
        window_before: position.and_then(|p| p.before),
        pages: position.map_or(0, |p| p.pages),
        page_token: position.and_then(|p| p.page_token.clone()),
        behind_seconds: position.map(|p| Utc::now().signed_duration_since(p.after).num_seconds()),
        safety_lag_seconds: source.safety_lag.get().as_secs(),
        unparsable: match (record, parsed) {
            (Some(r), Some(Err(_))) => Some(r.cursor.clone()),
            _ => None,
        },
    })
}

/// What `cursor set` asks for.
#[derive(Clone, Debug)]
pub struct SetRequest {
    pub source: String,
    pub to: DateTime<Utc>,
    /// Moving forward is allowed.
    pub yes: bool,
    /// `kafka.exactly_once`: every replica is stopped (the position is written without a claim).
    pub stopped: bool,
    /// How long to wait for a running owner to take over from the new position.
    pub wait: Duration,
    /// Who asks (recorded as the position's owner).
    pub operator: String,
}

/// What `cursor set` did.
#[derive(Clone, Debug, Serialize)]
pub struct SetReport {
    pub source: String,
    /// The position in force before (where the next window started).
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    pub written: Written,
    /// A running owner took over from it: its epoch and host.
    pub taken_over_by: Option<(u64, Option<String>)>,
}

/// Moves the position of Payments Direct source `request.source` to `request.to`.
pub fn set(config: &Config, request: &SetRequest) -> Result<SetReport, CursorCommandError> {
    let source = payments_direct(config, &request.source)?;
    let now = Utc::now();
    let lag = TimeDelta::from_std(source.safety_lag.get()).unwrap_or_default();
    let limit = now.checked_sub_signed(lag).unwrap_or(now);
    if request.to > limit {
        return Err(CursorCommandError::TooRecent { to: request.to.to_rfc3339(), limit: limit.to_rfc3339() });
    }
    if config.kafka.exactly_once && !request.stopped {
        return Err(CursorCommandError::ExactlyOnceRunning);
    }
    let runtime = runtime()?;
    let state = runtime.block_on(view(&config.kafka, &request.source))?;
    let from = state.record.as_ref().and_then(|r| Position::parse(&r.cursor).ok()).map(|p| p.after);
    if let Some(from) = from
        && request.to > from
        && !request.yes
    {
        return Err(CursorCommandError::ForwardNeedsYes { to: request.to.to_rfc3339(), from: from.to_rfc3339() });
    }
    let cursor = Position::at(request.to).encode();
    let owner = format!("paybridge cursor set ({})", request.operator);
    let claim = !config.kafka.exactly_once;
    let written = runtime.block_on(set_position(&config.kafka, &request.source, &cursor, &owner, claim))?;
    let taken = runtime.block_on(await_takeover(&config.kafka, &request.source, &written, request.wait))?;
    let taken_over_by = taken.map(|v| (v.writer.0, v.record.and_then(|r| r.owner)));
    Ok(SetReport { source: request.source.clone(), from, to: request.to, written, taken_over_by })
}
