//! OAuth2 client-credentials tokens: cached, refreshed before expiry, and refreshed once
//! when the API answers 401. The client secret never reaches a log.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::OAuthClient;

/// Refresh this long before the token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    #[error("token endpoint answered {status}: {error}")]
    Refused { status: u16, error: String },
    #[error("token endpoint answered something that is not a token")]
    Malformed,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
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
    client: OAuthClient,
    cached: Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    pub fn new(http: reqwest::Client, client: OAuthClient) -> Self {
        Self { http, client, cached: Mutex::new(None) }
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
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret.expose(),
            "audience": self.client.audience,
        });
        let response = self
            .http
            .post(&self.client.token_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| TokenError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body: OAuthErrorBody = response.json().await.unwrap_or_default();
            let error = format!("{} {}", body.error, body.error_description).trim().to_owned();
            return Err(TokenError::Refused { status: status.as_u16(), error });
        }
        let token: TokenResponse = response.json().await.map_err(|_| TokenError::Malformed)?;
        if token.access_token.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok((token.access_token, Duration::from_secs(token.expires_in.unwrap_or(300))))
    }
}
