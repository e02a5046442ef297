//! Talking to provider APIs: OAuth2 token cache, backoff with Retry-After.

pub mod backoff;
pub mod body;
pub mod client;
pub mod failure;
pub mod jwt;
pub mod oauth;
pub mod retry;
