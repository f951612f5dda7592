//! The guarantees around a fill that do not show when every caller behaves: a cancelled
//! pilot does not strand its joiners, joiners of a fill that failed get its `Err` without
//! running the body, a body that outlasts its lease is stored (the lease is kept alive while
//! it runs), and a cancelled `#[invalidates]` caller still deletes its keys. On Redis and
//! `mem://`.

mod harness;
mod support;

use redis_cached::{Cache, invalidates, redis_cached};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{bump, runs};

const LEASE: Duration = Duration::from_millis(2000);

async fn caches(test: &str, lease: Duration) -> Vec<Cache> {
    let mut caches = Vec::new();
    for url in ["mem://", harness::shared_url()] {
        let cache = Cache::builder(url)
            .prefix(support::unique_prefix(test))
            .fill_lease(lease)
            .build()
            .await
            .expect("the cache builds");
        caches.push(cache);
    }
    caches
}

#[redis_cached(key = "slow:<id>", ttl = 60, cache = cache)]
async fn slow(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
    pause: Duration,
) -> Result<u64, String> {
    bump(counter);
    tokio::time::sleep(pause).await;
    Ok(id)
}

#[redis_cached(key = "failing:<id>", ttl = 60, cache = cache)]
async fn failing(cache: &Cache, counter: &AtomicUsize, id: u64) -> Result<u64, String> {
    // The first run fails after a while (the pilot's), the others succeed at once.
    if bump(counter) == 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Err("the database is down".into());
    }
    Ok(id)
}

/// Within `limit`, or the test fails as a hang.
async fn bounded<T>(what: &str, limit: Duration, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, call).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not return within {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pilot_lets_its_joiners_go_on_at_once() {
    for cache in caches("cancelled_pilot", LEASE).await {
        let counter = Arc::new(AtomicUsize::new(0));
        let pilot = {
            let (cache, counter) = (cache.clone(), counter.clone());
            tokio::spawn(async move { slow(&cache, &counter, 1, Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let joiner = {
            let (cache, counter) = (cache.clone(), counter.clone());
            tokio::spawn(async move { slow(&cache, &counter, 1, Duration::ZERO).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cancelled = Instant::now();
        pilot.abort();
        // Not after the lease: the pilot's cancellation releases the joiner.
        let value = bounded("the joiner", LEASE / 2, joiner).await;
        assert_eq!(value.expect("the joiner does not panic"), Ok(1));
        assert!(cancelled.elapsed() < LEASE / 2);
        assert_eq!(runs(&counter), 2, "the joiner ran the body itself");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_of_a_failed_fill_get_its_err_without_running_the_body() {
    for cache in caches("joiners_after_err", LEASE).await {
        let counter = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let (cache, counter) = (cache.clone(), counter.clone());
                tokio::spawn(async move { failing(&cache, &counter, 7).await })
            })
            .collect();
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.expect("no call panics"));
        }
        // The pilot's `Err` (a `String`: `Clone`) reached every joiner; none ran the body,
        // which would have succeeded.
        assert!(
            results
                .iter()
                .all(|result| *result == Err("the database is down".to_owned())),
            "{results:?}"
        );
        assert_eq!(runs(&counter), 1, "the joiners did not run the body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_outlasts_its_lease_is_stored_its_lease_kept_alive() {
    let lease = Duration::from_millis(300);
    for cache in caches("outlasting", lease).await {
        let counter = AtomicUsize::new(0);
        assert_eq!(slow(&cache, &counter, 3, lease * 3).await, Ok(3));
        // Stored: the next call is a hit.
        assert_eq!(slow(&cache, &counter, 3, Duration::ZERO).await, Ok(3));
        assert_eq!(runs(&counter), 1, "{}", cache.backend_kind());
    }
}

#[invalidates("slow:<id>", cache = cache)]
async fn slow_write(cache: &Cache, id: u64) {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_invalidation_still_deletes_its_keys() {
    for cache in caches("cancelled_invalidation", LEASE).await {
        let counter = AtomicUsize::new(0);
        assert_eq!(slow(&cache, &counter, 4, Duration::ZERO).await, Ok(4));
        // Dropped mid-body, as when a client disconnects during a write.
        let cancelled =
            tokio::time::timeout(Duration::from_millis(50), slow_write(&cache, 4)).await;
        assert!(cancelled.is_err(), "the write was cancelled mid-body");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            assert_eq!(slow(&cache, &counter, 4, Duration::ZERO).await, Ok(4));
            if runs(&counter) == 2 {
                break; // a miss: the key was deleted
            }
            assert!(Instant::now() < deadline, "the key was never deleted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
