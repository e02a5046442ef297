//! Bounded memories of ids: entries expire after a time and the oldest go first beyond a
//! count, so a flood of ids (bogus or real) cannot grow memory without limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::ledger::LedgerLimits;

/// A map whose entries expire after `ttl` and whose oldest entries go first beyond `max`.
/// The map and the eviction order share one allocation per key.
pub(crate) struct Expiring<V> {
    entries: HashMap<Arc<str>, (V, Instant)>,
    order: VecDeque<(Arc<str>, Instant)>,
}

impl<V> Expiring<V> {
    pub(crate) fn new() -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new() }
    }

    fn evict(&mut self, limits: LedgerLimits, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            let expired = now.duration_since(*at) >= limits.ttl;
            if !expired && self.entries.len() <= limits.max_entries && self.order.len() <= 2 * limits.max_entries {
                break;
            }
            // Only the newest write of a key owns its entry; older order slots are stale.
            if self.entries.get(key).is_some_and(|(_, written)| written == at) {
                self.entries.remove(&**key);
            }
            self.order.pop_front();
        }
    }

    pub(crate) fn get(&self, key: &str, limits: LedgerLimits, now: Instant) -> Option<&V> {
        self.entries.get(key).filter(|(_, at)| now.duration_since(*at) < limits.ttl).map(|(v, _)| v)
    }

    pub(crate) fn insert(&mut self, key: &str, value: V, limits: LedgerLimits, now: Instant) {
        let key: Arc<str> = Arc::from(key);
        self.entries.insert(key.clone(), (value, now));
        self.order.push_back((key, now));
        self.evict(limits, now);
    }

    /// Entries kept (expired ones included until evicted).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// Ids whose events the broker confirmed lately, shared by a source's readers: one path
/// (a webhook, say) need not publish again what another (a search) just published.
pub struct RecentIds {
    ids: Mutex<Expiring<()>>,
    limits: LedgerLimits,
}

impl RecentIds {
    pub fn new(limits: LedgerLimits) -> Self {
        Self { ids: Mutex::new(Expiring::new()), limits }
    }

    /// The broker confirmed `id`'s event (main topic or DLQ).
    pub fn committed(&self, id: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id, (), self.limits, Instant::now());
        }
    }

    /// Forgets every id (an operator moved the position back: what was published is to be
    /// published again).
    pub fn forget_all(&self) {
        if let Ok(mut ids) = self.ids.lock() {
            *ids = Expiring::new();
        }
    }

    /// Whether `id`'s event was confirmed within the limits' time.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.lock().is_ok_and(|ids| ids.get(id, self.limits, Instant::now()).is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn recent_ids_expire_and_the_oldest_go_first() {
        let recent = RecentIds::new(LedgerLimits { max_entries: 2, ttl: Duration::from_secs(60) });
        recent.committed("a");
        recent.committed("b");
        assert!(recent.contains("a") && recent.contains("b") && !recent.contains("c"));
        recent.committed("c");
        assert!(!recent.contains("a"), "beyond the count the oldest goes");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!recent.contains("b") && !recent.contains("c"), "expired");
    }
}
