//! Whether the principal paybridge authenticates as may do, on each topic, what the
//! configured mode does there: checked at start from the broker's own answer (see
//! [`super::describe`]), so a missing ACL stops the start with the principal, the topic and
//! the operation, before anything is read from a provider or acknowledged.

use crate::config::KafkaConfig;

use super::describe::{Found, Operation, TopicDescription};

/// A topic paybridge needs, what it is for, and what paybridge does on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub topic: String,
    /// What the topic is to paybridge ("events", "DLQ", "state", "coordination").
    pub role: &'static str,
    pub operations: Vec<Operation>,
}

impl Need {
    /// Whether paybridge writes to this topic (its durability matters).
    pub fn written(&self) -> bool {
        self.operations.contains(&Operation::Write)
    }
}

/// What the configured mode does on each topic: every topic is described (Describe); the
/// topics paybridge writes (events, DLQ, state) have their configuration read
/// (DescribeConfigs: limits and durability) and are written (Write); the events topic is read
/// back by cursor sources (what the previous process published), the state topic by cursor
/// sources (their positions); the coordination topic is only subscribed to by every replica
/// (Read; nothing is written to it).
pub fn needs(kafka: &KafkaConfig, with_state: bool, coordination: Option<&str>) -> Vec<Need> {
    use Operation::{Describe, DescribeConfigs, Read, Write};
    let mut needs = vec![
        Need {
            topic: kafka.topic.clone(),
            role: "events",
            operations: if with_state {
                vec![Describe, DescribeConfigs, Write, Read]
            } else {
                vec![Describe, DescribeConfigs, Write]
            },
        },
        Need { topic: kafka.dlq_topic.clone(), role: "DLQ", operations: vec![Describe, DescribeConfigs, Write] },
    ];
    if with_state {
        needs.push(Need {
            topic: kafka.state_topic.clone(),
            role: "state",
            operations: vec![Describe, DescribeConfigs, Write, Read],
        });
    }
    if let Some(topic) = coordination {
        // Nothing is written to it: the replicas' group assigns its partitions.
        needs.push(Need { topic: topic.to_owned(), role: "coordination", operations: vec![Describe, Read] });
    }
    needs
}

/// One operation the principal may not perform on a topic it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub topic: String,
    pub role: &'static str,
    pub operation: Operation,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on topic {} (the {} topic)", self.operation, self.topic, self.role)
    }
}

/// The operations of `needs` that `described` says the principal may not perform, on the
/// topics it can see (a topic it cannot see is reported as such, not here). A broker that
/// does not tell the operations denies nothing here: the first publish would tell.
pub fn denials(needs: &[Need], described: &[TopicDescription]) -> Vec<Denial> {
    let mut out = Vec::new();
    for need in needs {
        let Some(Found::Visible { operations: Some(allowed), .. }) =
            described.iter().find(|d| d.name == need.topic).map(|d| &d.found)
        else {
            continue;
        };
        for operation in &need.operations {
            if !allowed.contains(operation) {
                out.push(Denial { topic: need.topic.clone(), role: need.role, operation: *operation });
            }
        }
    }
    out
}

/// Who paybridge is to the brokers, as an operator finds it in Kafka's ACLs: the principal
/// and how it authenticates (never a secret).
pub fn principal(kafka: &KafkaConfig) -> String {
    let get = |key: &str| kafka.properties.get(key).map(String::as_str);
    let protocol = get("security.protocol").unwrap_or("plaintext").to_ascii_uppercase();
    match protocol.as_str() {
        "SASL_SSL" | "SASL_PLAINTEXT" => {
            let mechanism = get("sasl.mechanism").or(get("sasl.mechanisms")).unwrap_or("GSSAPI").to_ascii_uppercase();
            match mechanism.as_str() {
                "OAUTHBEARER" => match get("sasl.oauthbearer.client.id") {
                    Some(client) => {
                        format!("the OAUTHBEARER principal of client {client} (the token's subject, over {protocol})")
                    }
                    None => format!("the OAUTHBEARER principal (the token's subject, over {protocol})"),
                },
                "GSSAPI" => format!(
                    "the Kerberos principal {} (GSSAPI over {protocol})",
                    get("sasl.kerberos.principal").unwrap_or("kafkaclient")
                ),
                _ => format!("User:{} ({mechanism} over {protocol})", get("sasl.username").unwrap_or("")),
            }
        }
        "SSL" => match get("ssl.certificate.location").or(get("ssl.keystore.location")) {
            Some(file) => format!("the principal of the client certificate in {file} (User:<its subject>, over SSL)"),
            None if get("ssl.certificate.pem").is_some() => {
                "the principal of the client certificate in ssl.certificate.pem (User:<its subject>, over SSL)".into()
            }
            None => "User:ANONYMOUS (SSL without a client certificate)".into(),
        },
        _ => "User:ANONYMOUS (PLAINTEXT)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn kafka(properties: &[(&str, &str)]) -> KafkaConfig {
        let mut text = String::from("[kafka]\nbootstrap_servers = \"k:9092\"\n[kafka.properties]\n");
        for (k, v) in properties {
            text.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
        crate::config::load(&text, &BTreeMap::new()).map(|c| c.kafka).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_principal_is_named_by_how_paybridge_authenticates_never_with_a_secret() {
        let scram = kafka(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "payments"),
            ("sasl.password", "hunter2"),
        ]);
        assert_eq!(principal(&scram), "User:payments (SCRAM-SHA-512 over SASL_SSL)");
        let mtls = kafka(&[("security.protocol", "ssl"), ("ssl.certificate.location", "/certs/client.pem")]);
        assert!(principal(&mtls).contains("/certs/client.pem"), "{}", principal(&mtls));
        assert_eq!(principal(&kafka(&[])), "User:ANONYMOUS (PLAINTEXT)");
        let oauth = kafka(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.client.id", "bridge"),
            ("sasl.oauthbearer.client.secret", "s3"),
        ]);
        assert!(principal(&oauth).contains("client bridge"));
        for config in [scram, oauth] {
            assert!(!principal(&config).contains("hunter2") && !principal(&config).contains("s3"));
        }
    }

    #[test]
    fn each_operation_a_visible_topic_lacks_is_a_denial_and_unknown_operations_deny_nothing() {
        let config = kafka(&[]);
        let needs = needs(&config, true, None);
        let visible =
            |ops: Option<Vec<Operation>>| Found::Visible { partitions: 1, replication_factor: 1, operations: ops };
        use Operation::*;
        let described = vec![
            TopicDescription { name: config.topic.clone(), found: visible(Some(vec![Describe, Write, Read])) },
            TopicDescription { name: config.dlq_topic.clone(), found: visible(None) },
            TopicDescription { name: config.state_topic.clone(), found: Found::NotVisible },
        ];
        let found = denials(&needs, &described);
        assert_eq!(
            found,
            [Denial { topic: config.topic.clone(), role: "events", operation: DescribeConfigs }],
            "the DLQ's operations are unknown, the state topic's invisibility is reported elsewhere"
        );
        assert_eq!(found[0].to_string(), format!("DescribeConfigs on topic {} (the events topic)", config.topic));
    }
}
