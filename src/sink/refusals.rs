//! What keeps a broker-side misconfiguration from draining the stream into the DLQ.
//!
//! - **A topic that refuses records** (an error that concerns the topic or the broker, not
//!   one record: [`ErrorClass::TopicRefused`](super::errors::ErrorClass)): publishing pauses.
//!   Each batch sends only its first event, as a probe; the others are not sent (Retry, so
//!   nothing is acknowledged upstream). The first accepted probe ends the pause.
//! - **The DLQ breaker**, per source (the events' CloudEvents `source`): when more than
//!   `max` of the source's last `window` events were refused as records (too large,
//!   corrupt), a refused event is not dead-lettered but retried (not acknowledged), until
//!   the broker accepts one of the source's events again; counting then starts afresh.
//!
//! Either state fails readiness with its reason (see [`Refusals::subscribe`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The state readiness and the alert metric follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefusalState {
    /// Why the topic refuses records, while it does.
    pub topic: Option<String>,
    /// Sources whose DLQ breaker is open, with the last refusal's reason.
    pub breakers: Vec<(String, String)>,
}

impl RefusalState {
    /// One line for readiness, or None when publishing runs normally.
    pub fn reason(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(topic) = &self.topic {
            parts.push(format!("the topic refuses records ({topic}); publishing paused, nothing acknowledged"));
        }
        for (source, reason) in &self.breakers {
            parts.push(format!(
                "DLQ breaker open for {source}: too many of its events refused by the broker ({reason}); \
                 not dead-lettered, not acknowledged"
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The window of one source's latest outcomes (true: refused as a record).
#[derive(Default)]
struct Window {
    outcomes: VecDeque<bool>,
    refused: usize,
    open: bool,
    last_reason: String,
}

struct Inner {
    topic: Option<String>,
    sources: HashMap<String, Window>,
}

/// Shared by every clone of the sink.
#[derive(Clone)]
pub struct Refusals {
    inner: Arc<Mutex<Inner>>,
    /// Whether anything is tracked (a topic refusal, a source with refusals): when not,
    /// an accepted record costs no lock.
    active: Arc<AtomicBool>,
    max: usize,
    window: usize,
    state: Arc<watch::Sender<RefusalState>>,
}

impl Refusals {
    /// A breaker that opens when more than `max` of a source's last `window` events were
    /// refused as records.
    pub fn new(max: usize, window: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner { topic: None, sources: HashMap::new() })),
            active: Arc::new(AtomicBool::new(false)),
            max,
            window: window.max(1),
            state: Arc::new(watch::channel(RefusalState::default()).0),
        }
    }

    /// Follows the state (readiness, the alert metric).
    pub fn subscribe(&self) -> watch::Receiver<RefusalState> {
        self.state.subscribe()
    }

    /// Why the topic refuses records, while it does: the next batch only probes.
    pub fn topic_refusal(&self) -> Option<String> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        self.inner.lock().ok().and_then(|inner| inner.topic.clone())
    }

    /// The topic refused a record for `reason`: pause.
    pub fn topic_refused(&self, reason: &str) {
        self.update(|inner| {
            if inner.topic.is_none() {
                tracing::error!(%reason, "the topic refuses records; publishing paused until a probe record is accepted; nothing is acknowledged meanwhile");
            }
            inner.topic = Some(reason.to_owned());
        });
    }

    /// A record was accepted: the topic takes records again.
    pub fn topic_accepts(&self) {
        if self.topic_refusal().is_none() {
            return;
        }
        self.update(|inner| {
            if inner.topic.take().is_some() {
                tracing::info!("the topic accepts records again; publishing resumed");
            }
        });
    }

    /// `source`'s event was accepted (delivered).
    pub fn accepted(&self, source: &str) {
        if self.active.load(Ordering::Acquire) {
            self.record(source, false, "");
        }
    }

    /// `source`'s event was refused as a record for `reason`: whether it may go to the DLQ
    /// (the breaker is closed, also after counting this one).
    pub fn may_dead_letter(&self, source: &str, reason: &str) -> bool {
        !self.record(source, true, reason)
    }

    /// Counts one outcome; returns whether the source's breaker is open afterwards. While
    /// open, refusals are not counted (the same events come back until accepted) and the
    /// first accepted event closes it, with a fresh window.
    fn record(&self, source: &str, refused: bool, reason: &str) -> bool {
        let (max, size) = (self.max, self.window);
        let mut open = false;
        self.update(|inner| {
            if !refused && !inner.sources.contains_key(source) {
                return;
            }
            let window = inner.sources.entry(source.to_owned()).or_default();
            if refused {
                window.last_reason = reason.to_owned();
            }
            if window.open {
                if !refused {
                    tracing::info!(source, "DLQ breaker closed: the broker accepts this source's events again");
                    inner.sources.remove(source);
                    return;
                }
                open = true;
                return;
            }
            window.outcomes.push_back(refused);
            window.refused += usize::from(refused);
            while window.outcomes.len() > size {
                if window.outcomes.pop_front() == Some(true) {
                    window.refused = window.refused.saturating_sub(1);
                }
            }
            if window.refused > max {
                tracing::error!(source, refused = window.refused, of = window.outcomes.len(), reason = %window.last_reason, "DLQ breaker open: the broker refuses too many of this source's events; they are not dead-lettered nor acknowledged");
                window.open = true;
                window.outcomes.clear();
                window.refused = 0;
                open = true;
            } else if window.refused == 0 {
                inner.sources.remove(source);
            }
        });
        open
    }

    fn update(&self, change: impl FnOnce(&mut Inner)) {
        let Ok(mut inner) = self.inner.lock() else { return };
        change(&mut inner);
        self.active.store(inner.topic.is_some() || !inner.sources.is_empty(), Ordering::Release);
        let mut breakers: Vec<(String, String)> = inner
            .sources
            .iter()
            .filter(|(_, w)| w.open)
            .map(|(source, w)| (source.clone(), w.last_reason.clone()))
            .collect();
        breakers.sort();
        let state = RefusalState { topic: inner.topic.clone(), breakers };
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_past_max_refusals_in_the_window_and_closes_at_the_next_accepted_event() {
        let refusals = Refusals::new(2, 10);
        let state = refusals.subscribe();
        assert!(refusals.may_dead_letter("a", "too large"));
        for _ in 0..8 {
            refusals.accepted("a");
        }
        assert!(refusals.may_dead_letter("a", "too large"));
        refusals.accepted("a");
        assert!(refusals.may_dead_letter("a", "too large"), "the first refusal slid out of the last ten");
        assert!(!refusals.may_dead_letter("a", "too large"), "three in the last ten: one too many");
        assert!(refusals.may_dead_letter("b", "too large"), "per source");
        assert_eq!(state.borrow().breakers, vec![("a".to_owned(), "too large".to_owned())]);
        assert!(state.borrow().reason().is_some_and(|r| r.contains("DLQ breaker open for a")));
        for _ in 0..50 {
            assert!(!refusals.may_dead_letter("a", "too large"), "stays open while nothing is accepted");
        }
        refusals.accepted("a");
        assert_eq!(state.borrow().breakers, Vec::new(), "an accepted event closes it");
        assert!(refusals.may_dead_letter("a", "too large"), "with a fresh window");
    }

    #[test]
    fn a_topic_refusal_pauses_until_a_record_is_accepted() {
        let refusals = Refusals::new(20, 100);
        let state = refusals.subscribe();
        assert_eq!(refusals.topic_refusal(), None);
        refusals.topic_refused("InvalidRecord");
        assert_eq!(refusals.topic_refusal().as_deref(), Some("InvalidRecord"));
        assert!(state.borrow().reason().is_some_and(|r| r.contains("the topic refuses records (InvalidRecord)")));
        refusals.topic_accepts();
        assert_eq!(*state.borrow(), RefusalState::default());
    }

    #[test]
    fn sources_without_refusals_cost_no_memory() {
        let refusals = Refusals::new(1, 10);
        for n in 0..1000 {
            refusals.accepted(&format!("source-{n}"));
        }
        assert!(refusals.inner.lock().is_ok_and(|inner| inner.sources.is_empty()));
    }
}
