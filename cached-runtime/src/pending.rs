//! Invalidations that could not reach the store. Their keys are treated as misses (never
//! read from or written to the store) by this process until a background task has deleted
//! them, so no stale entry survives an outage.
//!
//! The task holds the store weakly: once every handle of the cache is dropped it stops, and
//! says in the log how many deletions were still owed.

use crate::store::breaker::BACKOFF;
use crate::store::{Store, WeakStore};
use crate::task::{Backoff, spawn_detached};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub(crate) struct Pending {
    /// Each key, and the path of the function that invalidated it (for its tombstone).
    keys: Mutex<HashMap<String, &'static str>>,
    /// Whether `keys` may be non-empty: lets the hot path skip the lock.
    any: AtomicBool,
    /// Whether a retry task is running; changed only under the `keys` lock.
    retrying: AtomicBool,
}

impl Default for Pending {
    fn default() -> Pending {
        // Registered at 0, so that dashboards show it before the first outage.
        gauge().increment(0.0);
        Pending {
            keys: Mutex::default(),
            any: AtomicBool::new(false),
            retrying: AtomicBool::new(false),
        }
    }
}

/// `redis_cached_pending_invalidations`: moved by what each cache adds and removes, so that
/// the caches of a process add up.
fn gauge() -> metrics::Gauge {
    metrics::gauge!("redis_cached_pending_invalidations")
}

impl Pending {
    fn keys(&self) -> MutexGuard<'_, HashMap<String, &'static str>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.any.load(Ordering::Acquire) && self.keys().contains_key(key)
    }

    /// Remembers `keys`, invalidated by `by`, and makes sure a task retries deleting them
    /// from `store` until it succeeds.
    pub(crate) fn defer(self: &Arc<Self>, store: &Store, keys: Vec<String>, by: &'static str) {
        let mut pending = self.keys();
        let before = pending.len();
        pending.extend(keys.into_iter().map(|key| (key, by)));
        gauge().increment((pending.len() - before) as f64);
        self.any.store(true, Ordering::Release);
        if !self.retrying.swap(true, Ordering::AcqRel)
            && !spawn_detached(retry(store.downgrade(), self.clone()))
        {
            self.retrying.store(false, Ordering::Release);
        }
    }

    /// Forgets `deleted`; says whether none are left (and the retry task may end).
    fn remove(&self, deleted: &[String]) -> bool {
        let mut pending = self.keys();
        let before = pending.len();
        for key in deleted {
            pending.remove(key);
        }
        gauge().decrement((before - pending.len()) as f64);
        if pending.is_empty() {
            self.any.store(false, Ordering::Release);
            self.retrying.store(false, Ordering::Release);
        }
        pending.is_empty()
    }
}

async fn retry(store: WeakStore, pending: Arc<Pending>) {
    let mut backoff = Backoff::new(Duration::from_millis(50), BACKOFF);
    let mut failures = 0_u32;
    loop {
        let Some(strong) = store.upgrade() else {
            let mut keys = pending.keys();
            gauge().decrement(keys.len() as f64);
            tracing::error!(
                keys = keys.len(),
                "cache dropped with invalidations still pending; they were not applied"
            );
            keys.clear();
            return;
        };
        // Deleted as soon as the store answers a cached call again, or at the next try.
        tokio::select! {
            () = tokio::time::sleep(backoff.next()) => {}
            () = strong.reachable_again() => {}
        }
        // One deletion per invalidating function (usually one), each naming it in its
        // tombstones.
        let mut owed: HashMap<&'static str, Vec<String>> = HashMap::new();
        for (key, by) in pending.keys().iter() {
            owed.entry(*by).or_default().push(key.clone());
        }
        let (mut deleted, mut error) = (Vec::new(), None);
        for (by, keys) in owed {
            match strong.delete_unguarded(&keys, by).await {
                Ok(()) => deleted.extend(keys),
                Err(undeleted) => {
                    let undeleted_keys: HashSet<&String> = undeleted.keys.iter().collect();
                    deleted.extend(
                        keys.iter()
                            .filter(|key| !undeleted_keys.contains(key))
                            .cloned(),
                    );
                    error = error.or(Some(undeleted.error));
                }
            }
        }
        let none_left = pending.remove(&deleted);
        match error {
            None if none_left => {
                tracing::info!(
                    keys = deleted.len(),
                    failures,
                    "deferred cache invalidations applied"
                );
                return;
            }
            None => backoff.reset(),
            Some(error) => {
                // One line per outage: the retries go on every `BACKOFF` at most.
                if failures == 0 {
                    tracing::warn!(%error, "deferred cache invalidation failed; retrying until the cache answers");
                }
                failures = failures.saturating_add(1);
            }
        }
    }
}
