//! SASL/SCRAM from configuration: credentials from TOML with `${VAR}` interpolation and
//! from `PAYBRIDGE_…` overrides reach the producer; a wrong password is not Delivered.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use paybridge::ack::Outcome;
use paybridge::sink::kafka::KafkaSink;
use support::{Broker, ripplenet_event};

fn config(broker: &Broker, topic: &str, dlq: &str, env: &[(&str, &str)]) -> paybridge::config::KafkaConfig {
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\ndelivery_timeout = \"5s\"\n\
         [kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
         \"sasl.username\" = \"paybridge\"\n\"sasl.password\" = \"${{KAFKA_PASSWORD}}\"\n",
        broker.bootstrap()
    );
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    paybridge::config::load(&text, &env).unwrap_or_else(|e| panic!("{e}")).kafka
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_credentials_from_config_authenticate_the_producer() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("sasl-events", 1);
    let dlq = broker.new_topic("sasl-dlq", 1);
    broker.create_scram_user("paybridge", "s3cret-pw");
    broker.restart_with_authentication("paybridge", "s3cret-pw");

    let good = config(&broker, &topic, &dlq, &[("KAFKA_PASSWORD", "s3cret-pw")]);
    let sink = KafkaSink::new(&good).unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let outcomes = sink.publish_batch(&[ripplenet_event(1, "pay-sasl", 10)], deadline).await;
    assert_eq!(outcomes, vec![Outcome::Delivered]);

    // The environment override wins over the file, and a wrong password is never Delivered.
    let bad = config(
        &broker,
        &topic,
        &dlq,
        &[("KAFKA_PASSWORD", "s3cret-pw"), ("PAYBRIDGE_KAFKA__PROPERTIES__SASL_PASSWORD", "wrong")],
    );
    assert_eq!(bad.properties.get("sasl.password").map(String::as_str), Some("wrong"));
    let sink = KafkaSink::new(&bad).unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let outcomes = sink.publish_batch(&[ripplenet_event(2, "pay-sasl", 10)], deadline).await;
    assert!(matches!(outcomes[0], Outcome::Retry(_)), "{outcomes:?}");

    let records = tokio::task::spawn_blocking(move || broker.read_all(&topic, 2, Duration::from_secs(5)))
        .await
        .unwrap_or_default();
    assert_eq!(records.len(), 1, "only the authenticated producer's event is in the topic");
}

/// tansu 0.6.0 cannot serve TLS from its command line (it rejects `--cert` with `--key`),
/// so TLS is checked up to the producer: librdkafka loads the CA when the producer is
/// created, which proves the settings arrive and the build has TLS.
#[test]
fn sasl_ssl_settings_reach_the_producer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = dir.path().join("ca.pem");
    let key = dir.path().join("key.pem");
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kafka", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(status.success());
    let text = |ca_path: &str| {
        format!(
            "[kafka]\nbootstrap_servers = \"kafka:9093\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
             \"sasl.mechanism\" = \"SCRAM-SHA-256\"\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"p\"\n\
             \"ssl.ca.location\" = \"{ca_path}\"\n"
        )
    };
    let good =
        paybridge::config::load(&text(&ca.display().to_string()), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    assert!(KafkaSink::new(&good.kafka).is_ok(), "SASL_SSL with a readable CA builds a producer");
    let missing =
        paybridge::config::load(&text("/nonexistent/ca.pem"), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
    match KafkaSink::new(&missing.kafka) {
        Err(e) => assert!(e.to_string().contains("ssl.ca.location") || e.to_string().contains("ca.pem"), "{e}"),
        Ok(_) => panic!("a missing CA file must be an error at start"),
    }
}
