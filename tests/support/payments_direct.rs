//! Payments Direct helpers against the sandbox: random lifecycles, and waiting until the
//! cursor has caught up with the last change.

use std::time::Duration;

use super::process::eventually;
use super::sandbox::Sandbox;

/// Moves every payment along random allowed transitions (a third of the COMPLETED ones on
/// to RETURNED), one step per payment per round, half of them resting each round, until
/// every payment is done.
pub async fn drive_lifecycles(base: String, ids: Vec<String>) {
    use paybridge_sandbox::payments_direct_store::TRANSITIONS;
    let http = reqwest::Client::new();
    let mut states: Vec<&str> = vec!["INITIATED"; ids.len()];
    let mut done = vec![false; ids.len()];
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n.max(1)
    };
    while done.iter().any(|d| !d) {
        for (i, id) in ids.iter().enumerate() {
            if done[i] || next(2) == 0 {
                continue;
            }
            let options = TRANSITIONS.iter().find(|(s, _)| *s == states[i]).map(|(_, to)| *to).unwrap_or(&[]);
            if options.is_empty() || states[i] == "COMPLETED" && next(3) != 0 {
                done[i] = true;
                continue;
            }
            let to = options[next(options.len())];
            let url = format!("{base}/_sandbox/payments_direct/payments/{id}/transition");
            let r = http.post(url).json(&serde_json::json!({"to": to})).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                states[i] = to;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until two windows have begun more than 2 s after `changed` (the last change):
/// the first of them covered every change and was committed before the second began.
pub async fn wait_caught_up(sb: &Sandbox, changed: chrono::DateTime<chrono::Utc>) {
    let later = changed + chrono::TimeDelta::seconds(2);
    eventually("two windows after the last change", Duration::from_secs(120), || async {
        let starts = sb
            .ledger("kind=request&provider=payments_direct")
            .await
            .iter()
            .filter(|e| e["endpoint"] == "payments_direct.search" && e["status"] == 200 && e.get("id").is_none())
            .filter_map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap_or_default()).ok())
            .filter(|at| *at > later)
            .count();
        starts >= 2
    })
    .await;
}
