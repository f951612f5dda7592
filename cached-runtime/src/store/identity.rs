//! Which servers hold the store: the run ids of its primaries. A failover (a replica
//! promoted) or a restart (a new process, with what its snapshot had) changes them, and what
//! the old ones acknowledged may be gone. Each change is a new generation: the cache then
//! applies its recent invalidations again (`journal.rs`, `replay.rs`), and callers waiting
//! for another process's fill lease stop waiting, since that lease may be a leftover whose
//! fill went to the old primary.
//!
//! Read every second, at once when the topology is seen to change (a Sentinel's
//! `+switch-master`, a Cluster's slots), and every [`RETRY`] after an operation failed
//! until the servers answer again: a restarted server is recognised within about that much
//! of taking connections.

use super::WeakStore;
use super::open::Nodes;
use crate::task::spawn_detached;
use std::collections::BTreeSet;
use std::time::Duration;

/// The pause between two reads while the servers answer.
const EVERY: Duration = Duration::from_secs(1);
/// The pause between two reads after a failed operation or a failed read.
const RETRY: Duration = Duration::from_millis(50);

/// Follows the run ids of `store`'s primaries while the store lives; `nodes` changes when
/// the topology does.
pub(crate) fn follow(store: WeakStore, mut nodes: Nodes) {
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
                        strong.next_generation();
                    }
                    known = Some(ids);
                    true
                }
                _ => false,
            };
            let failed = strong.failed();
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
                () = failed.notified() => {}
                () = changed => {}
            }
        }
    });
}
