//! TTL jitter (`jitter = "N%"`, `CacheBuilder::ttl_jitter`) against a real redis-server: the
//! `PTTL`s of entries filled in one burst, single and batch, spread over
//! `[(1 - j) * TTL, TTL]` and never past the TTL; without jitter they are the TTL; the
//! cache's jitter applies to functions that set none and the attribute overrides it; with a
//! `stale` window the fresh TTL is drawn and the window keeps its length; the builder refuses
//! a fraction outside `[0, 1)`; the registry lists the attribute's jitter.

mod harness;
mod support;

use redis_cached::{Cache, Error, redis_cached};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;

/// The TTL of every function here, in seconds: long enough that the time the fills and the
/// reads take is small beside every window.
const TTL_S: i64 = 1000;
const TTL_MS: i64 = TTL_S * 1000;

/// How many entries each burst fills.
const BURST: u64 = 200;

/// How far below its drawn TTL a `PTTL` may be read: the time between the fill and the read
/// on a loaded machine.
const SLACK_MS: i64 = 5_000;

#[redis_cached(key = "jitter:half:<id>", ttl = 1000, jitter = "50%", cache = cache)]
async fn half(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "jitter:tenth:<id>", ttl = 1000, jitter = "10%", cache = cache)]
async fn tenth(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "jitter:plain:<id>", ttl = 1000, cache = cache)]
async fn plain(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "jitter:off:<id>", ttl = 1000, jitter = "0%", cache = cache)]
async fn off(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "jitter:batch:<ids>", ttl = 1000, jitter = "50%", batch = ids, cache = cache)]
async fn half_batch(cache: &Cache, ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id)).collect()
}

#[redis_cached(key = "jitter:stale:<id>", ttl = 1000, jitter = "50%", stale = 30, cache = cache)]
async fn half_stale(cache: &Cache, id: u64) -> u64 {
    id
}

/// Calls `function` for ids `0..BURST` at once (each on a clone of `cache`).
async fn burst<F, Fut>(cache: &Cache, function: F)
where
    F: Fn(Cache, u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let mut calls = JoinSet::new();
    for id in 0..BURST {
        calls.spawn(function(cache.clone(), id));
    }
    while let Some(returned) = calls.join_next().await {
        returned.expect("a call does not panic");
    }
}

/// The `PTTL`s of `head<id>` for ids `0..BURST`, under `cache`'s prefix, in one pipeline.
async fn pttls(cache: &Cache, head: &str) -> Vec<i64> {
    let mut redis = harness::raw_connection().await;
    let mut pipe = redis::pipe();
    for id in 0..BURST {
        pipe.cmd("PTTL")
            .arg(format!("{}{head}{id}", cache.prefix()));
    }
    let pttls: Vec<i64> = pipe.query_async(&mut redis).await.expect("PTTL answers");
    assert!(
        pttls.iter().all(|&pttl| pttl > 0),
        "every key is stored with a TTL: {pttls:?}"
    );
    pttls
}

/// Asserts the `PTTL`s lie in `[(1 - jitter) * ttl - SLACK_MS, ttl]` (plus `extra` past
/// the TTL, a window's length) and, with jitter, spread over at least a quarter of it.
fn assert_spread(pttls: &[i64], jitter: f64, extra: i64) {
    let (min, max) = (pttls.iter().min().unwrap(), pttls.iter().max().unwrap());
    let lowest = ((1.0 - jitter) * TTL_MS as f64) as i64 + extra - SLACK_MS;
    assert!(
        *min >= lowest && *max <= TTL_MS + extra,
        "PTTLs {min}..{max} ms, outside [{lowest}, {}]",
        TTL_MS + extra
    );
    let window = (jitter * TTL_MS as f64) as i64;
    assert!(
        max - min >= window / 4,
        "PTTLs {min}..{max} ms spread over less than a quarter of the {window} ms window"
    );
}

/// Asserts the `PTTL`s are the TTL, within `SLACK_MS`.
fn assert_unjittered(pttls: &[i64]) {
    let (min, max) = (pttls.iter().min().unwrap(), pttls.iter().max().unwrap());
    assert!(
        *min >= TTL_MS - SLACK_MS && *max <= TTL_MS,
        "PTTLs {min}..{max} ms: without jitter they are the TTL, {TTL_MS} ms"
    );
}

#[tokio::test]
async fn a_burst_of_fills_spreads_its_ttls_over_the_jitter_window() {
    let cache = support::redis_cache("a_burst_spreads").await;
    burst(&cache, |cache, id| async move { half(&cache, id).await }).await;
    assert_spread(&pttls(&cache, "jitter:half:").await, 0.5, 0);
}

#[tokio::test]
async fn without_jitter_every_ttl_is_the_ttl() {
    let cache = support::redis_cache("without_jitter").await;
    burst(&cache, |cache, id| async move { plain(&cache, id).await }).await;
    assert_unjittered(&pttls(&cache, "jitter:plain:").await);
}

#[tokio::test]
async fn a_batch_draws_one_ttl_per_id() {
    let cache = support::redis_cache("a_batch_draws").await;
    let ids: Vec<u64> = (0..BURST).collect();
    assert_eq!(half_batch(&cache, &ids).await.len(), ids.len());
    assert_spread(&pttls(&cache, "jitter:batch:").await, 0.5, 0);
}

#[tokio::test]
async fn the_caches_jitter_applies_and_the_attribute_overrides_it() {
    let cache = support::shared_builder("the_caches_jitter")
        .ttl_jitter(0.5)
        .build()
        .await
        .expect("the shared redis-server answers");
    burst(&cache, |cache, id| async move { plain(&cache, id).await }).await;
    assert_spread(&pttls(&cache, "jitter:plain:").await, 0.5, 0);

    burst(&cache, |cache, id| async move { off(&cache, id).await }).await;
    assert_unjittered(&pttls(&cache, "jitter:off:").await);

    burst(&cache, |cache, id| async move { tenth(&cache, id).await }).await;
    assert_spread(&pttls(&cache, "jitter:tenth:").await, 0.1, 0);
}

/// The envelope's fresh-until is the drawn TTL, and Redis keeps the entry the `stale`
/// window (30 s) past it, whatever was drawn.
#[tokio::test]
async fn with_a_stale_window_the_fresh_ttl_is_drawn_and_the_window_kept() {
    let cache = support::redis_cache("with_a_stale_window").await;
    burst(
        &cache,
        |cache, id| async move { half_stale(&cache, id).await },
    )
    .await;
    let pttls = pttls(&cache, "jitter:stale:").await;
    assert_spread(&pttls, 0.5, 30_000);
    for id in 0..20 {
        let state = cache
            .inspect_key(&format!("jitter:stale:{id}"))
            .await
            .expect("the key is read");
        let (Some(pttl), Some(fresh_until)) = (
            state.ttl_ms,
            state.entry.and_then(|entry| entry.fresh_until_ms),
        ) else {
            panic!("entry {id} has a TTL and an envelope");
        };
        let fresh_for = fresh_until.saturating_sub(now_ms());
        let window = pttl.saturating_sub(fresh_for);
        assert!(
            (29_000..=31_000).contains(&window),
            "entry {id}: kept {pttl} ms, fresh for {fresh_for} ms: a window of {window} ms, not 30 s"
        );
    }
}

#[tokio::test]
async fn the_builder_refuses_a_jitter_outside_zero_to_one() {
    for fraction in [1.0, 1.5, -0.1, f64::NAN] {
        let built = support::shared_builder("refuses")
            .ttl_jitter(fraction)
            .build()
            .await;
        match built {
            Err(Error::InvalidConfig(message)) => {
                assert!(message.contains("jitter"), "{fraction}: {message}")
            }
            other => panic!("ttl_jitter({fraction}) built: {other:?}"),
        }
    }
    support::shared_builder("accepts")
        .ttl_jitter(0.0)
        .build()
        .await
        .expect("no jitter is a valid jitter");
}

#[test]
fn the_registry_lists_each_functions_jitter() {
    let jitter = |name: &str| {
        redis_cached::functions()
            .cached
            .into_iter()
            .find(|function| function.path.ends_with(&format!("::{name}")))
            .unwrap_or_else(|| panic!("{name} is registered"))
            .jitter
    };
    assert_eq!(jitter("half"), Some(0.5));
    assert_eq!(jitter("half_batch"), Some(0.5));
    assert_eq!(jitter("off"), Some(0.0));
    assert_eq!(jitter("plain"), None, "the cache's");
}

/// Now, in ms since the UNIX epoch (the envelope's clock).
fn now_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}
