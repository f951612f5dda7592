//! Stale-while-revalidate, stale-if-error, refresh ahead and run-time TTLs against a real
//! redis-server (the scenarios run on `mem://`, a Cluster and Sentinel too), and what they
//! cost in commands.

mod common;
mod scenarios;
mod support;

scenarios::scenario_tests!(freshness, common::redis_cache);

use redis_cached::{Cache, Outcome, with_outcome};
use scenarios::freshness::{Source, swr};
use std::sync::Arc;
use std::time::Duration;

/// Two caches on one prefix: two processes, each with flights of its own.
async fn two_processes(test: &str) -> (Cache, Cache) {
    let prefix = common::unique_prefix(test);
    let build = || async {
        Cache::builder(common::shared_url())
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
    common::wait_until_async(Duration::from_secs(5), "the refresh runs", || {
        (source.runs() == 2)
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
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
    gate.add_permits(1);
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
    let server = common::RedisServer::start();
    let cache = Cache::connect(&server.url()).await.expect("connects");
    let source = Source::default();
    let mut admin = server.connection().await;
    let lookup = if common::native_lookup(&mut admin).await {
        "set"
    } else {
        "evalsha"
    };
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
    let before = common::command_calls_on(&mut admin).await;
    assert_eq!(
        with_outcome(swr(&cache, &source, 1)).await.1,
        Some(Outcome::Hit)
    );
    let after = common::command_calls_on(&mut admin).await;
    assert_eq!(commands(&before, &after), [(lookup.to_owned(), 1)]);
    // A refresh: the lookup, the claim and the conditional store (two scripts; what they
    // run inside is counted too, so only the scripts are compared). Once, to load them.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = common::command_calls_on(&mut admin).await;
        assert_eq!(
            with_outcome(swr(&cache, &source, 1)).await.1,
            Some(Outcome::Refresh)
        );
        let after = common::command_calls_on(&mut admin).await;
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
