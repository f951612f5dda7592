//! Applies the recent invalidations again in each new generation of the store's servers: a
//! failover or a restart may have lost what the old ones acknowledged (see
//! `store/identity.rs` and `store/journal.rs`). What cannot be deleted goes to the pending
//! set, as a failed invalidation does.

use crate::cache::Inner;
use crate::task::spawn_detached;
use std::sync::Arc;

/// Replays for `cache` while it lives.
pub(crate) fn follow(cache: &Arc<Inner>) {
    if cache.store.kind() == "memory" {
        return;
    }
    let mut generations = cache.store.generations();
    let cache = Arc::downgrade(cache);
    spawn_detached(async move {
        // Ends with the store, whose sender it is.
        while generations.changed().await.is_ok() {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            replay(&cache).await;
        }
    });
}

async fn replay(cache: &Inner) {
    let (mut applied, mut deferred) = (0, 0);
    for (by, keys) in cache.store.recently_invalidated() {
        cache.flights.forget(&keys);
        let deleted = cache.store.delete_unguarded(&keys, by).await;
        if let Some(near) = &cache.near {
            near.evict(&keys);
        }
        applied += keys.len();
        if let Err(undeleted) = deleted {
            deferred += undeleted.keys.len();
            cache.pending.defer(&cache.store, undeleted.keys, by);
        }
    }
    // Deferred keys stay misses here: lookups may read again.
    cache.store.replayed();
    tracing::info!(
        keys = applied,
        deferred,
        "recent invalidations applied again on the new primaries"
    );
}
