//! `mem://` passes the same behavioural tests as Redis (`scenarios`), TTLs included.

mod harness;
mod scenarios;
mod support;

use redis_cached::{Cache, CacheBuilder};
use support::mem_cache;

#[tokio::test]
async fn mem_is_the_memory_backend() {
    assert_eq!(mem_cache().await.backend_kind(), "memory");
}

/// A `mem://` cache builder (`mem://` caches share nothing: the name is not needed).
fn mem(_test: &str) -> CacheBuilder {
    Cache::builder("mem://")
}

scenarios::scenario_tests!(all, mem);

#[tokio::test]
async fn two_mem_caches_do_not_share_entries() {
    let (first, second) = (mem_cache().await, mem_cache().await);
    scenarios::body_runs_once(first).await;
    scenarios::body_runs_once(second).await;
}
