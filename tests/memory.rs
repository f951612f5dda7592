//! `mem://` passes the same behavioural tests as Redis (`scenarios`), TTLs included.

mod harness;
mod scenarios;
mod support;

use redis_cached::Cache;
use std::time::Duration;
use support::mem_cache;

#[tokio::test]
async fn mem_is_the_memory_backend() {
    assert_eq!(mem_cache().await.backend_kind(), "memory");
}

/// A `mem://` cache of its own (`mem://` caches share nothing: the name is not needed).
async fn mem(_test: &str) -> Cache {
    mem_cache().await
}

async fn mem_with_default_ttl(_test: &str, ttl: Duration) -> Cache {
    Cache::builder("mem://")
        .default_ttl(ttl)
        .build()
        .await
        .expect("mem:// always builds")
}

scenarios::scenario_tests!(all, mem, mem_with_default_ttl);

#[tokio::test]
async fn two_mem_caches_do_not_share_entries() {
    let (first, second) = (mem_cache().await, mem_cache().await);
    scenarios::body_runs_once(first).await;
    scenarios::body_runs_once(second).await;
}
