//! During an outage the source's load does not multiply and the log does not flood:
//! concurrent calls on one key run the body once while Redis is unreachable, and deferred
//! invalidations land as soon as Redis answers again. (The log lines: `outage_log.rs`.)

mod harness;
mod support;

use harness::RedisServer;
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use support::{Versions, bump, runs};

const TIMEOUT: Duration = Duration::from_millis(100);

#[redis_cached(key = "report:<id>", ttl = 60, cache = cache)]
async fn report(cache: &Cache, counter: &AtomicUsize, id: u64) -> String {
    bump(counter);
    // A slow query: concurrent callers overlap it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("report {id}")
}

#[invalidates("report:<id>", cache = cache)]
async fn edit_report(cache: &Cache, id: u64) {}

async fn lazy_cache(url: &str) -> Cache {
    Cache::builder(url)
        .timeout(TIMEOUT)
        .lazy(true)
        .build()
        .await
        .expect("a valid URL")
}

/// 500 concurrent cold calls on one key; returns how many ran the body.
async fn stampede(cache: &Cache) -> usize {
    let counter = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..500)
        .map(|_| {
            let (cache, counter) = (cache.clone(), counter.clone());
            tokio::spawn(async move { report(&cache, &counter, 1).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("no call panics"), "report 1");
    }
    runs(&counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_concurrent_calls_on_a_key_run_the_body_once() {
    // Connections refused.
    let cache = lazy_cache(&format!("redis://127.0.0.1:{}", harness::free_port())).await;
    let ran = stampede(&cache).await;
    assert!(
        ran <= 3,
        "the body ran {ran} times for 500 calls on a closed port"
    );
    // The breaker is open by now: calls skip Redis at once, and still coalesce.
    assert!(cache.is_degraded());
    let ran = stampede(&cache).await;
    assert!(
        ran <= 3,
        "the body ran {ran} times for 500 calls with the breaker open"
    );

    // A frozen server: every lookup costs a timeout first.
    let server = RedisServer::start();
    let cache = lazy_cache(&server.url()).await;
    cache.ping().await.expect("the server answers");
    server.signal("STOP");
    let ran = stampede(&cache).await;
    server.signal("CONT");
    assert!(
        ran <= 3,
        "the body ran {ran} times for 500 calls on a frozen server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_invalidation_does_not_multiply_the_load_either() {
    let cache = lazy_cache(&format!("redis://127.0.0.1:{}", harness::free_port())).await;
    edit_report(&cache, 1).await;
    let ran = stampede(&cache).await;
    assert!(
        ran <= 3,
        "the body ran {ran} times for 500 calls on a pending key"
    );
}

#[redis_cached(key = "ping:<id>", ttl = 60, cache = cache)]
async fn quick(cache: &Cache, id: u64) -> u64 {
    id
}

#[invalidates("ping:<id>", cache = cache)]
async fn edit_quick(cache: &Cache, id: u64) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_invalidations_land_as_soon_as_redis_answers_again() {
    let mut server = RedisServer::start();
    let cache = lazy_cache(&server.url()).await;
    server.kill();
    // Deferred: until it lands, this process neither reads nor stores the key.
    edit_quick(&cache, 1).await;
    // An outage long enough for the retries to have backed off.
    for id in 0..16 {
        quick(&cache, id).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.restart();
    let back = Instant::now();
    let mut closed_after = None;
    let landed_after = loop {
        let (_, outcome) = with_outcome(quick(&cache, 1)).await;
        if outcome == Some(Outcome::Hit) {
            break back.elapsed();
        }
        // Traffic on another key probes Redis and closes the breaker.
        quick(&cache, 7).await;
        if closed_after.is_none() && !cache.is_degraded() {
            closed_after = Some(back.elapsed());
        }
        assert!(back.elapsed() < Duration::from_secs(5), "never landed");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let closed_after = closed_after.unwrap_or(landed_after);
    println!(
        "Redis back; breaker closed after {closed_after:?}; deferred invalidation landed (key hit again) after {landed_after:?}"
    );
    assert!(
        landed_after.saturating_sub(closed_after) < Duration::from_millis(100),
        "closed after {closed_after:?}, landed after {landed_after:?}"
    );
}

/// The source of truth of `versioned`, a version per id (each test its own id), bumped by
/// `bump_version`; `versioned` counts from 1.
static VERSIONS: LazyLock<Versions> = LazyLock::new(Versions::default);

#[redis_cached(key = "versioned:<id>", ttl = 60, cache = cache)]
async fn versioned(cache: &Cache, id: u64) -> u64 {
    VERSIONS.current(id) + 1
}

#[invalidates("versioned:<id>", cache = cache)]
async fn bump_version(cache: &Cache, id: u64) {
    VERSIONS.write(id);
}

/// `ACL SETUSER app` with `rules`.
async fn acl(admin: &mut redis::aio::MultiplexedConnection, rules: &[&str]) {
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg(rules)
        .query_async(admin)
        .await
        .expect("ACL SETUSER");
}

/// Creates the user `app`, allowed everything but `UNLINK`; returns `url` (the server's, or
/// a relay's to it) with its credentials.
async fn user_without_unlink(admin: &mut redis::aio::MultiplexedConnection, url: &str) -> String {
    acl(admin, &["on", ">secret", "~*", "+@all", "-unlink"]).await;
    url.replace("redis://", "redis://app:secret@")
}

/// An invalidation whose `UNLINK` Redis refuses (an ACL user without `unlink`, while reads
/// and writes work) is deferred: until it lands, this process neither reads the stale entry
/// nor stores over it; once `UNLINK` is allowed again, the retry deletes it and hits resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_invalidation_is_deferred_and_its_key_neither_read_nor_stored() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let url = user_without_unlink(&mut admin, &server.url()).await;
    let cache = lazy_cache(&url).await;
    let key = "versioned:1";
    assert_eq!(versioned(&cache, 1).await, 1);
    assert_eq!(
        with_outcome(versioned(&cache, 1)).await,
        (1, Some(Outcome::Hit))
    );

    bump_version(&cache, 1).await; // UNLINK refused: NOPERM
    let stale: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut admin)
        .await
        .expect("GET");
    assert_eq!(
        stale.as_deref().map(support::untrailed),
        Some(b"1".as_slice()),
        "the stale entry is still in Redis"
    );
    for _ in 0..3 {
        // Not read: the new version, from the body.
        assert_eq!(
            with_outcome(versioned(&cache, 1)).await,
            (2, Some(Outcome::Bypass))
        );
    }
    let still: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut admin)
        .await
        .expect("GET");
    assert_eq!(
        still.as_deref().map(support::untrailed),
        Some(b"1".as_slice()),
        "nor stored over while pending"
    );

    acl(&mut admin, &["+unlink"]).await;
    let allowed = Instant::now();
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut admin)
            .await
            .expect("EXISTS");
        if !exists {
            break;
        }
        assert!(allowed.elapsed() < Duration::from_secs(5), "never deleted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The pending mark goes with the deletion: the next call fills, the one after hits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while with_outcome(versioned(&cache, 1)).await != (2, Some(Outcome::Hit)) {
        assert!(Instant::now() < deadline, "hits never resumed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A `Cache::invalidate` call dropped while its `UNLINK` is in flight (a cancelled request)
/// still finishes: here Redis refuses the `UNLINK` (`NOPERM`), and the refusal, answered
/// after the caller is gone, still defers the key, so the stale entry is never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_invalidate_call_still_defers_its_refused_unlink() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let relay = harness::Relay::start(server.port()).await;
    let url = user_without_unlink(&mut admin, &relay.url()).await;
    let cache = Cache::builder(&url)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("redis answers");
    let old = versioned(&cache, 2).await;
    assert_eq!(
        with_outcome(versioned(&cache, 2)).await,
        (old, Some(Outcome::Hit))
    );

    // The write, then its invalidation, dropped while Redis's answer is held back.
    VERSIONS.write(2);
    relay.hold_replies(true);
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        cache.invalidate(&["versioned:2"]),
    )
    .await;
    assert!(dropped.is_err(), "the call was dropped in flight");
    relay.hold_replies(false);

    // Once the refusal arrives, the key is pending: never the stale entry again.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (value, outcome) = with_outcome(versioned(&cache, 2)).await;
        if value > old {
            assert_eq!(
                outcome,
                Some(Outcome::Bypass),
                "pending: neither read nor stored"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped invalidation was lost: the stale entry is still served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acl(&mut admin, &["+unlink"]).await;
    support::eventually(
        Duration::from_secs(5),
        "the deferred UNLINK never landed",
        || {
            let cache = cache.clone();
            async move { with_outcome(versioned(&cache, 2)).await.1 == Some(Outcome::Hit) }
        },
    )
    .await;
}
