//! No secret in any log line or error message: a full flow of all three sources (polls,
//! acknowledgements, webhooks accepted and refused, a token endpoint failing once) against a
//! SASL-authenticated broker, logged at debug level for every crate, in text and in JSON,
//! with known secret values; then every line is searched for them. The config's `Debug`
//! and serialized forms, and `config validate`'s errors, are searched too.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::child::{OutputWithin, QUICK};
use support::process::{Paybridge, eventually};
use support::sandbox::Sandbox;
use support::{Broker, keys};

const RN_SECRET: &str = "rn-client-secret-Zq81";
const PD_SECRET: &str = "pd-client-secret-Wd40";
const HOOK_TOKEN: &str = "hook-token-Yx55";
const HOOK_SIGNING: &str = "hook-signing-Vb27";
const KAFKA_PASSWORD: &str = "kafka-password-Tt93";
const REGISTRY_TOKEN: &str = "registry-bearer-Rr11";

/// The secrets, and the lines of the private key's PEM body (each long enough to be unique).
fn secrets(private_pem: &str) -> Vec<String> {
    let mut all: Vec<String> = [RN_SECRET, PD_SECRET, HOOK_TOKEN, HOOK_SIGNING, KAFKA_PASSWORD, REGISTRY_TOKEN]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    all.extend(private_pem.lines().filter(|l| l.len() >= 40 && !l.starts_with("-----")).map(str::to_owned));
    all
}

fn env(private_pem: &str) -> Vec<(&'static str, String)> {
    vec![
        ("RN_SECRET", RN_SECRET.to_owned()),
        ("PD_SECRET", PD_SECRET.to_owned()),
        ("HOOK_TOKEN", HOOK_TOKEN.to_owned()),
        ("HOOK_SIGNING", HOOK_SIGNING.to_owned()),
        ("KAFKA_PASSWORD", KAFKA_PASSWORD.to_owned()),
        ("CO_PRIVATE_KEY", private_pem.to_owned()),
    ]
}

fn config(broker: &Broker, sandbox: &Sandbox, topics: &[String; 3], format: &str) -> String {
    let [topic, dlq, state] = topics;
    let checkout = support::checkout::section(sandbox, "UNUSED")
        .replace("private_key_path = \"UNUSED\"", "private_key = \"\"\"${CO_PRIVATE_KEY}\"\"\"");
    support::base_config_with_state(broker, topic, dlq, state)
        + &format!(
            r#"
[kafka.properties]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "paybridge"
"sasl.password" = "${{KAFKA_PASSWORD}}"

[log]
level = "debug"
format = "{format}"

[[sources]]
kind = "ripplenet"
name = "rn"
account = "acme"
base_url = "{base}"
allow_insecure_http = true
new_interval = "300ms"
sent_interval = "1s"
sent_delay = "0s"
backoff_max = "1s"

[sources.auth]
token_url = "{base}/oauth/token"
client_id = "sandbox-client"
client_secret = "${{RN_SECRET}}"
audience = "urn:ripplenet:sandbox"

[sources.webhook]
enabled = true
path = "/hooks/rn"
token = {{ header = "x-hook-token", value = "${{HOOK_TOKEN}}" }}
signature = {{ secret = "${{HOOK_SIGNING}}" }}

[[sources]]
kind = "payments_direct"
name = "pd"
account = "pd-acct"
base_url = "{base}"
allow_insecure_http = true
interval = "1s"
max_idle_interval = "2s"
safety_lag = "1s"
start_from = "10m"
backoff_max = "1s"

[sources.auth]
token_url = "{base}/v2/oauth/token"
client_id = "sandbox-client"
client_secret = "${{PD_SECRET}}"
audience = "urn:ripplexcurrent-test:sandbox"

[sources.webhook]
enabled = true
path = "/hooks/pd"
token = {{ header = "x-hook-token", value = "${{HOOK_TOKEN}}" }}
{checkout}"#,
            base = sandbox.url(""),
        )
}

fn spawn(config: &str, private_pem: &str) -> Paybridge {
    let env = env(private_pem);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Every crate at debug level (hyper, reqwest, rustls, rdkafka's log bridge, …).
    vars.push(("RUST_LOG", "debug"));
    Paybridge::spawn_with_env(config, &vars)
}

fn signed(body: &str) -> (String, String) {
    use hmac::Mac;
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SIGNING.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("{ts}.{body}").as_bytes());
    (ts, hex::encode(mac.finalize().into_bytes()))
}

/// Runs the flow once with `format` and returns paybridge's log.
async fn flow(broker: &Broker, keys: &keys::Keys, topics: &[String; 3], format: &str) -> String {
    let sandbox = support::checkout::sandbox_with(keys, |scenario| {
        scenario.ripplenet.client_secret = RN_SECRET.into();
        scenario.payments_direct.client_secret = PD_SECRET.into();
    })
    .await;
    let private_pem = String::from_utf8_lossy(&keys.private_pem).into_owned();
    // The RippleNet token endpoint fails once: the error path is logged too.
    support::ripplenet::fault(
        &sandbox,
        json!({"endpoint": "ripplenet.token", "action": "status", "status": 503, "times": 1}),
    )
    .await;
    let mut bridge = spawn(&config(broker, &sandbox, topics, format), &private_pem);
    bridge.wait_for_log("paybridge started", Duration::from_secs(30));

    let rn = sandbox.create(3).await;
    support::checkout::create(&sandbox, 3, None).await;
    let pd = sandbox.pd_create(2).await;
    let http = reqwest::Client::new();
    let hook = |path: &str| format!("{}{path}", bridge.intake());
    let body = json!({"msg_id": rn[0]}).to_string();
    // The token endpoint's 503 is remembered for a backoff interval (2 s): until then the
    // webhook is answered 503, then 200.
    let mut accepted = None;
    for _ in 0..20 {
        let (ts, signature) = signed(&body);
        let answer = http
            .post(hook("/hooks/rn"))
            .header("x-hook-token", HOOK_TOKEN)
            .header("ripple-signature-timestamp", ts)
            .header("ripple-signature", signature)
            .body(body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16());
        accepted = answer.ok();
        if accepted == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(accepted, Some(200));
    let refused = http.post(hook("/hooks/rn")).header("x-hook-token", "wrong").body(body).send().await;
    assert_eq!(refused.map(|r| r.status().as_u16()).ok(), Some(401));
    let transition = json!({"id": "n-1", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1,
                            "eventData": {"paymentId": pd[0]}});
    let pd_answer = http.post(hook("/hooks/pd")).header("x-hook-token", HOOK_TOKEN).json(&transition).send().await;
    assert_eq!(pd_answer.map(|r| r.status().as_u16()).ok(), Some(200));

    eventually("every source's notifications acknowledged", Duration::from_secs(30), || async {
        support::ripplenet::acked(&sandbox).await >= 3 && support::checkout::unacked(&sandbox).await == 0
    })
    .await;
    bridge.stop();
    bridge.log()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_in_text_or_json_at_debug_level() {
    let keys = keys::rsa_keys();
    let private_pem = String::from_utf8_lossy(&keys.private_pem).into_owned();
    let mut broker = Broker::start_own();
    let topics = [broker.new_topic("sec-events", 3), broker.new_topic("sec-dlq", 1), broker.new_topic("sec-state", 1)];
    broker.create_scram_user("paybridge", KAFKA_PASSWORD);
    broker.restart_with_authentication("paybridge", KAFKA_PASSWORD);

    let secrets = secrets(&private_pem);
    assert!(secrets.len() > 10, "the private key's lines are among the secrets");
    for format in ["text", "json"] {
        let log = flow(&broker, &keys, &topics, format).await;
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines.len() > 50, "{format}: a debug log has many lines ({})", lines.len());
        if format == "json" {
            let objects = lines.iter().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count();
            assert!(objects * 10 >= lines.len() * 9, "{format}: the log is JSON lines ({objects} of {})", lines.len());
        }
        assert!(log.contains("webhook refused"), "{format}: the refusal is logged");
        for (n, line) in lines.iter().enumerate() {
            for secret in &secrets {
                assert!(!line.contains(secret.as_str()), "{format}: line {n} holds a secret");
            }
            assert!(!line.contains("eyJ"), "{format}: line {n} holds what looks like a JWT: {line}");
        }
    }
    let records = tokio::task::spawn_blocking(move || broker.read_to_end(&topics[0], Duration::from_secs(30)))
        .await
        .unwrap_or_default();
    // Per flow: 3 RippleNet notifications, 3 Checkout messages, and at least the webhook's payment.
    assert!(records.len() >= 2 * (3 + 3 + 1), "both flows published ({})", records.len());
}

fn loaded_config(private_pem: &str) -> paybridge::config::Config {
    let text = format!(
        "{}\n[kafka.schema_registry]\nurl = \"https://registry:8081\"\nbearer_token = \"${{REGISTRY_TOKEN}}\"\n",
        config_text_without_broker()
    );
    let mut env: BTreeMap<String, String> = env(private_pem).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.insert("REGISTRY_TOKEN".into(), REGISTRY_TOKEN.into());
    paybridge::config::load(&text, &env).unwrap_or_else(|e| panic!("{e}"))
}

/// All three sources and SASL, with placeholder addresses (no broker or sandbox needed).
fn config_text_without_broker() -> String {
    r#"
[kafka]
bootstrap_servers = "kafka:9092"
[kafka.properties]
"sasl.username" = "paybridge"
"sasl.password" = "${{KAFKA_PASSWORD}}"

[[sources]]
kind = "ripplenet"
name = "rn"
base_url = "https://ripplenet.example"
[sources.auth]
token_url = "https://ripplenet.example/oauth/token"
client_id = "c"
client_secret = "${{RN_SECRET}}"
audience = "a"
[sources.webhook]
enabled = true
token = {{ value = "${{HOOK_TOKEN}}" }}
signature = {{ secret = "${{HOOK_SIGNING}}" }}

[[sources]]
kind = "payments_direct"
name = "pd"
base_url = "https://pd.example"
[sources.auth]
token_url = "https://pd.example/v2/oauth/token"
client_id = "c"
client_secret = "${{PD_SECRET}}"
audience = "a"

[[sources]]
kind = "checkout"
name = "co"
base_url = "https://checkout.example"
merchant_id = "m"
[sources.auth]
token_url = "https://checkout.example/token"
client_id = "c"
resource = "r"
private_key = """${{CO_PRIVATE_KEY}}"""
key_id = "0123456789ABCDEF0123456789ABCDEF01234567"
"#
    .replace("{{", "{")
    .replace("}}", "}")
}

#[test]
fn debug_and_serialized_config_redact_every_secret() {
    let keys = keys::rsa_keys();
    let private_pem = String::from_utf8_lossy(&keys.private_pem).into_owned();
    let config = loaded_config(&private_pem);
    let shown = [
        format!("{config:?}"),
        format!("{config:#?}"),
        serde_json::to_string(&config).unwrap_or_default(),
        toml::to_string(&config).unwrap_or_default(),
    ];
    for (n, form) in shown.iter().enumerate() {
        assert!(form.contains("redacted"), "secrets are shown as redacted: {form}");
        for (k, secret) in secrets(&private_pem).iter().enumerate() {
            assert!(!form.contains(secret.as_str()), "secret #{k} in printed form #{n}");
        }
    }
    for source in &config.sources {
        let text = format!("{source:?}");
        for secret in secrets(&private_pem) {
            assert!(!text.contains(&secret), "a secret in a printed source config");
        }
    }
}

#[test]
fn validation_errors_do_not_repeat_secrets() {
    let keys = keys::rsa_keys();
    let private_pem = String::from_utf8_lossy(&keys.private_pem).into_owned();
    // Secrets in places that are invalid, caught by the schema and by the semantic checks:
    // the errors name the key, not the value.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let invalid = [
        (
            config_text_without_broker().replace("name = \"rn\"", "name = \"rn\"\nrequest_timeout = \"${RN_SECRET}\""),
            "request_timeout",
        ),
        (
            config_text_without_broker()
                .replace("\"sasl.username\" = \"paybridge\"", "\"acks\" = \"${KAFKA_PASSWORD}\""),
            "acks",
        ),
        (
            config_text_without_broker()
                .replace("token_url = \"https://pd.example/v2/oauth/token\"", "token_url = \"${PD_SECRET}\""),
            "token_url",
        ),
    ];
    for (n, (text, key)) in invalid.iter().enumerate() {
        let path = dir.path().join(format!("bad-{n}.toml"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_paybridge"))
            .args(["config", "validate", "--config"])
            .arg(&path)
            .envs(env(&private_pem))
            .output_within(QUICK);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{stderr}");
        for (k, secret) in secrets(&private_pem).iter().enumerate() {
            assert!(!stderr.contains(secret.as_str()), "secret #{k} in an error message about {key}");
        }
    }
}
