//! Applies the recent invalidations again in each new generation of the store's servers: a
//! failover or a restart may have lost what the old ones acknowledged (see
//! `store/identity.rs` and `store/journal.rs`). What cannot be deleted goes to the pending
//! set, as a failed invalidation does.

use crate::cache::Inner;
use crate::task::spawn_detached;
use futures_util::future::join_all;
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
            let generation = *generations.borrow_and_update();
            let Some(cache) = cache.upgrade() else {
                return;
            };
            replay(&cache, generation).await;
        }
    });
}

/// Deletes the recent invalidations again (each invalidating function's keys at once), then
/// lets lookups read in `generation`.
async fn replay(cache: &Inner, generation: u64) {
    let owed = cache.store.recently_invalidated();
    let replays = owed.into_iter().map(|(by, keys)| async move {
        cache.flights.forget(&keys);
        let deleted = cache.store.delete_unguarded(&keys, by).await;
        if let Some(near) = &cache.near {
            near.evict(&keys);
        }
        let applied = keys.len();
        match deleted {
            Ok(()) => (applied, 0),
            Err(undeleted) => {
                let deferred = undeleted.keys.len();
                cache.pending.defer(&cache.store, undeleted.keys, by);
                (applied, deferred)
            }
        }
    });
    let (mut applied, mut deferred) = (0, 0);
    for (keys, failed) in join_all(replays).await {
        applied += keys;
        deferred += failed;
    }
    // Deferred keys stay misses here: lookups may read again.
    cache.store.replayed(generation);
    tracing::info!(
        keys = applied,
        deferred,
        "recent invalidations applied again on the new primaries"
    );
}
