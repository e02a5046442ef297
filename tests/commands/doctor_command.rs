//! `paybridge doctor` without a broker: a configuration that does not load is one failed
//! check; unreachable brokers skip what needs them while the registry, the providers and the
//! intake are still checked, each with its own line.

use crate::support;

use paybridge::registry::event_schema_text;
use support::commands::{paybridge, write_config};
use support::registry::{Access, Registry};
use support::ripplenet::{ACCOUNT, FAST};
use support::sandbox::Sandbox;
use support::sources;

fn doctor(config: &str, args: &[&str]) -> support::commands::Ran {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write_config(dir.path(), config);
    tokio::task::block_in_place(|| paybridge("doctor", &file, args))
}

fn has_line(ran: &support::commands::Ran, start: &str) -> bool {
    ran.stdout.lines().any(|l| l.starts_with(start))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_does_not_load_is_one_failed_check() {
    let ran = doctor("[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nbatch_sise = 5\n", &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    assert!(has_line(&ran, "✗ config: ") && ran.stdout.contains("batch_sise"), "{}", ran.output());
    let json = doctor("[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nbatch_sise = 5\n", &["--format", "json"]);
    assert_eq!(json.code, Some(1), "{}", json.output());
    let report = json.json();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["checks"][0]["check"], "config", "{report}");
    assert_eq!(report["checks"][0]["status"], "fail", "{report}");
    assert!(report["checks"][0]["fix"].is_string(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_brokers_skip_what_needs_them_and_the_rest_is_still_checked() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = closed.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    drop(closed);
    let registry = tokio::task::block_in_place(|| Registry::start(Access::Open));
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let config = format!(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:{port}\"\nmetadata_timeout = \"2s\"\n\
         [kafka.schema_registry]\nurl = \"{}\"\nallow_insecure_http = true\n\
         [admin]\nlisten = \"127.0.0.1:{{admin}}\"\n[intake]\nlisten = \"127.0.0.1:{{intake}}\"\nallow_unauthenticated = true\n",
        registry.url
    ) + &sources::ripplenet(&sandbox, ACCOUNT, &format!("{FAST}\n[sources.webhook]\nenabled = true"));
    let ran = doctor(&config, &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    for start in [
        &format!("✗ kafka: brokers reachable: 127.0.0.1:{port}: ") as &str,
        "- kafka: TLS, authentication, topics, access: the brokers are unreachable",
        "✗ schema registry: subject paybridge.payment-events.v1-value: ",
        "✓ source rn: token endpoint: ",
        "! source rn: webhook protection: open to anyone",
        "✓ intake: TLS: not served: the intake listens on loopback (127.0.0.1:2), behind",
    ] {
        assert!(has_line(&ran, start), "no line starting {start:?} in:\n{}", ran.output());
    }
    assert!(ran.stdout.contains("paybridge schema register"), "the registry's fix:\n{}", ran.output());

    // Registered: that check passes; the others are unchanged.
    let schema: serde_json::Value = serde_json::from_str(&event_schema_text()).unwrap_or_default();
    let subject = "paybridge.payment-events.v1-value";
    tokio::task::block_in_place(|| registry.register(subject, "JSON", &schema)).unwrap_or_else(|e| panic!("{e}"));
    let ran = doctor(&config, &[]);
    assert!(has_line(&ran, &format!("✓ schema registry: subject {subject}: ")), "{}", ran.output());
    assert_eq!(ran.code, Some(1), "the brokers are still unreachable:\n{}", ran.output());
}
