//! `paybridge run` as a process against the real broker.

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::child::OutputWithin;
use support::process::Paybridge;
use support::{Broker, unique_topic};

fn write_config(dir: &std::path::Path, broker: &Broker, topic: &str, dlq: &str, extra: &str) -> std::path::PathBuf {
    write_config_admin(dir, broker, topic, dlq, extra, support::free_port())
}

fn write_config_admin(
    dir: &std::path::Path,
    broker: &Broker,
    topic: &str,
    dlq: &str,
    extra: &str,
    admin: u16,
) -> std::path::PathBuf {
    let intake = support::free_port();
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\n\
         topic_replication_factor = 1\nmetadata_timeout = \"5s\"\n{extra}\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n[intake]\nlisten = \"127.0.0.1:{intake}\"\n",
        broker.bootstrap()
    );
    let path = dir.join("paybridge.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn paybridge(config: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paybridge"));
    command.args(["run", "--config"]).arg(config).env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

/// A config for `paybridge run` with the admin and intake ports left to the process helper.
fn run_config(broker: &Broker, topic: &str, dlq: &str, extra_sections: &str) -> String {
    format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\n\
         topic_replication_factor = 1\nmetadata_timeout = \"5s\"\n\
         [admin]\nlisten = \"127.0.0.1:{{admin}}\"\n[intake]\nlisten = \"127.0.0.1:{{intake}}\"\n{extra_sections}",
        broker.bootstrap()
    )
}

#[test]
fn run_starts_and_exits_0_on_sigterm() {
    let broker = Broker::start();
    let topic = broker.new_topic("run", 1);
    let dlq = broker.new_topic("run-dlq", 1);
    // No RUST_LOG: "paybridge started" must appear at the default level.
    let mut bridge = Paybridge::start_default_log(&run_config(&broker, &topic, &dlq, ""));

    let admin: std::net::SocketAddr = ([127, 0, 0, 1], bridge.admin_port).into();
    let get = |path| support::http_get(admin, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(get("/healthz").0, 200);
    let (status, _, body) = get("/readyz");
    assert_eq!(status, 200, "ready with a reachable broker and no sources: {body}");
    let (status, _, metrics) = get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("paybridge_pipeline_depth 0"), "{metrics}");

    let started = Instant::now();
    assert_eq!(bridge.stop(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10), "did not exit within 10 s of SIGTERM");
}

#[test]
fn run_refuses_to_start_without_its_topics_and_names_them() {
    let broker = Broker::start();
    let topic = unique_topic("nothere");
    let dlq = unique_topic("nothere-dlq");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = write_config(dir.path(), &broker, &topic, &dlq, "");
    let out = paybridge(&config).output_within(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&topic) && stderr.contains(&dlq), "{stderr}");
    assert!(stderr.contains("kafka.create_topics"), "{stderr}");
}

#[test]
fn run_with_create_topics_creates_them() {
    let broker = Broker::start();
    let topic = unique_topic("created");
    let dlq = unique_topic("created-dlq");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = write_config(dir.path(), &broker, &topic, &dlq, "create_topics = true\ntopic_partitions = 2");
    let mut child = paybridge(&config).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{e}"));
    // Both topics appear in the broker's metadata.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let consumer: rdkafka::consumer::BaseConsumer =
            broker.client_config().create().unwrap_or_else(|e| panic!("{e}"));
        use rdkafka::consumer::Consumer;
        let names: Vec<String> = consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|m| m.topics().iter().map(|t| t.name().to_owned()).collect())
            .unwrap_or_default();
        if names.contains(&topic) && names.contains(&dlq) {
            break;
        }
        assert!(Instant::now() < deadline, "topics not created; broker has {names:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn run_with_an_invalid_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[kafka]\nbootstrap_servers = \"b:1\"\ntopic_partitions = 0\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = paybridge(&path).output_within(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("kafka.topic_partitions"), "{stderr}");
}

#[test]
fn run_names_an_admin_address_it_cannot_bind() {
    let broker = Broker::start();
    let topic = broker.new_topic("bind", 1);
    let dlq = broker.new_topic("bind-dlq", 1);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken.local_addr().map(|a| a.port()).unwrap_or_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = write_config_admin(dir.path(), &broker, &topic, &dlq, "", port);
    let out = paybridge(&config).output_within(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("admin.listen"), "{stderr}");
}

#[test]
fn sigterm_with_the_broker_gone_still_exits_within_the_shutdown_deadline() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("gone", 1);
    let dlq = broker.new_topic("gone-dlq", 1);
    let mut bridge = Paybridge::start(&run_config(&broker, &topic, &dlq, "[shutdown]\ntimeout = \"3s\"\n"));
    broker.stop();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_eq!(bridge.stop(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(8), "did not exit within the 3 s deadline (+ margin)");
}

#[test]
fn unreachable_brokers_at_start_end_in_exit_1_after_the_startup_timeout_and_a_quiet_log() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nowhere = support::free_port();
    let text = format!(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:{nowhere}\"\nmetadata_timeout = \"3s\"\nstartup_timeout = \"12s\"\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n[intake]\nlisten = \"127.0.0.1:{}\"\n",
        support::free_port(),
        support::free_port()
    );
    let path = dir.path().join("paybridge.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let out = paybridge(&path).output_within(Duration::from_secs(60));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took >= Duration::from_secs(12) && took < Duration::from_secs(30), "exited after {took:?}");
    assert!(stderr.contains(&format!("cannot reach the Kafka brokers at 127.0.0.1:{nowhere}")), "{stderr}");
    // Every line about the unreachable brokers: paybridge's own warnings and librdkafka's.
    let lines = stderr.lines().filter(|l| !l.contains("paybridge stopped")).count();
    eprintln!("{lines} log lines in {took:?}:\n{stderr}");
    assert!(lines as u64 <= took.as_secs() + 1, "at most one line a second: {lines} in {took:?}");
    let mut seen = std::collections::HashSet::new();
    for line in stderr.lines().filter(|l| l.contains("librdkafka") || l.contains("rdkafka")) {
        // Without the timestamp: the same librdkafka line never twice within its minute.
        let text: String =
            line.split_once(' ').map_or(line, |(_, rest)| rest).chars().filter(|c| !c.is_ascii_digit()).collect();
        assert!(seen.insert(text.clone()), "logged twice: {text}");
    }
}

/// The start-up log a person reads: one line with the version, the commit, the topics, the
/// brokers and the endpoints, then one line per source (kind, name, endpoint, intervals),
/// written without Rust debug formatting and, into a pipe, without ANSI colours.
#[test]
fn run_logs_one_readable_start_line_and_one_per_source_without_colours_in_a_pipe() {
    let broker = Broker::start();
    let topic = broker.new_topic("start-line", 1);
    let dlq = broker.new_topic("start-line-dlq", 1);
    let state = broker.new_topic("start-line-state", 1);
    let base = format!("http://{}", support::silent_server());
    let sources = format!(
        "\n[[sources]]\nkind = \"ripplenet\"\nname = \"rn\"\nbase_url = \"{base}\"\nallow_insecure_http = true\n\
         new_interval = \"2s\"\n[sources.auth]\ntoken_url = \"{base}/oauth/token\"\nclient_id = \"c\"\n\
         client_secret = \"s\"\naudience = \"urn:x\"\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\n\
         \n[[sources]]\nkind = \"payments_direct\"\nname = \"pd\"\nbase_url = \"{base}\"\nallow_insecure_http = true\n\
         interval = \"7s\"\n[sources.auth]\ntoken_url = \"{base}/oauth/token\"\nclient_id = \"c\"\n\
         client_secret = \"s\"\naudience = \"urn:x\"\n"
    );
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state) + &sources;
    // stderr is a pipe here, as under a log collector; NO_COLOR unset.
    let bridge = Paybridge::start_default_log(&config);
    bridge.wait_for_log("source pd (payments_direct)", Duration::from_secs(10));
    let log = bridge.log();
    let started: Vec<&str> = log.lines().filter(|l| l.contains("paybridge started")).collect();
    assert_eq!(started.len(), 1, "{log}");
    let line = started[0];
    for part in [
        format!("version {} (commit ", env!("CARGO_PKG_VERSION")),
        format!("publishing to {topic} (DLQ {dlq}) on {}", broker.bootstrap()),
        format!("admin on http://127.0.0.1:{}", bridge.admin_port),
        "webhooks on http://127.0.0.1:".to_owned(),
        "2 source(s)".to_owned(),
    ] {
        assert!(line.contains(&part), "{part:?} not in the start line: {line}");
    }
    assert!(!line.contains("(commit unknown)"), "{line}");
    let rn = log.lines().find(|l| l.contains("source rn (ripplenet): RippleNet v4 at "));
    let rn = rn.unwrap_or_else(|| panic!("no line for rn:\n{log}"));
    assert!(rn.contains("NEW polled every 2s") && rn.contains("webhooks on POST /webhooks/rn"), "{rn}");
    let pd = log.lines().find(|l| l.contains("source pd (payments_direct): Payments Direct 2.0 at "));
    assert!(pd.is_some_and(|l| l.contains("searched every 7s") && !l.contains("webhooks")), "{log}");
    assert!(!log.contains("Some(") && !log.contains("None"), "debug formatting in the log:\n{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes written into a pipe:\n{log}");
}
