//! `paybridge backfill` as a process against the Checkout sandbox's period query and a real
//! broker: every message of the period is published with the live path's event id, a rerun
//! publishes the same ids, progress shows on a non-terminal stderr, a stop says how to resume,
//! and a period beyond the provider's 30 days is refused.

use crate::support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use paybridge::event::{UpstreamIdentity, event_id};
use paybridge_sandbox::scenario::PeriodAnswer;
use serde_json::json;
use support::checkout::{config, create, sandbox, sandbox_with, unacked};
use support::child::{OutputWithin, wait_within};
use support::keys::rsa_keys;
use support::{Broker, Record, read_records as read};

/// What a finished `paybridge backfill` printed.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn backfill(config_path: &Path, args: &[&str]) -> Finished {
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["backfill", "--config"])
        .arg(config_path)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output_within(Duration::from_secs(120));
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`backfill`] on a pseudo-terminal (util-linux `script`): stdout and stderr together, as
/// a person at a terminal sees them.
fn backfill_on_terminal(config_path: &Path, args: &[&str]) -> Finished {
    let command =
        format!("{} backfill --config {} {}", env!("CARGO_BIN_EXE_paybridge"), config_path.display(), args.join(" "));
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output_within(Duration::from_secs(120));
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts a backfill, sends SIGINT once its first progress line is out, and waits.
fn backfill_interrupted(config_path: &Path, args: &[&str]) -> Finished {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["backfill", "--config"])
        .arg(config_path)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run paybridge backfill: {e}"));
    let stdout = support::child::read_in_background(child.stdout.take());
    let lines = support::child::lines_in_background(child.stderr.take());
    let mut stderr = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut interrupted = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else { break };
        if !interrupted && line.starts_with("backfill co:") {
            support::child::signal(&child, "INT");
            interrupted = true;
        }
        stderr.push_str(&line);
        stderr.push('\n');
    }
    if !interrupted {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no progress line within 60 s; killed the backfill:\n{stderr}");
    }
    let status = wait_within(&mut child, Duration::from_secs(60));
    let status = status.unwrap_or_else(|| panic!("backfill did not stop within 60 s of SIGINT; killed it:\n{stderr}"));
    let stdout = String::from_utf8_lossy(&stdout.recv_timeout(Duration::from_secs(5)).unwrap_or_default()).into_owned();
    Finished { code: status.code(), stdout, stderr }
}

fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Writes a config (a backfill serves neither admin nor intake: any distinct ports do).
fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("paybridge.toml");
    let text = text.replace("{admin}", "0").replace("{intake}", "1");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn expected_ids(message_ids: &[String]) -> HashSet<String> {
    message_ids
        .iter()
        .map(|m| event_id("merchant-001", &UpstreamIdentity::CheckoutMessage(m.clone())).to_string())
        .collect()
}

fn ids(records: &[Record]) -> HashSet<String> {
    records.iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_of_500_messages_publishes_500_live_path_ids_and_a_rerun_the_same_ids() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("bf-events", 3), broker.new_topic("bf-dlq", 1));
    let created = create(&sb, 500, None).await;
    assert_eq!(created.len(), 500);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = write_config(dir.path(), &config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    let from = ago(10);
    let args = ["--source", "co", "--from", &from, "--page-size", "50"];

    let first = backfill(&path, &args);
    assert_eq!(first.code, Some(0), "stdout: {}\nstderr: {}", first.stdout, first.stderr);
    assert!(first.stdout.contains(": complete"), "{}", first.stdout);
    assert!(first.stdout.contains("pages: 10\n"), "{}", first.stdout);
    assert!(first.stdout.contains("read: 500\n") && first.stdout.contains("published: 500\n"), "{}", first.stdout);
    assert!(first.stdout.contains("rejected to DLQ: 0\n"), "{}", first.stdout);
    assert!(first.stderr.contains("backfill co: "), "progress lines on a non-terminal stderr: {}", first.stderr);
    let (broker, records) = read(broker, topic.clone(), 500).await;
    assert_eq!(records.len(), 500);
    assert_eq!(ids(&records), expected_ids(&created), "500 distinct ids, the live path's");
    let types: HashSet<String> = records.iter().filter_map(|r| r.json()["type"].as_str().map(str::to_owned)).collect();
    assert!(types.len() >= 3, "order, profile and token events: {types:?}");
    assert_eq!(unacked(&sb).await, 500, "a backfill acknowledges nothing");

    let second = backfill_on_terminal(&path, &args);
    assert_eq!(second.code, Some(0), "stdout: {}\nstderr: {}", second.stdout, second.stderr);
    assert!(second.stdout.contains("1/1 slices"), "a progress bar on a terminal: {}", second.stdout);
    assert!(!second.stdout.contains("backfill co: "), "no plain lines on a terminal: {}", second.stdout);
    assert!(second.stdout.contains("published: 500"), "{}", second.stdout);
    let (_broker, records) = read(broker, topic, 1000).await;
    assert_eq!(records.len(), 1000, "the rerun published every message again");
    assert_eq!(ids(&records), expected_ids(&created), "with the same ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_backfill_says_how_far_it_got_and_its_resume_command_finishes_the_period() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("bf-events", 1), broker.new_topic("bf-dlq", 1));
    let early = create(&sb, 30, None).await;
    // One slice (the default hour) of six slow pages: the stop comes in the middle of it.
    let status =
        sb.control("/_sandbox/faults", json!({"endpoint": "checkout.query", "action": "latency", "ms": 300})).await;
    assert!(status.is_success(), "{status}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = write_config(dir.path(), &config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    let from = ago(5);

    let stopped = backfill_interrupted(&path, &["--source", "co", "--from", &from, "--page-size", "5"]);
    assert_eq!(stopped.code, Some(130), "stdout: {}\nstderr: {}", stopped.stdout, stopped.stderr);
    assert!(stopped.stderr.contains("stopping after the current page is confirmed"), "{}", stopped.stderr);
    assert!(stopped.stdout.contains("stopped on request"), "{}", stopped.stdout);
    let resume = stopped
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("paybridge backfill "))
        .unwrap_or_else(|| panic!("no resume command in: {}", stopped.stdout));
    assert!(
        resume.contains(&format!("--source co --from {from} ")),
        "resumes at the unfinished slice's start: {resume}"
    );
    let read_so_far: usize = stopped
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("read: ").and_then(|n| n.parse().ok()))
        .unwrap_or(usize::MAX);
    assert!(read_so_far < 30, "stopped early: {}", stopped.stdout);

    let words: Vec<&str> = resume.split_whitespace().collect();
    let resumed = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .arg("backfill")
        .args(&words)
        .args(["--page-size", "5"])
        .output_within(Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(resumed.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(stdout.contains("read: 30\n"), "the resumed run reads the whole unfinished slice: {stdout}");
    let (_broker, records) = read(broker, topic, 30 + read_so_far).await;
    assert_eq!(ids(&records), expected_ids(&early));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_without_a_message_id_get_their_content_identity_the_same_on_every_run() {
    let keys = rsa_keys();
    let sb = sandbox_with(&keys, |s| s.checkout.period_answer = PeriodAnswer::Seed).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("bf-events", 1), broker.new_topic("bf-dlq", 1));
    let created = create(&sb, 40, None).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = write_config(dir.path(), &config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    let from = ago(10);
    let args = ["--source", "co", "--from", &from, "--page-size", "15"];
    for run in 1..=2 {
        let done = backfill(&path, &args);
        assert_eq!(done.code, Some(0), "run {run}: {}\n{}", done.stdout, done.stderr);
        assert!(done.stdout.contains("pages: 3\n") && done.stdout.contains("published: 40\n"), "{}", done.stdout);
    }
    let (_broker, records) = read(broker, topic, 80).await;
    let first: HashSet<String> = ids(&records[..40]);
    assert_eq!(first.len(), 40, "one id per message");
    assert_eq!(ids(&records[40..]), first, "the second run gives the same ids");
    assert!(first.is_disjoint(&expected_ids(&created)), "not a messageId identity: the items have none");
    let without_id = |r: &Record| r.json()["data"].get("notification_id") == Some(&serde_json::Value::Null);
    assert!(records.iter().all(without_id), "{:?}", records[0].json());
}

#[test]
fn a_period_more_than_30_days_back_or_an_unknown_source_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:{port}"
topic = "events"
dlq_topic = "events-dlq"

[[sources]]
kind = "checkout"
name = "co"
account = "merchant-001"
base_url = "http://127.0.0.1:{port}"
allow_insecure_http = true
merchant_id = "m"

[sources.auth]
token_url = "http://127.0.0.1:{port}/token"
client_id = "c"
resource = "r"
private_key_path = "/nonexistent/key.pem"
key_id = "0123456789ABCDEF0123456789ABCDEF01234567"
"#,
        port = support::free_port()
    );
    let path = write_config(dir.path(), &config);
    let old = (Utc::now() - chrono::TimeDelta::days(31)).format("%Y-%m-%d").to_string();
    let refused = backfill(&path, &["--source", "co", "--from", &old]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("more than 30 days ago"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);

    let unknown = backfill(&path, &["--source", "nope", "--from", &ago(60)]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no source named \"nope\"") && unknown.stderr.contains("co"), "{}", unknown.stderr);

    let bad_time = backfill(&path, &["--source", "co", "--from", "last week"]);
    assert_eq!(bad_time.code, Some(2), "{}", bad_time.stderr);
    assert!(bad_time.stderr.contains("RFC 3339"), "{}", bad_time.stderr);

    let key = backfill(&path, &["--source", "co", "--from", &ago(60)]);
    assert_eq!(key.code, Some(1), "{}", key.stderr);
    assert!(key.stderr.contains("/nonexistent/key.pem"), "the key is named: {}", key.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_page_token_stops_the_backfill_with_an_error() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let broker = Broker::start();
    let (topic, dlq) = (broker.new_topic("bf-events", 1), broker.new_topic("bf-dlq", 1));
    // Every page of the period query hands out the same next token.
    let looping = json!({"endpoint": "checkout.query", "action": "body", "status": 200,
                         "body": "{\"messages\": [], \"nextPageToken\": \"again\"}"});
    assert!(sb.control("/_sandbox/faults", looping).await.is_success());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = write_config(dir.path(), &config(&broker, &topic, &dlq, &sb, &keys.private_file.display().to_string()));
    let from = ago(10);
    let run = backfill(&path, &["--source", "co", "--from", &from]);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(1), "{all}");
    assert!(all.contains("page 2 of the window handed out a page token it had already given"), "{all}");
    let queries = sb.ledger("kind=request&provider=checkout").await;
    let queries = queries.iter().filter(|e| e["endpoint"] == "checkout.query").count();
    assert_eq!(queries, 2, "stopped at the repeat");
}
