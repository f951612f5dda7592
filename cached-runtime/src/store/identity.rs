//! Which servers hold the store: the run ids of its primaries. A failover (a replica
//! promoted) or a restart (a new process, with what its snapshot had) changes them, and what
//! the old ones acknowledged may be gone. Each change is a new generation: the cache then
//! applies its recent invalidations again (`journal.rs`, `replay.rs`), and callers waiting
//! for another process's fill lease stop waiting, since that lease may be a leftover whose
//! fill went to the old primary.
//!
//! Read every second, at once when the topology is seen to change (a Sentinel's
//! `+switch-master`, a Cluster's slots), and every [`RETRY`] after an operation failed
//! until the servers answer again. Between seeing new run ids and the end of their replay,
//! the servers are suspect: lookups read nothing from them.

use super::WeakStore;
use super::breaker::is_connection_failure;
use crate::Error;
use crate::task::spawn_detached;
use redis::Client;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// The pause between two reads while the servers answer.
const EVERY: Duration = Duration::from_secs(1);
/// The pause between two reads after a failed operation or a failed read.
const RETRY: Duration = Duration::from_millis(50);

/// What makes the run ids worth reading again, and whether lookups must wait for a replay.
#[derive(Default)]
pub(crate) struct Signals {
    /// The generation of the servers: bumped when their run ids change.
    generation: AtomicU64,
    /// The last generation whose replay finished; lookups read nothing while it lags.
    replayed: AtomicU64,
    /// Wakes the reader of run ids.
    check: Notify,
    /// When the generation last changed.
    changed_at: Mutex<Option<Instant>>,
}

impl Signals {
    /// An operation failed with `error`: when it is one the breaker counts (the connection
    /// timed out, dropped or was refused; a node loading, a cluster error), the servers may
    /// have restarted or moved (an error reply of the command's own says nothing of the kind).
    pub(crate) fn failed(&self, error: &Error) {
        if is_connection_failure(error) {
            self.check.notify_one();
        }
    }

    /// Whether the servers changed and their replay has not finished.
    pub(crate) fn is_suspect(&self) -> bool {
        self.replayed.load(Ordering::Acquire) != self.generation.load(Ordering::Acquire)
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Bumps the generation; returns the new one.
    pub(crate) fn next_generation(&self) -> u64 {
        *self
            .changed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether the generation changed less than `span` ago.
    pub(crate) fn changed_within(&self, span: Duration) -> bool {
        self.changed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < span)
    }

    /// The replay of `generation` finished (an older one's finishing clears nothing).
    pub(crate) fn replayed(&self, generation: u64) {
        self.replayed.fetch_max(generation, Ordering::AcqRel);
    }
}

/// Follows the run ids of `store`'s primaries while the store lives, from `known` (read
/// when the store opened; `None` for a lazy one); `nodes` changes when the topology does.
pub(crate) fn follow(
    store: WeakStore,
    mut nodes: watch::Receiver<Vec<Client>>,
    mut known: Option<BTreeSet<String>>,
) {
    spawn_detached(async move {
        let mut warned = false;
        loop {
            let Some(strong) = store.upgrade() else {
                return;
            };
            let read = strong.run_ids().await;
            let answered = match read {
                Ok(ids) if !ids.is_empty() => {
                    // The first read is the baseline; but what was invalidated while no read
                    // succeeded (a lazy cache started while Redis was down) may have been
                    // lost meanwhile: applied again then too.
                    let changed = match &known {
                        Some(known) => *known != ids,
                        None => strong.has_recent_invalidations(),
                    };
                    if changed {
                        tracing::warn!(
                            "the cache's Redis primaries changed (a failover or a restart); \
                             applying the recent invalidations again"
                        );
                        strong.next_generation();
                    }
                    known = Some(ids);
                    true
                }
                // A server that does not say (`INFO` refused by an ACL, no `run_id`): its
                // failovers and restarts cannot be seen; said once, then read every second.
                Ok(_) => {
                    warn_unreadable(&mut warned, "no run_id in INFO server");
                    true
                }
                Err(Error::Redis(error)) if error.code().is_some() => {
                    warn_unreadable(&mut warned, &error.to_string());
                    true
                }
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

/// Says once that the run ids cannot be read, and why.
fn warn_unreadable(warned: &mut bool, reason: &str) {
    if !std::mem::replace(warned, true) {
        tracing::warn!(
            %reason,
            "cannot read the Redis primaries' run ids (`INFO server`): invalidations lost in \
             a failover or a restart will not be applied again; allow `INFO` to the cache's user"
        );
    }
}
