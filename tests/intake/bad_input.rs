//! The bad-input matrix of the webhook intake: one table of cases, each a request and the
//! status and refusal reason it must get. One `paybridge run` with a guarded RippleNet path
//! (allowlist behind a trusted proxy, shared token, HMAC signature) and an open Payments
//! Direct path. After the table: nothing wrong was published, nothing was acknowledged
//! before its event was in Kafka, no secret reached the log, and the process still serves.
//! To add a case, add a row to `cases()`.

use crate::support;

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::Broker;
use support::process::Paybridge;
use support::raw_http::{RawRequest, send};
use support::sandbox::Sandbox;

const TOKEN: &str = "tok-7f3a-never-logged";
const SIGNING: &str = "sig-91c2-never-logged";
const RN_SECRET: &str = "rn-client-secret-never-logged";
const PD_SECRET: &str = "pd-client-secret-never-logged";
const ALLOWED: &str = "203.0.113.7";

/// What each case's request is built from.
struct Ctx {
    rn_msg_id: String,
    pd_payment: String,
}

/// The RippleNet path's request, with every protection satisfied.
fn rn(body: impl Into<Vec<u8>>) -> RawRequest {
    let body = body.into();
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature = sign(&ts, &body, SIGNING);
    RawRequest::post("/hooks/rn", body)
        .header("content-type", "application/json")
        .header("x-forwarded-for", ALLOWED)
        .header("x-hook-token", TOKEN)
        .header("ripple-signature-timestamp", &ts)
        .header("ripple-signature", &signature)
}

fn pd(body: impl Into<Vec<u8>>) -> RawRequest {
    RawRequest::post("/hooks/pd", body).header("content-type", "application/json")
}

fn sign(ts: &str, body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `request` with header `name` removed, or replaced by `value`.
fn without(mut request: RawRequest, name: &str) -> RawRequest {
    request.headers.retain(|(n, _)| n != name);
    request
}
fn with(request: RawRequest, name: &str, value: &str) -> RawRequest {
    without(request, name).header(name, value)
}

/// The RippleNet request with its signature made at `ts` over `signed` (not the body).
fn rn_signed_as(body: &str, ts: i64, signed: &str, secret: &str) -> RawRequest {
    let ts = ts.to_string();
    let request = with(rn(body), "ripple-signature-timestamp", &ts);
    with(request, "ripple-signature", &sign(&ts, signed.as_bytes(), secret))
}

fn transition(payment: &str) -> Value {
    json!({"id": uuid::Uuid::new_v4().to_string(), "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1,
           "eventData": {"paymentId": payment, "paymentState": "INITIATED"}})
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

struct Case {
    name: &'static str,
    request: Box<dyn Fn(&Ctx) -> RawRequest>,
    status: u16,
    /// The `reason` label counted once on `paybridge_webhook_rejected_total`; None: nothing counted.
    reason: Option<&'static str>,
}

fn case(
    name: &'static str,
    status: u16,
    reason: Option<&'static str>,
    request: impl Fn(&Ctx) -> RawRequest + 'static,
) -> Case {
    Case { name, request: Box::new(request), status, reason }
}

fn msg(ctx: &Ctx) -> String {
    json!({"msg_id": ctx.rn_msg_id}).to_string()
}

fn cases() -> Vec<Case> {
    let now = || chrono::Utc::now().timestamp();
    vec![
        // RippleNet: the guarded path.
        case("rn: valid, signed, from an allowed caller", 200, None, |c| rn(msg(c))),
        case("rn: unknown msg_id", 200, None, |_| rn(json!({"msg_id": uuid::Uuid::new_v4()}).to_string())),
        case("rn: no X-Forwarded-For (the proxy is the caller)", 403, Some("forbidden"), |c| {
            without(rn(msg(c)), "x-forwarded-for")
        }),
        case("rn: caller outside the allowlist", 403, Some("forbidden"), |c| {
            with(rn(msg(c)), "x-forwarded-for", "198.51.100.1")
        }),
        case("rn: spoofed allowed address left of the real caller", 403, Some("forbidden"), |c| {
            with(rn(msg(c)), "x-forwarded-for", &format!("{ALLOWED}, 198.51.100.1"))
        }),
        case("rn: unreadable X-Forwarded-For", 403, Some("forbidden"), |c| {
            with(rn(msg(c)), "x-forwarded-for", "not-an-address")
        }),
        case("rn: token missing", 401, Some("bad_token"), |c| without(rn(msg(c)), "x-hook-token")),
        case("rn: token wrong", 401, Some("bad_token"), |c| with(rn(msg(c)), "x-hook-token", "tok-guess")),
        case("rn: token prefix", 401, Some("bad_token"), |c| with(rn(msg(c)), "x-hook-token", &TOKEN[..5])),
        case("rn: token sent twice", 401, Some("bad_token"), |c| rn(msg(c)).header("x-hook-token", TOKEN)),
        case("rn: signature missing", 401, Some("bad_signature"), |c| without(rn(msg(c)), "ripple-signature")),
        case("rn: timestamp missing", 401, Some("bad_signature"), |c| {
            without(rn(msg(c)), "ripple-signature-timestamp")
        }),
        case("rn: signed with another secret", 401, Some("bad_signature"), move |c| {
            rn_signed_as(&msg(c), now(), &msg(c), "other-secret")
        }),
        case("rn: signature over another body", 401, Some("bad_signature"), move |c| {
            rn_signed_as(&msg(c), now(), "{}", SIGNING)
        }),
        case("rn: signature not hex or base64", 401, Some("bad_signature"), |c| {
            with(rn(msg(c)), "ripple-signature", "%%%")
        }),
        case("rn: timestamp an hour old", 401, Some("stale_timestamp"), move |c| {
            rn_signed_as(&msg(c), now() - 3600, &msg(c), SIGNING)
        }),
        case("rn: timestamp an hour ahead", 401, Some("stale_timestamp"), move |c| {
            rn_signed_as(&msg(c), now() + 3600, &msg(c), SIGNING)
        }),
        case("rn: timestamp unparseable", 401, Some("bad_signature"), |c| {
            with(rn(msg(c)), "ripple-signature-timestamp", "yesterday")
        }),
        case("rn: body over 4 KiB", 413, Some("too_large"), |c| {
            rn(json!({"msg_id": c.rn_msg_id, "pad": "x".repeat(5000)}).to_string())
        }),
        case("rn: chunked body over 4 KiB", 413, Some("too_large"), |c| {
            let mut r = rn(json!({"msg_id": c.rn_msg_id, "pad": "x".repeat(5000)}).to_string());
            r.chunked = true;
            r
        }),
        case("rn: absurd Content-Length", 413, Some("too_large"), |c| {
            let mut r = rn(msg(c));
            r.content_length = Some("99999999999".into());
            r
        }),
        case("rn: negative Content-Length (the HTTP layer refuses it)", 400, None, |c| {
            let mut r = rn(msg(c));
            r.content_length = Some("-5".into());
            r
        }),
        case("rn: JSON nested 50 deep", 400, Some("too_deep"), |_| rn(nested(50))),
        case("rn: truncated JSON", 400, Some("malformed"), |c| rn(msg(c)[..10].to_owned())),
        case("rn: msg_id a number", 400, Some("malformed"), |_| rn(r#"{"msg_id": 12345}"#)),
        case("rn: msg_id not a UUID", 400, Some("malformed"), |_| rn(r#"{"msg_id": "payment-1"}"#)),
        case("rn: msg_id missing", 400, Some("malformed"), |_| rn(r#"{"uuid": "x"}"#)),
        case("rn: msg_id a 3,000-character string", 400, Some("malformed"), |_| {
            rn(json!({"msg_id": "a".repeat(3000)}).to_string())
        }),
        case("rn: duplicate msg_id keys", 400, Some("malformed"), |c| {
            rn(format!(r#"{{"msg_id": "{0}", "msg_id": "{0}"}}"#, c.rn_msg_id))
        }),
        case("rn: invalid UTF-8", 400, Some("malformed"), |_| rn(b"{\"msg_id\": \"\xff\xfe\"}".to_vec())),
        case("rn: empty body", 400, Some("malformed"), |_| rn("")),
        case("rn: JSON null", 400, Some("malformed"), |_| rn("null")),
        case("rn: an HTML error page", 400, Some("malformed"), |_| rn("<html><body>502 Bad Gateway</body></html>")),
        case("rn: GET instead of POST", 405, None, |c| {
            let mut r = rn(msg(c));
            r.method = "GET";
            r
        }),
        // Payments Direct: the open path, default limits.
        case("pd: valid transition", 200, None, |c| pd(transition(&c.pd_payment).to_string())),
        case("pd: unknown enum paymentState (the body's state is not trusted)", 200, None, |c| {
            let mut t = transition(&c.pd_payment);
            t["eventData"]["paymentState"] = json!("EXPLODED");
            pd(t.to_string())
        }),
        case("pd: unknown payment", 200, None, |_| pd(transition(&uuid::Uuid::new_v4().to_string()).to_string())),
        case("pd: paymentId not a UUID (a path traversal)", 400, Some("malformed"), |_| {
            pd(transition("../../v2/oauth/token").to_string())
        }),
        case("pd: another eventType", 200, None, |_| {
            pd(json!({"id": "n1", "eventType": "QUOTE_EXPIRED", "eventVersion": 1, "eventData": {}}).to_string())
        }),
        case("pd: paymentId missing", 400, Some("malformed"), |_| {
            pd(json!({"id": "n2", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {}})
                .to_string())
        }),
        case("pd: paymentId a number", 400, Some("malformed"), |_| {
            let mut t = transition("x");
            t["eventData"]["paymentId"] = json!(42);
            pd(t.to_string())
        }),
        case("pd: eventVersion a string", 400, Some("malformed"), |c| {
            let mut t = transition(&c.pd_payment);
            t["eventVersion"] = json!("1");
            pd(t.to_string())
        }),
        case("pd: eventVersion negative", 400, Some("malformed"), |c| {
            let mut t = transition(&c.pd_payment);
            t["eventVersion"] = json!(-1);
            pd(t.to_string())
        }),
        case("pd: eventData an array", 400, Some("malformed"), |_| {
            pd(json!({"id": "n3", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": []})
                .to_string())
        }),
        case("pd: id missing", 400, Some("malformed"), |c| {
            let mut t = transition(&c.pd_payment);
            t.as_object_mut().map(|o| o.remove("id"));
            pd(t.to_string())
        }),
        case("pd: a top-level array", 400, Some("malformed"), |c| pd(json!([transition(&c.pd_payment)]).to_string())),
        case("pd: body over 16 KiB", 413, Some("too_large"), |c| {
            let mut t = transition(&c.pd_payment);
            t["eventData"]["pad"] = json!("x".repeat(17_000));
            pd(t.to_string())
        }),
        case("pd: JSON nested 9 deep (default limit 8)", 400, Some("too_deep"), |_| pd(nested(9))),
        case("pd: invalid UTF-8", 400, Some("malformed"), |_| pd(b"{\"id\": \"\xc3\x28\"}".to_vec())),
    ]
}

/// The `paybridge_webhook_rejected_total` series of `source`: (reason, value).
fn refusals(admin_port: u16, source: &str) -> Vec<(String, u64)> {
    let prefix = format!("paybridge_webhook_rejected_total{{source=\"{source}\",reason=\"");
    support::ripplenet::metrics(admin_port)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (reason, value) = rest.split_once("\"} ")?;
            Some((reason.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn count(series: &[(String, u64)], reason: &str) -> u64 {
    series.iter().filter(|(r, _)| r == reason).map(|(_, v)| v).sum()
}

fn config(broker: &Broker, sandbox: &Sandbox, topic: &str, dlq: &str, state: &str) -> String {
    let base = support::base_config_with_state(broker, topic, dlq, state).replacen(
        "[intake]\n",
        "[intake]\nallow_unauthenticated = true\ntrusted_proxies = [\"127.0.0.1\"]\nbody_timeout = \"1s\"\nheader_timeout = \"1s\"\n",
        1,
    );
    base + &format!(
        r#"
[[sources]]
kind = "ripplenet"
name = "rn"
account = "acme"
base_url = "{base}"
allow_insecure_http = true
new_interval = "1h"
sent_interval = "1h"

[sources.auth]
token_url = "{base}/oauth/token"
client_id = "sandbox-client"
client_secret = "${{RN_SECRET}}"
audience = "urn:ripplenet:sandbox"

[sources.webhook]
enabled = true
path = "/hooks/rn"
commit_timeout = "5s"
allow = ["203.0.113.0/24"]
token = {{ header = "X-Hook-Token", value = "${{HOOK_TOKEN}}" }}
signature = {{ secret = "${{HOOK_SIGNING}}" }}

[[sources]]
kind = "payments_direct"
name = "pd"
account = "pd-acct"
base_url = "{base}"
allow_insecure_http = true
interval = "1h"
max_idle_interval = "1h"
start_from = "10m"

[sources.auth]
token_url = "{base}/v2/oauth/token"
client_id = "sandbox-client"
client_secret = "${{PD_SECRET}}"
audience = "urn:ripplexcurrent-test:sandbox"

[sources.webhook]
enabled = true
path = "/hooks/pd"
commit_timeout = "5s"
max_concurrency = 2
"#,
        base = sandbox.url(""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_reason_and_nothing_wrong_happens() {
    let mut scenario = paybridge_sandbox::Scenario::default();
    scenario.ripplenet.client_secret = RN_SECRET.into();
    scenario.payments_direct.client_secret = PD_SECRET.into();
    let sandbox = Sandbox::start(scenario).await;
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("bad-events", 3);
    let dlq = broker.new_topic("bad-dlq", 1);
    let state = broker.new_topic("bad-state", 1);
    let mut bridge = Paybridge::spawn_with_env(
        &config(&broker, &sandbox, &topic, &dlq, &state),
        &[("HOOK_TOKEN", TOKEN), ("HOOK_SIGNING", SIGNING), ("RN_SECRET", RN_SECRET), ("PD_SECRET", PD_SECRET)],
    );
    bridge.wait_for_log("paybridge started", Duration::from_secs(30));
    let intake: SocketAddr = ([127, 0, 0, 1], bridge.intake_port).into();
    let ctx = Ctx { rn_msg_id: sandbox.create(1).await.remove(0), pd_payment: sandbox.pd_create(1).await.remove(0) };

    let table = cases();
    assert!(table.len() >= 40, "the matrix has {} cases", table.len());
    let mut failures = Vec::new();
    for case in &table {
        let source = if case.name.starts_with("rn") { "rn" } else { "pd" };
        let before = refusals(bridge.admin_port, source);
        let request = (case.request)(&ctx);
        let answer = tokio::task::spawn_blocking(move || send(intake, &request))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let after = refusals(bridge.admin_port, source);
        let total = |s: &[(String, u64)]| s.iter().map(|(_, v)| v).sum::<u64>();
        let counted = total(&after) - total(&before);
        let expected_count = u64::from(case.reason.is_some());
        let reason_ok = case.reason.is_none_or(|r| count(&after, r) == count(&before, r) + 1);
        if answer.status != case.status || counted != expected_count || !reason_ok {
            failures.push(format!(
                "{}: got {} ({}) and {counted} refusal(s) counted; expected {} and {:?}",
                case.name, answer.status, answer.body, case.status, case.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));

    // A body that stalls: 408 after intake.body_timeout.
    let stalled = rn(msg(&ctx));
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(intake)?;
        stream.write_all(&stalled.head())?;
        stream.write_all(&stalled.body[..5])?;
        support::raw_http::read_response(&mut stream)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status, 408);
    assert_eq!(count(&refusals(bridge.admin_port, "rn"), "body_timeout"), 1);

    // Headers that never end: the connection is closed after intake.header_timeout.
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(intake).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let _ = stream.write_all(b"POST /hooks/pd HTTP/1.1\r\nhost: x\r\n");
        let _ = support::raw_http::read_response(&mut stream);
        started.elapsed()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(closed_after < Duration::from_secs(5), "slow headers held the connection {closed_after:?}");

    // Saturation: two stalled bodies hold the Payments Direct path's two slots; a third
    // call is answered 429 with Retry-After at once.
    let holders: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let r = pd("{\"id\": \"slow\"");
                let mut stream = TcpStream::connect(intake).unwrap_or_else(|e| panic!("{e}"));
                let _ = stream.write_all(&r.head());
                support::raw_http::read_response(&mut stream).map(|a| a.status).unwrap_or(0)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = pd(transition(&ctx.pd_payment).to_string());
    let answer = tokio::task::spawn_blocking(move || send(intake, &third))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(count(&refusals(bridge.admin_port, "pd"), "saturated"), 1);
    for holder in holders {
        assert_eq!(holder.join().unwrap_or(0), 408, "the stalled bodies time out");
    }
    let again = pd(transition(&ctx.pd_payment).to_string());
    let answer = tokio::task::spawn_blocking(move || send(intake, &again))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status, 200, "the slots are free again");

    // Still serving.
    let health = support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/readyz").map(|r| r.0).ok();
    assert_eq!(health, Some(200));

    // Nothing wrong was published: every event is one of the created notifications or payments.
    let rn_id = support::ripplenet::id_of(&ctx.rn_msg_id);
    let (broker_back, records) = support::ripplenet::read(broker, topic.clone()).await;
    broker = broker_back;
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    assert!(ids.contains(rn_id.as_str()), "the valid RippleNet webhook's event is published");
    for record in &records {
        let event = record.json();
        let data = &event["data"];
        match data["provider"].as_str() {
            Some("ripplenet") => assert_eq!(data["notification_id"], ctx.rn_msg_id.as_str()),
            Some("payments_direct") => assert_eq!(data["payment_id"], ctx.pd_payment.as_str()),
            other => panic!("unexpected event from {other:?}: {event}"),
        }
    }
    // Nothing acknowledged without its event.
    for uuid in support::ripplenet::acked_uuids(&sandbox).await {
        assert!(ids.contains(support::ripplenet::id_of(&uuid).as_str()), "{uuid} acknowledged but not in Kafka");
    }
    // No secret in the log (debug level).
    bridge.stop();
    let log = bridge.log();
    for secret in [TOKEN, SIGNING, RN_SECRET, PD_SECRET] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    assert!(log.contains("webhook refused"), "refusals are logged at debug level");
    drop(broker);
}
