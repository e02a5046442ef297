//! A Checkout sandbox whose token endpoint verifies assertions signed with a test key, and
//! readers of its queue.

use serde_json::{Value, json};

use super::Broker;
use super::keys::Keys;
use super::sandbox::Sandbox;
use paybridge_sandbox::Scenario;

/// The sandbox's token path (also the assertions' audience, with its base URL).
pub const TOKEN_PATH: &str = "/am/oauth2/alpha/access_token";

/// The sandbox's Checkout client signing with `keys`, assertions for `token_url`, valid
/// 120 s.
pub fn jwt_client(token_url: &str, keys: &Keys) -> paybridge::config::JwtClient {
    paybridge::config::JwtClient {
        token_url: token_url.to_owned(),
        client_id: "sandbox-checkout-client".to_owned(),
        resource: "JPMC:URI:RS-TEST".to_owned(),
        private_key_path: Some(keys.private_file.clone()),
        private_key: None,
        key_id: "0123456789ABCDEF0123456789ABCDEF01234567".to_owned(),
        assertion_ttl: paybridge::config::HumanDuration::from_secs(120),
    }
}

/// A sandbox that verifies assertions with `keys` and expects `aud` = its token URL;
/// `tweak` changes the scenario further.
pub async fn sandbox_with(keys: &Keys, tweak: impl FnOnce(&mut Scenario)) -> Sandbox {
    Sandbox::start_with(|base| {
        let mut scenario = Scenario::default();
        tweak(&mut scenario);
        scenario.checkout.client_public_key_file = Some(keys.public_file.clone());
        scenario.checkout.audience = format!("{base}{TOKEN_PATH}");
        scenario
    })
    .await
}

pub async fn sandbox(keys: &Keys) -> Sandbox {
    sandbox_with(keys, |_| {}).await
}

/// Creates `count` messages (`kind`: order, profile, token, or mixed when None); their ids.
pub async fn create(sb: &Sandbox, count: usize, kind: Option<&str>) -> Vec<String> {
    let mut body = json!({"count": count});
    if let Some(kind) = kind {
        body["kind"] = json!(kind);
    }
    let v: Value = match sb.http.post(sb.url("/_sandbox/checkout/messages")).json(&body).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => panic!("{e}"),
    };
    v["messageIds"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect()
}

/// Messages not acknowledged yet.
pub async fn unacked(sb: &Sandbox) -> u64 {
    let v: Value = match sb.http.get(sb.url("/_sandbox/checkout/stats")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    v["unacked"].as_u64().unwrap_or(u64::MAX)
}

/// A `paybridge run` config with one Checkout source `co` (account `merchant-001`) on the
/// sandbox, signing with the key at `key_path`.
pub fn config(broker: &Broker, topic: &str, dlq: &str, sb: &Sandbox, key_path: &str) -> String {
    super::base_config(broker, topic, dlq) + &section(sb, key_path)
}

/// The `[[sources]]` section of [`config`].
pub fn section(sb: &Sandbox, key_path: &str) -> String {
    format!(
        r#"
[[sources]]
kind = "checkout"
name = "co"
account = "merchant-001"
base_url = "{base}"
allow_insecure_http = true
merchant_id = "sandbox-merchant"
receive_path = "/notifications/receive"
ack_path = "/notifications/ack"
history_path = "/notifications"
timeout = "1s"
backoff_max = "1s"

[sources.auth]
token_url = "{base}{TOKEN_PATH}"
client_id = "sandbox-checkout-client"
resource = "JPMC:URI:RS-TEST"
private_key_path = "{key_path}"
key_id = "0123456789ABCDEF0123456789ABCDEF01234567"
"#,
        base = sb.url(""),
    )
}
