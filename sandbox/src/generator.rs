//! Background traffic: new notifications and payments at given rates, and Payments Direct
//! payments walked through their lifecycle.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::SandboxState;

/// How much traffic to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// New RippleNet notifications per second.
    #[serde(default)]
    pub ripplenet_per_second: f64,
    /// New Payments Direct payments per second.
    #[serde(default)]
    pub payments_direct_per_second: f64,
    /// New Checkout messages per second.
    #[serde(default)]
    pub checkout_per_second: f64,
    /// How often every unfinished payment moves one step.
    #[serde(default = "default_advance", with = "humantime_serde")]
    pub advance_every: Duration,
    /// Share (0–1) of payments leaving VALIDATING or TRANSFERRING that fail instead.
    #[serde(default)]
    pub failure_rate: f64,
}

const fn default_advance() -> Duration {
    Duration::from_secs(1)
}

impl Rates {
    pub fn validate(&self) -> Result<(), String> {
        let rates = [self.ripplenet_per_second, self.payments_direct_per_second, self.checkout_per_second];
        if rates.iter().any(|r| !r.is_finite() || *r < 0.0 || *r > 100_000.0) {
            return Err("rates must be between 0 and 100000 per second".into());
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err("failure_rate must be between 0 and 1".into());
        }
        if self.advance_every.is_zero() {
            return Err("advance_every must be greater than zero".into());
        }
        Ok(())
    }
}

const TICK: Duration = Duration::from_millis(100);

/// Runs until aborted.
pub async fn run(s: SandboxState, rates: Rates) {
    let mut owed = [0.0f64; 3];
    let mut since_advance = Duration::ZERO;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let per_tick = TICK.as_secs_f64();
        owed[0] += rates.ripplenet_per_second * per_tick;
        owed[1] += rates.payments_direct_per_second * per_tick;
        owed[2] += rates.checkout_per_second * per_tick;
        let take = |x: &mut f64| {
            let n = x.floor();
            *x -= n;
            n as usize
        };
        let created = super::ripplenet::generate(&s, take(&mut owed[0]));
        super::webhooks::ripplenet(&s, &created);
        super::payments_direct::create(&s, take(&mut owed[1]));
        super::checkout::create(&s, take(&mut owed[2]), None);
        since_advance += TICK;
        if since_advance >= rates.advance_every {
            since_advance = Duration::ZERO;
            super::payments_direct::advance_all(&s, rates.failure_rate);
        }
    }
}
