//! `mem://` passes the same behavioural tests as Redis (`scenarios`), TTLs included.

mod common;
mod scenarios;
mod support;

use redis_cached::Cache;
use std::time::Duration;
use support::mem_cache;

#[tokio::test]
async fn mem_is_the_memory_backend() {
    assert_eq!(mem_cache().await.backend_kind(), "memory");
}

#[tokio::test]
async fn body_runs_once_for_repeated_calls() {
    scenarios::body_runs_once(mem_cache().await).await;
}

#[tokio::test]
async fn err_is_not_stored() {
    scenarios::err_not_stored(mem_cache().await).await;
}

#[tokio::test]
async fn none_is_not_stored() {
    scenarios::none_not_stored(mem_cache().await).await;
}

#[tokio::test]
async fn cache_none_stores_none() {
    scenarios::cache_none_stores(mem_cache().await).await;
}

#[tokio::test]
async fn result_option_stores_only_ok_some_unless_cache_none() {
    scenarios::result_option(mem_cache().await).await;
}

#[tokio::test]
async fn refresh_recomputes_and_overwrites() {
    scenarios::refresh_recomputes(mem_cache().await).await;
}

#[tokio::test]
async fn with_outcome_reports_miss_hit_refresh() {
    scenarios::outcomes(mem_cache().await).await;
}

#[tokio::test]
async fn colliding_strings_get_different_entries() {
    scenarios::colliding_strings(mem_cache().await).await;
}

#[tokio::test]
async fn invalidates_deletes_and_the_next_call_recomputes() {
    scenarios::invalidation_recomputes(mem_cache().await).await;
}

#[tokio::test]
async fn invalidates_deletes_even_when_the_body_fails() {
    scenarios::invalidation_after_err(mem_cache().await).await;
}

#[tokio::test]
async fn invalidates_renders_keys_like_redis_cached() {
    scenarios::invalidation_renders_like_cached(mem_cache().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_expire_after_their_ttl() {
    scenarios::ttl_expiry(mem_cache().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn default_ttl_applies_when_ttl_is_omitted() {
    let cache = Cache::builder("mem://")
        .default_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    scenarios::default_ttl_expiry(cache).await;
}

#[tokio::test]
async fn two_mem_caches_do_not_share_entries() {
    let (first, second) = (mem_cache().await, mem_cache().await);
    scenarios::body_runs_once(first).await;
    scenarios::body_runs_once(second).await;
}
