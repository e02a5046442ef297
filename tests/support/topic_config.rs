//! Changing a topic's settings on the broker, as an operator would.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::Broker;

/// Sets `key = value` on `topic` (and nothing else: the topic's other overrides go).
pub async fn set_topic_config(broker: &Broker, topic: &str, key: &str, value: &str) {
    let admin: AdminClient<DefaultClientContext> =
        broker.client_config().create().unwrap_or_else(|e| panic!("admin client: {e}"));
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value);
    let results = admin
        .alter_configs([&change], &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))))
        .await
        .unwrap_or_else(|e| panic!("alter configs: {e}"));
    for result in results {
        result.unwrap_or_else(|e| panic!("alter config of {topic}: {e:?}"));
    }
}

/// Sets a topic setting that refuses paybridge's records and waits until the broker applies
/// it (AlterConfigs answers before the broker has replayed the change): a record of 1 KB
/// stamped a second ago is refused. Such a probe, accepted while waiting, carries no
/// `ce_id` and counts as no event.
pub async fn set_refusing_topic_config(broker: &Broker, topic: &str, key: &str, value: &str) {
    set_topic_config(broker, topic, key, value).await;
    let producer: FutureProducer = broker.client_config().create().unwrap_or_else(|e| panic!("producer: {e}"));
    let payload = vec![b'x'; 1024];
    for _ in 0..100 {
        let stamp = chrono::Utc::now().timestamp_millis() - 1000;
        let probe = FutureRecord::<(), [u8]>::to(topic).payload(&payload).timestamp(stamp);
        if producer.send(probe, Duration::from_secs(5)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the broker still accepts records after {key} = {value} on {topic}");
}
