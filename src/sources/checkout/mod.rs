//! The J.P. Morgan Checkout source (seed 001) on the source runtime: receives (long polls,
//! always `autoAck=false`) with several in flight, each delivery claimed by its `messageId`
//! so a redelivered copy is never processed twice at once, and acknowledgements by
//! `messageIdentifier` after the broker confirmed the events, batched.

pub mod api;

use std::sync::Arc;

use serde::Deserialize;
use tokio::task::JoinSet;

use self::api::{CheckoutApi, StartError};
use super::SourceContext;
use super::runtime::acker::{AckCalls, AckReply};
use super::runtime::settle::{Settler, SettlerSettings};
use super::runtime::{LoopSettings, PageReader, UpstreamFailure, poll_loop, read_ahead_window};
use crate::config::CheckoutSource;
use crate::event::{Provider, RawJson};
use crate::normalize::checkout::message;
use crate::normalize::field::{Field, opt};

/// The pause between receives that did not fill a page (a receive itself waits up to
/// `timeout` for messages, so this only guards against a provider that ignores `timeoutMs`).
pub const RECEIVE_GAP: std::time::Duration = std::time::Duration::from_millis(100);
/// The longest pause after empty receives that came back at once (a provider that ignores
/// `timeoutMs`): the gap doubles from [`RECEIVE_GAP`] up to this, per receiver.
pub const EMPTY_RECEIVE_GAP_MAX: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Checkout {
    config: CheckoutSource,
    api: Arc<CheckoutApi>,
    ctx: SourceContext,
    settler: Arc<Settler>,
}

/// How many more times the ids listed in `ackFailedMessages` are acknowledged again.
pub const ACK_FAILED_RETRIES: u32 = 2;
/// The pause before such a retry (doubling).
pub const ACK_FAILED_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// The acknowledgement endpoint, for the acker. Ids listed in `ackFailedMessages` are tried
/// again [`ACK_FAILED_RETRIES`] times; what still fails is refused: released, and the provider
/// delivers it again (same event id).
struct AckEndpoint(Arc<CheckoutApi>);

impl AckCalls for AckEndpoint {
    async fn ack(&self, ids: Vec<String>) -> Result<AckReply, UpstreamFailure> {
        let mut failed = self.0.ack(&ids).await?;
        let mut pause = ACK_FAILED_PAUSE;
        for _ in 0..ACK_FAILED_RETRIES {
            if failed.is_empty() {
                break;
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
            failed = match self.0.ack(&failed).await {
                Ok(still) => still,
                // The others are acknowledged already: leave these to redelivery.
                Err(e) => {
                    tracing::warn!(error = %e, messages = failed.len(), "retrying ackFailedMessages failed; left to redelivery");
                    failed
                }
            };
        }
        Ok(AckReply { refused: failed })
    }
}

impl Checkout {
    /// Reads the signing key: a key that cannot be read or parsed stops the start.
    pub fn new(config: CheckoutSource, ctx: SourceContext) -> Result<Arc<Self>, StartError> {
        let api = Arc::new(CheckoutApi::new(&config, ctx.metrics.clone())?);
        // Readiness: a receive may wait `timeout` for messages, plus the request itself.
        ctx.health.register_source(&config.name, config.timeout.get() + config.request_timeout.get());
        let settings = SettlerSettings {
            source: config.name.clone(),
            account: config.account().to_owned(),
            provider: Provider::Checkout,
            provider_name: "J.P. Morgan Checkout",
            max_attempts: config.max_attempts,
            ack_batch_size: config.ack_batch_size,
            backoff_max: config.backoff_max.get(),
            normalize: |account, raw, now| message(account, raw, now).map_err(|e| e.to_string()),
        };
        let settler = Arc::new(Settler::start(settings, Arc::new(AckEndpoint(api.clone())), ctx.clone()));
        Ok(Arc::new(Self { config, api, ctx, settler }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Starts `receivers` receive loops; `tasks` also ends with the acker, after the last
    /// acknowledgement of what was received before the stop.
    pub fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>, pipeline_capacity: usize) {
        let page_size = self.config.max_messages.max(1);
        let settings = LoopSettings {
            source: self.config.name.clone(),
            health_name: self.config.name.clone(),
            interval: RECEIVE_GAP,
            idle_max: EMPTY_RECEIVE_GAP_MAX,
            long_poll: self.config.timeout.get(),
            page_size,
            // The receivers share one pipeline's worth of pages read ahead.
            window: read_ahead_window(self.config.pages_in_flight, pipeline_capacity, page_size, self.config.receivers),
            backoff_max: self.config.backoff_max.get(),
        };
        // Several receives in flight: each delivery goes to one of them; the ledger keeps a
        // redelivered copy from being worked twice at once.
        let reader = Arc::new(Reader { source: self.clone() });
        for _ in 0..self.config.receivers.max(1) {
            tasks.spawn(poll_loop(reader.clone(), self.settler.clone(), settings.clone(), self.ctx.clone(), None));
        }
        self.settler.join_acker(tasks);
    }
}

/// The ledger's key of a message: its `messageId` as the provider wrote it (the ack sends it
/// back unchanged as `messageIdentifier`).
pub fn message_key(raw: &RawJson) -> Option<String> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default, rename = "messageInfo")]
        info: Option<Field<'a, Info<'a>>>,
        #[serde(borrow, default, rename = "messageId")]
        id: Option<Field<'a>>,
    }
    #[derive(Deserialize)]
    struct Info<'a> {
        #[serde(borrow, default, rename = "messageId")]
        id: Option<Field<'a>>,
    }
    // Only an object (a derived struct would also read an array, field by position).
    if !raw.is_object() {
        return None;
    }
    let Ok(read) = serde_json::from_str::<Message<'_>>(raw.get()) else {
        // A key written twice: read as a tree (the last one counts), so the message can
        // still be settled and acknowledged.
        let tree = raw.to_value();
        return [tree.pointer("/messageInfo/messageId"), tree.get("messageId")]
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .map(str::trim)
            .find(|id| !id.is_empty())
            .map(str::to_owned);
    };
    let info = read.info.as_ref().and_then(Field::as_object);
    info.and_then(|i| opt(&i.id)).or_else(|| opt(&read.id)).map(str::to_owned)
}

/// The receive loop as a page reader.
struct Reader {
    source: Arc<Checkout>,
}

impl PageReader for Reader {
    const KEY_NAME: &'static str = "messageInfo.messageId";

    async fn read(&self) -> Result<Vec<RawJson>, UpstreamFailure> {
        Ok(self.source.api.receive().await?)
    }

    fn key(&self, raw: &RawJson) -> Option<String> {
        message_key(raw)
    }
}

#[cfg(test)]
mod tests {
    use crate::event::RawJson;
    use serde_json::{Value, json};

    fn message_key(raw: &Value) -> Option<String> {
        super::message_key(&RawJson::from_value(raw))
    }

    #[test]
    fn a_message_is_keyed_by_its_message_id() {
        assert_eq!(
            message_key(&json!({"messageInfo": {"messageId": " m-1 ", "receiptHandle": "h"}})),
            Some("m-1".into())
        );
        assert_eq!(message_key(&json!({"messageId": "m-2"})), Some("m-2".into()));
        assert_eq!(message_key(&json!({"messageInfo": {"receiptHandle": "h"}})), None);
        assert_eq!(message_key(&json!({"messageInfo": {"messageId": ""}})), None);
        assert_eq!(message_key(&json!({"messageInfo": {"messageId": 7}, "messageId": "m-3"})), Some("m-3".into()));
        assert_eq!(message_key(&json!(["m-4"])), None);
        let twice = RawJson::parse(r#"{"messageInfo":{"messageId":"a"},"messageInfo":{"messageId":"m-5"}}"#);
        assert_eq!(twice.ok().and_then(|raw| super::message_key(&raw)), Some("m-5".into()), "the last one counts");
    }
}
