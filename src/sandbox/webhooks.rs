//! Webhook delivery with the providers' retry rules.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::faults::FaultAction;
use super::ledger::EntryKind;
use super::state::SandboxState;

/// Sends RippleNet thin-payload webhooks `{"msg_id": "<uuid>"}` for `uuids`, when a
/// callback URL is configured: a non-2xx answer or no answer is retried every
/// `webhook_retry_interval`, at most `webhook_max_retries` times.
pub fn ripplenet(s: &SandboxState, uuids: &[Uuid]) {
    let scenario = s.lock().scenario.ripplenet.clone();
    let Some(url) = scenario.callback_url else { return };
    for &uuid in uuids {
        let duplicate = s.lock().faults.has("ripplenet.webhook", &FaultAction::DuplicateWebhook);
        let copies = if duplicate { 2 } else { 1 };
        for _ in 0..copies {
            tokio::spawn(deliver(
                s.clone(),
                url.clone(),
                uuid,
                scenario.webhook_retry_interval.get(),
                scenario.webhook_max_retries,
            ));
        }
    }
}

async fn deliver(s: SandboxState, url: String, uuid: Uuid, interval: Duration, max_retries: u32) {
    let body = json!({"msg_id": uuid.to_string()});
    for attempt in 0..=max_retries {
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        let status = match s.http.post(&url).json(&body).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        {
            let mut inner = s.lock();
            let now = inner.now();
            inner.ledger.record(
                now,
                EntryKind::Webhook,
                super::ripplenet::PROVIDER,
                Some(uuid.to_string()),
                Some(format!("POST {url}")),
                Some(status),
            );
        }
        if (200..300).contains(&status) {
            return;
        }
    }
}
