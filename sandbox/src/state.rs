//! The sandbox's shared state: virtual clock, tokens, stores, ledger, faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use uuid::Uuid;

use super::faults::Faults;
use super::ledger::Ledger;
use super::payments_direct_store::PaymentsStore;
use super::ripplenet_store::RipplenetStore;
use super::scenario::Scenario;

/// Everything behind one lock; no handler holds it across an await.
pub struct Inner {
    /// Added to the wall clock (moved by `/_sandbox/clock/advance`).
    pub clock_offset: chrono::Duration,
    /// access token → (provider, expiry)
    pub tokens: HashMap<String, (String, DateTime<Utc>)>,
    pub ripplenet: RipplenetStore,
    pub payments: PaymentsStore,
    pub ledger: Ledger,
    pub faults: Faults,
    pub rng: StdRng,
    pub scenario: Scenario,
    pub checkout: super::checkout_store::CheckoutStore,
    /// Checkout client assertions already used (`jti`), refused when replayed.
    pub used_assertions: std::collections::HashSet<String>,
    /// Notifications created before the server started, whose webhooks are still to send.
    pub initial_webhooks: Vec<Uuid>,
    /// Every Payments Direct (paymentId, paymentState, state time) a search answered with,
    /// for tests that check each of them reached Kafka (at most [`MAX_SERVED`]).
    pub served: std::collections::BTreeSet<(String, String, String)>,
}

/// The most search results the sandbox remembers for `/_sandbox/payments_direct/served`.
pub const MAX_SERVED: usize = 200_000;

impl Inner {
    /// The sandbox time, in whole milliseconds: the precision every response shows, so a
    /// time read from a response matches the stored one exactly (inclusive searches).
    pub fn now(&self) -> DateTime<Utc> {
        (Utc::now() + self.clock_offset).trunc_subsecs(3)
    }

    /// A random UUID from the seeded generator (reproducible with `--seed`).
    pub fn uuid(&mut self) -> Uuid {
        let bits: u128 = self.rng.random();
        uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
    }

    pub fn rng_u32(&mut self) -> u32 {
        self.rng.random()
    }

    pub fn issue_token(&mut self, provider: &str, ttl: Duration) -> String {
        let token = format!("sbx_{}", self.uuid().simple());
        let expiry = self.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        self.tokens.insert(token.clone(), (provider.to_owned(), expiry));
        token
    }

    pub fn token_valid(&self, provider: &str, token: &str) -> bool {
        self.tokens.get(token).is_some_and(|(p, expiry)| p == provider && *expiry > self.now())
    }
}

/// The running traffic generator: its rates and task.
type RunningGenerator = Option<(super::generator::Rates, tokio::task::JoinHandle<()>)>;

/// Cheap-to-clone handle on the sandbox state.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Mutex<Inner>>,
    pub http: reqwest::Client,
    generator: Arc<Mutex<RunningGenerator>>,
}

impl SandboxState {
    pub fn new(seed: u64, scenario: Scenario) -> Self {
        let inner = Inner {
            clock_offset: chrono::Duration::seconds(scenario.clock_offset_s),
            tokens: HashMap::new(),
            ripplenet: RipplenetStore::default(),
            payments: PaymentsStore::default(),
            ledger: Ledger::default(),
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(seed),
            scenario,
            initial_webhooks: Vec::new(),
            checkout: Default::default(),
            used_assertions: Default::default(),
            served: Default::default(),
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { inner: Arc::new(Mutex::new(inner)), http, generator: Arc::new(Mutex::new(None)) }
    }

    /// Starts (or replaces) the traffic generator.
    pub fn start_generator(&self, rates: super::generator::Rates) {
        let task = tokio::spawn(super::generator::run(self.clone(), rates.clone()));
        let mut slot = self.generator.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = slot.replace((rates, task)) {
            old.abort();
        }
    }

    pub fn stop_generator(&self) {
        if let Some((_, task)) = self.generator.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    pub fn generator_rates(&self) -> Option<super::generator::Rates> {
        self.generator.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(r, _)| r.clone())
    }

    /// Locks the state. A poisoned lock (a panic elsewhere) is recovered: the sandbox keeps serving.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
