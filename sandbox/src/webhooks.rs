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
            let delay = shuffle_delay(s, "ripplenet.webhook");
            tokio::spawn(deliver(
                s.clone(),
                delay,
                super::ripplenet::PROVIDER,
                url.clone(),
                uuid.to_string(),
                json!({"msg_id": uuid.to_string()}),
                (scenario.webhook_retry_interval, scenario.webhook_max_retries),
            ));
        }
    }
}

/// Sends a Payments Direct `PAYMENT_STATE_TRANSITION` webhook, when a callback is set.
pub fn payments_direct(s: &SandboxState, payment_id: Uuid, from: &str, to: &str, at: chrono::DateTime<chrono::Utc>) {
    let (scenario, event_id, duplicate) = {
        let mut inner = s.lock();
        let duplicate = inner.faults.has("payments_direct.webhook", &FaultAction::DuplicateWebhook);
        (inner.scenario.payments_direct.clone(), inner.uuid(), duplicate)
    };
    let Some(url) = scenario.callback_url else { return };
    let body = json!({
        "id": event_id.to_string(),
        "eventType": "PAYMENT_STATE_TRANSITION",
        "eventVersion": 1,
        "eventData": {
            "paymentId": payment_id.to_string(),
            "previousPaymentState": from,
            "paymentState": to,
            "lastStateUpdatedAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
    });
    for _ in 0..if duplicate { 2 } else { 1 } {
        let delay = shuffle_delay(s, "payments_direct.webhook");
        tokio::spawn(deliver(
            s.clone(),
            delay,
            super::payments_direct::PROVIDER,
            url.clone(),
            payment_id.to_string(),
            body.clone(),
            (scenario.webhook_retry_interval, scenario.webhook_max_retries),
        ));
    }
}

/// With an `out_of_order_webhook` fault on `endpoint`: a random delay below its bound.
fn shuffle_delay(s: &SandboxState, endpoint: &str) -> Duration {
    let mut inner = s.lock();
    match inner.faults.out_of_order(endpoint) {
        Some(ms) if ms > 0 => Duration::from_millis(u64::from(inner.rng_u32()) % ms),
        _ => Duration::ZERO,
    }
}

async fn deliver(
    s: SandboxState,
    delay: Duration,
    provider: &'static str,
    url: String,
    id: String,
    body: serde_json::Value,
    (interval, max_retries): (Duration, u32),
) {
    tokio::time::sleep(delay).await;
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
                provider,
                Some(id.clone()),
                Some(format!("POST {url}")),
                Some(status),
            );
        }
        if (200..300).contains(&status) {
            return;
        }
    }
}
