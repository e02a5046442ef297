//! Caller authentication on a webhook path: a shared token in a header and an HMAC-SHA256
//! signature over `timestamp + "." + body`. Both compare in constant time.

use axum::http::HeaderMap;
use axum::http::header::HeaderName;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{WebhookSignature, WebhookToken};

/// A shared token expected in one header.
pub struct TokenCheck {
    header: HeaderName,
    /// SHA-256 of the expected token: comparing digests takes the same time whatever the
    /// length of the token sent.
    expected: [u8; 32],
}

impl TokenCheck {
    pub fn new(config: &WebhookToken) -> Result<Self, String> {
        let header = HeaderName::try_from(config.header.as_str())
            .map_err(|_| format!("{:?} is not a valid header name", config.header))?;
        Ok(Self { header, expected: Sha256::digest(config.value.expose().as_bytes()).into() })
    }

    /// True when the header is present once and holds the token.
    pub fn verify(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        bool::from(given.ct_eq(&self.expected))
    }
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is missing, repeated, or not a timestamp / hex / base64 value.
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a wrong clock).
    Stale,
    /// The HMAC does not match.
    Mismatch,
}

/// HMAC-SHA256 signatures of `timestamp + "." + body`.
pub struct SignatureCheck {
    key: Hmac<Sha256>,
    header: HeaderName,
    timestamp_header: HeaderName,
    tolerance_secs: i64,
}

impl SignatureCheck {
    pub fn new(config: &WebhookSignature) -> Result<Self, String> {
        let name = |h: &str| HeaderName::try_from(h).map_err(|_| format!("{h:?} is not a valid header name"));
        let key = Hmac::<Sha256>::new_from_slice(config.secret.expose().as_bytes())
            .map_err(|_| "the signature secret cannot be an HMAC key".to_owned())?;
        Ok(Self {
            key,
            header: name(&config.header)?,
            timestamp_header: name(&config.timestamp_header)?,
            tolerance_secs: i64::try_from(config.tolerance.get().as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// Checks the signature headers against `body`, with `now` in Unix seconds.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let timestamp = single(headers, &self.timestamp_header).ok_or(SignatureError::Malformed)?;
        let signature = single(headers, &self.header).ok_or(SignatureError::Malformed)?;
        let seconds = parse_timestamp(timestamp).ok_or(SignatureError::Malformed)?;
        let mac = decode_signature(signature).ok_or(SignatureError::Malformed)?;
        if seconds.abs_diff(now) > self.tolerance_secs.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        let mut key = self.key.clone();
        key.update(timestamp.as_bytes());
        key.update(b".");
        key.update(body);
        key.verify_slice(&mac).map_err(|_| SignatureError::Mismatch)
    }
}

/// The value of a header sent exactly once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok().map(str::trim),
        _ => None,
    }
}

/// Unix seconds, or milliseconds when the number is too large to be seconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = text.parse().ok()?;
    Some(if value >= 100_000_000_000 { value / 1000 } else { value })
}

/// A 32-byte MAC written as hex or base64 (standard or URL-safe, padded or not), optionally
/// prefixed with `sha256=` or `v1=`.
pub fn decode_signature(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("sha256=").or_else(|| text.strip_prefix("v1=")).unwrap_or(text);
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines.iter().find_map(|engine| engine.decode(text).ok())?
    };
    (bytes.len() == 32).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HumanDuration, Secret};

    fn signature_config() -> WebhookSignature {
        WebhookSignature {
            secret: Secret::new("s3cr3t"),
            header: "ripple-signature".into(),
            timestamp_header: "ripple-signature-timestamp".into(),
            tolerance: HumanDuration::from_secs(300),
        }
    }

    fn signed(timestamp: &str, body: &[u8], secret: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|e| panic!("{e}"));
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::try_from(*name).unwrap_or_else(|e| panic!("{e}"));
            map.append(name, value.parse().unwrap_or_else(|e| panic!("{e:?}")));
        }
        map
    }

    #[test]
    fn signatures_verify_only_when_fresh_and_matching() {
        let check = SignatureCheck::new(&signature_config()).unwrap_or_else(|e| panic!("{e}"));
        let body = br#"{"msg_id":"x"}"#;
        let now = 1_700_000_000;
        let good = signed("1700000000", body, b"s3cr3t");
        let h = |ts: &str, sig: &str| headers(&[("ripple-signature-timestamp", ts), ("ripple-signature", sig)]);

        assert_eq!(check.verify(&h("1700000000", &good), body, now), Ok(()));
        assert_eq!(check.verify(&h("1700000000", &good.to_uppercase()), body, now), Ok(()));
        assert_eq!(check.verify(&h("1700000000", &format!("sha256={good}")), body, now), Ok(()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&good).unwrap_or_default());
        assert_eq!(check.verify(&h("1700000000", &b64), body, now), Ok(()));
        // Milliseconds are accepted, but the signed text is the header as sent.
        let ms = signed("1700000000123", body, b"s3cr3t");
        assert_eq!(check.verify(&h("1700000000123", &ms), body, now), Ok(()));

        assert_eq!(check.verify(&h("1700000000", &good), b"{}", now), Err(SignatureError::Mismatch));
        let wrong_key = signed("1700000000", body, b"other");
        assert_eq!(check.verify(&h("1700000000", &wrong_key), body, now), Err(SignatureError::Mismatch));
        assert_eq!(check.verify(&h("1700000000", &good), body, now + 301), Err(SignatureError::Stale));
        assert_eq!(check.verify(&h("1700000000", &good), body, now - 301), Err(SignatureError::Stale));
        assert_eq!(check.verify(&h("-5", &good), body, now), Err(SignatureError::Malformed));
        assert_eq!(check.verify(&h("1700000000", "zz"), body, now), Err(SignatureError::Malformed));
        assert_eq!(check.verify(&headers(&[("ripple-signature", &good)]), body, now), Err(SignatureError::Malformed));
        let twice = headers(&[
            ("ripple-signature-timestamp", "1700000000"),
            ("ripple-signature", &good),
            ("ripple-signature", &good),
        ]);
        assert_eq!(check.verify(&twice, body, now), Err(SignatureError::Malformed));
    }

    #[test]
    fn tokens_match_exactly_once() {
        let check = TokenCheck::new(&WebhookToken { header: "X-Hook-Token".into(), value: Secret::new("tok") })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check.verify(&headers(&[("x-hook-token", "tok")])));
        assert!(!check.verify(&headers(&[("x-hook-token", "tok2")])));
        assert!(!check.verify(&headers(&[("x-hook-token", "to")])));
        assert!(!check.verify(&headers(&[])));
        assert!(!check.verify(&headers(&[("x-hook-token", "tok"), ("x-hook-token", "tok")])));
    }

    #[test]
    fn timestamps_and_encodings() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp("1700000000999"), Some(1_700_000_000));
        for bad in ["", "+1", "1.5", "99999999999999999", "1e9", " 1"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
        assert_eq!(decode_signature(&"ab".repeat(32)).map(|m| m.len()), Some(32));
        assert_eq!(decode_signature(&"ab".repeat(31)), None);
        assert_eq!(decode_signature("not base64!"), None);
    }
}
