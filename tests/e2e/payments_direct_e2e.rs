//! The Payments Direct source end to end: the sandbox's search, a real broker, `paybridge
//! run` as a process. Every state change in a window reaches Kafka page by page, the
//! position is committed per page and a restart resumes after the last settled page, failed
//! payments carry their error details, and idle cycles back off.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use paybridge::event::{UpstreamIdentity, event_id};
use serde_json::Value;
use support::payments_direct::{drive_lifecycles, wait_caught_up};
use support::process::{Paybridge, eventually};
use support::sandbox::Sandbox;
use support::{Broker, Record, read_records as read};

const ACCOUNT: &str = "pd-acct";

struct Setup {
    sandbox: Sandbox,
    broker: Broker,
    topic: String,
    state: String,
    config: String,
}

async fn setup(source_extra: &str) -> Setup {
    setup_timed("interval = \"1s\"\nmax_idle_interval = \"2s\"", source_extra).await
}

/// [`setup`] with other `interval` / `max_idle_interval` lines.
async fn setup_timed(timing: &str, source_extra: &str) -> Setup {
    setup_on(Broker::start(), timing, source_extra).await
}

/// [`setup`] on a broker of the test's own (a test that stops or restarts it).
async fn setup_own(source_extra: &str) -> Setup {
    setup_on(Broker::start_own(), "interval = \"1s\"\nmax_idle_interval = \"2s\"", source_extra).await
}

async fn setup_on(broker: Broker, timing: &str, source_extra: &str) -> Setup {
    setup_with(paybridge_sandbox::Scenario::default(), broker, timing, source_extra).await
}

/// [`setup_on`] with a sandbox scenario of the test's own.
async fn setup_with(scenario: paybridge_sandbox::Scenario, broker: Broker, timing: &str, source_extra: &str) -> Setup {
    let sandbox = Sandbox::start(scenario).await;
    let topic = broker.new_topic("pd-events", 3);
    let dlq = broker.new_topic("pd-dlq", 1);
    let state = broker.new_topic("pd-state", 1);
    let settings = format!("{timing}\nsafety_lag = \"1s\"\nstart_from = \"10m\"\nbackoff_max = \"1s\"\n{source_extra}");
    let source = support::sources::payments_direct(&sandbox, ACCOUNT, &settings);
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state) + &source;
    Setup { sandbox, broker, topic, state, config }
}

/// The searches the sandbox served: (`id`, status) in order; `id` is `after <paymentId>`
/// for a later page.
async fn searches(sb: &Sandbox) -> Vec<(Option<String>, u64)> {
    sb.ledger("kind=request&provider=payments_direct")
        .await
        .iter()
        .filter(|e| e["endpoint"] == "payments_direct.search")
        .map(|e| (e["id"].as_str().map(str::to_owned), e["status"].as_u64().unwrap_or(0)))
        .collect()
}

/// Every (paymentId, state, lastStateUpdatedAt) the sandbox has for `ids` now.
async fn current_ids(sb: &Sandbox, ids: &[String]) -> HashSet<String> {
    let token = sb.pd_token().await;
    let mut out = HashSet::new();
    for id in ids {
        let p: Value = sb.get_json(&format!("/v3/payments/{id}"), Some(&token)).await;
        let state = p["paymentState"].as_str().unwrap_or_default().to_owned();
        let at = p["lastStateUpdatedAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let identity = UpstreamIdentity::PaymentsDirectState { payment_id: id.clone(), state, updated_at: at };
        out.insert(event_id(ACCOUNT, &identity).to_string());
    }
    out
}

/// The events the source has published so far (its metric).
fn published(admin_port: u16) -> f64 {
    support::ripplenet::metrics(admin_port)
        .lines()
        .find(|l| l.starts_with("paybridge_events_published_total{source=\"pd\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Waits until the source has published something and then nothing more for 3 s (its
/// cycles find no news). tansu 0.6.0's storage task can panic when offsets are listed while
/// the same partition is written to, so the tests read the topic only once it is quiet.
async fn wait_quiet(admin_port: u16) {
    let published = || published(admin_port);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (mut last, mut since) = (published(), std::time::Instant::now());
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = published();
        if now != last {
            (last, since) = (now, std::time::Instant::now());
        } else if last > 0.0 && since.elapsed() >= Duration::from_secs(3) {
            return;
        }
    }
    panic!("the source did not settle within 120 s ({last} published)");
}

/// Every record of `topic` with the distinct event ids among them, read once the source is
/// quiet (up to the high watermarks, which are stable then).
async fn records_when_quiet(broker: Broker, topic: String, admin_port: u16) -> (Broker, Vec<Record>, HashSet<String>) {
    wait_quiet(admin_port).await;
    tokio::task::spawn_blocking(move || {
        let records = broker.read_to_end(&topic, Duration::from_secs(240));
        let found = ids(&records);
        (broker, records, found)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The distinct event ids in `topic`, read once the source is quiet.
async fn ids_when_quiet(broker: Broker, topic: String, admin_port: u16) -> (Broker, HashSet<String>) {
    let (broker, _, found) = records_when_quiet(broker, topic, admin_port).await;
    (broker, found)
}

fn ids(records: &[Record]) -> HashSet<String> {
    records.iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_7_over_100_payments_reads_one_window_of_15_pages_and_publishes_all() {
    let s = setup("page_size = 7").await;
    let created = s.sandbox.pd_create(100).await;
    assert_eq!(created.len(), 100);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the safety lag
    let bridge = Paybridge::start(&s.config);
    let expected = current_ids(&s.sandbox, &created).await;
    let (_broker, found) = ids_when_quiet(s.broker, s.topic.clone(), bridge.admin_port).await;
    assert_eq!(found, expected, "every payment's current state, with its deterministic id");
    let served = searches(&s.sandbox).await;
    let window: Vec<&(Option<String>, u64)> = served.iter().take(15).collect();
    assert!(window.iter().all(|(_, status)| *status == 200), "{served:?}");
    assert!(
        window[0].0.is_none() && window[1..].iter().all(|(id, _)| id.is_some()),
        "one window, 15 pages: {served:?}"
    );
    assert!(served.get(15).is_none_or(|(id, _)| id.is_none()), "the 16th search starts a new window: {served:?}");
    // The committed position is exported: once caught up it is the last window's end, a
    // safety lag and an idle wait or so behind now (start_from was 10 minutes back).
    let metrics = support::ripplenet::metrics(bridge.admin_port);
    let line = metrics.lines().find(|l| l.starts_with("paybridge_cursor_position_timestamp_seconds{source=\"pd\"}"));
    let position: f64 = line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_default();
    let behind = chrono::Utc::now().timestamp() as f64 - position;
    assert!((0.0..30.0).contains(&behind), "the position is {behind} s behind now");
    // The position written past them is the cursor source's acknowledgement: every
    // published event counts as acknowledged, and each one's lag from the provider's time
    // of its state to the broker's confirmation is observed (created ≥ 1.1 s before start).
    let value = |name: &str| {
        metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let published = value("paybridge_events_published_total{source=\"pd\"}").unwrap_or_default();
    assert_eq!(published, expected.len() as f64);
    assert_eq!(value("paybridge_events_acked_total{source=\"pd\"}"), Some(published), "{metrics}");
    let lags = value("paybridge_end_to_end_lag_seconds_count{source=\"pd\"}").unwrap_or_default();
    let lag_sum = value("paybridge_end_to_end_lag_seconds_sum{source=\"pd\"}").unwrap_or_default();
    assert_eq!(lags, published, "{metrics}");
    let mean = lag_sum / lags;
    assert!((1.0..60.0).contains(&mean), "mean end-to-end lag {mean} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_window_resumes_after_the_last_settled_page() {
    let s = setup("page_size = 7").await;
    let created = s.sandbox.pd_create(100).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Slow searches: the process is killed while the window is being read.
    let fault = serde_json::json!({"endpoint": "payments_direct.search", "action": "latency", "ms": 400});
    assert_eq!(s.sandbox.control("/_sandbox/faults", fault).await, reqwest::StatusCode::CREATED);
    let mut first = Paybridge::start(&s.config);
    eventually("six pages served", Duration::from_secs(30), || async { searches(&s.sandbox).await.len() >= 6 }).await;
    let _ = std::process::Command::new("kill").args(["-KILL", &first.pid().to_string()]).status();
    let _ = first.stop();
    let first_run = searches(&s.sandbox).await;

    // The committed position: the window and the pages settled in it.
    let state_line = format!("state_topic = \"{}\"\n", s.state);
    let kafka = support::kafka_config_with(&s.broker, &s.topic, "unused-dlq", &state_line);
    let record = paybridge::sink::state::read_last_cursor(&kafka, "pd", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no position committed"));
    let position = paybridge::sources::payments_direct::position::Position::parse(&record.cursor)
        .unwrap_or_else(|e| panic!("{e}"));
    let settled = usize::try_from(position.pages).unwrap_or(0);
    assert!(settled >= 5 && position.before.is_some(), "killed mid-window after page 5 or later: {position:?}");

    support::ripplenet::clear_faults(&s.sandbox).await;
    let second = Paybridge::start(&s.config);
    eventually("the window finished", Duration::from_secs(30), || async {
        searches(&s.sandbox).await.len() >= first_run.len() + 15 - settled
    })
    .await;
    let served = searches(&s.sandbox).await;
    // The saved page token points after the last payment of the last settled page.
    let token = position.page_token.as_deref().unwrap_or_default();
    let after = paybridge_sandbox::payments_direct_store::PageKey::decode(token).map(|k| format!("after {}", k.key));
    assert!(after.is_some(), "a sandbox page token: {token}");
    assert_eq!(
        served[first_run.len()].0,
        after,
        "the restart asked for page {} (after the last settled one), not page 1: {served:?}",
        settled + 1
    );
    let expected = current_ids(&s.sandbox, &created).await;
    let (_broker, found) = ids_when_quiet(s.broker, s.topic.clone(), second.admin_port).await;
    assert_eq!(found, expected, "nothing missing after the restart (duplicates allowed)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_declined_and_returned_payments_carry_their_error_details() {
    let s = setup("").await;
    let created = s.sandbox.pd_create(4).await;
    let walks: [&[&str]; 4] = [
        &["VALIDATING", "FAILED"],
        &["VALIDATING", "DECLINED"],
        &["VALIDATING", "TRANSFERRING", "COMPLETED", "RETURNED"],
        &["VALIDATING", "TRANSFERRING", "COMPLETED"],
    ];
    for (id, walk) in created.iter().zip(walks) {
        for to in walk {
            assert!(s.sandbox.pd_transition(id, to).await.is_success(), "{id} → {to}");
        }
    }
    let mut expected = current_ids(&s.sandbox, &created).await;
    for id in &created {
        expected.extend(entered_states(&s.sandbox, id).await.into_iter().map(|e| e.2));
    }
    // INITIATED (dated by initiatedAt) and every state entered after it.
    let every_state = created.len() + walks.iter().map(|w| w.len()).sum::<usize>();
    assert_eq!(expected.len(), every_state - created.len(), "the current state is the last one entered");
    let fetched = || async {
        let ledger = s.sandbox.ledger("kind=request&provider=payments_direct").await;
        ledger.iter().filter(|e| e["endpoint"] == "payments_direct.get").count()
    };
    let own = fetched().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _bridge = Paybridge::start(&s.config);
    let (_broker, records) = read(s.broker, s.topic.clone(), every_state).await;
    assert_eq!(fetched().await - own, 3, "one GET per payment shown failed, declined or returned");
    let found = ids(&records);
    assert!(expected.is_subset(&found), "every state each payment passed through");
    assert_eq!(found.len(), every_state, "and its first one");
    for record in &records {
        let data = &record.json()["data"];
        let state = data["provider_state"].as_str().unwrap_or_default();
        let errors = data.get("errors");
        if ["FAILED", "DECLINED", "RETURNED"].contains(&state) {
            let first = errors.and_then(|e| e.get(0)).cloned().unwrap_or_default();
            assert!(
                first["code"].is_string() && first["description"].is_string(),
                "{state} carries its errors: {data}"
            );
        } else {
            assert!(errors.is_none(), "no details for {state}: {data}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_that_find_nothing_double_the_wait_up_to_max_idle_interval() {
    let s = setup_timed("interval = \"1s\"\nmax_idle_interval = \"4s\"", "").await;
    let _bridge = Paybridge::start(&s.config);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let times = s.sandbox.request_times("payments_direct", "payments_direct.search").await;
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Empty cycles: 2 s, then 4 s (the cap), 4 s, …
    assert!(gaps.len() >= 2, "{gaps:?}");
    // (The first cycle also opens the state producer's connection: up to ~1 s more.)
    assert!((1900..3600).contains(&gaps[0]), "first idle wait doubles the 1 s interval: {gaps:?}");
    assert!(gaps[1..].iter().all(|g| (3900..5000).contains(g)), "then the 4 s cap: {gaps:?}");
}

/// A Payments Direct webhook body as Ripple sends it (the sandbox's shape).
fn transition(payment_id: &str, state: &str) -> Value {
    serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "eventType": "PAYMENT_STATE_TRANSITION",
        "eventVersion": 1,
        "eventData": {"paymentId": payment_id, "paymentState": state}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_answer_200_after_commit_with_the_search_paths_id_400_when_malformed_503_while_the_broker_is_down() {
    // Searches once at start, then not for an hour: what arrives later comes by webhook.
    let mut s = setup_on(
        Broker::start_own(),
        "interval = \"1h\"\nmax_idle_interval = \"1h\"",
        "[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/pd\"\ncommit_timeout = \"2s\"",
    )
    .await;
    let bridge = Paybridge::start(&s.config);
    let url = format!("{}/hooks/pd", bridge.intake());
    let created = s.sandbox.pd_create(2).await;
    for to in ["VALIDATING", "FAILED"] {
        assert!(s.sandbox.pd_transition(&created[0], to).await.is_success());
    }
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.post(&url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(post(transition(&created[0], "FAILED")).await, 200);
    assert_eq!(post(transition(&created[1], "INITIATED")).await, 200);
    let expected = current_ids(&s.sandbox, &created).await;
    let (broker, records) = read(s.broker, s.topic.clone(), 2).await;
    s.broker = broker;
    assert_eq!(ids(&records), expected, "the ids the search path gives these states");
    let failed = records.iter().map(|r| r.json()).find(|v| v["data"]["provider_state"] == "FAILED").unwrap_or_default();
    assert_eq!(failed["data"]["notification_type"], "PAYMENT_STATE_TRANSITION");
    assert!(failed["data"]["errors"][0]["code"].is_string(), "failure details: {failed}");

    let unknown = transition(&uuid::Uuid::new_v4().to_string(), "COMPLETED");
    assert_eq!(post(unknown).await, 200, "a payment the provider does not know: 200, counted");
    let other = serde_json::json!({"id": "n", "eventType": "QUOTE_EXPIRED", "eventVersion": 1, "eventData": {}});
    assert_eq!(post(other).await, 200, "another event type: 200, ignored");
    for bad in [
        serde_json::json!({"msg_id": "x"}),
        serde_json::json!({"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {}}),
    ] {
        assert_eq!(post(bad).await, 400);
    }
    let text = support::ripplenet::metrics(bridge.admin_port);
    for line in [
        "paybridge_webhook_ignored_total{source=\"pd\"} 1",
        "paybridge_webhook_rejected_total{source=\"pd\",reason=\"malformed\"} 2",
        "paybridge_webhook_unknown_total{source=\"pd\"} 1",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }

    let mut big = transition(&created[1], "INITIATED");
    big["eventData"]["pad"] = Value::String("x".repeat(20_000));
    assert_eq!(post(big).await, 413, "more than 16 KiB");

    s.broker.stop();
    assert!(s.sandbox.pd_transition(&created[1], "VALIDATING").await.is_success());
    assert_eq!(post(transition(&created[1], "VALIDATING")).await, 503, "not committed while the broker is down");
}

/// The ids of every state the payment entered after it was created, from the sandbox's
/// transitions, with the time it entered each: [(state, updatedAt, id)].
async fn entered_states(sb: &Sandbox, payment_id: &str) -> Vec<(String, String, String)> {
    let token = sb.pd_token().await;
    let history: Value = sb.get_json(&format!("/v3/payments/{payment_id}/states"), Some(&token)).await;
    history["stateTransitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["updatedTo"].as_str()?.to_owned(), t["updatedAt"].as_str()?.to_owned())))
        .map(|(state, at)| {
            let id = state_id(payment_id, &state, &at);
            (state, at, id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivered_after_its_payment_moved_on_publishes_the_state_it_announced() {
    // Searches once at start, then not for an hour: what arrives later comes by webhook.
    let s = setup_on(
        Broker::start(),
        "interval = \"1h\"\nmax_idle_interval = \"1h\"",
        "[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/pd\"\ncommit_timeout = \"5s\"",
    )
    .await;
    let bridge = Paybridge::start(&s.config);
    eventually("the start-up search", Duration::from_secs(30), || async { !searches(&s.sandbox).await.is_empty() })
        .await;
    let url = format!("{}/hooks/pd", bridge.intake());
    // Two payments go INITIATED → VALIDATING → TRANSFERRING; VALIDATING's webhook comes only
    // now (a retry after a 503, or delivered out of order).
    let created = s.sandbox.pd_create(2).await;
    for id in &created {
        for to in ["VALIDATING", "TRANSFERRING"] {
            assert!(s.sandbox.pd_transition(id, to).await.is_success());
        }
    }
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.post(&url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    let mut entered = Vec::new();
    for id in &created {
        let states = entered_states(&s.sandbox, id).await;
        assert_eq!(states.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["VALIDATING", "TRANSFERRING"]);
        entered.push(states);
    }
    let expected: HashSet<String> = entered.iter().flatten().map(|e| e.2.clone()).collect();
    // paybridge's reads of the transitions (the sandbox's ledger; the test's own are above).
    let reads = || async {
        s.sandbox
            .ledger("kind=request&provider=payments_direct")
            .await
            .iter()
            .filter(|e| e["endpoint"] == "payments_direct.states")
            .count()
    };
    let before = reads().await;
    // The first announces the state with its time (as the sandbox sends it), the second the
    // state alone: both are answered only once VALIDATING and TRANSFERRING are in Kafka.
    let mut with_time = transition(&created[0], "VALIDATING");
    with_time["eventData"]["lastStateUpdatedAt"] = Value::String(entered[0][0].1.clone());
    assert_eq!(post(with_time).await, 200);
    assert_eq!(post(transition(&created[1], "VALIDATING")).await, 200);
    assert_eq!(reads().await - before, 2, "one transitions read per webhook whose payment had moved on");
    let (_broker, records) = read(s.broker, s.topic.clone(), 4).await;
    assert_eq!(ids(&records), expected, "the announced state and the later one, with the search path's ids");
    assert_eq!(records.len(), 4, "each once");
    for id in &created {
        let states: Vec<String> = records
            .iter()
            .map(|r| r.json())
            .filter(|v| v["data"]["payment_id"] == id.as_str())
            .map(|v| v["data"]["provider_state"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(states, ["VALIDATING", "TRANSFERRING"], "in the order the provider recorded them");
    }

    // A webhook whose state is the payment's current one costs no transitions read.
    let before = reads().await;
    assert_eq!(post(transition(&created[0], "TRANSFERRING")).await, 200);
    assert_eq!(reads().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_answer_lost_while_its_payments_move_on_loses_no_state() {
    let s = setup("").await;
    let bridge = Paybridge::start(&s.config);
    eventually("the start-up search", Duration::from_secs(30), || async { !searches(&s.sandbox).await.is_empty() })
        .await;
    // Every search answer is lost from now on (the provider serves the page, the answer
    // never arrives), until a search whose window holds the new payments went unanswered.
    let lost = serde_json::json!({"endpoint": "payments_direct.search", "action": "lost_response"});
    assert_eq!(s.sandbox.control("/_sandbox/faults", lost).await, reqwest::StatusCode::CREATED);
    let payments = s.sandbox.pd_create(5).await;
    let created_at = chrono::Utc::now();
    let initiated = current_ids(&s.sandbox, &payments).await;
    eventually("a lost search over the new payments", Duration::from_secs(30), || async {
        s.sandbox.ledger("kind=search_window&provider=payments_direct").await.iter().any(|w| {
            let end = w["id"].as_str().and_then(|id| id.split("..").nth(1));
            end.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some_and(|end| end > created_at)
        })
    })
    .await;
    // They move on before the search is repeated (about a second later, the backoff), so
    // no search will show them INITIATED again.
    for id in &payments {
        assert!(s.sandbox.pd_transition(id, "VALIDATING").await.is_success(), "{id}");
    }
    let cleared = s.sandbox.http.delete(s.sandbox.url("/_sandbox/faults")).send().await;
    assert!(cleared.is_ok_and(|r| r.status().is_success()), "faults cleared");
    let mut expected = initiated.clone();
    expected.extend(current_ids(&s.sandbox, &payments).await);
    let (_broker, found) = ids_when_quiet(s.broker, s.topic.clone(), bridge.admin_port).await;
    let missing: Vec<&String> = expected.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "{} of {} states missing ({} INITIATED):\n{}",
        missing.len(),
        expected.len(),
        missing.iter().filter(|id| initiated.contains(**id)).count(),
        bridge.log()
    );
    let history_reads = history_reads(&s.sandbox).await;
    assert!(history_reads >= payments.len(), "each moved payment's history was read ({history_reads} reads)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_moved_three_times_between_two_searches_has_every_transition_in_order() {
    let s = setup_timed("interval = \"3s\"\nmax_idle_interval = \"3s\"", "").await;
    let bridge = Paybridge::start(&s.config);
    let created = s.sandbox.pd_create(3).await;
    let initiated = current_ids(&s.sandbox, &created).await;
    eventually("the INITIATED states published", Duration::from_secs(60), || async {
        published(bridge.admin_port) >= 3.0
    })
    .await;
    // Right after a search (the next one is 3 s away), each payment moves three times.
    let searched = searches(&s.sandbox).await.len();
    eventually("the next search", Duration::from_secs(30), || async { searches(&s.sandbox).await.len() > searched })
        .await;
    let searched = searches(&s.sandbox).await.len();
    for id in &created {
        for to in ["VALIDATING", "TRANSFERRING", "COMPLETED"] {
            assert!(s.sandbox.pd_transition(id, to).await.is_success(), "{id} → {to}");
        }
    }
    assert_eq!(searches(&s.sandbox).await.len(), searched, "no search between the moves");
    let mut expected: Vec<Vec<String>> = Vec::new();
    for id in &created {
        let states = entered_states(&s.sandbox, id).await;
        assert_eq!(
            states.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["VALIDATING", "TRANSFERRING", "COMPLETED"]
        );
        expected.push(states.into_iter().map(|e| e.2).collect());
    }
    let (_broker, records, found) = records_when_quiet(s.broker, s.topic.clone(), bridge.admin_port).await;
    let mut all: HashSet<String> = initiated;
    all.extend(expected.iter().flatten().cloned());
    assert_eq!(found, all, "INITIATED and every state passed through, with the search path's ids:\n{}", bridge.log());
    assert_eq!(records.len(), all.len(), "each once");
    for (id, states) in created.iter().zip(&expected) {
        let order: Vec<String> = records
            .iter()
            .filter(|r| r.json()["data"]["payment_id"] == id.as_str())
            .filter_map(|r| r.header("ce_id").map(str::to_owned))
            .skip(1)
            .collect();
        assert_eq!(&order, states, "in the order the provider recorded them (one partition per payment)");
    }
    let history_reads = history_reads(&s.sandbox).await;
    // The test read each history once itself (above).
    assert_eq!(history_reads - created.len(), created.len(), "one history read per payment shown past its first state");
}

/// The `GET /v3/payments/{id}/states` calls the sandbox answered (the test's own included).
async fn history_reads(sb: &Sandbox) -> usize {
    let ledger = sb.ledger("kind=request&provider=payments_direct").await;
    ledger.iter().filter(|e| e["endpoint"] == "payments_direct.states").count()
}

/// (paymentId, state, lastStateUpdatedAt) → its event id.
fn state_id(payment_id: &str, state: &str, at: &str) -> String {
    let updated_at = chrono::DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&chrono::Utc));
    let identity = UpstreamIdentity::PaymentsDirectState {
        payment_id: payment_id.to_owned(),
        state: state.to_owned(),
        updated_at,
    };
    event_id(ACCOUNT, &identity).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_lifecycles_with_two_sigkills_mid_cycle_lose_no_state_and_keep_ids_consistent() {
    let s = setup("page_size = 50").await;
    let n: usize = std::env::var("PAYBRIDGE_TEST_PD_PAYMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let created = s.sandbox.pd_create(n).await;
    assert_eq!(created.len(), n);
    let driver = tokio::spawn(drive_lifecycles(s.sandbox.url(""), created.clone()));
    let mut bridge = Paybridge::start(&s.config);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let _ = std::process::Command::new("kill").args(["-KILL", &bridge.pid().to_string()]).status();
        let _ = bridge.stop();
        bridge = Paybridge::start(&s.config);
    }
    driver.await.unwrap_or_else(|e| panic!("{e}"));
    wait_caught_up(&s.sandbox, chrono::Utc::now()).await;

    // Every state a search answered with, and every payment's final state, are in Kafka.
    let served = s.sandbox.get_json("/_sandbox/payments_direct/served", None).await;
    assert_eq!(served["complete"], true);
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut expected: HashSet<String> = served["served"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            let id = state_id(&text("paymentId"), &text("paymentState"), &text("lastStateUpdatedAt"));
            names.insert(
                id.clone(),
                format!("{} {} {}", text("paymentId"), text("paymentState"), text("lastStateUpdatedAt")),
            );
            id
        })
        .collect();
    expected.extend(current_ids(&s.sandbox, &created).await);
    let (_broker, records, found) = records_when_quiet(s.broker, s.topic.clone(), bridge.admin_port).await;
    let missing: Vec<&String> = expected.difference(&found).collect();
    if !missing.is_empty() {
        let log = bridge.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!(
            "found {} ids in {} records; bridge log tail:\n{}",
            found.len(),
            records.len(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(
        missing.is_empty(),
        "{} of {} states missing, e.g. {:?}",
        missing.len(),
        expected.len(),
        missing.iter().take(5).map(|id| names.get(*id).map_or(id.as_str(), String::as_str)).collect::<Vec<_>>()
    );

    // No two records of one (paymentId, state, time) carry different ids.
    let mut by_state: std::collections::HashMap<(String, String, String), HashSet<String>> = Default::default();
    for r in &records {
        let v = r.json();
        let key = (
            v["data"]["payment_id"].as_str().unwrap_or_default().to_owned(),
            v["data"]["provider_state"].as_str().unwrap_or_default().to_owned(),
            v["data"]["occurred_at"].as_str().unwrap_or_default().to_owned(),
        );
        by_state.entry(key).or_default().insert(r.header("ce_id").unwrap_or_default().to_owned());
    }
    let inconsistent: Vec<_> = by_state.iter().filter(|(_, ids)| ids.len() > 1).take(3).collect();
    assert!(inconsistent.is_empty(), "{inconsistent:?}");
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_stopped_mid_window_and_the_process_killed_loses_nothing() {
    let mut s = setup_own("page_size = 7").await;
    let created = s.sandbox.pd_create(100).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fault = serde_json::json!({"endpoint": "payments_direct.search", "action": "latency", "ms": 300});
    assert_eq!(s.sandbox.control("/_sandbox/faults", fault).await, reqwest::StatusCode::CREATED);
    let mut first = Paybridge::start(&s.config);
    eventually("four pages served", Duration::from_secs(30), || async { searches(&s.sandbox).await.len() >= 4 }).await;
    s.broker.stop();
    // Pages read now cannot be confirmed: the position must stay where the broker left it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = std::process::Command::new("kill").args(["-KILL", &first.pid().to_string()]).status();
    let _ = first.stop();
    s.broker.restart();
    support::ripplenet::clear_faults(&s.sandbox).await;

    let second = Paybridge::start(&s.config);
    let expected = current_ids(&s.sandbox, &created).await;
    let (_broker, found) = ids_when_quiet(s.broker, s.topic.clone(), second.admin_port).await;
    assert_eq!(found, expected, "every payment is in Kafka after the outage and the kill");
}

/// With webhooks on, a state reaches paybridge twice: by its webhook at once, and by the
/// search once the window passes it. Whichever path gets it confirmed first, the other does
/// not publish it again: 300 payments through three lifecycle steps, no faults, give one
/// record per state (a little slack for a webhook and a search meeting the same state at
/// the same moment), and every state is there. So that both paths are exercised whatever
/// the timing, 30 payments are created before paybridge listens and the provider does not
/// retry webhooks: their first state can only come from the search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_webhooks_and_searches_a_state_is_published_once() {
    let (admin_port, intake_port) = (support::free_port(), support::free_port());
    let mut scenario = paybridge_sandbox::Scenario::default();
    scenario.payments_direct.callback_url = Some(format!("http://127.0.0.1:{intake_port}/hooks/pd"));
    scenario.payments_direct.webhook_retry_interval = Duration::from_secs(1);
    scenario.payments_direct.webhook_max_retries = 0;
    let sandbox = Sandbox::start(scenario).await;
    let early = sandbox.pd_create(30).await;
    let broker = Broker::start();
    let topic = broker.new_topic("pd-once-events", 3);
    let (dlq, state) = (broker.new_topic("pd-once-dlq", 1), broker.new_topic("pd-once-state", 1));
    let settings = "interval = \"500ms\"\nmax_idle_interval = \"1s\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"\npage_size = 100\n\
                    [sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/pd\"\ncommit_timeout = \"5s\"";
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state)
        + &support::sources::payments_direct(&sandbox, ACCOUNT, settings);
    let bridge = Paybridge::spawn_on_ports(&config, &[], "info", (admin_port, intake_port));
    bridge.wait_for_log("paybridge started", Duration::from_secs(30));
    let mut created = sandbox.pd_create(270).await;
    created.extend(early);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        sandbox.control("/_sandbox/payments_direct/advance", serde_json::json!({"failure_rate": 0.1})).await;
    }
    let answered = || async {
        let ledger = sandbox.ledger("kind=webhook").await;
        let ok = |e: &&Value| e["status"].as_u64().is_some_and(|s| (200..300).contains(&s));
        ledger.iter().filter(|e| e["provider"] == "payments_direct").filter(ok).count()
    };
    // The first step alone moves all 300.
    eventually("the webhooks answered", Duration::from_secs(30), || async { answered().await >= 300 }).await;
    let current = current_ids(&sandbox, &created).await;
    let (_broker, records, found) = records_when_quiet(broker, topic, admin_port).await;
    let missing = current.difference(&found).count();
    assert_eq!(missing, 0, "current states missing from Kafka");
    let by_webhook = records.iter().filter(|r| r.json()["data"]["notification_id"].is_string()).count();
    assert!(by_webhook > 0 && by_webhook < records.len(), "both paths published: {by_webhook} of {}", records.len());
    let per_state = records.len() as f64 / found.len() as f64;
    println!("webhooks and searches: {} records for {} states ({per_state:.2} each)", records.len(), found.len());
    assert!(per_state <= 1.05, "{} records for {} states", records.len(), found.len());
}

/// Every state `ids` passed through (their first one included), by event id.
async fn every_state(sb: &Sandbox, ids: &[String], initiated: &HashSet<String>) -> HashSet<String> {
    let mut all = initiated.clone();
    for id in ids {
        all.extend(entered_states(sb, id).await.into_iter().map(|e| e.2));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_search_shows_60_s_after_its_time_is_published() {
    let mut scenario = paybridge_sandbox::Scenario::default();
    scenario.payments_direct.search_lag = Duration::from_secs(60);
    // The default overlap (2 minutes) and one-second windows: the windows are long past
    // these states when the search first shows them.
    let s = setup_with(scenario, Broker::start(), "interval = \"1s\"\nmax_idle_interval = \"2s\"", "").await;
    let bridge = Paybridge::start(&s.config);
    let created = s.sandbox.pd_create(2).await;
    let initiated = current_ids(&s.sandbox, &created).await;
    assert!(s.sandbox.pd_transition(&created[1], "VALIDATING").await.is_success());
    let expected = every_state(&s.sandbox, &created, &initiated).await;
    assert_eq!(expected.len(), 3);
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(published(bridge.admin_port), 0.0, "the search shows nothing for 60 s");
    let (_broker, found) = ids_when_quiet(s.broker, s.topic.clone(), bridge.admin_port).await;
    assert_eq!(found, expected, "every state, once the search shows it:\n{}", bridge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_10_s_ahead_of_the_providers_loses_nothing_and_shows_in_the_skew_metric() {
    // The provider's clock is 10 s behind paybridge's; safety_lag is 1 s and no overlap is
    // configured, so only the measured skew keeps windows from closing in its future.
    let scenario = paybridge_sandbox::Scenario { clock_offset_s: -10, ..Default::default() };
    let s = setup_with(scenario, Broker::start(), "interval = \"1s\"\nmax_idle_interval = \"1s\"", "overlap = \"0s\"")
        .await;
    let bridge = Paybridge::start(&s.config);
    let mut created = Vec::new();
    let mut initiated = HashSet::new();
    for round in 0..30 {
        let new = s.sandbox.pd_create(1).await;
        initiated.extend(current_ids(&s.sandbox, &new).await);
        if round % 2 == 0 {
            assert!(s.sandbox.pd_transition(&new[0], "VALIDATING").await.is_success());
        }
        created.extend(new);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let expected = every_state(&s.sandbox, &created, &initiated).await;
    assert_eq!(expected.len(), 45);
    let (_broker, found) = ids_when_quiet(s.broker, s.topic.clone(), bridge.admin_port).await;
    let missing = expected.difference(&found).count();
    assert_eq!(missing, 0, "{missing} of {} states missing:\n{}", expected.len(), bridge.log());
    let metrics = support::ripplenet::metrics(bridge.admin_port);
    let skew = metrics
        .lines()
        .find(|l| l.starts_with("paybridge_clock_skew_seconds{source=\"pd\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok());
    assert!(skew.is_some_and(|s| (9.0..=11.5).contains(&s)), "skew {skew:?}");
    assert!(bridge.log().contains("differs from the provider's"), "warned:\n{}", bridge.log());
}

/// A search that keeps answering empty pages with ever-new page tokens would spin for ever:
/// after 11 such pages the window stops with an error (counted), backs off and is read
/// again from its start; once the provider answers properly every payment is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_search_pages_with_ever_new_tokens_stop_the_window_backed_off_then_recover() {
    let s = setup("").await;
    let created = s.sandbox.pd_create(5).await;
    // Three rounds of 11 empty pages, each with a token never given before.
    let spinning = serde_json::json!({"endpoint": "payments_direct.search", "action": "body", "status": 200,
        "content_type": "application/json", "times": 33,
        "body": "{\"data\": [], \"page\": {\"size\": 0, \"lastPageToken\": \"t{n}\"}}"});
    assert_eq!(s.sandbox.control("/_sandbox/faults", spinning).await, reqwest::StatusCode::CREATED);
    let bridge = Paybridge::start(&s.config);
    let expected = current_ids(&s.sandbox, &created).await;
    let (mut broker, mut found) = (s.broker, HashSet::new());
    for _ in 0..30 {
        let (back, now) = ids_when_quiet(broker, s.topic.clone(), bridge.admin_port).await;
        (broker, found) = (back, now);
        if found == expected {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(found, expected, "every payment published after the loop");
    assert!(
        bridge.log().contains("pages 1 to 11 of the window were empty and each handed out a new page token"),
        "the loop is named"
    );
    let failures = support::ripplenet::metrics(bridge.admin_port);
    let counted = failures
        .lines()
        .find(|l| l.starts_with("paybridge_processing_failures_total{source=\"pd\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(counted.is_some_and(|n| n >= 3), "each stop counted: {failures}");
    // The 33 spinning answers came in rounds of 11, a backoff (1 s ± 20% here) between rounds.
    let mut times = s.sandbox.request_times("payments_direct", "payments_direct.search").await;
    times.truncate(34);
    let long_gaps: Vec<usize> =
        times.windows(2).enumerate().filter(|(_, w)| w[1] - w[0] >= 700).map(|(i, _)| i + 1).collect();
    assert_eq!(long_gaps, [11, 22, 33], "a backoff after each round of 11: {times:?}");
}

/// A webhook answered 503 while the broker was down, redelivered once Apache Kafka is back
/// (it takes seconds after a stop): the redelivery is answered 200 once the announced state
/// is committed — never before, never 503 for a committed state — and a late redelivery is
/// answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_redelivered_after_the_broker_returns_is_answered_200_once_committed() {
    let mut s = setup_on(
        Broker::start_own(),
        "interval = \"1h\"\nmax_idle_interval = \"1h\"",
        "[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/pd\"\ncommit_timeout = \"15s\"",
    )
    .await;
    let bridge = Paybridge::start(&s.config);
    let url = format!("{}/hooks/pd", bridge.intake());
    // Created after the start's search: only the webhook brings it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let created = s.sandbox.pd_create(1).await;
    assert!(s.sandbox.pd_transition(&created[0], "VALIDATING").await.is_success());
    let http = reqwest::Client::new();
    let body = transition(&created[0], "VALIDATING");
    let post = || {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move { http.post(&url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    s.broker.stop();
    assert_eq!(post().await, 503, "not committed while the broker is down");
    tokio::task::block_in_place(|| s.broker.restart());
    eventually("/readyz answers 200 again", Duration::from_secs(60), || async {
        support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/readyz").is_ok_and(|r| r.0 == 200)
    })
    .await;
    let asked = std::time::Instant::now();
    assert_eq!(post().await, 200, "the redelivery is answered 200 once committed:\n{}", bridge.log());
    println!("redelivery answered after {:?}", asked.elapsed());
    let expected = current_ids(&s.sandbox, &created).await;
    let (broker, records) = read(s.broker, s.topic.clone(), 1).await;
    s.broker = broker;
    assert!(expected.is_subset(&ids(&records)), "the announced state is in Kafka before the 200");
    let asked = std::time::Instant::now();
    assert_eq!(post().await, 200, "a late redelivery");
    assert!(asked.elapsed() < Duration::from_secs(3), "answered at once: {:?}", asked.elapsed());
}
