//! `paybridge doctor` against Apache Kafka secured the way production runs it (the shared
//! secured node) and against the three-node cluster: a good configuration passes every
//! check and exits 0; each broken one (wrong password, untrusted CA, a missing ACL, a
//! missing transactional-id or group ACL, a wrong provider secret, a topic with
//! `min.insync.replicas=1`) fails its own check, with the fix, and exits 1. Nothing is
//! acknowledged upstream by any of it.

use crate::secured_kafka::{Topics, as_strs, kafka_section, one_replica_acls, topics, transactional_acl, user_for};
use crate::support;

use support::broker::three::ThreeNodes;
use support::commands::{Ran, paybridge, write_config};
use support::ripplenet::{ACCOUNT, FAST, acked};
use support::sandbox::Sandbox;
use support::{Broker, sources};

fn doctor(config: &str, args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write_config(dir.path(), config);
    tokio::task::block_in_place(|| paybridge("doctor", &file, args))
}

/// The line of `ran`'s report that starts with `start`.
fn line<'a>(ran: &'a Ran, start: &str) -> &'a str {
    ran.stdout
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{}", ran.output()))
}

/// The fix printed under the line that starts with `start`.
fn fix_of<'a>(ran: &'a Ran, start: &str) -> &'a str {
    let mut lines = ran.stdout.lines().skip_while(|l| !l.starts_with(start));
    lines.next();
    lines
        .next()
        .and_then(|l| l.trim_start().strip_prefix("fix: "))
        .unwrap_or_else(|| panic!("no fix under {start:?} in:\n{}", ran.output()))
}

fn failed_lines(ran: &Ran) -> Vec<&str> {
    ran.stdout.lines().filter(|l| l.starts_with('✗')).collect()
}

/// A principal holding exactly the documented one-replica ACLs of `t`.
fn granted_user(broker: &Broker, t: &Topics, name: &str) -> (String, String) {
    let (user, password) = user_for(broker, name);
    for acl in one_replica_acls(t, &format!("User:{user}")) {
        broker.grant(&as_strs(&acl));
    }
    (user, password)
}

fn both_sources(sandbox: &Sandbox) -> String {
    sources::ripplenet(sandbox, ACCOUNT, FAST) + &sources::payments_direct(sandbox, "doc-pd", "interval = \"500ms\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_secured_configuration_passes_every_check() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let (user, password) = granted_user(&broker, &t, "doctor-good");
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(5).await;
    let config = kafka_section(&broker, &t, (&user, &password)) + &both_sources(&sandbox);
    let ran = doctor(&config, &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.output());
    assert!(failed_lines(&ran).is_empty(), "{}", ran.output());
    for start in [
        "✓ config: ",
        "✓ kafka: brokers reachable: ",
        "✓ kafka: TLS: the brokers' certificate is trusted (the CA in ",
        &format!("✓ kafka: authentication: authenticated as User:{user} (SCRAM-SHA-512 over SASL_SSL)"),
        &format!(
            "✓ access to {} (events): User:{user} (SCRAM-SHA-512 over SASL_SSL) may Describe, DescribeConfigs, Write, Read",
            t.events
        ),
        &format!("✓ access to {} (DLQ): ", t.dlq),
        &format!("✓ access to {} (state): ", t.state),
        &format!("✓ kafka: idempotent producer: User:{user} "),
        "✓ source rn: token endpoint: ",
        "✓ source pd: token endpoint: ",
        "✓ source rn: clock: ",
    ] {
        line(&ran, start);
    }
    // One node cannot replicate: said, and not a failure (a development broker stays usable).
    let events = line(&ran, &format!("! topic {} (events): ", t.events));
    assert!(
        events.contains("replication factor 1") && events.contains("a 1-broker cluster cannot do better"),
        "{events}"
    );
    assert!(!ran.output().contains(&password), "no secret in the report");

    let json = doctor(&config, &["--format", "json"]);
    assert_eq!(json.code, Some(0), "{}", json.output());
    let report = json.json();
    assert_eq!(report["ok"], true, "{report}");
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    let printed = ran.stdout.lines().filter(|l| !l.starts_with(' ')).count() - 1;
    assert_eq!(checks.len(), printed, "one JSON check per printed check (and the summary line):\n{report}");
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{report}");
    assert_eq!(acked(&sandbox).await, 0, "doctor acknowledges nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_configuration_fails_its_check_with_the_fix() {
    let broker = Broker::secured();
    let t = topics(&broker);
    let secured = broker.secured_listeners();
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    sandbox.create(5).await;
    let (user, password) = granted_user(&broker, &t, "doctor-broken");
    let good = kafka_section(&broker, &t, (&user, &password)) + &both_sources(&sandbox);

    // A wrong password: the authentication check, naming the principal and mechanism.
    let wrong = "not-the-password";
    let ran = doctor(&good.replace(&format!("\"{password}\""), &format!("\"{wrong}\"")), &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    let failed = line(&ran, "✗ kafka: authentication: ");
    assert!(failed.contains(&format!("User:{user} (SCRAM-SHA-512 over SASL_SSL) was refused")), "{failed}");
    assert!(fix_of(&ran, "✗ kafka: authentication: ").contains("sasl.password"), "{}", ran.output());
    assert!(!ran.output().contains(wrong), "no secret in the report");

    // A CA that did not sign the brokers' certificate: the TLS check.
    let ca = secured.certs.ca.display().to_string();
    let ran = doctor(&good.replace(&ca, &secured.certs.other_ca.display().to_string()), &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    line(&ran, "✗ kafka: TLS: ");
    assert!(fix_of(&ran, "✗ kafka: TLS: ").contains("ssl.ca.location"), "{}", ran.output());

    // One missing ACL: its topic, principal and operation, with the kafka-acls line.
    let (lacking, lacking_password) = granted_user(&broker, &t, "doctor-lacking");
    broker.revoke(&["--allow-principal", &format!("User:{lacking}"), "--operation", "Write", "--topic", &t.events]);
    let ran = doctor(&(kafka_section(&broker, &t, (&lacking, &lacking_password)) + &both_sources(&sandbox)), &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    let start = format!("✗ access to {} (events): ", t.events);
    assert!(line(&ran, &start).ends_with(&format!("User:{lacking} (SCRAM-SHA-512 over SASL_SSL) may not Write")));
    assert_eq!(
        fix_of(&ran, &start),
        format!(
            "kafka-acls.sh --bootstrap-server <admin> --add --allow-principal User:{lacking} --operation Write --topic {}",
            t.events
        )
    );
    assert_eq!(failed_lines(&ran).len(), 1, "only that check fails:\n{}", ran.output());

    // A wrong provider secret: that source's token endpoint.
    let ran = doctor(&good.replacen("client_secret = \"sandbox-secret\"", "client_secret = \"stale-secret\"", 1), &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    let failed = line(&ran, "✗ source rn: token endpoint: ");
    assert!(failed.contains("refused client sandbox-client"), "{failed}");
    assert!(fix_of(&ran, "✗ source rn: token endpoint: ").contains("auth.client_secret"), "{}", ran.output());
    line(&ran, "✓ source pd: token endpoint: ");
    assert!(!ran.output().contains("stale-secret"), "no secret in the report");

    // Exactly-once without the transactional-id ACL, then with it.
    let prefix = support::unique_topic("doc-eos");
    let eos = good.replacen(
        "[kafka]\n",
        &format!("[kafka]\nexactly_once = true\ntransactional_id_prefix = \"{prefix}\"\n"),
        1,
    );
    let ran = doctor(&eos, &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    let start = "✗ kafka: transactional producer (exactly_once): ";
    assert!(line(&ran, start).contains(&format!("may not initialise transactional id {prefix}-paybridge-doctor")));
    assert!(fix_of(&ran, start).contains(&format!("--transactional-id {prefix}- --resource-pattern-type prefixed")));
    broker.grant(&as_strs(&transactional_acl(&prefix, &format!("User:{user}"))));
    let ran = doctor(&eos, &[]);
    assert_eq!(ran.code, Some(0), "with the documented transactional ACL:\n{}", ran.output());
    line(&ran, "✓ kafka: transactional producer (exactly_once): ");

    // [cluster] without Read on the group: the group join is refused.
    let coordination = broker.new_topic("doc-cluster", 2);
    let group = support::unique_topic("doc-group");
    let principal = format!("User:{user}");
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
    let clustered =
        format!("{good}\n[cluster]\ngroup_id = \"{group}\"\ntopic = \"{coordination}\"\nsession_timeout = \"6s\"\n");
    let ran = doctor(&clustered, &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    let start = format!("✗ kafka: group {group} ([cluster]): ");
    assert!(line(&ran, &start).contains(&format!("may not join group {group}")), "{}", ran.output());
    assert!(fix_of(&ran, &start).contains(&format!("--operation Read --group {group}")));
    broker.grant(&["--allow-principal", &principal, "--operation", "Read", "--group", &group]);
    let ran = doctor(&clustered, &[]);
    assert_eq!(ran.code, Some(0), "with Read on the group:\n{}", ran.output());
    line(&ran, &format!("✓ kafka: group {group} ([cluster]): "));

    assert_eq!(acked(&sandbox).await, 0, "doctor acknowledges nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_nodes_a_durable_topic_passes_and_one_in_sync_replica_fails() {
    let cluster = tokio::task::block_in_place(ThreeNodes::shared);
    let durable = [("min.insync.replicas", "2"), ("unclean.leader.election.enable", "false")];
    let events = support::unique_topic("doc3-events");
    let dlq = support::unique_topic("doc3-dlq");
    let weak = support::unique_topic("doc3-weak");
    cluster.create_topic_with(&events, 3, &durable);
    cluster.create_topic_with(&dlq, 1, &durable);
    cluster.create_topic_with(&weak, 3, &[("min.insync.replicas", "1")]);
    let sandbox = Sandbox::start(paybridge_sandbox::Scenario::default()).await;
    let config = |topic: &str| {
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\nmetadata_timeout = \"10s\"\n\
             [admin]\nlisten = \"127.0.0.1:{{admin}}\"\n[intake]\nlisten = \"127.0.0.1:{{intake}}\"\n",
            cluster.bootstrap()
        ) + &sources::ripplenet(&sandbox, ACCOUNT, FAST)
    };
    let ran = doctor(&config(&events), &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.output());
    let line_of_events = line(&ran, &format!("✓ topic {events} (events): "));
    assert!(line_of_events.contains("replication factor 3, min.insync.replicas=2, unclean leader election off"));
    line(&ran, &format!("✓ topic {dlq} (DLQ): "));
    // PLAINTEXT is said, as a warning.
    line(&ran, "! kafka: TLS: not used (PLAINTEXT)");

    let ran = doctor(&config(&weak), &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.output());
    let start = format!("✗ topic {weak} (events): ");
    assert!(line(&ran, &start).contains("min.insync.replicas=1 (at least 2)"), "{}", ran.output());
    assert!(fix_of(&ran, &start).contains("min.insync.replicas=2"), "{}", ran.output());
}
