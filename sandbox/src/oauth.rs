//! OAuth 2.0 client-credentials token endpoints (RippleNet and Payments Direct): JSON or
//! form bodies, client credentials in the body or a Basic Authorization header.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::errors;
use super::state::SandboxState;

/// Credentials a token endpoint accepts.
pub struct Expected<'a> {
    pub provider: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub audience: &'a str,
    pub ttl: Duration,
    pub scope: &'a str,
}

#[derive(Deserialize, Default)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    audience: Option<String>,
    grant_type: Option<String>,
}

fn parse(headers: &HeaderMap, body: &Bytes) -> Option<TokenRequest> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut request: TokenRequest =
        if form { serde_urlencoded::from_bytes(body).ok()? } else { serde_json::from_slice(body).ok()? };
    if let Some((id, secret)) = basic_credentials(headers) {
        request.client_id.get_or_insert(id);
        request.client_secret.get_or_insert(secret);
    }
    Some(request)
}

/// The client id and secret of an HTTP Basic `Authorization` header, if it has one.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let pair = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())?;
    pair.split_once(':').map(|(id, secret)| (id.to_owned(), secret.to_owned()))
}

/// A token endpoint: the endpoint's fault, then [`issue`], then the ledger.
pub async fn token_endpoint(
    s: &SandboxState,
    endpoint: super::guard::Endpoint,
    expected: &Expected<'_>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let pass = match endpoint.before(s).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    let response = issue(s, expected, headers, body);
    endpoint.finish(s, None, response, pass.lost)
}

/// Issues a token, or answers the RFC 6749 error.
pub fn issue(s: &SandboxState, expected: &Expected<'_>, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(r) = parse(headers, body) else {
        return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "the body must be JSON or form-encoded");
    };
    if r.grant_type.is_none() {
        return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: grant_type");
    }
    if r.grant_type.as_deref() != Some("client_credentials") {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if r.client_id.as_deref() != Some(expected.client_id) || r.client_secret.as_deref() != Some(expected.client_secret)
    {
        return errors::oauth(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    }
    let audience = r.audience.unwrap_or_default();
    if audience != expected.audience {
        return errors::oauth(
            StatusCode::FORBIDDEN,
            "access_denied",
            &format!("Service not enabled within domain: {audience}"),
        );
    }
    let token = s.lock().issue_token(expected.provider, expected.ttl);
    Json(json!({
        "access_token": token,
        "scope": expected.scope,
        "expires_in": expected.ttl.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}
