//! Ack handles: how a source learns what became of a batch it submitted.
//!
//! A handle resolves [`Outcome::Delivered`] for an event only when the broker confirmed
//! it (acks=all). Anything short of that — a timeout, a broker error, a batch the pipeline
//! dropped, a handle whose completer vanished — is [`Outcome::Retry`], never success.

use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The broker confirmed the event (acks=all). Safe to acknowledge upstream.
    Delivered,
    /// A permanent failure: the event went to the DLQ topic (confirmed) with this reason.
    /// Safe to acknowledge upstream; the event is not lost.
    Rejected(String),
    /// Not confirmed; the source must not acknowledge, so the provider redelivers.
    Retry(String),
}

impl Outcome {
    /// Delivered or Rejected: the event is safely in Kafka (main topic or DLQ).
    pub fn is_settled(&self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Rejected(_))
    }
}

/// The outcome of one event of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOutcome {
    pub id: Uuid,
    pub outcome: Outcome,
}

/// The outcome of a batch, event by event, in submission order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    pub events: Vec<EventOutcome>,
}

impl BatchOutcome {
    /// Every event gets `Retry(reason)`.
    pub fn all_retry(ids: &[Uuid], reason: &str) -> Self {
        Self { events: ids.iter().map(|&id| EventOutcome { id, outcome: Outcome::Retry(reason.to_owned()) }).collect() }
    }

    /// The batch as a whole: Retry if any event must be retried, else Rejected if any went
    /// to the DLQ, else Delivered.
    pub fn overall(&self) -> Outcome {
        if let Some(retry) = self.events.iter().find(|e| matches!(e.outcome, Outcome::Retry(_))) {
            return retry.outcome.clone();
        }
        if let Some(rejected) = self.events.iter().find(|e| matches!(e.outcome, Outcome::Rejected(_))) {
            return rejected.outcome.clone();
        }
        Outcome::Delivered
    }

    /// True when every event was delivered to the main topic.
    pub fn is_delivered(&self) -> bool {
        self.events.iter().all(|e| e.outcome == Outcome::Delivered)
    }

    /// Indexes of events that may be acknowledged upstream (Delivered or Rejected).
    pub fn settled_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.events.iter().enumerate().filter(|(_, e)| e.outcome.is_settled()).map(|(i, _)| i)
    }

    pub fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.events.iter().filter(|e| pred(&e.outcome)).count()
    }
}

/// The source's side: await it to learn the batch's outcome.
#[derive(Debug)]
pub struct AckHandle {
    ids: Vec<Uuid>,
    rx: oneshot::Receiver<BatchOutcome>,
}

/// The pipeline's side: completes the handle. Dropping it without completing makes
/// the handle resolve Retry.
#[derive(Debug)]
pub struct Completer {
    ids: Vec<Uuid>,
    tx: oneshot::Sender<BatchOutcome>,
}

/// A connected handle and completer for events with `ids`.
pub fn ack_pair(ids: Vec<Uuid>) -> (AckHandle, Completer) {
    let (tx, rx) = oneshot::channel();
    (AckHandle { ids: ids.clone(), rx }, Completer { ids, tx })
}

impl AckHandle {
    /// Waits for the outcome. A completer dropped without an outcome means Retry.
    pub async fn outcome(self) -> BatchOutcome {
        match self.rx.await {
            Ok(outcome) => outcome,
            Err(_) => BatchOutcome::all_retry(&self.ids, "the batch was dropped without an outcome"),
        }
    }

    /// Waits at most `limit`; a timeout means Retry.
    pub async fn outcome_within(self, limit: Duration) -> BatchOutcome {
        let ids = self.ids.clone();
        match tokio::time::timeout(limit, self.outcome()).await {
            Ok(outcome) => outcome,
            Err(_) => BatchOutcome::all_retry(&ids, "no outcome within the deadline"),
        }
    }
}

impl Completer {
    /// Resolves the handle with one outcome per event, in order. Missing outcomes are Retry.
    pub fn complete(self, outcomes: Vec<Outcome>) {
        let mut outcomes = outcomes.into_iter();
        let events = self
            .ids
            .iter()
            .map(|&id| EventOutcome {
                id,
                outcome: outcomes.next().unwrap_or_else(|| Outcome::Retry("no outcome reported".into())),
            })
            .collect();
        // The source may have stopped waiting; then nobody needs the outcome.
        let _ = self.tx.send(BatchOutcome { events });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    #[tokio::test]
    async fn delivered_only_when_every_event_is() {
        let (handle, completer) = ack_pair(ids(3));
        completer.complete(vec![Outcome::Delivered, Outcome::Delivered, Outcome::Delivered]);
        let outcome = handle.outcome().await;
        assert!(outcome.is_delivered());
        assert_eq!(outcome.overall(), Outcome::Delivered);
    }

    #[tokio::test]
    async fn a_mixed_batch_reports_per_event() {
        let (handle, completer) = ack_pair(ids(3));
        completer.complete(vec![
            Outcome::Delivered,
            Outcome::Rejected("too large".into()),
            Outcome::Retry("timeout".into()),
        ]);
        let outcome = handle.outcome().await;
        assert!(!outcome.is_delivered());
        assert_eq!(outcome.overall(), Outcome::Retry("timeout".into()));
        assert_eq!(outcome.settled_indexes().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[tokio::test]
    async fn rejected_wins_over_delivered_but_not_over_retry() {
        let (handle, completer) = ack_pair(ids(2));
        completer.complete(vec![Outcome::Delivered, Outcome::Rejected("x".into())]);
        assert_eq!(handle.outcome().await.overall(), Outcome::Rejected("x".into()));
    }

    #[tokio::test]
    async fn a_dropped_completer_means_retry() {
        let (handle, completer) = ack_pair(ids(2));
        drop(completer);
        let outcome = handle.outcome().await;
        assert_eq!(outcome.count(|o| matches!(o, Outcome::Retry(_))), 2);
    }

    #[tokio::test]
    async fn a_timeout_means_retry() {
        let (handle, _completer) = ack_pair(ids(1));
        let outcome = handle.outcome_within(Duration::from_millis(20)).await;
        assert!(matches!(outcome.overall(), Outcome::Retry(_)));
    }

    #[tokio::test]
    async fn missing_outcomes_are_retry() {
        let (handle, completer) = ack_pair(ids(2));
        completer.complete(vec![Outcome::Delivered]);
        let outcome = handle.outcome().await;
        assert_eq!(outcome.events[1].outcome, Outcome::Retry("no outcome reported".into()));
    }
}
