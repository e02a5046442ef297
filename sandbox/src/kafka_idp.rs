//! An OpenID Connect identity provider for Kafka's SASL/OAUTHBEARER, as librdkafka's
//! `sasl.oauthbearer.method=oidc` and Kafka's `OAuthBearerValidatorCallbackHandler` use one:
//! `POST /kafka/oauth2/token` issues an RS256 JWT for client credentials (`sub` = the client
//! id, `iss`, `aud`, `iat`, `exp`, `scope`), `GET /kafka/jwks.json` publishes the public
//! key. The signing key is a fixed simulator key (never a real one).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;

use super::errors;
use super::state::SandboxState;

/// The simulator's signing key (PKCS#8 PEM), and its `kid`.
const KEY_PEM: &str = include_str!("kafka_idp_key.pem");
const KEY_ID: &str = "paybridge-sandbox-kafka-1";

pub fn routes() -> Router<SandboxState> {
    Router::new().route("/kafka/oauth2/token", post(token)).route("/kafka/jwks.json", get(jwks))
}

fn key() -> Result<&'static EncodingKey, String> {
    static KEY: OnceLock<Result<EncodingKey, String>> = OnceLock::new();
    KEY.get_or_init(|| EncodingKey::from_rsa_pem(KEY_PEM.as_bytes()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

async fn jwks() -> Response {
    let jwk = key().and_then(|k| Jwk::from_encoding_key(k, Algorithm::RS256).map_err(|e| e.to_string()));
    match jwk {
        Ok(mut jwk) => {
            jwk.common.key_id = Some(KEY_ID.to_owned());
            jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
            Json(JwkSet { keys: vec![jwk] }).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[derive(Deserialize, Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

async fn token(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(mut form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "the body must be form-encoded");
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if let Some((id, secret)) = super::oauth::basic_credentials(&headers) {
        form.client_id.get_or_insert(id);
        form.client_secret.get_or_insert(secret);
    }
    let idp = s.lock().scenario.kafka_idp.clone();
    let (Some(client), Some(secret)) = (form.client_id, form.client_secret) else {
        return errors::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "client credentials required");
    };
    if idp.clients.get(&client) != Some(&secret) {
        return errors::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    }
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(idp.token_ttl.as_secs()).unwrap_or(3600);
    let mut claims = json!({
        "iss": idp.issuer,
        "aud": idp.client_audiences.get(&client).unwrap_or(&idp.audience),
        "sub": client,
        "iat": now,
        "exp": now.saturating_add(ttl),
    });
    // Only a requested scope: an empty `scope` claim is refused by Kafka's validator.
    if let (Some(scope), Some(map)) = (form.scope.filter(|s| !s.trim().is_empty()), claims.as_object_mut()) {
        map.insert("scope".into(), scope.into());
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KEY_ID.to_owned());
    let signed = key().and_then(|k| jsonwebtoken::encode(&header, &claims, k).map_err(|e| e.to_string()));
    match signed {
        Ok(jwt) => Json(json!({ "access_token": jwt, "token_type": "Bearer", "expires_in": ttl })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
