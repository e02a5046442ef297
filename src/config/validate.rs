//! Checks that span keys or need more than the schema can say.

use std::collections::BTreeMap;
use std::time::Duration;

use super::load::ConfigError;
use super::{Config, FORCED_KAFKA_PROPERTIES};

/// Every semantic problem in `config`, each naming its key.
pub fn validate(config: &Config) -> Vec<ConfigError> {
    let mut errors = super::exposure::exposure_errors(config);
    let kafka = &config.kafka;

    let servers: Vec<&str> = kafka.bootstrap_servers.split(',').map(str::trim).collect();
    if servers.iter().any(|s| !is_host_port(s)) {
        errors.push(ConfigError::new(
            "kafka.bootstrap_servers",
            "expected a comma-separated list of host:port, e.g. \"kafka-0:9092,kafka-1:9092\"",
        ));
    }
    for (key, topic) in [
        ("kafka.topic", &kafka.topic),
        ("kafka.dlq_topic", &kafka.dlq_topic),
        ("kafka.state_topic", &kafka.state_topic),
    ] {
        if !is_topic_name(topic) {
            errors.push(ConfigError::new(key, "invalid topic name: use 1–249 of a-z A-Z 0-9 . _ -"));
        }
    }
    if kafka.topic == kafka.dlq_topic {
        errors.push(ConfigError::new("kafka.dlq_topic", "must differ from kafka.topic"));
    }
    if kafka.state_topic == kafka.topic || kafka.state_topic == kafka.dlq_topic {
        errors.push(ConfigError::new("kafka.state_topic", "must differ from kafka.topic and kafka.dlq_topic"));
    }
    for name in kafka.properties.keys() {
        if let Some((_, instead)) = FORCED_KAFKA_PROPERTIES.iter().find(|(forced, _)| forced == name) {
            errors.push(ConfigError::new(format!("kafka.properties.{name:?}"), format!("not allowed here: {instead}")));
        }
    }
    if let Some(prefix) = &kafka.transactional_id_prefix
        && (prefix.is_empty() || prefix.len() > 200 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        errors.push(ConfigError::new(
            "kafka.transactional_id_prefix",
            "must be 1 to 200 characters without spaces or control characters",
        ));
    }
    if let Some(registry) = &kafka.schema_registry {
        registry.validate(&mut errors);
    }
    if kafka.dlq_breaker_max > kafka.dlq_breaker_window {
        errors.push(ConfigError::new(
            "kafka.dlq_breaker_max",
            format!("must be at most kafka.dlq_breaker_window ({})", kafka.dlq_breaker_window),
        ));
    }
    if kafka.delivery_timeout.get().is_zero() {
        errors.push(ConfigError::new("kafka.delivery_timeout", "must be greater than zero"));
    }
    if let Some(cluster) = &config.cluster {
        validate_cluster(cluster, config, &mut errors);
    }
    if config.shutdown.timeout.get().is_zero() {
        errors.push(ConfigError::new("shutdown.timeout", "must be greater than zero"));
    }

    if config.admin.listen == config.intake.listen {
        errors.push(ConfigError::new("intake.listen", "must differ from admin.listen"));
    }
    if tracing_subscriber::EnvFilter::try_new(&config.log.level).is_err() {
        errors.push(ConfigError::new("log.level", "not a valid filter; use e.g. \"info\" or \"paybridge=debug,info\""));
    }

    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    for (i, source) in config.sources.iter().enumerate() {
        if let Some(path) = source.webhook_path()
            && let Some(first) = paths.insert(path.clone(), i)
        {
            errors.push(ConfigError::new(
                format!("sources[{i}].webhook.path"),
                format!("{path} is already the webhook path of sources[{first}]"),
            ));
        }
        if let super::SourceConfig::Ripplenet(r) = source {
            for (key, url) in [("base_url", &r.base_url), ("auth.token_url", &r.auth.token_url)] {
                if reqwest::Url::parse(url).is_err() {
                    errors.push(ConfigError::new(format!("sources[{i}].{key}"), "not a valid URL"));
                }
            }
            if r.new_interval.get().is_zero() || r.sent_interval.get().is_zero() {
                errors.push(ConfigError::new(
                    format!("sources[{i}]"),
                    "new_interval and sent_interval must be greater than zero",
                ));
            }
        }
    }

    if config.kafka.sasl_password_file.is_some() {
        if config.kafka.properties.contains_key("sasl.password") {
            errors.push(ConfigError::new(
                "kafka.sasl_password_file",
                "set one of kafka.sasl_password_file and kafka.properties.\"sasl.password\", not both",
            ));
        }
        if !config.kafka.properties.contains_key("sasl.username") {
            errors.push(ConfigError::new(
                "kafka.sasl_password_file",
                "needs kafka.properties.\"sasl.username\" (the user the password is for)",
            ));
        }
    }
    if config.kafka.secret_reload_interval.get() < std::time::Duration::from_secs(1) {
        errors.push(ConfigError::new("kafka.secret_reload_interval", "must be at least 1s"));
    }

    for (i, source) in config.sources.iter().enumerate() {
        let auth = match source {
            super::SourceConfig::Ripplenet(r) => &r.auth,
            super::SourceConfig::PaymentsDirect(p) => &p.auth,
            super::SourceConfig::Checkout(_) => continue,
        };
        match (&auth.client_secret, &auth.client_secret_file) {
            (Some(_), Some(_)) => errors.push(ConfigError::new(
                format!("sources[{i}].auth"),
                "set one of client_secret and client_secret_file, not both",
            )),
            (None, None) => errors.push(ConfigError::new(
                format!("sources[{i}].auth"),
                "the client secret is missing: set client_secret (\"${VAR}\") or client_secret_file (a mounted file)",
            )),
            _ => {}
        }
    }

    for (i, source) in config.sources.iter().enumerate() {
        if let super::SourceConfig::Checkout(c) = source {
            errors.extend(checkout_errors(i, c));
            errors.extend(visibility_errors(i, c, config.kafka.delivery_timeout.get()));
        }
    }
    errors.extend(read_ahead_errors(config));

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, source) in config.sources.iter().enumerate() {
        if let Some(first) = seen.insert(source.name(), i) {
            errors.push(ConfigError::new(
                format!("sources[{i}].name"),
                format!("duplicate source name {:?} (also sources[{first}])", source.name()),
            ));
        }
    }
    errors
}

/// What a source's poll loops read while they wait for room in the pipeline stays within
/// `pipeline.capacity` (the memory bound counts it once per source).
fn read_ahead_errors(config: &Config) -> Vec<ConfigError> {
    let capacity = config.pipeline.capacity;
    let mut errors = Vec::new();
    for (i, source) in config.sources.iter().enumerate() {
        let (key, pages, what) = match source {
            super::SourceConfig::Checkout(c) => {
                ("receivers", c.receivers.saturating_mul(c.max_messages), "receivers × max_messages")
            }
            super::SourceConfig::Ripplenet(r) => ("page_size", r.page_size.saturating_mul(2), "2 pollers × page_size"),
            super::SourceConfig::PaymentsDirect(_) => continue,
        };
        if pages > capacity {
            errors.push(ConfigError::new(
                format!("sources[{i}].{key}"),
                format!(
                    "{what} ({pages}) is more than pipeline.capacity ({capacity}): one page per loop could not wait \
                     for room without holding more than the pipeline does; lower it or raise pipeline.capacity"
                ),
            ));
        }
    }
    errors
}

fn checkout_errors(i: usize, c: &super::CheckoutSource) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (key, url) in [("base_url", &c.base_url), ("auth.token_url", &c.auth.token_url)] {
        if reqwest::Url::parse(url).is_err() {
            errors.push(ConfigError::new(format!("sources[{i}].{key}"), "not a valid URL"));
        }
    }
    match (&c.auth.private_key_path, &c.auth.private_key) {
        (Some(_), Some(_)) => errors.push(ConfigError::new(
            format!("sources[{i}].auth"),
            "set one of private_key_path and private_key, not both",
        )),
        (None, None) => errors.push(ConfigError::new(
            format!("sources[{i}].auth"),
            "the signing key is missing: set private_key_path (a PEM file) or private_key (the PEM itself)",
        )),
        _ => {}
    }
    if c.auth.assertion_ttl.get().as_secs() < 10 {
        errors.push(ConfigError::new(format!("sources[{i}].auth.assertion_ttl"), "must be at least 10s"));
    }
    if c.request_timeout.get().is_zero() {
        errors.push(ConfigError::new(format!("sources[{i}].request_timeout"), "must be greater than zero"));
    }
    errors
}

/// A received message must be published and acknowledged before the provider delivers it
/// again, when its visibility timeout is known.
fn visibility_errors(i: usize, c: &super::CheckoutSource, delivery_timeout: Duration) -> Vec<ConfigError> {
    let Some(visibility) = c.visibility_timeout.map(|v| v.get()) else {
        return Vec::new();
    };
    let needed = delivery_timeout + c.request_timeout.get();
    if needed < visibility {
        return Vec::new();
    }
    vec![ConfigError::new(
        format!("sources[{i}].visibility_timeout"),
        format!(
            "kafka.delivery_timeout ({}) plus request_timeout ({}), the longest from a receive to its \
             acknowledgement, do not fit inside the visibility timeout ({}): messages would be delivered again \
             while still being published; lower kafka.delivery_timeout or request_timeout",
            humantime::format_duration(delivery_timeout),
            humantime::format_duration(c.request_timeout.get()),
            humantime::format_duration(visibility)
        ),
    )]
}

fn is_host_port(entry: &str) -> bool {
    let Some((host, port)) = entry.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
}

fn is_topic_name(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `[cluster]`: a topic name of its own, and timeouts the group coordinator accepts.
fn validate_cluster(cluster: &super::ClusterConfig, config: &Config, errors: &mut Vec<ConfigError>) {
    let kafka = &config.kafka;
    if !is_topic_name(&cluster.topic) {
        errors.push(ConfigError::new("cluster.topic", "invalid topic name: use 1–249 of a-z A-Z 0-9 . _ -"));
    } else if [&kafka.topic, &kafka.dlq_topic, &kafka.state_topic].contains(&&cluster.topic) {
        errors.push(ConfigError::new(
            "cluster.topic",
            "must differ from kafka.topic, kafka.dlq_topic and kafka.state_topic",
        ));
    }
    if let Some(group) = &cluster.group_id
        && (group.trim().is_empty() || group.chars().any(char::is_control))
    {
        errors.push(ConfigError::new("cluster.group_id", "must not be empty or contain control characters"));
    }
    let session = cluster.session_timeout.get();
    if session < Duration::from_secs(1) || session > Duration::from_secs(1800) {
        errors.push(ConfigError::new("cluster.session_timeout", "must be between 1s and 30m"));
    }
    let handover = cluster.handover_timeout.get();
    if handover.is_zero() || handover > Duration::from_secs(600) {
        errors.push(ConfigError::new("cluster.handover_timeout", "must be greater than zero and at most 10m"));
    }
}
