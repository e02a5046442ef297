//! The in-flight ledger of one source: which notifications are being worked right now,
//! by whom nothing else needs to know, and what became of them.
//!
//! Nothing is processed twice at once: a poller, the sweeper or a webhook must hold the
//! [`Claim`] of a notification to work it, and a second reader finds it taken (the sweeper
//! skips it; a webhook waits for its outcome instead of refusing). Attempt counts and
//! recently committed ids are remembered with a bound on memory (entries expire, the
//! oldest go first), so a flood of bogus ids cannot grow the ledger without limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::expiring::Expiring;

/// What became of a claimed notification, as the waiters see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Its event is in Kafka (main topic or DLQ, confirmed): a webhook may answer 2xx.
    Committed,
    /// It is not in Kafka (broker down, fetch failed, …): the provider must deliver it again.
    NotCommitted(String),
    /// The provider does not know it: there is nothing to deliver.
    Unknown,
}

/// Bounds of the remembered (not in-flight) entries.
#[derive(Clone, Copy, Debug)]
pub struct LedgerLimits {
    /// Most attempt counts and most recently committed ids kept (each).
    pub max_entries: usize,
    /// How long an attempt count or a committed id is remembered.
    pub ttl: Duration,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        Self { max_entries: 100_000, ttl: Duration::from_secs(3600) }
    }
}

/// A notification somebody works (held) or waits for (wanted, not yet claimed).
struct Entry {
    held: bool,
    settlement: watch::Sender<Option<Settlement>>,
}

struct Inner {
    in_flight: HashMap<String, Entry>,
    attempts: Expiring<u32>,
    committed: Expiring<()>,
}

/// One source's ledger. Cheap to share (`Arc`).
pub struct Ledger {
    inner: Mutex<Inner>,
    limits: LedgerLimits,
}

/// Held while a notification is worked. Settle it with [`Claim::committed`] (waiters learn
/// at once; the claim stays held until the acknowledgement, so no sweep re-publishes it)
/// or [`Claim::not_committed`]. Dropping a claim releases the notification; one dropped
/// without a settlement tells its waiters it was not committed.
#[derive(Debug)]
pub struct Claim {
    ledger: Arc<Ledger>,
    id: String,
    committed: bool,
    released: bool,
}

/// Another reader holds the notification: wait here for its settlement.
pub type Waiter = watch::Receiver<Option<Settlement>>;

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("in_flight", &self.in_flight()).finish()
    }
}

impl Ledger {
    pub fn new(limits: LedgerLimits) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                in_flight: HashMap::new(),
                attempts: Expiring::new(),
                committed: Expiring::new(),
            }),
            limits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps behind (no multi-step
        // invariants span a panic point), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `id` for the caller, or hands back a waiter on the current holder's settlement.
    pub fn claim(self: &Arc<Self>, id: &str) -> Result<Claim, Waiter> {
        let mut inner = self.lock();
        match inner.in_flight.get_mut(id) {
            Some(entry) if entry.held => return Err(entry.settlement.subscribe()),
            Some(entry) => entry.held = true,
            None => {
                inner.in_flight.insert(id.to_owned(), Entry { held: true, settlement: watch::channel(None).0 });
            }
        }
        Ok(Claim { ledger: self.clone(), id: id.to_owned(), committed: false, released: false })
    }

    /// Watches `id` without claiming it: whoever claims it next (a queue read, say)
    /// settles it for this waiter too. The waiter must claim it itself if nobody does
    /// ([`Ledger::claim`] takes a wanted entry over), so no wanted entry is left behind.
    /// Also says, under the same lock, whether somebody holds it now (then its holder
    /// settles it; otherwise the caller must make sure somebody claims it).
    pub fn want(&self, id: &str) -> (Waiter, bool) {
        let mut inner = self.lock();
        let entry = inner
            .in_flight
            .entry(id.to_owned())
            .or_insert_with(|| Entry { held: false, settlement: watch::channel(None).0 });
        (entry.settlement.subscribe(), entry.held)
    }

    /// Whether somebody holds `id` now (its holder settles it).
    pub fn held(&self, id: &str) -> bool {
        self.lock().in_flight.get(id).is_some_and(|entry| entry.held)
    }

    /// Whether `id`'s event was committed recently (a late duplicate webhook needs no work).
    pub fn recently_committed(&self, id: &str) -> bool {
        self.lock().committed.get(id, self.limits, Instant::now()).is_some()
    }

    /// Counts a failed processing attempt of `id` and returns the count so far.
    pub fn failed_attempt(&self, id: &str) -> u32 {
        let now = Instant::now();
        let mut inner = self.lock();
        let count = inner.attempts.get(id, self.limits, now).copied().unwrap_or(0) + 1;
        inner.attempts.insert(id, count, self.limits, now);
        count
    }

    /// Notifications being worked right now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Remembered attempt counts and committed ids (for the memory bound's test).
    pub fn remembered(&self) -> usize {
        let inner = self.lock();
        inner.attempts.len() + inner.committed.len()
    }
}

impl Claim {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event is in Kafka: waiters are told now; the claim is held on (for the ack).
    pub fn committed(&mut self) {
        let now = Instant::now();
        let mut inner = self.ledger.lock();
        inner.attempts.remove(&self.id);
        inner.committed.insert(&self.id, (), self.ledger.limits, now);
        if let Some(entry) = inner.in_flight.get(&self.id) {
            entry.settlement.send_replace(Some(Settlement::Committed));
        }
        self.committed = true;
    }

    /// Not in Kafka: waiters are told why, and the notification is released.
    pub fn not_committed(mut self, reason: &str) {
        self.release(Settlement::NotCommitted(reason.to_owned()));
    }

    /// The provider does not know it: waiters are told, and the claim is released.
    pub fn unknown(mut self) {
        self.release(Settlement::Unknown);
    }

    /// A waiter on this claim's own settlement.
    pub fn waiter(&self) -> Waiter {
        self.ledger.want(&self.id).0
    }

    fn release(&mut self, settlement: Settlement) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let mut inner = self.ledger.lock();
        if let Some(entry) = inner.in_flight.remove(&self.id) {
            entry.settlement.send_if_modified(|current| {
                if current.is_none() {
                    *current = Some(settlement);
                    true
                } else {
                    false
                }
            });
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let settlement = if self.committed {
            Settlement::Committed
        } else {
            Settlement::NotCommitted("abandoned before its event was committed".into())
        };
        self.release(settlement);
    }
}

/// Waits for the settlement a [`Waiter`] watches; a holder that vanished means not committed.
pub async fn settlement(mut waiter: Waiter) -> Settlement {
    match waiter.wait_for(Option::is_some).await {
        Ok(value) => value.clone().unwrap_or_else(|| Settlement::NotCommitted("no settlement".into())),
        Err(_) => Settlement::NotCommitted("the holder stopped without a settlement".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Arc<Ledger> {
        Ledger::new(LedgerLimits::default())
    }

    #[tokio::test]
    async fn a_claimed_notification_cannot_be_claimed_again_until_released() {
        let l = ledger();
        let claim = l.claim("a").unwrap_or_else(|_| panic!("free"));
        assert!(l.claim("a").is_err(), "taken");
        assert!(l.claim("b").is_ok(), "others are free");
        drop(claim);
        assert!(l.claim("a").is_ok(), "released on drop");
    }

    #[tokio::test]
    async fn waiters_learn_the_commit_at_once_and_the_claim_is_held_until_released() {
        let l = ledger();
        let mut claim = l.claim("a").unwrap_or_else(|_| panic!("free"));
        let Err(waiter) = l.claim("a") else { panic!("taken") };
        claim.committed();
        assert_eq!(settlement(waiter).await, Settlement::Committed);
        assert!(l.claim("a").is_err(), "still held: the ack has not happened");
        assert!(l.recently_committed("a"));
        drop(claim);
        assert_eq!(l.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_dropped_or_failed_claim_tells_waiters_it_was_not_committed() {
        let l = ledger();
        let claim = l.claim("a").unwrap_or_else(|_| panic!("free"));
        let Err(waiter) = l.claim("a") else { panic!("taken") };
        drop(claim);
        assert!(matches!(settlement(waiter).await, Settlement::NotCommitted(_)));

        let claim = l.claim("b").unwrap_or_else(|_| panic!("free"));
        let Err(waiter) = l.claim("b") else { panic!("taken") };
        claim.not_committed("broker down");
        assert_eq!(settlement(waiter).await, Settlement::NotCommitted("broker down".into()));
        assert!(!l.recently_committed("b"));
    }

    #[tokio::test]
    async fn a_wanted_notification_is_settled_by_whoever_claims_it() {
        let l = ledger();
        let (waiter, held) = l.want("a");
        assert!(!held);
        let mut claim = l.claim("a").unwrap_or_else(|_| panic!("a wanted entry can be claimed"));
        assert!(l.want("a").1, "held now");
        claim.committed();
        assert_eq!(settlement(waiter).await, Settlement::Committed);
        let mine = l.claim("b").unwrap_or_else(|_| panic!("free"));
        let waiter = mine.waiter();
        mine.unknown();
        assert_eq!(settlement(waiter).await, Settlement::Unknown);
        assert_eq!(l.in_flight(), 1, "a is held until its ack");
    }

    #[tokio::test]
    async fn attempts_count_up_and_a_commit_clears_them() {
        let l = ledger();
        assert_eq!(l.failed_attempt("a"), 1);
        assert_eq!(l.failed_attempt("a"), 2);
        let mut claim = l.claim("a").unwrap_or_else(|_| panic!("free"));
        claim.committed();
        drop(claim);
        assert_eq!(l.failed_attempt("a"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn remembered_entries_expire_and_are_bounded() {
        let l = Ledger::new(LedgerLimits { max_entries: 100, ttl: Duration::from_secs(60) });
        for i in 0..10_000 {
            l.failed_attempt(&format!("bogus-{i}"));
        }
        assert!(l.remembered() <= 100, "bounded: {}", l.remembered());
        assert_eq!(l.failed_attempt("bogus-9999"), 2, "the newest survive");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(l.failed_attempt("bogus-9999"), 1, "expired");
        assert!(l.remembered() <= 2, "expired entries are dropped: {}", l.remembered());
    }
}
