//! A command that fails for its own reasons fails only its own call: it never delays the
//! other calls sharing the multiplexed connection, and never counts towards the breaker.
//! Here, while other calls hit stored entries: a key of another type under the cache's
//! prefix (`WRONGTYPE` on every lookup), and a value over the server's
//! `proto-max-bulk-len` (which Redis answers by closing the connection, failing every
//! call queued on it, unless the value is never sent). The TTL, the other argument a
//! server can refuse, is capped at 100 years before it is sent (`ttl.rs`, pinned in
//! `freshness.rs`).

mod harness;
mod support;

use harness::RedisServer;
use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{bump, checked_square, runs};

const TIMEOUT: Duration = Duration::from_millis(500);
/// The server's limit on one argument (the least Redis accepts).
const BULK_LIMIT: usize = 1 << 20;

/// A value of `len` bytes.
#[redis_cached(key = "blob:<len>", ttl = 60, cache = cache)]
async fn blob(cache: &Cache, counter: &AtomicUsize, len: usize) -> String {
    bump(counter);
    "x".repeat(len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_fails_for_its_own_reasons_fails_only_its_call() {
    let server = RedisServer::start_with(&["--proto-max-bulk-len", &BULK_LIMIT.to_string()]);
    let cache = Cache::builder(&server.url())
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("the test's server answers");
    let mut redis = server.connection().await;
    // Another program keeps a list under a key the cache renders.
    let _: u64 = redis::cmd("RPUSH")
        .arg("square:5")
        .arg("someone else's")
        .query_async(&mut redis)
        .await
        .expect("RPUSH");
    let stored = AtomicUsize::new(0);
    for id in 10..20 {
        support::assert_miss_then_hit(|| checked_square(&cache, &stored, id)).await;
    }
    let stored_runs = runs(&stored);

    let until = Instant::now() + Duration::from_millis(1500);
    let (blobs, wrong) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // On a task of its own: building a 2 MiB value takes a while in a debug build, which
    // must not count against the hits.
    let failing = tokio::spawn({
        let (cache, blobs, wrong) = (cache.clone(), blobs.clone(), wrong.clone());
        async move {
            let mut rounds = 0;
            while Instant::now() < until {
                let len = 2 * BULK_LIMIT + rounds;
                let (value, outcome) = with_outcome(blob(&cache, &blobs, len)).await;
                assert_eq!(value.len(), len);
                assert_ne!(
                    outcome,
                    Some(Outcome::Hit),
                    "a value over the limit is not stored"
                );
                assert!(checked_square(&cache, &wrong, 5).await.is_some());
                rounds += 1;
            }
            rounds
        }
    });
    let hits = async {
        let mut calls = 0;
        while Instant::now() < until {
            for id in 10..20 {
                let started = Instant::now();
                let outcome = checked_square(&cache, &stored, id).await;
                let elapsed = started.elapsed();
                assert_eq!(
                    outcome,
                    Some(Outcome::Hit),
                    "square({id}) was stored: a failure of another call's command changes nothing"
                );
                assert!(
                    elapsed < TIMEOUT / 2,
                    "square({id}) took {elapsed:?}, held up by another call's failure"
                );
                calls += 1;
            }
            tokio::task::yield_now().await;
        }
        calls
    };
    let calls = hits.await;
    let rounds = failing.await.expect("the failing calls' task");
    eprintln!("{calls} hits while {rounds} rounds of failing calls ran");
    assert!(rounds >= 3, "only {rounds} rounds");
    assert_eq!(
        runs(&stored),
        stored_runs,
        "no stored entry ran its body again"
    );
    assert_eq!(
        runs(&blobs),
        rounds,
        "each oversized call ran its body once"
    );
    assert_eq!(
        runs(&wrong),
        rounds,
        "each WRONGTYPE call ran its body once"
    );
    assert!(
        !cache.is_degraded(),
        "failures of a call's own command are no connection failures"
    );
    let kind: String = redis::cmd("TYPE")
        .arg("square:5")
        .query_async(&mut redis)
        .await
        .expect("TYPE");
    assert_eq!(kind, "list", "the other program's list is left alone");
}
