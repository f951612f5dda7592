//! Stale-while-revalidate, stale-if-error, refresh ahead and run-time TTLs against a real
//! redis-server (the scenarios run on `mem://`, a Cluster and Sentinel too), and what they
//! cost in commands.

mod harness;
mod scenarios;
mod support;

scenarios::scenario_tests!(freshness, support::shared_builder);

use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use scenarios::freshness::{Source, swr};
use std::sync::Arc;
use std::time::Duration;

/// Two caches on one prefix: two processes, each with flights of its own.
async fn two_processes(test: &str) -> (Cache, Cache) {
    let prefix = support::unique_prefix(test);
    let build = || async {
        Cache::builder(harness::shared_url())
            .prefix(prefix.clone())
            .build()
            .await
            .expect("the shared redis-server answers")
    };
    (build().await, build().await)
}

/// The refresh of a stale entry is claimed in the entry itself: while one process runs it,
/// another process is served the stale value at once rather than running the body too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_claimed_once_across_processes() {
    let (one, other) = two_processes("fresh_two_processes").await;
    let source = Arc::new(Source::default());
    assert_eq!(swr(&one, &source, 1).await.as_deref(), Ok("item 1 v0"));
    source.write();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let gate = source.hold();
    let refresh = tokio::spawn({
        let (one, source) = (one.clone(), source.clone());
        async move { with_outcome(swr(&one, &source, 1)).await }
    });
    source.until_runs(2).await;
    let elsewhere = tokio::time::timeout(
        Duration::from_secs(2),
        with_outcome(swr(&other, &source, 1)),
    )
    .await
    .expect("the other process is not held by the refresh");
    assert_eq!(
        (elsewhere.0.as_deref(), elsewhere.1),
        (Ok("item 1 v0"), Some(Outcome::Stale))
    );
    assert_eq!(source.runs(), 2, "one refresh across both processes");
    source.release(&gate);
    let (value, outcome) = refresh.await.expect("the refresh");
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 1 v1"), Some(Outcome::Refresh))
    );
    let (value, outcome) = with_outcome(swr(&other, &source, 1)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 1 v1"), Some(Outcome::Hit))
    );
}

/// Entries that may outlive their TTL still cost one command per hit, fresh or stale; only
/// the caller that refreshes sends more (the claim, then the conditional store).
#[tokio::test]
async fn a_fresh_hit_is_one_command_and_a_refresh_two_scripts_more() {
    let server = harness::RedisServer::start();
    let cache = Cache::connect(&server.url()).await.expect("connects");
    let source = Source::default();
    let mut admin = server.connection().await;
    let lookup = harness::lookup_command(&mut admin).await;
    swr(&cache, &source, 1).await.expect("filled");
    let commands = |before: &std::collections::HashMap<String, u64>,
                    after: &std::collections::HashMap<String, u64>| {
        let mut delta: Vec<(String, u64)> = after
            .iter()
            .map(|(name, n)| (name.clone(), n - before.get(name).unwrap_or(&0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        delta.sort();
        delta
    };
    let before = harness::command_calls_on(&mut admin).await;
    assert_eq!(
        with_outcome(swr(&cache, &source, 1)).await.1,
        Some(Outcome::Hit)
    );
    let after = harness::command_calls_on(&mut admin).await;
    // Before Redis 7.0 the lookup is a script, whose own `GET` the server counts too.
    let hit: Vec<(String, u64)> = if lookup == "set" {
        vec![("set".to_owned(), 1)]
    } else {
        vec![("evalsha".to_owned(), 1), ("get".to_owned(), 1)]
    };
    assert_eq!(commands(&before, &after), hit);
    // A refresh: the lookup, the claim and the conditional store (two scripts; what they
    // run inside is counted too, so only the scripts are compared). Once, to load them.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = harness::command_calls_on(&mut admin).await;
        assert_eq!(
            with_outcome(swr(&cache, &source, 1)).await.1,
            Some(Outcome::Refresh)
        );
        let after = harness::command_calls_on(&mut admin).await;
        let scripts = commands(&before, &after)
            .into_iter()
            .find(|(name, _)| name == "evalsha")
            .map_or(0, |(_, n)| n);
        if round == 1 {
            // Before Redis 7.0 the lookup is a script too.
            let lookup_scripts = u64::from(lookup == "evalsha");
            assert_eq!(
                scripts,
                2 + lookup_scripts,
                "{:?}",
                commands(&before, &after)
            );
        }
    }
}

#[redis_cached(key = "forever:<id>", ttl = Duration::MAX, stale = 60, cache = cache)]
async fn forever(cache: &Cache, source: &Source, id: u64) -> Result<String, String> {
    source.read(id).await
}

#[redis_cached(key = "ahead_kept:<id>", ttl = Duration::from_millis(300), refresh_ahead, cache = cache)]
async fn ahead_kept(cache: &Cache, id: u64) -> u64 {
    id
}

/// A TTL longer than Redis takes (`Duration::MAX`) is capped at 100 years: no panic, no
/// refused fill leaving a lease behind (the second call is a hit at once). An entry with
/// `refresh_ahead` is kept a lease's length past its TTL, so that a refresh claimed just
/// before the expiry still finds it.
#[tokio::test]
async fn ttls_are_capped_and_refresh_ahead_entries_outlive_their_ttl_by_a_lease() {
    let cache = support::redis_cache("fresh_caps").await;
    let source = Source::default();
    let mut redis = harness::raw_connection().await;
    let pttl = |key: String| {
        let mut redis = redis.clone();
        async move {
            redis::cmd("PTTL")
                .arg(key)
                .query_async::<i64>(&mut redis)
                .await
                .expect("PTTL")
        }
    };
    assert_eq!(
        forever(&cache, &source, 1).await.as_deref(),
        Ok("item 1 v0")
    );
    let started = std::time::Instant::now();
    let (_, outcome) = with_outcome(forever(&cache, &source, 1)).await;
    assert_eq!(outcome, Some(Outcome::Hit));
    assert!(started.elapsed() < Duration::from_secs(1));
    let hundred_years = 100 * 365 * 86_400 * 1000_i64;
    let left = pttl(format!("{}forever:1", cache.prefix())).await;
    assert!(
        (hundred_years..=hundred_years + 61_000).contains(&left),
        "lives {left} ms"
    );
    ahead_kept(&cache, 2).await;
    let left = pttl(format!("{}ahead_kept:2", cache.prefix())).await;
    // The TTL and the default lease (5 s).
    assert!((5_000..=5_300).contains(&left), "lives {left} ms");
    let _ = &mut redis;
}
