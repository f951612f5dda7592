mod common;

use redis_cached::redis_cached;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "smoke:<id>", ttl = 60, cache = cache)]
async fn double(cache: &redis_cached::Cache, id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id * 2
}

#[tokio::test]
async fn second_call_is_a_hit() {
    let cache = common::redis_cache("smoke").await;
    assert_eq!(double(&cache, 21).await, 42);
    assert_eq!(double(&cache, 21).await, 42);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    let mut redis = common::raw_connection().await;
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{}smoke:21", cache.prefix()))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("42"));
}
