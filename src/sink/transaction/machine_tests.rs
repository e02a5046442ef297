//! The transaction state machine against a scripted broker.

use std::collections::VecDeque;

use chrono::Utc;
use serde_json::json;

use super::*;
use crate::normalize::payments_direct::{Via, payment};

/// A broker that answers from scripts (an empty script answers Ok) and records every call.
#[derive(Default)]
struct Scripted {
    begin: VecDeque<Result<(), Failure>>,
    commit: VecDeque<Result<(), Failure>>,
    abort: VecDeque<Result<(), Failure>>,
    /// Per send call: the failure of the record at an index, by the record's key.
    send: VecDeque<Vec<(String, RecordFailure)>>,
    calls: Vec<String>,
    /// Every record sent, per attempt.
    sent: Vec<Vec<Outbound>>,
    open: bool,
    /// The topics' limits the writer knows.
    limits: Option<Limits>,
    /// The DLQ breaker is open (for every source).
    breaker_open: bool,
    /// What the writer was told: topic refusals, refusals asked about, delivered sources.
    topic_refusals: Vec<String>,
    dead_letter_asks: usize,
    delivered_sources: Vec<String>,
}

impl Transactions for Scripted {
    fn limits(&self) -> Option<Limits> {
        self.limits
    }

    fn topic_refused(&mut self, reason: &str) {
        assert!(!self.open, "told of a topic refusal before the abort");
        self.topic_refusals.push(reason.to_owned());
    }

    fn may_dead_letter(&mut self, _source: &str, _code: &str) -> bool {
        self.dead_letter_asks += 1;
        !self.breaker_open
    }

    fn committed(&mut self, delivered_sources: &[&str]) {
        self.delivered_sources.extend(delivered_sources.iter().map(|s| (*s).to_owned()));
    }

    async fn begin(&mut self) -> Result<(), Failure> {
        assert!(!self.open, "begin while a transaction is open");
        self.calls.push("begin".into());
        let r = self.begin.pop_front().unwrap_or(Ok(()));
        self.open = r.is_ok();
        r
    }

    async fn send(&mut self, records: &[Outbound]) -> Vec<Result<(), RecordFailure>> {
        assert!(self.open, "send outside a transaction");
        self.calls.push(format!("send {}", records.len()));
        self.sent.push(records.to_vec());
        let failures = self.send.pop_front().unwrap_or_default();
        records
            .iter()
            .map(|o| match failures.iter().find(|(key, _)| *key == o.record.key) {
                Some((_, failure)) => Err(failure.clone()),
                None => Ok(()),
            })
            .collect()
    }

    async fn commit(&mut self) -> Result<(), Failure> {
        assert!(self.open, "commit outside a transaction");
        self.calls.push("commit".into());
        let r = self.commit.pop_front().unwrap_or(Ok(()));
        if matches!(r, Ok(()) | Err(Failure::Fatal(_))) {
            self.open = false;
        }
        r
    }

    async fn abort(&mut self) -> Result<(), Failure> {
        assert!(self.open, "abort outside a transaction");
        self.calls.push("abort".into());
        let r = self.abort.pop_front().unwrap_or(Ok(()));
        if !matches!(r, Err(Failure::Retriable(_))) {
            self.open = false;
        }
        r
    }
}

fn events(n: usize) -> Vec<CanonicalEvent> {
    (0..n)
        .filter_map(|i| {
            let item = json!({
                "paymentId": format!("00000000-0000-4000-8000-{i:012}"),
                "paymentState": "COMPLETED",
                "lastStateUpdatedAt": "2026-11-21T10:00:00Z"
            });
            payment("acme", &item, Via::default(), Utc::now()).ok()
        })
        .collect()
}

fn position() -> EventRecord {
    EventRecord { key: "pd".into(), value: b"{\"cursor\":\"x\"}".to_vec(), headers: vec![] }
}

/// The page's outcome, checking that `committed` says whether a commit succeeded.
async fn run(tx: &mut Scripted, events: &[CanonicalEvent]) -> Result<BatchOutcome, Ended> {
    let page = commit_page(tx, events, &position(), "events", &CancellationToken::new()).await?;
    assert_eq!(
        page.committed,
        page.batch.events.iter().all(|e| e.outcome.is_settled())
            && !tx.open
            && tx.calls.last().map(String::as_str) == Some("commit")
    );
    Ok(page.batch)
}

fn too_large() -> RecordFailure {
    RecordFailure::Permanent { code: "MessageSizeTooLarge".into(), reason: "too large".into() }
}

#[tokio::test]
async fn a_page_commits_its_events_then_its_position_in_one_transaction() {
    let events = events(3);
    let mut tx = Scripted::default();
    let outcome = run(&mut tx, &events).await;
    assert_eq!(outcome.map(|o| o.is_delivered()), Ok(true));
    assert_eq!(tx.calls, ["begin", "send 4", "commit"]);
    let targets: Vec<_> = tx.sent[0].iter().map(|o| o.target).collect();
    assert_eq!(targets, [Target::Events, Target::Events, Target::Events, Target::State]);
    assert_eq!(tx.sent[0][3].record.key, "pd");
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_times_out_is_committed_again_never_reported_as_retry() {
    let events = events(2);
    let mut tx = Scripted {
        commit: VecDeque::from([
            Err(Failure::Retriable("timed out".into())),
            Err(Failure::Retriable("timed out".into())),
        ]),
        ..Default::default()
    };
    let outcome = run(&mut tx, &events).await;
    assert_eq!(outcome.map(|o| o.is_delivered()), Ok(true));
    assert_eq!(tx.calls, ["begin", "send 3", "commit", "commit", "commit"]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_the_commit_is_in_doubt_is_in_doubt_not_retry() {
    let events = events(1);
    let mut tx = Scripted {
        commit: std::iter::repeat_with(|| Err(Failure::Retriable("timed out".into()))).take(100).collect(),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(FINISH_RETRY_PAUSE * 3).await;
        stopper.cancel();
    });
    let outcome = commit_page(&mut tx, &events, &position(), "events", &stop).await.map(|p| p.batch);
    assert_eq!(outcome, Err(Ended::InDoubt));
    assert!(!tx.calls.contains(&"abort".to_owned()), "{:?}", tx.calls);
}

#[tokio::test]
async fn an_abortable_commit_is_aborted_and_every_event_is_retry() {
    let events = events(2);
    let mut tx = Scripted {
        commit: VecDeque::from([Err(Failure::Abortable("coordinator lost the transaction".into()))]),
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 3", "commit", "abort"]);
    assert!(outcome.events.iter().all(|e| matches!(&e.outcome, Outcome::Retry(r) if r.contains("coordinator"))));
}

#[tokio::test]
async fn a_permanently_refused_event_goes_to_the_dlq_inside_the_next_attempt() {
    let events = events(3);
    let refused = events[1].key();
    let mut tx = Scripted { send: VecDeque::from([vec![(refused.clone(), too_large())]]), ..Default::default() };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 4", "abort", "begin", "send 4", "commit"]);
    let second = &tx.sent[1];
    let targets: Vec<_> = second.iter().map(|o| o.target).collect();
    assert_eq!(targets, [Target::Events, Target::Dlq, Target::Events, Target::State]);
    let dlq = &second[1].record;
    assert_eq!(dlq.key, refused);
    assert!(dlq.headers.contains(&(ERROR_CODE_HEADER, "MessageSizeTooLarge".into())));
    assert!(dlq.headers.contains(&(ORIGINAL_TOPIC_HEADER, "events".into())));
    assert!(dlq.headers.contains(&(REASON_HEADER, "too large".into())));
    assert!(dlq.headers.iter().any(|(k, v)| *k == "ce_id" && *v == events[1].id.to_string()));
    let outcomes: Vec<_> = outcome.events.iter().map(|e| e.outcome.clone()).collect();
    assert_eq!(outcomes, [Outcome::Delivered, Outcome::Rejected("too large".into()), Outcome::Delivered]);
    assert!(outcome.events.iter().all(|e| e.outcome.is_settled()));
}

#[tokio::test]
async fn an_event_over_the_topics_limit_goes_to_the_dlq_from_the_first_attempt() {
    // The broker would refuse its batch, and librdkafka would abort the transaction and
    // report every record purged: the event must never be sent to the events topic.
    let events = events(3);
    let bytes = |i: usize| EventRecord::from_event(&events[i], ValueFormat::Json).map(|r| r.batch_bytes()).unwrap_or(0);
    let limit = bytes(0).max(bytes(2));
    let mut big = events.clone();
    big[1].data.references.insert("internal_id".into(), "x".repeat(limit));
    let mut tx = Scripted { limits: Some(Limits { events: limit, dlq: 10 * limit }), ..Default::default() };
    let Ok(outcome) = run(&mut tx, &big).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 4", "commit"]);
    let targets: Vec<_> = tx.sent[0].iter().map(|o| o.target).collect();
    assert_eq!(targets, [Target::Events, Target::Dlq, Target::Events, Target::State]);
    assert!(tx.sent[0][1].record.headers.contains(&(ERROR_CODE_HEADER, TOO_LARGE.into())));
    assert!(matches!(&outcome.events[1].outcome, Outcome::Rejected(r) if r.contains("max.message.bytes")));
    assert!(outcome.events.iter().all(|e| e.outcome.is_settled()));
}

#[tokio::test]
async fn an_event_over_the_dlqs_limit_too_leaves_the_page_unsettled_without_a_transaction() {
    let events = events(2);
    let mut tx = Scripted { limits: Some(Limits { events: 10, dlq: 10 }), ..Default::default() };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert!(tx.calls.is_empty(), "nothing is sent: {:?}", tx.calls);
    assert!(outcome.events.iter().all(|e| matches!(&e.outcome, Outcome::Retry(r) if r.contains("nowhere"))));
}

#[tokio::test]
async fn when_the_dlq_refuses_too_the_page_is_retry_and_the_loop_ends() {
    let events = events(2);
    let refused = events[0].key();
    let mut tx = Scripted {
        send: VecDeque::from([vec![(refused.clone(), too_large())], vec![(refused, too_large())]]),
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 3", "abort", "begin", "send 3", "abort"]);
    assert!(outcome.events.iter().all(|e| matches!(e.outcome, Outcome::Retry(_))));
}

#[tokio::test]
async fn a_transient_send_failure_aborts_and_retries_the_page() {
    let events = events(2);
    let mut tx = Scripted {
        send: VecDeque::from([vec![(events[0].key(), RecordFailure::Transient("broker down".into()))]]),
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 3", "abort"]);
    assert!(outcome.events.iter().all(|e| matches!(&e.outcome, Outcome::Retry(r) if r.contains("broker down"))));
}

#[tokio::test]
async fn a_refused_position_aborts_the_page() {
    let events = events(1);
    let mut tx = Scripted { send: VecDeque::from([vec![("pd".to_owned(), too_large())]]), ..Default::default() };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 2", "abort"]);
    assert!(outcome.events.iter().all(|e| matches!(e.outcome, Outcome::Retry(_))));
}

#[tokio::test(start_paused = true)]
async fn fencing_ends_the_writer_wherever_it_happens() {
    let events = events(1);
    let fenced = || Err(Failure::Fatal("fenced by a newer instance".into()));
    let mut at_begin = Scripted { begin: VecDeque::from([fenced()]), ..Default::default() };
    let mut at_commit = Scripted { commit: VecDeque::from([fenced()]), ..Default::default() };
    let mut after_timeout = Scripted {
        commit: VecDeque::from([Err(Failure::Retriable("timed out".into())), fenced()]),
        ..Default::default()
    };
    let mut at_abort = Scripted {
        commit: VecDeque::from([Err(Failure::Abortable("x".into()))]),
        abort: VecDeque::from([fenced()]),
        ..Default::default()
    };
    for tx in [&mut at_begin, &mut at_commit, &mut after_timeout, &mut at_abort] {
        assert_eq!(run(tx, &events).await, Err(Ended::Fatal("fenced by a newer instance".into())), "{:?}", tx.calls);
    }
}

#[tokio::test(start_paused = true)]
async fn an_abort_that_times_out_is_aborted_again() {
    let events = events(1);
    let mut tx = Scripted {
        send: VecDeque::from([vec![(events[0].key(), RecordFailure::Transient("x".into()))]]),
        abort: VecDeque::from([Err(Failure::Retriable("timed out".into()))]),
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 2", "abort", "abort"]);
    assert!(outcome.events.iter().all(|e| matches!(e.outcome, Outcome::Retry(_))));
}

#[tokio::test]
async fn a_begin_that_fails_retriably_commits_nothing() {
    let events = events(1);
    let mut tx = Scripted {
        begin: VecDeque::from([Err(Failure::Retriable("coordinator loading".into()))]),
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin"]);
    assert!(outcome.events.iter().all(|e| matches!(e.outcome, Outcome::Retry(_))));
}

#[tokio::test]
async fn an_abort_that_fails_for_good_ends_the_writer() {
    let events = events(1);
    let mut tx = Scripted {
        commit: VecDeque::from([Err(Failure::Abortable("x".into()))]),
        abort: VecDeque::from([Err(Failure::Abortable("invalid state".into()))]),
        ..Default::default()
    };
    let outcome = run(&mut tx, &events).await;
    assert!(matches!(&outcome, Err(Ended::Fatal(r)) if r.contains("invalid state")), "{outcome:?}");
    assert_eq!(tx.calls, ["begin", "send 2", "commit", "abort"]);
}

#[tokio::test]
async fn an_empty_page_commits_its_position_alone_and_says_so() {
    let mut tx = Scripted::default();
    let page = commit_page(&mut tx, &[], &position(), "events", &CancellationToken::new()).await;
    assert_eq!(page.map(|p| p.committed), Ok(true));
    let mut refused = Scripted { commit: VecDeque::from([Err(Failure::Abortable("x".into()))]), ..Default::default() };
    let page = commit_page(&mut refused, &[], &position(), "events", &CancellationToken::new()).await;
    assert_eq!(page.map(|p| p.committed), Ok(false));
}

#[tokio::test]
async fn a_topic_refusal_aborts_the_page_without_dead_letters_and_tells_the_writer() {
    let events = events(3);
    let refusal = RecordFailure::TopicRefused("InvalidTimestamp".into());
    let failures = events.iter().map(|e| (e.key(), refusal.clone())).collect();
    let mut tx = Scripted { send: VecDeque::from([failures]), ..Default::default() };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 4", "abort"], "no second attempt to the DLQ");
    assert_eq!(tx.topic_refusals, ["InvalidTimestamp"]);
    assert_eq!(tx.dead_letter_asks, 0, "a topic refusal is no record's fault: not counted");
    assert!(
        outcome
            .events
            .iter()
            .all(|e| matches!(&e.outcome, Outcome::Retry(r) if r.contains("the topic refuses records")))
    );
    assert!(tx.delivered_sources.is_empty());
}

#[tokio::test]
async fn a_topic_refusal_of_the_position_alone_pauses_too() {
    let events = events(1);
    let mut tx = Scripted {
        send: VecDeque::from([vec![("pd".to_owned(), RecordFailure::TopicRefused("TopicAuthorizationFailed".into()))]]),
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 2", "abort"]);
    assert_eq!(tx.topic_refusals, ["TopicAuthorizationFailed"]);
    assert!(!outcome.events[0].outcome.is_settled());
}

#[tokio::test]
async fn with_the_dlq_breaker_open_a_refused_event_leaves_the_page_retry_not_dead_lettered() {
    let events = events(3);
    let mut tx = Scripted {
        send: VecDeque::from([vec![(events[1].key(), too_large())]]),
        breaker_open: true,
        ..Default::default()
    };
    let Ok(outcome) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.calls, ["begin", "send 4", "abort"], "no attempt with a DLQ record");
    assert_eq!(tx.dead_letter_asks, 1);
    assert!(outcome.events.iter().all(|e| matches!(&e.outcome, Outcome::Retry(r) if r.contains("DLQ breaker open"))));
}

#[tokio::test]
async fn with_the_dlq_breaker_open_an_event_over_the_limit_is_sent_to_the_events_topic_as_a_probe() {
    let events = events(2);
    let bytes = EventRecord::from_event(&events[0], ValueFormat::Json).map(|r| r.batch_bytes()).unwrap_or(0);
    let mut tx = Scripted {
        limits: Some(Limits { events: bytes.saturating_sub(1), dlq: 10 * bytes }),
        breaker_open: true,
        ..Default::default()
    };
    // The broker accepts them (the limit was raised since it was read): the page commits.
    let outcome = run(&mut tx, &events).await;
    assert_eq!(outcome.map(|o| o.is_delivered()), Ok(true));
    let targets: Vec<_> = tx.sent[0].iter().map(|o| o.target).collect();
    assert_eq!(targets, [Target::Events, Target::Events, Target::State]);
    assert_eq!(tx.delivered_sources.len(), 2, "the accepted events are reported (they close the breaker)");
}

#[tokio::test]
async fn a_committed_page_reports_the_sources_of_its_delivered_events_not_its_dead_letters() {
    let events = events(3);
    let mut tx = Scripted { send: VecDeque::from([vec![(events[1].key(), too_large())]]), ..Default::default() };
    let Ok(_) = run(&mut tx, &events).await else { panic!("ended") };
    assert_eq!(tx.delivered_sources, [events[0].source.clone(), events[2].source.clone()]);
    assert_eq!(tx.dead_letter_asks, 1);
}
