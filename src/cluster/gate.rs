//! The gate between group membership and one partition's singleton tasks: the group grants
//! and revokes the partition; a task runs only between a grant and a revoke, and a revoke
//! that is not a loss waits for the task to settle and release before the partition goes.
//!
//! A tenure is one stretch of ownership. Its [`Fence`] answers whether a write made under it
//! is still legitimate: yes until the task released it, or at once when the group says the
//! partition was lost (this replica was out of the group without knowing).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Who holds the partition, as seen by this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holding {
    /// Not this replica.
    No,
    /// This replica, tenure number `n`.
    Owned(u64),
    /// Tenure `n` was revoked: it finishes what is in flight, then releases.
    Releasing(u64),
}

/// How a task's tenure ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenureEnd {
    /// It stopped because it was asked to (revoke or shutdown).
    Released,
    /// Its writer was fenced by another owner: the replica rejoins the group.
    Fenced,
}

/// One coordination partition as a gate.
#[derive(Debug)]
pub struct Gate {
    holding: watch::Sender<Holding>,
    /// Tenures whose task is still running.
    running: watch::Sender<usize>,
    tenures: std::sync::atomic::AtomicU64,
    /// Asks the membership to leave and rejoin the group.
    rejoin: Arc<Notify>,
}

impl Gate {
    pub fn new(rejoin: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            holding: watch::Sender::new(Holding::No),
            running: watch::Sender::new(0),
            tenures: std::sync::atomic::AtomicU64::new(0),
            rejoin,
        })
    }

    /// The group assigned the partition to this replica.
    pub fn grant(&self) {
        let n = self.tenures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.holding.send_if_modified(|h| match h {
            Holding::Owned(_) => false,
            _ => {
                *h = Holding::Owned(n);
                true
            }
        });
    }

    /// The group takes the partition back. A loss (session expired, another replica may
    /// already run the task) invalidates the tenure's writes at once; otherwise they stay
    /// valid until the task releases.
    pub fn revoke(&self, lost: bool) {
        self.holding.send_if_modified(|h| match (*h, lost) {
            (Holding::No, _) => false,
            (_, true) => {
                *h = Holding::No;
                true
            }
            (Holding::Owned(n), false) => {
                *h = Holding::Releasing(n);
                true
            }
            (Holding::Releasing(_), false) => false,
        });
    }

    /// Waits (blocking the calling thread, at most `bound`) until no task of this partition
    /// runs; false when the bound passed first.
    pub fn wait_released_blocking(&self, runtime: &tokio::runtime::Handle, bound: Duration) -> bool {
        let mut running = self.running.subscribe();
        runtime.block_on(async { tokio::time::timeout(bound, running.wait_for(|n| *n == 0)).await.is_ok() })
    }

    pub fn owned(&self) -> bool {
        matches!(*self.holding.borrow(), Holding::Owned(_))
    }

    fn tenure(&self) -> Option<u64> {
        match *self.holding.borrow() {
            Holding::Owned(n) => Some(n),
            _ => None,
        }
    }
}

/// Whether writes of one tenure are still legitimate.
#[derive(Clone, Debug)]
pub struct Fence {
    gate: Arc<Gate>,
    tenure: u64,
}

impl Fence {
    /// True while the tenure owns the partition or is releasing it (settling what is in
    /// flight); false once it was lost or released.
    pub fn may_write(&self) -> bool {
        matches!(*self.gate.holding.borrow(), Holding::Owned(n) | Holding::Releasing(n) if n == self.tenure)
    }

    /// The writer was fenced by another owner: leave and rejoin the group.
    pub fn fenced(&self) {
        self.gate.rejoin.notify_one();
    }
}

impl crate::sink::publisher::Tenure for Fence {
    fn may_write(&self) -> bool {
        Fence::may_write(self)
    }
}

/// Runs `task` each time this replica owns the gate's partition, with a token cancelled
/// when the partition is revoked (or `stop` is cancelled), until `stop`. `on_change` is told
/// when the task starts (true) and ends (false).
pub async fn run_while_owned<F, Fut>(gate: Arc<Gate>, stop: CancellationToken, on_change: impl Fn(bool), mut task: F)
where
    F: FnMut(CancellationToken, Fence) -> Fut,
    Fut: Future<Output = TenureEnd>,
{
    let mut holding = gate.holding.subscribe();
    loop {
        let tenure = tokio::select! {
            _ = stop.cancelled() => return,
            owned = holding.wait_for(|h| matches!(h, Holding::Owned(_))) => match owned {
                Ok(_) => gate.tenure(),
                Err(_) => return,
            },
        };
        let Some(tenure) = tenure else { continue };
        gate.running.send_modify(|n| *n += 1);
        let tenure_stop = stop.child_token();
        let watcher = {
            let (gate, tenure_stop) = (gate.clone(), tenure_stop.clone());
            tokio::spawn(async move {
                let mut holding = gate.holding.subscribe();
                let _ = holding.wait_for(|h| *h != Holding::Owned(tenure)).await;
                tenure_stop.cancel();
            })
        };
        on_change(true);
        let end = task(tenure_stop.clone(), Fence { gate: gate.clone(), tenure }).await;
        watcher.abort();
        on_change(false);
        // Released (or fenced while still holding it): the tenure's writes are over.
        gate.holding.send_if_modified(|h| {
            let over = match *h {
                Holding::Releasing(n) => n == tenure,
                Holding::Owned(n) => n == tenure && end == TenureEnd::Fenced,
                Holding::No => false,
            };
            if over {
                *h = Holding::No;
            }
            over
        });
        gate.running.send_modify(|n| *n = n.saturating_sub(1));
        if end == TenureEnd::Fenced {
            gate.rejoin.notify_one();
        }
        if stop.is_cancelled() {
            return;
        }
        if holding.borrow_and_update().eq(&Holding::Owned(tenure)) {
            // The task ended on its own while still owning the partition (it cannot, short
            // of a stop): wait a moment instead of spinning.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_task_runs_only_between_grant_and_revoke_and_the_revoke_waits_for_its_release() {
        let gate = Gate::new(Arc::new(Notify::new()));
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let fences = Arc::new(std::sync::Mutex::new(Vec::new()));
        let while_settling = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, f, w) = (runs.clone(), fences.clone(), while_settling.clone());
        let runner = tokio::spawn(run_while_owned(
            gate.clone(),
            stop.clone(),
            |_| {},
            move |tenure_stop, fence| {
                r.fetch_add(1, Ordering::SeqCst);
                f.lock().unwrap().push(fence.clone());
                let w = w.clone();
                async move {
                    tenure_stop.cancelled().await;
                    w.lock().unwrap().push(fence.may_write());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    TenureEnd::Released
                }
            },
        ));
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing runs before a grant");
        gate.grant();
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(*gate.running.borrow() == 1);

        gate.revoke(false);
        let waited = {
            let gate = gate.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || gate.wait_released_blocking(&handle, Duration::from_secs(5)))
        };
        assert!(waited.await.unwrap(), "the revoke waited for the release");
        assert_eq!(*while_settling.lock().unwrap(), vec![true], "a revoked tenure may write while it settles");
        assert!(!fences.lock().unwrap()[0].may_write(), "a released tenure may not write");

        gate.grant();
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a new grant starts a new tenure");
        // A loss invalidates the tenure's writes at once, before the task ends.
        gate.revoke(true);
        assert!(!fences.lock().unwrap()[1].may_write());
        stop.cancel();
        runner.await.unwrap();
        assert_eq!(*while_settling.lock().unwrap(), vec![true, false], "a lost tenure may not write while it settles");
    }

    #[tokio::test]
    async fn a_fenced_task_asks_for_a_rejoin() {
        let rejoin = Arc::new(Notify::new());
        let gate = Gate::new(rejoin.clone());
        let stop = CancellationToken::new();
        gate.grant();
        let runner =
            tokio::spawn(run_while_owned(gate.clone(), stop.clone(), |_| {}, |_, _| async { TenureEnd::Fenced }));
        tokio::time::timeout(Duration::from_secs(5), rejoin.notified()).await.expect("rejoin asked");
        assert!(!gate.owned());
        stop.cancel();
        runner.await.unwrap();
    }
}
