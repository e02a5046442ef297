//! A sandbox server in the test process, driven over HTTP with a plain client.

use std::net::SocketAddr;

use paybridge_sandbox::Scenario;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Sandbox {
    pub addr: SocketAddr,
    pub http: Client,
    _stop: tokio_util::sync::DropGuard,
}

impl Sandbox {
    pub async fn start(scenario: Scenario) -> Self {
        Self::start_with(|_| scenario).await
    }

    /// Starts with the scenario `scenario_for` makes from the sandbox's base URL (for
    /// settings that must name the sandbox itself, such as an assertion audience).
    pub async fn start_with(scenario_for: impl FnOnce(&str) -> Scenario) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let scenario = scenario_for(&format!("http://{addr}"));
        let stop = CancellationToken::new();
        tokio::spawn(paybridge_sandbox::serve(listener, paybridge_sandbox::state(7, scenario), stop.clone()));
        Self { addr, http: Client::new(), _stop: stop.drop_guard() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn token(&self) -> String {
        let body = json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                          "audience": "urn:ripplenet:sandbox", "grant_type": "client_credentials"});
        let r = self.http.post(self.url("/oauth/token")).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap_or_default();
        assert_eq!(v["token_type"], "Bearer");
        assert!(v["expires_in"].as_u64().is_some_and(|s| s > 0));
        v["access_token"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn create(&self, count: usize) -> Vec<String> {
        let r = self
            .http
            .post(self.url("/_sandbox/ripplenet/notifications"))
            .json(&json!({"count": count}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap_or_default();
        v["uuids"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect()
    }

    pub async fn get(&self, token: &str, path_and_query: &str) -> reqwest::Response {
        self.http.get(self.url(path_and_query)).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn stats(&self) -> Value {
        self.get_json("/_sandbox/ripplenet/stats", None).await
    }

    pub async fn control(&self, path: &str, body: Value) -> StatusCode {
        self.http.post(self.url(path)).json(&body).send().await.map(|r| r.status()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn ledger(&self, query: &str) -> Vec<Value> {
        serde_json::from_value(self.get_json(&format!("/_sandbox/ledger?{query}"), None).await).unwrap_or_default()
    }

    /// Times (ms since the epoch) of the requests the sandbox served on `endpoint` of
    /// `provider`, from its ledger.
    pub async fn request_times(&self, provider: &str, endpoint: &str) -> Vec<i64> {
        self.ledger(&format!("kind=request&provider={provider}"))
            .await
            .iter()
            .filter(|e| e["endpoint"] == endpoint)
            .filter_map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap_or_default()).ok())
            .map(|t| t.timestamp_millis())
            .collect()
    }

    /// GET `path` (with a bearer token when given) and parse the JSON answer.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        response.json().await.unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// A Payments Direct access token (JSON body).
    pub async fn pd_token(&self) -> String {
        let body = json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                          "audience": "urn:ripplexcurrent-test:sandbox", "grant_type": "client_credentials"});
        let r = self.http.post(self.url("/v2/oauth/token")).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap_or_default();
        v["access_token"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn pd_create(&self, count: usize) -> Vec<String> {
        self.pd_create_body(json!({"count": count})).await
    }

    /// [`Sandbox::pd_create`] with the originator's `internalId` of each payment.
    pub async fn pd_create_with_internal_id(&self, count: usize, internal_id: &str) -> Vec<String> {
        self.pd_create_body(json!({"count": count, "internal_id": internal_id})).await
    }

    async fn pd_create_body(&self, body: Value) -> Vec<String> {
        let r = self.http.post(self.url("/_sandbox/payments_direct/payments")).json(&body).send().await;
        let v: Value = r.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
        v["paymentIds"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect()
    }

    pub async fn pd_transition(&self, id: &str, to: &str) -> StatusCode {
        let url = self.url(&format!("/_sandbox/payments_direct/payments/{id}/transition"));
        self.http.post(url).json(&json!({"to": to})).send().await.map(|r| r.status()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A local webhook receiver: records every JSON body it is sent and answers the status
/// `respond` picks from the bodies received before this one and the body itself.
pub struct Hook {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Hook {
    pub async fn start(respond: fn(&[Value], &Value) -> u16) -> Self {
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
        let app = {
            let received = received.clone();
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                    let received = received.clone();
                    async move {
                        let mut log = received.lock().unwrap_or_else(|p| p.into_inner());
                        let status = respond(&log, &body);
                        log.push(body);
                        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK)
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{addr}/hook"), received }
    }

    /// Answers 200 to everything.
    pub async fn accepting() -> Self {
        Self::start(|_, _| 200).await
    }

    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
