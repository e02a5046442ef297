//! One readable line per source for the start-up log: what it reads, where, how often.

use super::SourceConfig;

/// `url` without user info or query (neither belongs in a log line).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

impl SourceConfig {
    /// `RippleNet v4 at https://…: NEW every 1s, SENT sweep every 30s (older than 1m),
    /// webhooks on POST /webhooks/rn`, and the like for the other kinds.
    pub fn summary(&self) -> String {
        let webhooks = match self.webhook_path() {
            Some(path) => format!(", webhooks on POST {path}"),
            None => String::new(),
        };
        match self {
            SourceConfig::Ripplenet(s) => format!(
                "RippleNet v4 at {}: NEW polled every {}, {} per page; SENT swept every {} (older than {}){webhooks}",
                shown(&s.base_url),
                s.new_interval,
                s.page_size,
                s.sent_interval,
                s.sent_delay
            ),
            SourceConfig::PaymentsDirect(s) => format!(
                "Payments Direct 2.0 at {}: searched every {} (up to {} when idle), {} per page, {} safety lag{webhooks}",
                shown(&s.base_url),
                s.interval,
                s.max_idle_interval,
                s.page_size,
                s.safety_lag
            ),
            SourceConfig::Checkout(s) => format!(
                "J.P. Morgan Checkout at {} (merchant {}): {} receivers long-polling {} for up to {} messages each",
                shown(&s.base_url),
                s.merchant_id,
                s.receivers,
                s.timeout,
                s.max_messages
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_shown_without_user_info_or_query() {
        assert_eq!(super::shown("https://user:pw@api.example.com/v1?token=x"), "https://api.example.com/v1");
        assert_eq!(super::shown("http://127.0.0.1:18800"), "http://127.0.0.1:18800");
        assert_eq!(super::shown("not a url"), "(an invalid URL)");
    }
}
