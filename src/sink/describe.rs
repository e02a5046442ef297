//! What the broker says about each topic paybridge needs, for the principal paybridge
//! authenticates as: whether the topic is visible, its replication factor, and the operations
//! the principal may perform on it.
//!
//! librdkafka's DescribeTopics (a metadata request with the topics' authorized operations,
//! KIP-430), which rust-rdkafka does not wrap. The broker evaluates its ACLs for the caller
//! itself, so no permission to read ACLs (DescribeAcls) is needed. A principal that may not
//! Describe a topic gets "not authorized" whether or not it exists: Kafka never tells it which.

use std::ffi::{CStr, CString, c_char, c_int};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// An operation of Kafka's authorizer on a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Read,
    Write,
    Create,
    Describe,
    DescribeConfigs,
    Other,
}

impl Operation {
    /// The name Kafka's tools and docs use (kafka-acls.sh `--operation`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Create => "Create",
            Operation::Describe => "Describe",
            Operation::DescribeConfigs => "DescribeConfigs",
            Operation::Other => "Other",
        }
    }

    fn from_acl(op: rd::rd_kafka_AclOperation_t) -> Vec<Operation> {
        use rd::rd_kafka_AclOperation_t as A;
        match op {
            A::RD_KAFKA_ACL_OPERATION_ALL => vec![
                Operation::Read,
                Operation::Write,
                Operation::Create,
                Operation::Describe,
                Operation::DescribeConfigs,
            ],
            A::RD_KAFKA_ACL_OPERATION_READ => vec![Operation::Read],
            A::RD_KAFKA_ACL_OPERATION_WRITE => vec![Operation::Write],
            A::RD_KAFKA_ACL_OPERATION_CREATE => vec![Operation::Create],
            A::RD_KAFKA_ACL_OPERATION_DESCRIBE => vec![Operation::Describe],
            A::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS => vec![Operation::DescribeConfigs],
            _ => vec![Operation::Other],
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the broker answered for one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The principal may Describe it.
    Visible {
        partitions: usize,
        /// The smallest replica count of its partitions.
        replication_factor: usize,
        /// What the principal may do on it; None when the broker did not say (a broker
        /// older than Kafka 2.3).
        operations: Option<Vec<Operation>>,
    },
    /// Missing, or present but the principal may not Describe it: Kafka answers the same.
    NotVisible,
    /// The principal may Describe topics of that name, and there is none.
    Missing,
    /// Another error for this topic (its name and Kafka's text).
    Failed(String),
}

/// One topic's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub found: Found,
}

/// Describes `topics` through `client` (blocking: call it off the async runtime), waiting at
/// most `timeout`. Err: the request as a whole failed (brokers unreachable, timeout), with
/// librdkafka's text.
pub fn describe_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<TopicDescription>, String> {
    let names: Vec<CString> = topics
        .iter()
        .map(|t| CString::new(*t).map_err(|_| format!("topic name {t:?} holds a NUL")))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let rk = client.native_ptr();
    // SAFETY: every pointer handed to librdkafka is valid for the call it is handed to:
    // `rk` for the client's lifetime, the topic names (`names`, kept alive until the end of
    // this function) and the collection, options and queue created here and destroyed below.
    // The event's result (names, descriptions, operations) is copied into owned values
    // before the event is destroyed.
    unsafe {
        let options = rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, errstr.as_mut_ptr(), errstr.len());
        let error = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
        if !error.is_null() {
            rd::rd_kafka_error_destroy(error);
        }
        let collection = rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len());
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_DescribeTopics(rk, collection, options, queue);
        // The request's own timeout answers first; the margin covers the queue hand-over.
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(5_000));
        let answer = read_answer(event);
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_TopicCollection_destroy(collection);
        rd::rd_kafka_AdminOptions_destroy(options);
        answer
    }
}

/// The descriptions an event holds.
///
/// # Safety
/// `event` is null or a live event of a DescribeTopics call.
unsafe fn read_answer(event: *mut rd::rd_kafka_event_t) -> Result<Vec<TopicDescription>, String> {
    if event.is_null() {
        return Err("no answer to DescribeTopics in time".into());
    }
    // SAFETY: the caller passes a live event; every pointer read below belongs to it.
    unsafe {
        if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(text(rd::rd_kafka_event_error_string(event)));
        }
        let result = rd::rd_kafka_event_DescribeTopics_result(event);
        if result.is_null() {
            return Err("an answer that is not DescribeTopics's".into());
        }
        let mut count = 0usize;
        let descriptions = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let description = *descriptions.add(i);
            out.push(TopicDescription {
                name: text(rd::rd_kafka_TopicDescription_name(description)),
                found: found(description),
            });
        }
        Ok(out)
    }
}

/// # Safety
/// `description` is a live topic description.
unsafe fn found(description: *const rd::rd_kafka_TopicDescription_t) -> Found {
    use rd::rd_kafka_resp_err_t as E;
    // SAFETY: the caller passes a live description; its error, partitions and operations
    // belong to it.
    unsafe {
        let error = rd::rd_kafka_TopicDescription_error(description);
        if !error.is_null() {
            return match rd::rd_kafka_error_code(error) {
                E::RD_KAFKA_RESP_ERR_NO_ERROR => visible(description),
                E::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED => Found::NotVisible,
                E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART | E::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC => Found::Missing,
                _ => Found::Failed(text(rd::rd_kafka_error_string(error))),
            };
        }
        visible(description)
    }
}

/// # Safety
/// `description` is a live topic description without an error.
unsafe fn visible(description: *const rd::rd_kafka_TopicDescription_t) -> Found {
    // SAFETY: as the caller promises; the arrays are `count` long.
    unsafe {
        let mut partitions = 0usize;
        let list = rd::rd_kafka_TopicDescription_partitions(description, &mut partitions);
        let mut replication_factor = usize::MAX;
        for i in 0..partitions {
            let mut replicas = 0usize;
            rd::rd_kafka_TopicPartitionInfo_replicas(*list.add(i), &mut replicas);
            replication_factor = replication_factor.min(replicas);
        }
        if partitions == 0 {
            replication_factor = 0;
        }
        let mut count = 0usize;
        let ops = rd::rd_kafka_TopicDescription_authorized_operations(description, &mut count);
        let operations = (!ops.is_null()).then(|| {
            let mut all: Vec<Operation> = (0..count).flat_map(|i| Operation::from_acl(*ops.add(i))).collect();
            all.sort();
            all.dedup();
            all
        });
        Found::Visible { partitions, replication_factor, operations }
    }
}

/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p).to_string_lossy().into_owned() }
}
