//! Invalidations that could not reach the store. Their keys are treated as misses (never
//! read from or written to the store) by this process until a background task has deleted
//! them, so no stale entry survives an outage.

use crate::Cache;
use crate::breaker::BACKOFF;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Pending {
    keys: Mutex<HashSet<String>>,
    /// Whether `keys` may be non-empty: lets the hot path skip the lock.
    any: AtomicBool,
    /// Whether a retry task is running; changed only under the `keys` lock.
    retrying: AtomicBool,
}

impl Pending {
    fn keys(&self) -> MutexGuard<'_, HashSet<String>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.any.load(Ordering::Acquire) && self.keys().contains(key)
    }

    /// Remembers `keys` and makes sure a task retries deleting them until it succeeds.
    pub(crate) fn defer(&self, cache: &Cache, keys: Vec<String>) {
        let mut pending = self.keys();
        pending.extend(keys);
        self.any.store(true, Ordering::Release);
        if !self.retrying.swap(true, Ordering::AcqRel) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(retry(cache.clone()));
            } else {
                self.retrying.store(false, Ordering::Release);
            }
        }
    }
}

async fn retry(cache: Cache) {
    let pending = cache.pending();
    let mut delay = Duration::from_millis(50);
    let mut failures = 0_u32;
    loop {
        // Deleted as soon as Redis answers a cached call again, or at the next try.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cache.reachable_again() => {}
        }
        let keys: Vec<String> = pending.keys().iter().cloned().collect();
        match cache.delete_now(&keys).await {
            Ok(()) => {
                let mut remaining = pending.keys();
                for key in &keys {
                    remaining.remove(key);
                }
                if remaining.is_empty() {
                    pending.any.store(false, Ordering::Release);
                    pending.retrying.store(false, Ordering::Release);
                    tracing::info!(
                        keys = keys.len(),
                        failures,
                        "deferred cache invalidations applied"
                    );
                    return;
                }
            }
            Err(error) => {
                // One line per outage: the retries go on every `BACKOFF` at most.
                if failures == 0 {
                    tracing::warn!(%error, keys = keys.len(), "deferred cache invalidation failed; retrying until the cache answers");
                }
                failures = failures.saturating_add(1);
                delay = (delay * 2).min(BACKOFF);
            }
        }
    }
}
