//! paybridge on Apache Kafka secured the way production runs it (one shared node of this
//! test binary): SASL_SSL with SCRAM-SHA-512 and TLS from a CA the test made, client
//! certificates (mTLS), and `StandardAuthorizer` denying whatever no ACL allows.
//!
//! - With exactly the ACLs docs/src/kafka.md lists for one replica at-least-once (RippleNet
//!   and Payments Direct), `paybridge run` drains both providers and acknowledges them.
//! - A principal that authenticates but holds no ACL stops at start, never ready, nothing
//!   acknowledged, with "missing or not visible to User:stranger (Describe)", never "create
//!   it".
//! - Each single ACL of the mode removed: paybridge stops at start naming the principal, the
//!   topic and the operation.

use crate::support;

use std::time::Duration;

use support::process::Paybridge;
use support::ripplenet::{ACCOUNT, FAST, acked};
use support::sandbox::Sandbox;
use support::{Broker, SECURED_USERS, sources};

/// The topics of one test, created over the admin listener.
pub(crate) struct Topics {
    pub(crate) events: String,
    pub(crate) dlq: String,
    pub(crate) state: String,
}

pub(crate) fn topics(broker: &Broker) -> Topics {
    Topics {
        events: broker.new_topic("sec-events", 3),
        dlq: broker.new_topic("sec-dlq", 1),
        // Compacted, as paybridge creates it (doctor checks it).
        state: {
            let name = support::unique_topic("sec-state");
            broker.create_topic_with(&name, 1, &[("cleanup.policy", "compact")]);
            name
        },
    }
}

/// The `[kafka]` section for `user` over SASL_SSL (SCRAM-SHA-512), trusting the test's CA.
pub(crate) fn kafka_section(broker: &Broker, t: &Topics, (user, password): (&str, &str)) -> String {
    let secured = broker.secured_listeners();
    format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:{port}"
topic = "{events}"
dlq_topic = "{dlq}"
state_topic = "{state}"
delivery_timeout = "5s"
metadata_timeout = "5s"
startup_timeout = "20s"

[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "{user}"
"sasl.password" = "{password}"
"ssl.ca.location" = "{ca}"

[admin]
listen = "127.0.0.1:{{admin}}"

[intake]
listen = "127.0.0.1:{{intake}}"

[shutdown]
timeout = "5s"
"#,
        port = secured.sasl_ssl_port,
        events = t.events,
        dlq = t.dlq,
        state = t.state,
        ca = secured.certs.ca.display(),
    )
}

/// The ACLs of one replica at-least-once with a cursor source, as kafka-acls.sh flag sets
/// (docs/src/kafka.md): each entry is one grant.
pub(crate) fn one_replica_acls(t: &Topics, principal: &str) -> Vec<Vec<String>> {
    let grant = |ops: &[&str], topic: &str| {
        let mut args = vec!["--allow-principal".to_owned(), principal.to_owned()];
        for op in ops {
            args.push("--operation".into());
            args.push((*op).into());
        }
        args.push("--topic".into());
        args.push(topic.to_owned());
        args
    };
    vec![
        grant(&["Describe", "DescribeConfigs", "Write", "Read"], &t.events),
        grant(&["Describe", "DescribeConfigs", "Write"], &t.dlq),
        grant(&["Describe", "DescribeConfigs", "Write", "Read"], &t.state),
    ]
}

/// No warning or error in `log` says an ACL refused something (the readers' group
/// coordinator lookup is refused and ignored at debug level).
fn assert_nothing_refused(log: &str) {
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| l.to_ascii_lowercase().contains("authoriz"))
        .collect();
    assert!(denied.is_empty(), "nothing was refused for want of an ACL:\n{}", denied.join("\n"));
}

pub(crate) fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A principal of its own for one test (SCRAM users are added over the admin listener).
pub(crate) fn user_for(broker: &Broker, name: &str) -> (String, String) {
    let (user, password) = (support::unique_topic(name), format!("{name}-pw"));
    broker.add_scram_user(&user, &password);
    (user, password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_exactly_the_documented_acls_ripplenet_and_payments_direct_drain_over_sasl_ssl() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let (user, password) = user_for(&broker, "granted");
    for acl in one_replica_acls(&t, &format!("User:{user}")) {
        broker.grant(&as_strs(&acl));
    }
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(40).await;
    let payments = sandbox.pd_create(10).await;
    let config = kafka_section(&broker, &t, (&user, &password))
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST)
        + &sources::payments_direct(
            &sandbox,
            "sec-pd",
            "interval = \"500ms\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"",
        );
    let bridge = Paybridge::start(&config);
    bridge.eventually("all 40 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 40 }).await;
    let read = || tokio::task::block_in_place(|| broker.read_to_end(&t.events, Duration::from_secs(10)));
    bridge.eventually("the 50 events in Kafka", Duration::from_secs(60), || async { read().len() >= 50 }).await;
    let records = read();
    let ids: std::collections::HashSet<&str> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    assert_eq!(ids.len(), 50, "40 RippleNet notifications and {} payments, each once", payments.len());
    let log = bridge.log();
    // The readers' group coordinator lookup is refused (no group ACL is granted) and
    // ignored at debug level: no warning or error for an operator to act on.
    assert_nothing_refused(&log);
    drop(bridge);

    // The read-only operator commands with a principal that may only Read (and Describe)
    // the three topics: no group, no write.
    let (reader, reader_password) = user_for(&broker, "operator");
    broker.grant(&[
        "--allow-principal",
        &format!("User:{reader}"),
        "--operation",
        "Read",
        "--operation",
        "Describe",
        "--topic",
        &t.events,
        "--topic",
        &t.dlq,
        "--topic",
        &t.state,
    ]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let operator_config = kafka_section(&broker, &t, (&reader, &reader_password))
        + &sources::payments_direct(&sandbox, "sec-pd", "interval = \"500ms\"");
    let file = support::commands::write_config(dir.path(), &operator_config);
    let commands: [(&str, Vec<&str>); 3] =
        [("dlq", vec!["list"]), ("cursor", vec!["show", "--source", "pd"]), ("trace", vec![payments[0].as_str()])];
    for (command, args) in commands {
        let ran = tokio::task::block_in_place(|| support::commands::paybridge(command, &file, &args));
        assert_eq!(ran.code, Some(0), "paybridge {command} {args:?} with Read and Describe only:\n{}", ran.output());
        assert!(!ran.output().to_ascii_lowercase().contains("authoriz"), "{}", ran.output());
    }

    // `cursor set` with Describe, Read and Write on the state topic and nothing else.
    let (writer, writer_password) = user_for(&broker, "cursor-writer");
    broker.grant(&[
        "--allow-principal",
        &format!("User:{writer}"),
        "--operation",
        "Describe",
        "--operation",
        "Read",
        "--operation",
        "Write",
        "--topic",
        &t.state,
    ]);
    let writer_config = kafka_section(&broker, &t, (&writer, &writer_password))
        + &sources::payments_direct(&sandbox, "sec-pd", "interval = \"500ms\"");
    let file = support::commands::write_config(dir.path(), &writer_config);
    let args = ["set", "--source", "pd", "--to", "10m", "--wait", "1s"];
    let ran = tokio::task::block_in_place(|| support::commands::paybridge("cursor", &file, &args));
    assert_eq!(ran.code, Some(0), "paybridge cursor {args:?} with its documented ACLs:\n{}", ran.output());
    assert!(!ran.output().to_ascii_lowercase().contains("authoriz"), "{}", ran.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_without_acls_is_told_its_topics_are_not_visible_never_to_create_them() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(5).await;
    let (user, password) = SECURED_USERS[1];
    let config = kafka_section(&broker, &t, (user, password)) + &sources::ripplenet(&sandbox, ACCOUNT, FAST);
    let mut bridge = Paybridge::spawn(&config);
    let code = bridge.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{}", bridge.log());
    let log = bridge.log();
    assert!(
        log.contains("missing or not visible to User:stranger (SCRAM-SHA-512 over SASL_SSL) (Describe)"),
        "names the principal and the operation:\n{log}"
    );
    assert!(log.contains(&t.events) && log.contains(&t.dlq), "{log}");
    assert!(!log.contains("create them or set"), "never advises creating topics that exist:\n{log}");
    assert!(!log.contains(password), "no secret in the log");
    assert_eq!(acked(&sandbox).await, 0, "nothing acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_single_missing_acl_is_named_by_principal_topic_and_operation() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(5).await;
    let cases = [
        (&t.events, "Write"),
        (&t.events, "Read"),
        (&t.events, "DescribeConfigs"),
        (&t.dlq, "Write"),
        (&t.state, "Read"),
        (&t.state, "Write"),
    ];
    for (topic, operation) in cases {
        let (user, password) = user_for(&broker, "lacking");
        let principal = format!("User:{user}");
        for acl in one_replica_acls(&t, &principal) {
            broker.grant(&as_strs(&acl));
        }
        broker.revoke(&["--allow-principal", &principal, "--operation", operation, "--topic", topic]);
        let config = kafka_section(&broker, &t, (&user, &password))
            + &sources::ripplenet(&sandbox, ACCOUNT, FAST)
            + &sources::payments_direct(&sandbox, "sec-pd", "interval = \"500ms\"");
        let mut bridge = Paybridge::spawn(&config);
        let code = bridge.wait_exit(Duration::from_secs(30));
        let log = bridge.log();
        assert_eq!(code, Some(1), "without {operation} on {topic}:\n{log}");
        let expected = format!("{principal} (SCRAM-SHA-512 over SASL_SSL) may not {operation} on topic {topic}");
        assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
        assert!(!log.contains("paybridge started"), "never ready without {operation} on {topic}:\n{log}");
        assert_eq!(acked(&sandbox).await, 0, "nothing acknowledged without {operation} on {topic}");
    }
}

/// The ACLs of exactly-once mode on top of one replica's: Write (which implies Describe) on
/// the transactional ids `<prefix>-<source>`, as a prefixed pattern.
pub(crate) fn transactional_acl(prefix: &str, principal: &str) -> Vec<String> {
    [
        "--allow-principal",
        principal,
        "--operation",
        "Write",
        "--operation",
        "Describe",
        "--transactional-id",
        &format!("{prefix}-"),
        "--resource-pattern-type",
        "prefixed",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_runs_with_its_documented_acls_and_names_a_missing_transactional_id_acl() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let payments = sandbox.pd_create(10).await;
    let prefix = support::unique_topic("eos-sec");
    let source = "interval = \"500ms\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"";
    let config_for = |user: &str, password: &str| {
        kafka_section(&broker, &t, (user, password)).replacen(
            "[kafka]\n",
            &format!("[kafka]\nexactly_once = true\ntransactional_id_prefix = \"{prefix}\"\n"),
            1,
        ) + &sources::payments_direct(&sandbox, "sec-pd", source)
    };

    // Without the transactional id ACL: stopped, naming the principal, resource and operation.
    let (user, password) = user_for(&broker, "eos-lacking");
    let principal = format!("User:{user}");
    for acl in one_replica_acls(&t, &principal) {
        broker.grant(&as_strs(&acl));
    }
    let mut bridge = Paybridge::spawn(&config_for(&user, &password));
    let code = bridge.wait_exit(Duration::from_secs(40));
    let log = bridge.log();
    assert_eq!(code, Some(1), "{log}");
    let expected = format!("{principal} (SCRAM-SHA-512 over SASL_SSL) may not Write on transactional id {prefix}-pd");
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    assert!(!log.contains("paybridge started"), "never ready:\n{log}");

    // With it: every payment committed once.
    let (user, password) = user_for(&broker, "eos-granted");
    let principal = format!("User:{user}");
    for acl in one_replica_acls(&t, &principal) {
        broker.grant(&as_strs(&acl));
    }
    broker.grant(&as_strs(&transactional_acl(&prefix, &principal)));
    let bridge = Paybridge::start(&config_for(&user, &password));
    let read = || tokio::task::block_in_place(|| broker.read_to_end(&t.events, Duration::from_secs(10)));
    bridge.eventually("the 10 payments in Kafka", Duration::from_secs(60), || async { read().len() >= 10 }).await;
    let ids: std::collections::HashSet<String> =
        read().iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect();
    assert_eq!(ids.len(), payments.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_paybridge_over_mtls_end_to_end() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let secured = broker.secured_listeners();
    let principal = format!("User:CN={}", support::broker::certs::CLIENT_CN);
    for acl in one_replica_acls(&t, &principal) {
        broker.grant(&as_strs(&acl));
    }
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(30).await;
    let payments = sandbox.pd_create(5).await;
    // The SASL section with the certificate instead of SCRAM, on the mTLS listener.
    let config = kafka_section(&broker, &t, ("unused", "unused"))
        .replace(&format!(":{}\"", secured.sasl_ssl_port), &format!(":{}\"", secured.mtls_port))
        .replace("\"security.protocol\" = \"SASL_SSL\"", "\"security.protocol\" = \"SSL\"")
        .replace(
            "\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"unused\"\n\"sasl.password\" = \"unused\"\n",
            &format!(
                "\"ssl.certificate.location\" = \"{}\"\n\"ssl.key.location\" = \"{}\"\n",
                secured.certs.client_cert.display(),
                secured.certs.client_key.display()
            ),
        )
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST)
        + &sources::payments_direct(
            &sandbox,
            "sec-pd",
            "interval = \"500ms\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"",
        );
    assert!(config.contains("\"SSL\"") && !config.contains("sasl."), "{config}");
    let bridge = Paybridge::start(&config);
    bridge.eventually("all 30 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 30 }).await;
    let read = || tokio::task::block_in_place(|| broker.read_to_end(&t.events, Duration::from_secs(10)));
    bridge.eventually("the 35 events in Kafka", Duration::from_secs(60), || async { read().len() >= 35 }).await;
    let ids: std::collections::HashSet<String> =
        read().iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect();
    assert_eq!(ids.len(), 30 + payments.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_an_untrusted_ca_is_never_reached() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let secured = broker.secured_listeners();
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(3).await;
    let (user, password) = SECURED_USERS[0];
    let config = kafka_section(&broker, &t, (user, password))
        .replace(&secured.certs.ca.display().to_string(), &secured.certs.other_ca.display().to_string())
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST);
    let mut bridge = Paybridge::spawn(&config.replace("startup_timeout = \"20s\"", "startup_timeout = \"3s\""));
    let code = bridge.wait_exit(Duration::from_secs(40));
    let log = bridge.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("cannot reach the Kafka brokers"), "{log}");
    assert!(
        log.to_ascii_lowercase().contains("certificate verify failed") || log.contains("SSL handshake failed"),
        "the cause is named:\n{log}"
    );
    assert!(!log.contains(password), "no secret in the log");
    assert_eq!(acked(&sandbox).await, 0, "nothing acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_replicas_run_with_their_documented_acls() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let coordination = broker.new_topic("sec-cluster", 4);
    let group = support::unique_topic("sec-group");
    let (user, password) = user_for(&broker, "replicas");
    let principal = format!("User:{user}");
    for acl in one_replica_acls(&t, &principal) {
        broker.grant(&as_strs(&acl));
    }
    broker.grant(&[
        "--allow-principal",
        &principal,
        "--operation",
        "Describe",
        "--operation",
        "Read",
        "--topic",
        &coordination,
    ]);
    broker.grant(&["--allow-principal", &principal, "--operation", "Read", "--group", &group]);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(30).await;
    let config = kafka_section(&broker, &t, (&user, &password))
        + &format!("\n[cluster]\ngroup_id = \"{group}\"\ntopic = \"{coordination}\"\nsession_timeout = \"6s\"\n")
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST);
    let bridge = Paybridge::start(&config);
    bridge.eventually("all 30 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 30 }).await;
    bridge
        .eventually("the sweeper owned (group membership works)", Duration::from_secs(30), || async {
            support::ripplenet::metrics(bridge.admin_port).contains("paybridge_singleton_owned{task=\"rn/sent\"} 1")
        })
        .await;
    let log = bridge.log();
    assert_nothing_refused(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_without_read_on_their_group_stop_at_start_naming_it() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let coordination = broker.new_topic("sec-cluster", 2);
    let group = support::unique_topic("sec-nogroup");
    let (user, password) = user_for(&broker, "groupless");
    let principal = format!("User:{user}");
    for acl in one_replica_acls(&t, &principal) {
        broker.grant(&as_strs(&acl));
    }
    broker.grant(&[
        "--allow-principal",
        &principal,
        "--operation",
        "Describe",
        "--operation",
        "Read",
        "--topic",
        &coordination,
    ]);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(5).await;
    let config = kafka_section(&broker, &t, (&user, &password))
        + &format!("\n[cluster]\ngroup_id = \"{group}\"\ntopic = \"{coordination}\"\nsession_timeout = \"6s\"\n")
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST);
    let mut bridge = Paybridge::spawn(&config);
    let code = bridge.wait_exit(Duration::from_secs(40));
    let log = bridge.log();
    assert_eq!(code, Some(1), "{log}");
    let expected = format!("{principal} (SCRAM-SHA-512 over SASL_SSL) may not join consumer group {group}");
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
    assert!(!log.contains("paybridge started"), "never ready:\n{log}");
    assert_eq!(acked(&sandbox).await, 0, "nothing acknowledged");
}

/// The `[kafka]` section for OAUTHBEARER with OIDC: librdkafka asks the sandbox's IdP for a
/// JWT with client credentials, the broker verifies it against the IdP's JWKS.
pub(crate) fn oidc_section(broker: &Broker, t: &Topics, secret: &str) -> String {
    let (client, _) = support::broker::idp::OIDC_CLIENT;
    kafka_section(broker, t, ("", ""))
        .replace("\"sasl.mechanism\" = \"SCRAM-SHA-512\"", "\"sasl.mechanism\" = \"OAUTHBEARER\"")
        .replace(
            "\"sasl.username\" = \"\"\n\"sasl.password\" = \"\"\n",
            &format!(
                "\"sasl.oauthbearer.method\" = \"oidc\"\n\"sasl.oauthbearer.client.id\" = \"{client}\"\n\
                 \"sasl.oauthbearer.client.secret\" = \"{secret}\"\n\"sasl.oauthbearer.token.endpoint.url\" = \"{}\"\n",
                support::broker::idp::token_url()
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_with_oidc_carries_events_end_to_end() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let (client, secret) = support::broker::idp::OIDC_CLIENT;
    let principal = format!("User:{client}");
    for acl in one_replica_acls(&t, &principal) {
        broker.grant(&as_strs(&acl));
    }
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(30).await;
    let payments = sandbox.pd_create(10).await;
    let config = oidc_section(&broker, &t, secret)
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST)
        + &sources::payments_direct(
            &sandbox,
            "sec-pd",
            "interval = \"500ms\"\nsafety_lag = \"1s\"\nstart_from = \"10m\"",
        );
    assert!(config.contains("\"OAUTHBEARER\"") && !config.contains("sasl.username"), "{config}");
    let bridge = Paybridge::start(&config);
    bridge.eventually("all 30 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 30 }).await;
    let read = || tokio::task::block_in_place(|| broker.read_to_end(&t.events, Duration::from_secs(10)));
    bridge.eventually("the 40 events in Kafka", Duration::from_secs(60), || async { read().len() >= 40 }).await;
    let ids: std::collections::HashSet<String> =
        read().iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect();
    assert_eq!(ids.len(), 30 + payments.len());
    let log = bridge.log();
    assert_nothing_refused(&log);
    assert!(!log.contains(secret), "no secret in the log");
    drop(bridge);

    // The broker verifies the tokens (signature by the IdP's JWKS, audience, issuer): a
    // token for another audience is refused, and doctor says so.
    let (elsewhere, elsewhere_secret) = support::broker::idp::OIDC_CLIENT_ELSEWHERE;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let refused =
        oidc_section(&broker, &t, elsewhere_secret).replace(&format!("= \"{client}\""), &format!("= \"{elsewhere}\""));
    let ran = tokio::task::block_in_place(|| {
        support::commands::paybridge("doctor", &support::commands::write_config(dir.path(), &refused), &[])
    });
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    assert!(ran.stdout.lines().any(|l| l.starts_with("✗ kafka: authentication: ")), "{}", ran.output());
    let ran = tokio::task::block_in_place(|| {
        support::commands::paybridge("doctor", &support::commands::write_config(dir.path(), &config), &[])
    });
    assert_eq!(ran.code, Some(0), "{}", ran.output());
    assert!(
        ran.stdout.contains(&format!(
            "✓ kafka: authentication: authenticated as the OAUTHBEARER principal of client {client}"
        )),
        "{}",
        ran.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_file_is_used_without_a_restart() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let (user, first) = user_for(&broker, "rotating");
    for acl in one_replica_acls(&t, &format!("User:{user}")) {
        broker.grant(&as_strs(&acl));
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("kafka-password");
    // As Kubernetes rotates a mounted Secret: a new file renamed over the old one.
    let write = |password: &str| {
        let next = dir.path().join("kafka-password.next");
        std::fs::write(&next, format!("{password}\n")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&next, &file).unwrap_or_else(|e| panic!("{e}"));
    };
    write(&first);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(10).await;
    let config = kafka_section(&broker, &t, (&user, &first))
        .replace(&format!("\"sasl.password\" = \"{first}\"\n"), "")
        .replacen(
            "[kafka]\n",
            &format!("[kafka]\nsasl_password_file = \"{}\"\nsecret_reload_interval = \"1s\"\n", file.display()),
            1,
        )
        + &sources::ripplenet(&sandbox, ACCOUNT, FAST);
    assert!(!config.contains(&first), "the password only in the file:\n{config}");
    let bridge = Paybridge::start(&config);
    bridge
        .eventually("the first 10 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 10 })
        .await;

    // The user's password changes on the broker and in the file; the broker makes every
    // session authenticate again within support::broker::SCRAM_REAUTH.
    let second = format!("{first}-rotated");
    broker.add_scram_user(&user, &second);
    write(&second);
    tokio::time::sleep(support::broker::SCRAM_REAUTH * 3).await;
    sandbox.create(10).await;
    bridge
        .eventually("the next 10 acknowledged", Duration::from_secs(60), || async { acked(&sandbox).await == 20 })
        .await;
    let read = || tokio::task::block_in_place(|| broker.read_to_end(&t.events, Duration::from_secs(10)));
    bridge.eventually("the 20 events in Kafka", Duration::from_secs(30), || async { read().len() >= 20 }).await;
    let log = bridge.log();
    assert!(log.contains("kafka.sasl_password_file changed"), "the rotation is said:\n{log}");
    assert!(!log.contains("paybridge stopped"), "no restart:\n{log}");
    assert!(!log.contains(&second) && !log.contains(&first), "no secret in the log");
}
