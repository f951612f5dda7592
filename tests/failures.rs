//! Redis failures never fail a call: unreachable, unresponsive, killed, frozen or refusing
//! writes, calls return the body's value within the timeout; caching resumes once Redis is
//! back. Errors from connecting never show a password.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, with_outcome};
use std::net::TcpListener;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{assert_miss_then_hit, forget, runs, square};

const TIMEOUT: Duration = Duration::from_millis(100);
/// A generous bound on one call when every cache operation times out after `TIMEOUT`.
const CALL_BOUND: Duration = Duration::from_secs(2);
/// Longer than any call may take, even one that waits for a fill lease.
const HANG: Duration = Duration::from_secs(30);

/// `square(id)` with its outcome and how long it took, checked to be right.
async fn square_timed(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
) -> (Option<Outcome>, Duration) {
    let started = Instant::now();
    // A hang fails the test instead of blocking it.
    let (value, outcome) = tokio::time::timeout(HANG, with_outcome(square(cache, counter, id)))
        .await
        .expect("a cached call hung");
    assert_eq!(value, Ok(id * id));
    (outcome, started.elapsed())
}

/// `square(id)` with its outcome, checked to be right and to return within `CALL_BOUND`.
async fn timed_square(cache: &Cache, counter: &AtomicUsize, id: u64) -> Option<Outcome> {
    let (outcome, elapsed) = square_timed(cache, counter, id).await;
    assert!(elapsed < CALL_BOUND, "a call took {elapsed:?}");
    outcome
}

/// A lazy cache on `url` with the short timeout.
async fn lazy_cache(url: &str) -> Cache {
    Cache::builder(url)
        .prefix("app:")
        .timeout(TIMEOUT)
        .lazy(true)
        .build()
        .await
        .expect("a lazy cache builds without connecting")
}

/// Calls `square(id)` until it is a hit (at most 20 s): caching works again. The calls
/// are checked to return the right value, not to be quick.
async fn until_cached_again(cache: &Cache, counter: &AtomicUsize, id: u64) {
    support::eventually(
        Duration::from_secs(20),
        "caching did not resume",
        || async { square_timed(cache, counter, id).await.0 == Some(Outcome::Hit) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_redis_calls_return_correct_values_within_the_timeout() {
    let cache = lazy_cache(&format!("redis://127.0.0.1:{}", harness::free_port())).await;
    let counter = AtomicUsize::new(0);
    for round in 1..=5 {
        assert_eq!(
            timed_square(&cache, &counter, 7).await,
            Some(Outcome::Bypass)
        );
        assert_eq!(runs(&counter), round, "the body runs on every call");
    }
    let started = Instant::now();
    assert_eq!(forget(&cache, 7).await, "forgotten");
    assert!(started.elapsed() < CALL_BOUND);
    assert!(cache.ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn unresponsive_redis_calls_return_correct_values_within_the_timeout() {
    // Accepts connections (the kernel does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let cache = lazy_cache(&url).await;
    let counter = AtomicUsize::new(0);
    for round in 1..=5 {
        assert_eq!(
            timed_square(&cache, &counter, 3).await,
            Some(Outcome::Bypass)
        );
        assert_eq!(runs(&counter), round);
    }
    let started = Instant::now();
    assert_eq!(forget(&cache, 3).await, "forgotten");
    assert!(started.elapsed() < CALL_BOUND);

    let started = Instant::now();
    assert!(Cache::builder(&url).timeout(TIMEOUT).build().await.is_err());
    assert!(
        started.elapsed() < CALL_BOUND,
        "connecting is bounded by the timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_mid_test_then_restarted() {
    let mut server = harness::RedisServer::start();
    let cache = lazy_cache(&server.url()).await;
    let counter = AtomicUsize::new(0);
    assert_miss_then_hit(|| timed_square(&cache, &counter, 4)).await;
    assert_eq!(runs(&counter), 1);

    server.kill();
    for round in 1..=5 {
        assert_eq!(
            timed_square(&cache, &counter, 4).await,
            Some(Outcome::Bypass)
        );
        assert_eq!(
            runs(&counter),
            1 + round,
            "the body runs while Redis is down"
        );
    }
    assert_eq!(forget(&cache, 4).await, "forgotten");

    server.restart();
    until_cached_again(&cache, &counter, 4).await;
    let before = runs(&counter);
    assert_miss_then_hit(|| timed_square(&cache, &counter, 5)).await;
    assert_eq!(runs(&counter), before + 1);
}

/// Populates a server of its own, freezes it (SIGSTOP) for five calls that time out, and
/// resumes it. Returns the server (to keep it alive), the cache and the body's counter.
async fn freeze_and_resume() -> (harness::RedisServer, Cache, AtomicUsize) {
    let server = harness::RedisServer::start();
    let cache = lazy_cache(&server.url()).await;
    let counter = AtomicUsize::new(0);
    assert_miss_then_hit(|| timed_square(&cache, &counter, 6)).await;

    server.signal("STOP");
    let mut frozen = Vec::new();
    for id in [6, 6, 8, 8, 6] {
        frozen.push(square_timed(&cache, &counter, id).await);
    }
    server.signal("CONT");
    for (outcome, elapsed) in &frozen {
        assert_eq!(*outcome, Some(Outcome::Bypass), "{frozen:?}");
        assert!(*elapsed < CALL_BOUND, "a call took {elapsed:?}");
    }
    assert_eq!(runs(&counter), 6);
    (server, cache, counter)
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_frozen_mid_test_then_resumed() {
    let (_server, cache, counter) = freeze_and_resume().await;
    until_cached_again(&cache, &counter, 8).await;
    until_cached_again(&cache, &counter, 6).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_after_a_freeze_return_within_the_timeout() {
    let (_server, cache, counter) = freeze_and_resume().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        for id in [6, 8] {
            timed_square(&cache, &counter, id).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_writes_still_return_the_value() {
    let server = harness::RedisServer::start();
    let cache = lazy_cache(&server.url()).await;
    let counter = AtomicUsize::new(0);
    assert_eq!(timed_square(&cache, &counter, 2).await, Some(Outcome::Miss));

    // Every write is now refused with OOM; reads still work.
    let mut redis = server.connection().await;
    harness::config_set(&mut redis, "maxmemory", "1").await;
    assert_eq!(timed_square(&cache, &counter, 2).await, Some(Outcome::Hit));
    for round in 1..=3 {
        assert_eq!(timed_square(&cache, &counter, 9).await, Some(Outcome::Miss));
        assert_eq!(runs(&counter), 1 + round, "nothing could be stored");
    }
    assert_eq!(timed_square(&cache, &counter, 2).await, Some(Outcome::Hit));
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails() {
    let url = format!("redis://127.0.0.1:{}", harness::free_port());
    let started = Instant::now();
    assert!(Cache::connect(&url).await.is_err());
    assert!(Cache::builder(&url).timeout(TIMEOUT).build().await.is_err());
    assert!(started.elapsed() < CALL_BOUND);
}

const PASSWORD: &str = "s3cr3t-Pa55w0rd";

/// Neither the message nor the debug form of `text` shows the password.
fn assert_no_password(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{what} shows the password: {text}"
    );
}

#[tokio::test]
async fn errors_and_debug_output_never_show_the_password() {
    let closed = harness::free_port();
    let urls = [
        format!("redis://user:{PASSWORD}@127.0.0.1:{closed}"),
        format!("redis://:{PASSWORD}@127.0.0.1:{closed}/0"),
        format!("redis://:{PASSWORD}@127.0.0.1:notaport"),
        format!("redis://:{PASSWORD}@bad host:6379"),
        format!("ftp://user:{PASSWORD}@127.0.0.1:21"),
        // A server that refuses the credentials.
        format!(
            "redis://user:{PASSWORD}@{}",
            harness::shared_url().trim_start_matches("redis://")
        ),
    ];
    for url in &urls {
        let err = Cache::connect(url)
            .await
            .expect_err("no cache for this URL");
        assert_no_password("the error message", &err.to_string());
        assert_no_password("the error's Debug", &format!("{err:?}"));
        let builder = Cache::builder(url).timeout(TIMEOUT);
        assert_no_password("the builder's Debug", &format!("{builder:?}"));
    }

    let cache = Cache::builder(&urls[0])
        .lazy(true)
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    let debug = format!("{cache:?}");
    assert_no_password("the cache's Debug", &debug);
    assert!(debug.contains("***"), "{debug}");
    let err = cache.ping().await.expect_err("nothing listens");
    assert_no_password("a ping error", &format!("{err} {err:?}"));
}
