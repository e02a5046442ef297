//! Liveness and readiness state: is the broker reachable, has every source polled recently.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How long a successful broker metadata check counts.
pub const BROKER_CHECK_VALIDITY: Duration = Duration::from_secs(15);
/// A source is late when it has not polled for this many of its intervals.
pub const LATE_POLL_FACTOR: u32 = 3;

#[derive(Debug)]
struct SourceState {
    interval: Duration,
    last_poll: Option<Instant>,
    /// A singleton task (`[cluster]`).
    singleton: bool,
    /// A singleton task another replica runs: not expected to poll here.
    standby: bool,
}

/// Shared readiness state.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    broker_ok_at: Mutex<Option<Instant>>,
    sources: Mutex<BTreeMap<String, SourceState>>,
    shutting_down: AtomicBool,
    fatal: Mutex<Option<String>>,
    /// Group membership is on (`[cluster]`).
    cluster: AtomicBool,
    /// Why group membership stopped working, if it did.
    cluster_failure: Mutex<Option<String>>,
    /// Why publishing is paused or not dead-lettering (see [`crate::sink::refusals`]).
    refusal: Mutex<Option<String>>,
}

/// What /readyz answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub problems: Vec<String>,
    /// With `[cluster]`: the singleton tasks this replica runs now and those it stands by for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub singletons: Option<Singletons>,
}

/// The singleton tasks of a replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Singletons {
    pub owned: Vec<String>,
    pub standby: Vec<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            broker_ok_at: Mutex::new(None),
            sources: Mutex::new(BTreeMap::new()),
            shutting_down: AtomicBool::new(false),
            fatal: Mutex::new(None),
            cluster: AtomicBool::new(false),
            cluster_failure: Mutex::new(None),
            refusal: Mutex::new(None),
        }
    }

    /// A source that polls every `interval`.
    pub fn register_source(&self, name: &str, interval: Duration) {
        if let Ok(mut sources) = self.sources.lock() {
            // A singleton's tenure registers again: what set_standby recorded stays.
            let (last_poll, singleton, standby) =
                sources.get(name).map_or((None, false, false), |s| (s.last_poll, s.singleton, s.standby));
            sources.insert(name.to_owned(), SourceState { interval, last_poll, singleton, standby });
        }
    }

    /// Group membership failed: this replica runs no singleton task (unready, so it is seen).
    pub fn set_cluster_failure(&self, reason: &str) {
        if let Ok(mut failure) = self.cluster_failure.lock() {
            *failure = Some(reason.to_owned());
        }
    }

    /// Group membership is on (readiness lists the singleton tasks).
    pub fn set_cluster(&self, on: bool) {
        self.cluster.store(on, Ordering::SeqCst);
    }

    /// A singleton task another replica runs (`true`) or this one (`false`, its quiet time
    /// counts from now).
    pub fn set_standby(&self, name: &str, standby: bool) {
        if let Ok(mut sources) = self.sources.lock() {
            let state = sources.entry(name.to_owned()).or_insert(SourceState {
                interval: Duration::MAX,
                last_poll: None,
                singleton: true,
                standby,
            });
            state.singleton = true;
            state.standby = standby;
            state.last_poll = Some(Instant::now());
        }
    }

    /// `name` completed a poll now.
    pub fn polled(&self, name: &str) {
        if let Ok(mut sources) = self.sources.lock()
            && let Some(state) = sources.get_mut(name)
        {
            state.last_poll = Some(Instant::now());
        }
    }

    /// The broker answered a metadata request now.
    pub fn broker_reachable(&self) {
        if let Ok(mut at) = self.broker_ok_at.lock() {
            *at = Some(Instant::now());
        }
    }

    /// Something that cannot heal happened (a fatal producer error): never ready again.
    pub fn set_fatal(&self, reason: &str) {
        if let Ok(mut fatal) = self.fatal.lock() {
            fatal.get_or_insert_with(|| reason.to_owned());
        }
    }

    /// The topic refuses records or a DLQ breaker is open (`Some(reason)`), or neither.
    pub fn set_refusal(&self, reason: Option<String>) {
        if let Ok(mut refusal) = self.refusal.lock() {
            *refusal = reason;
        }
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn readiness(&self) -> Readiness {
        let now = Instant::now();
        let mut problems = Vec::new();
        if let Ok(fatal) = self.fatal.lock()
            && let Some(reason) = fatal.as_ref()
        {
            problems.push(reason.clone());
        }
        if self.shutting_down.load(Ordering::SeqCst) {
            problems.push("shutting down".to_owned());
        }
        if let Ok(refusal) = self.refusal.lock()
            && let Some(reason) = refusal.as_ref()
        {
            problems.push(reason.clone());
        }
        if let Ok(failure) = self.cluster_failure.lock()
            && let Some(reason) = failure.as_ref()
        {
            problems.push(format!("group membership failed: {reason}"));
        }
        let broker_ok = self
            .broker_ok_at
            .lock()
            .map(|at| at.is_some_and(|t| now.duration_since(t) <= BROKER_CHECK_VALIDITY))
            .unwrap_or(false);
        if !broker_ok {
            problems.push("Kafka brokers did not answer a metadata request recently".to_owned());
        }
        let mut singletons = Singletons::default();
        if let Ok(sources) = self.sources.lock() {
            for (name, state) in sources.iter() {
                if state.singleton {
                    if state.standby {
                        singletons.standby.push(name.clone());
                        continue;
                    }
                    singletons.owned.push(name.clone());
                }
                let limit = state.interval.saturating_mul(LATE_POLL_FACTOR);
                let since = now.duration_since(state.last_poll.unwrap_or(self.started));
                if since > limit {
                    problems.push(format!(
                        "source {name} has not polled for {}s (limit {}s)",
                        since.as_secs(),
                        limit.as_secs()
                    ));
                }
            }
        }
        let singletons = self.cluster.load(Ordering::SeqCst).then_some(singletons);
        Readiness { ready: problems.is_empty(), problems, singletons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_needs_the_broker_and_timely_polls() {
        let health = Health::new();
        assert!(!health.readiness().ready, "not ready before the broker answered");
        health.broker_reachable();
        health.register_source("rn", Duration::from_secs(10));
        assert!(health.readiness().ready);

        tokio::time::advance(Duration::from_secs(31)).await;
        health.broker_reachable();
        let r = health.readiness();
        assert!(!r.ready);
        assert!(r.problems.iter().any(|p| p.contains("source rn")), "{r:?}");

        health.polled("rn");
        assert!(health.readiness().ready);
        tokio::time::advance(BROKER_CHECK_VALIDITY + Duration::from_secs(1)).await;
        health.polled("rn");
        assert!(!health.readiness().ready, "a stale broker check makes it unready");

        health.broker_reachable();
        health.set_fatal("fatal Kafka producer error: fenced");
        let r = health.readiness();
        assert!(!r.ready && r.problems[0].contains("fenced"), "{r:?}");
        health.set_shutting_down();
        assert!(!health.readiness().ready);
    }

    #[tokio::test(start_paused = true)]
    async fn a_singleton_another_replica_runs_is_listed_as_standby_and_never_late() {
        let health = Health::new();
        health.broker_reachable();
        health.set_cluster(true);
        health.set_standby("pd", true);
        health.register_source("pd", Duration::from_secs(10));
        health.register_source("rn", Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(100)).await;
        health.broker_reachable();
        health.polled("rn");
        let r = health.readiness();
        assert!(r.ready, "{r:?}");
        assert_eq!(r.singletons, Some(Singletons { owned: vec![], standby: vec!["pd".into()] }));

        health.set_cluster_failure("cannot subscribe");
        assert!(health.readiness().problems.iter().any(|p| p.contains("group membership failed: cannot subscribe")));
        *health.cluster_failure.lock().unwrap() = None;

        health.set_standby("pd", false);
        let r = health.readiness();
        assert!(r.ready, "its quiet time counts from the takeover: {r:?}");
        assert_eq!(r.singletons.unwrap().owned, vec!["pd".to_owned()]);
        tokio::time::advance(Duration::from_secs(31)).await;
        health.broker_reachable();
        health.polled("rn");
        assert!(!health.readiness().ready, "an owned singleton that does not poll is late");
    }
}
