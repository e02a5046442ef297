//! OAuth2 client-credentials tokens: cached, refreshed before expiry, and refreshed once
//! when the API answers 401. The client authenticates with a secret (RippleNet, Payments
//! Direct) or an RS256 client assertion (private_key_jwt, Checkout: see [`super::jwt`]).
//! Neither the secret nor the key ever reaches a log.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::jwt::AssertionSigner;
use crate::config::OAuthClient;

/// Refresh this long before the token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    #[error("token endpoint answered {status}: {error}")]
    Refused { status: u16, error: String },
    #[error("token endpoint answered something that is not a bearer token")]
    Malformed,
    #[error("cannot sign the client assertion: {0}")]
    Assertion(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    /// `Bearer`, or `bearer` (J.P. Morgan): compared case-insensitively.
    #[serde(default)]
    token_type: Option<String>,
}

/// How the client proves who it is at the token endpoint.
pub enum Grant {
    /// A client secret in a JSON body (RippleNet: `client_id`, `client_secret`, `audience`).
    ClientSecret(OAuthClient),
    /// A form body with an RS256 client assertion and a `resource` (J.P. Morgan).
    PrivateKeyJwt(AssertionSigner),
}

impl Grant {
    fn token_url(&self) -> &str {
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

/// A cached bearer token for one client.
pub struct TokenCache {
    http: reqwest::Client,
    grant: Grant,
    cached: Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    pub fn new(http: reqwest::Client, client: OAuthClient) -> Self {
        Self::with_grant(http, Grant::ClientSecret(client))
    }

    pub fn with_grant(http: reqwest::Client, grant: Grant) -> Self {
        Self { http, grant, cached: Mutex::new(None) }
    }

    /// A valid token, from the cache or freshly requested.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.request().await?;
        let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        *cached = Some((token.clone(), refresh_at));
        Ok(token)
    }

    /// Forgets the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn request(&self) -> Result<(String, Duration), TokenError> {
        let request = self.http.post(self.grant.token_url());
        let request = match &self.grant {
            Grant::ClientSecret(client) => request.json(&serde_json::json!({
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": client.client_secret.expose(),
                "audience": client.audience,
            })),
            Grant::PrivateKeyJwt(signer) => {
                let assertion = signer.sign().map_err(|e| TokenError::Assertion(e.to_string()))?;
                let form = signer.form(&assertion);
                let body = serde_urlencoded::to_string(form).map_err(|e| TokenError::Assertion(e.to_string()))?;
                request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
            }
        };
        let response = request.send().await.map_err(|e| TokenError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body: OAuthErrorBody = response.json().await.unwrap_or_default();
            let error = format!("{} {}", body.error, body.error_description).trim().to_owned();
            return Err(TokenError::Refused { status: status.as_u16(), error });
        }
        let token: TokenResponse = response.json().await.map_err(|_| TokenError::Malformed)?;
        let bearer = token.token_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("bearer"));
        if token.access_token.is_empty() || !bearer {
            return Err(TokenError::Malformed);
        }
        Ok((token.access_token, Duration::from_secs(token.expires_in.unwrap_or(300))))
    }
}
