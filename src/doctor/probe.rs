//! librdkafka clients that try one thing each and remember what librdkafka said on the way
//! (its error callbacks and log lines), so a failure is told by its cause: the TCP
//! connection, the TLS handshake, the SASL authentication, an authorization.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// What librdkafka said while a probe ran.
#[derive(Clone, Default)]
pub struct Heard(Arc<Mutex<Said>>);

#[derive(Default)]
struct Said {
    /// Error callbacks: the code and librdkafka's text.
    errors: Vec<(Option<RDKafkaErrorCode>, String)>,
    /// Log lines (with the `debug` contexts a probe asked for).
    logs: Vec<String>,
    /// A rebalance assigned this member its share (possibly nothing) of the group.
    joined: bool,
}

impl Heard {
    fn with<T>(&self, f: impl FnOnce(&mut Said) -> T) -> T {
        match self.0.lock() {
            Ok(mut said) => f(&mut said),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The first error of `code`, with its text.
    pub fn error(&self, code: RDKafkaErrorCode) -> Option<String> {
        self.with(|s| s.errors.iter().find(|(c, _)| *c == Some(code)).map(|(_, text)| text.clone()))
    }

    /// The first error whose text holds `needle` (case-insensitive).
    pub fn error_saying(&self, needle: &str) -> Option<String> {
        let needle = needle.to_ascii_lowercase();
        self.with(|s| s.errors.iter().find(|(_, t)| t.to_ascii_lowercase().contains(&needle)).map(|(_, t)| t.clone()))
    }

    /// The last error heard, if any.
    pub fn last_error(&self) -> Option<String> {
        self.with(|s| s.errors.last().map(|(_, t)| t.clone()))
    }

    fn logged(&self, needle: &str) -> bool {
        self.with(|s| s.logs.iter().any(|l| l.contains(needle)))
    }

    fn joined(&self) -> bool {
        self.with(|s| s.joined)
    }
}

impl ClientContext for Heard {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let line = format!("{fac}: {log_message}");
        self.with(|s| {
            // Bounded: a probe runs seconds, but a chatty debug context must not grow without end.
            if s.logs.len() < 10_000 {
                s.logs.push(line);
            }
        });
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        self.with(|s| {
            if s.errors.len() < 1_000 {
                s.errors.push((code, reason.to_owned()));
            }
        });
    }
}

impl ConsumerContext for Heard {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.with(|s| s.joined = true);
        }
    }
}

impl ProducerContext for Heard {
    type DeliveryOpaque = ();
    fn delivery(&self, _result: &rdkafka::message::DeliveryResult<'_>, _opaque: Self::DeliveryOpaque) {}
}

/// How long a failed connection's error events are waited for.
const ERRORS_HEARD_WITHIN: Duration = Duration::from_secs(3);

/// What a connection attempt found.
pub struct Connected {
    /// The brokers the cluster's metadata lists.
    pub brokers: usize,
}

/// Connects with `config` (a consumer's: no group is joined) and reads the cluster's metadata (blocking: call it off the async
/// runtime). Err: librdkafka's text of the request, and what it heard on the way.
pub fn connect(config: &ClientConfig, timeout: Duration) -> (Result<Connected, String>, Heard) {
    let heard = Heard::default();
    let consumer: BaseConsumer<Heard> = match config.create_with_context(heard.clone()) {
        Ok(c) => c,
        Err(e) => return (Err(e.to_string()), heard),
    };
    let result = consumer
        .fetch_metadata(None, timeout)
        .map(|metadata| Connected { brokers: metadata.brokers().len() })
        .map_err(|e| e.to_string());
    if result.is_err() {
        // The cause (a TLS or SASL failure) reaches the context as an error event, served by
        // polling: the request may have failed before it was heard.
        let deadline = Instant::now() + ERRORS_HEARD_WITHIN;
        while heard.last_error().is_none() && Instant::now() < deadline {
            let _ = consumer.poll(Duration::from_millis(100));
        }
    }
    (result, heard)
}

/// How a producer's initialisation ended.
pub enum Init {
    /// It got its producer id (and, transactional, its epoch).
    Done,
    /// The broker refused it, with librdkafka's text.
    Refused(String),
    /// No answer within the time given.
    TimedOut(Option<String>),
}

/// Starts an idempotent producer with `config` and waits for its producer id (the
/// InitProducerId request every paybridge producer makes first), at most `timeout`.
pub fn idempotent_init(config: &ClientConfig, timeout: Duration) -> Init {
    let heard = Heard::default();
    let mut config = config.clone();
    // The idempotence state machine's log lines say when the id is acquired.
    // (rust-rdkafka sets the client's log level from the `log` crate's, warnings for a command).
    config.set("debug", "eos").set_log_level(RDKafkaLogLevel::Debug);
    let producer: BaseProducer<Heard> = match config.create_with_context(heard.clone()) {
        Ok(p) => p,
        Err(e) => return Init::Refused(e.to_string()),
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        producer.poll(Duration::from_millis(100));
        if let Some(fatal) = producer.client().fatal_error() {
            return Init::Refused(fatal.1);
        }
        if let Some(refused) = heard.error_saying("authoriz") {
            return Init::Refused(refused);
        }
        if heard.logged("-> Assigned") {
            return Init::Done;
        }
    }
    Init::TimedOut(heard.last_error())
}

/// Initialises a transactional producer with `config` (which names its `transactional.id`),
/// at most `timeout`, and aborts nothing: no transaction is begun.
pub fn transactional_init(config: &ClientConfig, timeout: Duration) -> Init {
    let heard = Heard::default();
    let producer: BaseProducer<Heard> = match config.create_with_context(heard.clone()) {
        Ok(p) => p,
        Err(e) => return Init::Refused(e.to_string()),
    };
    match producer.init_transactions(timeout) {
        Ok(()) => Init::Done,
        Err(KafkaError::Transaction(e)) if e.code() == RDKafkaErrorCode::OperationTimedOut => {
            Init::TimedOut(heard.last_error())
        }
        Err(e) => Init::Refused(e.to_string()),
    }
}

/// Joins the group of `config` by subscribing to `topic`, and leaves it at once: Done when a
/// rebalance assigned this member its share. At most `timeout`.
pub fn join_group(config: &ClientConfig, topic: &str, timeout: Duration) -> Init {
    let heard = Heard::default();
    let consumer: BaseConsumer<Heard> = match config.create_with_context(heard.clone()) {
        Ok(c) => c,
        Err(e) => return Init::Refused(e.to_string()),
    };
    if let Err(e) = consumer.subscribe(&[topic]) {
        return Init::Refused(e.to_string());
    }
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        if Instant::now() >= deadline {
            break Init::TimedOut(heard.last_error());
        }
        match consumer.poll(Duration::from_millis(100)) {
            // Nothing is read: a record (there are none on the coordination topic) is dropped.
            Some(Err(e)) if is_authorization(&e) => break Init::Refused(e.to_string()),
            _ if heard.joined() => break Init::Done,
            _ => {}
        }
        if let Some(refused) = heard.error_saying("authoriz") {
            break Init::Refused(refused);
        }
    };
    consumer.unsubscribe();
    outcome
}

fn is_authorization(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::TopicAuthorizationFailed)
    )
}
