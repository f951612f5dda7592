//! The circuit breaker, against a frozen server (`SIGSTOP`): a frozen server accepts the
//! commands into its socket and never answers, so every attempt that is not skipped costs a
//! full timeout, and on `SIGCONT` the server runs what it was sent, which counts the
//! attempts exactly (`INFO commandstats`). A killed server would refuse every attempt at
//! once, with or without a breaker.
//!
//! Pinned: the breaker opens after exactly 3 consecutive failures; while open, calls skip
//! Redis; 250 ms after it opened one call probes, and a success closes it; one probe at a
//! time however many calls arrive; an outage costs each caller one timeout, not one per call.
//!
//! The caches here run without fill leases, so that an attempt is one `GET` (with leases, a
//! failed lookup also queues the release of its lease): the breaker is the same either way.

mod harness;

use harness::RedisServer;
use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(200);
/// The breaker's pause before a probe, as the guarantees guide states it.
const BACKOFF: Duration = Duration::from_millis(250);

#[redis_cached(key = "breaker:<id>", ttl = 60, cache = cache)]
async fn quick(cache: &Cache, id: u64) -> u64 {
    id
}

/// A distinct key for every call: nothing coalesces, every call is an attempt of its own.
static NEXT_ID: AtomicU64 = AtomicU64::new(1000);

/// One call on a fresh key: its outcome and how long it took.
async fn call(cache: &Cache) -> (Option<Outcome>, Duration) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let (value, outcome) = with_outcome(quick(cache, id)).await;
    assert_eq!(value, id, "a call returned another key's value");
    (outcome, started.elapsed())
}

/// A server, a cache on it whose connection is up, and the `GET`s it had run so far.
async fn warm() -> (RedisServer, Cache, u64) {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .timeout(TIMEOUT)
        .without_fill_leases()
        .lazy(true)
        .build()
        .await
        .expect("a valid URL");
    // The connection is set up before the freeze: an attempt is then one GET on it.
    assert_eq!(call(&cache).await.0, Some(Outcome::Miss));
    let gets = gets(&server).await;
    (server, cache, gets)
}

/// How many `GET`s the server has run.
async fn gets(server: &RedisServer) -> u64 {
    server
        .command_calls()
        .await
        .get("get")
        .copied()
        .unwrap_or(0)
}

/// Resumes a frozen server; returns how many `GET`s it ran since `before` was counted,
/// those it had been sent while frozen included (it runs them as it resumes).
async fn resume_and_count(server: &RedisServer, before: u64) -> u64 {
    server.signal("CONT");
    gets(server).await - before
}

/// Freezes the server and makes calls until the breaker opens; checks that each of them
/// waited for the timeout and that it opened at the third. Returns when it opened.
async fn open_on_frozen(server: &RedisServer, cache: &Cache) -> Instant {
    server.signal("STOP");
    for failure in 1..=3 {
        assert!(!cache.is_degraded(), "open after {} failures", failure - 1);
        let (outcome, took) = call(cache).await;
        assert_eq!(outcome, Some(Outcome::Bypass));
        assert!(
            took >= TIMEOUT,
            "call {failure} did not wait for Redis ({took:?}): the breaker skipped it"
        );
    }
    assert!(cache.is_degraded(), "still closed after 3 failures");
    Instant::now()
}

#[tokio::test]
async fn the_breaker_opens_after_exactly_three_failures_and_then_skips_redis() {
    let (server, cache, before) = warm().await;
    let opened = open_on_frozen(&server, &cache).await;
    // Well within the backoff: every call skips Redis, at once.
    let mut skipped = 0;
    while opened.elapsed() < BACKOFF / 2 && skipped < 50 {
        let (outcome, took) = call(&cache).await;
        assert_eq!(outcome, Some(Outcome::Bypass));
        assert!(
            took < TIMEOUT,
            "a call waited {took:?} with the breaker open"
        );
        skipped += 1;
    }
    assert!(skipped > 0);
    let attempts = resume_and_count(&server, before).await;
    assert_eq!(
        attempts, 3,
        "Redis was sent {attempts} lookups: the 3 that opened the breaker, none of the {skipped} calls after"
    );
}

#[tokio::test]
async fn the_breaker_probes_after_250_ms_and_a_success_closes_it() {
    let (server, cache, _) = warm().await;
    let opened = open_on_frozen(&server, &cache).await;
    // Redis answers again at once; the breaker only learns it from a probe.
    server.signal("CONT");
    let closed_after = loop {
        let (outcome, _) = call(&cache).await;
        if outcome != Some(Outcome::Bypass) {
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < BACKOFF + Duration::from_secs(3),
            "the breaker never probed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(!cache.is_degraded());
    println!("the breaker closed {closed_after:?} after it opened");
    // Not before the backoff (a lower bound no slow machine breaks), and not long after.
    assert!(
        closed_after >= BACKOFF - Duration::from_millis(5),
        "probed {closed_after:?} after opening, before the {BACKOFF:?} backoff"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_probe_at_a_time_however_many_calls_arrive() {
    let (server, cache, before) = warm().await;
    let opened = open_on_frozen(&server, &cache).await;
    // Past the backoff (waiting for the mechanism's own period), 50 calls at once.
    tokio::time::sleep((BACKOFF + Duration::from_millis(50)).saturating_sub(opened.elapsed()))
        .await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { call(&cache).await })
        })
        .collect();
    let mut slow = 0;
    for call in calls {
        let (outcome, took) = call.await.expect("no call panics");
        assert_eq!(outcome, Some(Outcome::Bypass));
        if took >= TIMEOUT {
            slow += 1;
        }
    }
    let attempts = resume_and_count(&server, before).await;
    assert_eq!(
        attempts, 4,
        "Redis was sent {attempts} lookups: 3 that opened the breaker and one probe ({slow} calls waited)"
    );
    assert_eq!(slow, 1, "one call probed and waited for the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_costs_each_caller_one_timeout_not_one_per_call() {
    let (server, cache, before) = warm().await;
    const CALLERS: u64 = 16;
    const OUTAGE: Duration = Duration::from_millis(1500);
    server.signal("STOP");
    let frozen = Instant::now();
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                let mut slow = 0;
                while frozen.elapsed() < OUTAGE {
                    if call(&cache).await.1 >= TIMEOUT {
                        slow += 1;
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                slow
            })
        })
        .collect();
    let mut slow = Vec::new();
    for caller in callers {
        slow.push(caller.await.expect("no caller panics"));
    }
    let outage = frozen.elapsed();
    let attempts = resume_and_count(&server, before).await;
    let calls = calls.load(Ordering::Relaxed);
    // The first call of each caller may be in flight before any failure is recorded; after
    // that only probes reach Redis, at most one per backoff.
    let probes = (outage.as_millis() / BACKOFF.as_millis()) as u64 + 1;
    println!(
        "{calls} calls in a {outage:?} outage: {attempts} reached Redis, slow calls per caller {slow:?}"
    );
    assert!(
        attempts <= CALLERS + probes,
        "{attempts} of {calls} calls reached Redis: more than one per caller plus {probes} probes"
    );
    assert!(
        slow.iter().sum::<u64>() <= CALLERS + probes,
        "callers waited for the timeout {slow:?} times"
    );
}
