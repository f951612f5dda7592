//! No cached call waits forever: a call of a key from inside the body that is filling it runs
//! its body at once, and a wait for another caller's flight, in this process or another, is
//! bounded by the cache's `max_wait`, after which one waiter takes the key over and runs the
//! body itself. On Redis and `mem://`.

mod harness;
mod support;

use redis_cached::{Cache, redis_cached};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{bump, runs};
use tokio::sync::Barrier;

/// The lease and the longest wait of these tests' caches: waits are bounded by it.
const LEASE: Duration = Duration::from_millis(400);

/// Longer than any bound asserted here: a call still running then is taken to hang.
const HANG: Duration = Duration::from_secs(20);

async fn caches(test: &str) -> Vec<Cache> {
    let mut caches = Vec::new();
    for url in ["mem://", harness::shared_url()] {
        let cache = Cache::builder(url)
            .prefix(support::unique_prefix(test))
            .fill_lease(LEASE)
            .max_wait(LEASE)
            .build()
            .await
            .expect("the cache builds");
        caches.push(cache);
    }
    caches
}

/// Runs `call`, failing the test if it has not returned within `HANG`; returns its output
/// and how long it took.
async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    match tokio::time::timeout(HANG, call).await {
        Ok(output) => (output, started.elapsed()),
        Err(_) => panic!("{what} never returned"),
    }
}

#[redis_cached(key = "account:<id>", ttl = 60, cache = cache)]
async fn account_balance(cache: &Cache, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    100 + id
}

/// The same key as `account_balance`: its body calls it while filling `account:<id>`.
#[redis_cached(key = "account:<id>", ttl = 60, cache = cache)]
async fn account_summary(cache: &Cache, counter: &AtomicUsize, id: u64) -> u64 {
    account_balance(cache, counter, id).await
}

/// Directly recursive, on one key.
#[redis_cached(key = "countdown:<id>", ttl = 60, cache = cache)]
async fn countdown(cache: &Cache, counter: &AtomicUsize, id: u64, depth: u32) -> u32 {
    bump(counter);
    if depth == 0 {
        return 0;
    }
    Box::pin(countdown(cache, counter, id, depth - 1)).await + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_the_key_its_own_body_is_filling_runs_at_once() {
    for cache in caches("reentrant").await {
        let counter = AtomicUsize::new(0);
        let (summary, took) = bounded(
            "account_summary(9), whose body calls account_balance(9) on the same key",
            account_summary(&cache, &counter, 9),
        )
        .await;
        assert_eq!(summary, 109);
        assert_eq!(runs(&counter), 1, "the inner body ran once, uncached");
        // At once: not after a lease spent waiting for itself.
        assert!(took < LEASE, "{took:?}");

        let counter = AtomicUsize::new(0);
        let (depth, took) = bounded(
            "a directly recursive call",
            countdown(&cache, &counter, 1, 3),
        )
        .await;
        assert_eq!(depth, 3);
        assert_eq!(runs(&counter), 4);
        assert!(took < LEASE, "{took:?}");
        // The outer call stored its value: the next call is a hit.
        assert_eq!(countdown(&cache, &counter, 1, 3).await, 3);
        assert_eq!(runs(&counter), 4);
    }
}

/// `user(1)` reads `team(1)` and `team(1)` reads `user(1)`, one level deep (`depth` is not
/// part of the key, as a request's context would not be).
#[redis_cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn user(cache: &Cache, meet: &Barrier, id: u64, depth: u32) -> String {
    if depth == 0 {
        return format!("user {id}");
    }
    meet.wait().await;
    format!(
        "user {id} of {}",
        Box::pin(team(cache, meet, id, depth - 1)).await
    )
}

#[redis_cached(key = "team:<id>", ttl = 60, cache = cache)]
async fn team(cache: &Cache, meet: &Barrier, id: u64, depth: u32) -> String {
    if depth == 0 {
        return format!("team {id}");
    }
    meet.wait().await;
    format!(
        "team {id} of {}",
        Box::pin(user(cache, meet, id, depth - 1)).await
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fills_waiting_for_each_other_finish_after_max_wait() {
    for cache in caches("cycle").await {
        // Both bodies start before either calls the other: each waits for the other's flight.
        let meet = Barrier::new(2);
        let ((user_1, team_1), took) =
            bounded("user(1) and team(1), each reading the other", async {
                tokio::join!(user(&cache, &meet, 1, 1), team(&cache, &meet, 1, 1))
            })
            .await;
        // The key leaves `depth` out, so one may get the other's whole value from its flight.
        assert!(user_1.starts_with("user 1 of team 1"), "{user_1}");
        assert!(team_1.starts_with("team 1 of user 1"), "{team_1}");
        assert!(took < LEASE * 3, "max_wait plus slack, took {took:?}");
    }
}

#[redis_cached(key = "slow:<id>", ttl = 60, cache = cache)]
async fn slow(cache: &Cache, counter: &AtomicUsize, id: u64, pause: Duration) -> u64 {
    bump(counter);
    tokio::time::sleep(pause).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_flight_ends_at_max_wait_and_the_waiter_takes_the_key_over() {
    for cache in caches("lease_bound").await {
        let counter = AtomicUsize::new(0);
        let pilot = slow(&cache, &counter, 1, LEASE * 4);
        let waiter = async {
            // Starts once the pilot holds the lease.
            tokio::time::sleep(LEASE / 8).await;
            bounded("a waiter", slow(&cache, &counter, 1, Duration::ZERO)).await
        };
        let (pilot, (waited, took)) = tokio::join!(pilot, waiter);
        assert_eq!((pilot, waited), (1, 1));
        assert_eq!(runs(&counter), 2, "the waiter ran the body itself");
        assert!(
            took >= LEASE / 2 && took < LEASE * 4,
            "the waiter gave up after about max_wait: {took:?}"
        );
    }
}

/// The cycle across two `Cache`s on one server (as across two processes): no flight is
/// shared, the lease in Redis is polled (kept alive by its filler), and taken over once
/// `max_wait` is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cycle_across_two_caches_finishes_after_max_wait() {
    let prefix = support::unique_prefix("cycle_two_caches");
    let mut two = Vec::new();
    for _ in 0..2 {
        let cache = Cache::builder(harness::shared_url())
            .prefix(prefix.clone())
            .fill_lease(LEASE)
            .max_wait(LEASE)
            .build()
            .await
            .expect("redis answers");
        two.push(cache);
    }
    let meet = Barrier::new(2);
    let ((user_1, team_1), took) = bounded("user(1) and team(1) on two caches", async {
        tokio::join!(user(&two[0], &meet, 1, 1), team(&two[1], &meet, 1, 1))
    })
    .await;
    // Each takes the other's key over at `max_wait`; the key leaves `depth` out, so the
    // one that takes over second may read the other's whole value.
    assert!(user_1.starts_with("user 1 of team 1"), "{user_1}");
    assert!(team_1.starts_with("team 1 of user 1"), "{team_1}");
    assert!(took < LEASE * 4, "max_wait plus slack, took {took:?}");
}
