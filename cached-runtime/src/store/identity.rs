//! Which servers hold the store: the run ids of its primaries. A failover (a replica
//! promoted) or a restart (a new process, with what its snapshot had) changes them, and what
//! the old ones acknowledged may be gone. Each change is a new generation: the cache then
//! applies its recent invalidations again (`journal.rs`, `replay.rs`), and callers waiting
//! for another process's fill lease stop waiting, since that lease may be a leftover whose
//! fill went to the old primary.
//!
//! Read every second, at once when the topology is seen to change (a Sentinel's
//! `+switch-master`, a Cluster's slots), and every [`RETRY`] after an operation failed
//! until the servers answer again. Between seeing new run ids and the end of the replay,
//! the servers are suspect: lookups read nothing from them.

use super::WeakStore;
use crate::task::spawn_detached;
use redis::Client;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The pause between two reads while the servers answer.
const EVERY: Duration = Duration::from_secs(1);
/// The pause between two reads after a failed operation or a failed read.
const RETRY: Duration = Duration::from_millis(50);

/// What makes the run ids worth reading again, and whether lookups must wait for it.
#[derive(Default)]
pub(crate) struct Signals {
    /// The run ids changed and the replay has not finished.
    suspect: AtomicBool,
    /// Wakes the reader of run ids.
    check: Notify,
}

impl Signals {
    /// An operation failed: the servers may have restarted.
    pub(crate) fn failed(&self) {
        self.check.notify_one();
    }

    /// Whether lookups must read nothing until the run ids are read again.
    pub(crate) fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Acquire)
    }

    /// The servers are the known ones, or the new ones hold no invalidated entry any more.
    pub(crate) fn cleared(&self) {
        self.suspect.store(false, Ordering::Release);
    }

    fn changed(&self) {
        self.suspect.store(true, Ordering::Release);
    }
}

/// Follows the run ids of `store`'s primaries while the store lives; `nodes` changes when
/// the topology does.
pub(crate) fn follow(store: WeakStore, mut nodes: watch::Receiver<Vec<Client>>) {
    spawn_detached(async move {
        let mut known: Option<BTreeSet<String>> = None;
        loop {
            let Some(strong) = store.upgrade() else {
                return;
            };
            let read = strong.run_ids().await;
            let answered = match read {
                Ok(ids) if !ids.is_empty() => {
                    if known.as_ref().is_some_and(|known| *known != ids) {
                        tracing::warn!(
                            "the cache's Redis primaries changed (a failover or a restart); \
                             applying the recent invalidations again"
                        );
                        // Suspect until the replay has run (`replay.rs` clears it).
                        strong.signals().changed();
                        strong.next_generation();
                    } else {
                        strong.signals().cleared();
                    }
                    known = Some(ids);
                    true
                }
                Ok(_) => false,
                Err(_) => false,
            };
            let signals = strong.signals();
            drop(strong);
            // At least a short pause, however often operations fail meanwhile.
            tokio::time::sleep(RETRY).await;
            if !answered {
                continue;
            }
            let changed = async {
                if nodes.changed().await.is_ok() {
                    return;
                }
                // A single server's address never changes: only the timer is left.
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = tokio::time::sleep(EVERY - RETRY) => {}
                () = signals.check.notified() => {}
                () = changed => {}
            }
        }
    });
}
