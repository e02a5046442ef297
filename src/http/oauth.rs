//! OAuth2 client-credentials tokens: cached, refreshed before expiry, and refreshed once
//! when the API answers 401. The client authenticates with a secret (RippleNet, Payments
//! Direct) or an RS256 client assertion (private_key_jwt, Checkout: see [`super::jwt`]).
//! Neither the secret nor the key ever reaches a log.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::client::ClockReading;
use super::jwt::AssertionSigner;
use crate::config::OAuthClient;

/// Largest token endpoint answer read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Refresh this long before the token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    #[error("token endpoint answered {status}: {error}")]
    Refused { status: u16, error: String },
    #[error("token endpoint answered something that is not a bearer token")]
    Malformed,
    #[error("cannot sign the client assertion: {0}")]
    Assertion(String),
    #[error("{0}")]
    Secret(String),
}

/// Lifetime assumed when a token response has no usable `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime believed (a token is requested again after a day at most).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A successful token response: `{access_token, expires_in?, token_type?}`. The token must
/// be a non-empty bearer token (`token_type` compared case-insensitively, J.P. Morgan sends
/// `bearer`); `expires_in` may be a number or a numeric string, and is kept within
/// [1 s, [`MAX_TOKEN_LIFETIME`]] ([`DEFAULT_TOKEN_LIFETIME`] when absent or unreadable).
pub fn parse_token_response(body: &[u8]) -> Result<(String, Duration), TokenError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| TokenError::Malformed)?;
    let token = value.get("access_token").and_then(serde_json::Value::as_str).unwrap_or_default();
    let bearer = match value.get("token_type") {
        None | Some(serde_json::Value::Null) => true,
        Some(t) => t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
    };
    if token.is_empty() || !bearer {
        return Err(TokenError::Malformed);
    }
    let seconds = match value.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let lifetime = seconds
        .map_or(DEFAULT_TOKEN_LIFETIME, |s| Duration::from_secs(s).clamp(Duration::from_secs(1), MAX_TOKEN_LIFETIME));
    Ok((token.to_owned(), lifetime))
}

/// The `error` and `error_description` of a refused token request, when the body has them.
pub fn token_error_text(body: &[u8]) -> String {
    let parsed: OAuthErrorBody = serde_json::from_slice(body).unwrap_or_default();
    format!("{} {}", parsed.error, parsed.error_description).trim().chars().take(300).collect()
}

/// How the client proves who it is at the token endpoint.
pub enum Grant {
    /// A client secret in a JSON body (RippleNet: `client_id`, `client_secret`, `audience`).
    ClientSecret(OAuthClient),
    /// A form body with an RS256 client assertion and a `resource` (J.P. Morgan).
    PrivateKeyJwt(AssertionSigner),
}

impl Grant {
    pub fn token_url(&self) -> &str {
        match self {
            Grant::ClientSecret(c) => &c.token_url,
            Grant::PrivateKeyJwt(s) => s.token_url(),
        }
    }
}

#[derive(Deserialize, Default)]
struct OAuthErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Longest time a failed token request is remembered (the backoff starts at 2 s and
/// doubles up to this).
pub const TOKEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A cached bearer token for one client. Single-flight: one request at a time, and callers
/// that queued behind it get its token. A failure is remembered for a backoff interval:
/// while the token endpoint is down, callers get the failure at once and it is asked at most
/// once per interval, however many webhooks and pollers need a token.
pub struct TokenCache {
    http: reqwest::Client,
    grant: Grant,
    cached: Mutex<Cached>,
}

struct Cached {
    /// The token and when to refresh it.
    token: Option<(String, Instant)>,
    /// The last request's failure and until when it stands for a new request.
    failure: Option<(TokenError, Instant)>,
    backoff: Backoff,
}

impl TokenCache {
    pub fn new(http: reqwest::Client, client: OAuthClient) -> Self {
        Self::with_grant(http, Grant::ClientSecret(client))
    }

    pub fn with_grant(http: reqwest::Client, grant: Grant) -> Self {
        let cached = Cached { token: None, failure: None, backoff: Backoff::new(TOKEN_BACKOFF_MAX) };
        Self { http, grant, cached: Mutex::new(cached) }
    }

    /// A valid token, from the cache or freshly requested; the remembered failure while its
    /// backoff interval lasts.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some((token, refresh_at)) = cached.token.as_ref()
            && now < *refresh_at
        {
            return Ok(token.clone());
        }
        if let Some((failure, until)) = cached.failure.as_ref()
            && now < *until
        {
            return Err(failure.clone());
        }
        match self.request().await {
            Ok((token, lifetime)) => {
                let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
                cached.token = Some((token.clone(), refresh_at));
                cached.failure = None;
                cached.backoff.reset();
                Ok(token)
            }
            Err(e) => {
                let until = Instant::now() + cached.backoff.next(None);
                cached.failure = Some((e.clone(), until));
                Err(e)
            }
        }
    }

    /// Forgets the cached token (after a 401).
    pub async fn invalidate(&self) {
        self.cached.lock().await.token = None;
    }

    async fn request(&self) -> Result<(String, Duration), TokenError> {
        request_token(&self.http, &self.grant).await.map(|issued| (issued.token, issued.lifetime))
    }
}

/// A token the endpoint issued, and its clock when it answered.
pub struct Issued {
    pub token: String,
    pub lifetime: Duration,
    /// The endpoint's `Date`, when it sent one.
    pub clock: Option<ClockReading>,
}

/// Asks the token endpoint of `grant` for a token (no cache, no backoff: what `paybridge
/// doctor` tries, and what the cache does on a miss).
pub async fn request_token(http: &reqwest::Client, grant: &Grant) -> Result<Issued, TokenError> {
    let request = http.post(grant.token_url());
    let request = match grant {
        Grant::ClientSecret(client) => {
            let secret = client.secret().map_err(TokenError::Secret)?;
            request.json(&serde_json::json!({
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": secret.expose(),
                "audience": client.audience,
            }))
        }
        Grant::PrivateKeyJwt(signer) => {
            let assertion = signer.sign().map_err(|e| TokenError::Assertion(e.to_string()))?;
            let form = signer.form(&assertion);
            let body = serde_urlencoded::to_string(form).map_err(|e| TokenError::Assertion(e.to_string()))?;
            request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
        }
    };
    let response = request.send().await.map_err(|e| TokenError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    let clock = super::client::clock_reading(response.headers());
    let (body, _) = super::body::read_limited(response, MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(|e| TokenError::Transport(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(TokenError::Refused { status: status.as_u16(), error: token_error_text(&body) });
    }
    let (token, lifetime) = parse_token_response(&body)?;
    Ok(Issued { token, lifetime, clock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_are_bearer_tokens_with_a_bounded_lifetime() {
        let ok = |body: &str| parse_token_response(body.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(ok(r#"{"access_token":"t","expires_in":3600}"#), Ok(("t".into(), Duration::from_secs(3600))));
        assert_eq!(
            ok(r#"{"access_token":"t","token_type":"bearer","expires_in":"120"}"#).map(|t| t.1),
            Ok(Duration::from_secs(120))
        );
        // Without expires_in (or unreadable): the default; absurd values are bounded.
        assert_eq!(ok(r#"{"access_token":"t"}"#).map(|t| t.1), Ok(DEFAULT_TOKEN_LIFETIME));
        assert_eq!(ok(r#"{"access_token":"t","expires_in":-5}"#).map(|t| t.1), Ok(DEFAULT_TOKEN_LIFETIME));
        assert_eq!(
            ok(r#"{"access_token":"t","expires_in":18446744073709551615}"#).map(|t| t.1),
            Ok(MAX_TOKEN_LIFETIME)
        );
        assert_eq!(ok(r#"{"access_token":"t","expires_in":0}"#).map(|t| t.1), Ok(Duration::from_secs(1)));
        for bad in [
            r#"{"access_token":""}"#,
            r#"{"access_token":"t","token_type":"mac"}"#,
            r#"{"token":"t"}"#,
            "<html>ok</html>",
            r#"{"access_token":5}"#,
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert_eq!(token_error_text(br#"{"error":"invalid_client","error_description":"bad"}"#), "invalid_client bad");
        assert_eq!(token_error_text(b"<html>"), "");
    }
}
