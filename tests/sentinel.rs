//! Sentinel (a primary, one replica and three sentinels, started by `harness::sentinel`):
//! the scenario list, the database in the URL, failover under load, and invalidations after
//! a failover reaching the new primary while the demoted one still takes writes.
//!
//! Tests that kill or fail over a primary start a setup of their own and run one at a time
//! (`SERIAL`); the others share one setup. What they measure is printed (`--nocapture`).

mod harness;
mod scenarios;
mod support;

use harness::sentinel::RedisSentinel;
use redis_cached::{Cache, Outcome, with_outcome};
use std::time::Duration;
use support::{Versions, item, sentinel_cache, shared_sentinel, topology_builder, write_item};

/// Tests that kill or fail over a primary run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

scenarios::scenario_tests!(all, support::sentinel_builder);

#[tokio::test]
async fn a_sentinel_url_opens_a_cache_on_the_primary_in_its_database() {
    let setup = shared_sentinel();
    let cache = Cache::connect(&setup.url())
        .await
        .expect("the sentinels name a primary");
    assert_eq!(cache.backend_kind(), "redis-sentinel");
    cache.ping().await.expect("ping");

    // `/<db>` after the service name: the entries go to that database of the primary.
    let prefix = support::unique_prefix("database");
    let cache = Cache::builder(&format!("{}/3", setup.url()))
        .prefix(prefix.clone())
        .build()
        .await
        .expect("the sentinels name a primary");
    assert_eq!(cache.backend_kind(), "redis-sentinel");
    let source = Versions::default();
    item(&cache, &source, 1).await;
    let primary = setup.primary().connection().await;
    let key = format!("{prefix}item:1");
    let in_database = |db: u8| {
        let key = key.clone();
        let mut primary = primary.clone();
        async move {
            let () = redis::cmd("SELECT")
                .arg(db)
                .query_async(&mut primary)
                .await
                .expect("SELECT");
            let exists: u64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut primary)
                .await
                .expect("EXISTS");
            exists == 1
        }
    };
    assert!(in_database(3).await, "{key} is in database 3");
    assert!(!in_database(0).await, "{key} is not in database 0");
}

/// A primary the sentinels cannot name fails the build with an error that names the service
/// and the sentinels asked (the password redacted), for sentinels that are down and for a
/// service they do not watch.
#[tokio::test]
async fn an_unresolved_primary_names_the_service_and_the_sentinels() {
    let (one, two) = (harness::free_port(), harness::free_port());
    let down = format!("redis+sentinel://:hunter2@127.0.0.1:{one},127.0.0.1:{two}/mymaster");
    let setup = shared_sentinel();
    let unknown = setup.url().replace("/mymaster", "/nosuchservice");
    assert_ne!(
        unknown,
        setup.url(),
        "the harness names its service mymaster"
    );
    for (url, service) in [(down, "mymaster"), (unknown, "nosuchservice")] {
        let error = match Cache::builder(&url)
            .timeout(Duration::from_millis(200))
            .build()
            .await
        {
            Ok(_) => panic!("{url}: no primary to open"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains(&format!("primary {service} named by")),
            "{error}"
        );
        let hosts = url.rsplit('@').next().unwrap_or(&url);
        let hosts = hosts.rsplit("://").next().unwrap_or(hosts);
        let hosts = hosts.split('/').next().unwrap_or(hosts);
        assert!(error.contains(hosts), "{error} names {hosts}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_primary_killed_under_load_fails_no_call() {
    let _serial = SERIAL.lock().await;
    let setup = RedisSentinel::start();
    let cache = Cache::builder(&setup.url())
        .prefix(support::unique_prefix("failover"))
        .build()
        .await
        .expect("the sentinels name a primary");
    let ids: Vec<u64> = (0..24).collect();
    scenarios::failover::failover_under_load(cache, ids.clone(), ids, || async {
        setup.kill_primary();
        let switched = setup.wait_new_primary(Duration::from_secs(20)).await;
        eprintln!("the sentinels switched to the replica {switched:?} after the kill");
    })
    .await;
}

/// A primary that hangs (SIGSTOP: connections stay open, nothing answers) until the
/// sentinels fail it over: every call stays bounded, hits come back on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_primary_failed_over_under_load_fails_no_call() {
    let _serial = SERIAL.lock().await;
    let setup = RedisSentinel::start();
    let cache = Cache::builder(&setup.url())
        .prefix(support::unique_prefix("hung"))
        .build()
        .await
        .expect("the sentinels name a primary");
    let ids: Vec<u64> = (0..24).collect();
    let hung = setup.primary().port();
    scenarios::failover::failover_under_load(cache, ids.clone(), ids, || async {
        setup.primary().stop();
        setup.wait_new_primary(Duration::from_secs(20)).await;
    })
    .await;
    // The hung node, continued, is demoted by the sentinels.
    for node in [setup.primary(), setup.replica()] {
        if node.port() == hung {
            node.cont();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_invalidations_reach_the_new_primary() {
    let _serial = SERIAL.lock().await;
    let setup = RedisSentinel::start();
    let cache = topology_builder(&setup.url(), "switch")
        .build()
        .await
        .expect("the sentinels name a primary");
    let source = Versions::default();
    let key = format!("{}item:1", cache.prefix());
    item(&cache, &source, 1).await;
    assert_eq!(
        with_outcome(item(&cache, &source, 1)).await,
        ((1, 0), Some(Outcome::Hit))
    );
    setup.wait_replicated(Duration::from_secs(5)).await;

    // A coordinated failover: the old primary stays a primary, taking writes, until the
    // sentinels reconfigure it (up to 10 s later, at their next look at it).
    let old_primary = setup.primary().port();
    setup.failover().await;
    let switched = setup.wait_new_primary(Duration::from_secs(20)).await;
    eprintln!("SENTINEL FAILOVER: switched in {switched:?}");
    assert_ne!(setup.primary().port(), old_primary);

    // The cache follows on the sentinels' `+switch-master`, a moment after they switch:
    // until then its writes go to the demoted primary (the window the topologies guide states, which
    // `replicated_invalidation` covers). Wait until its fills land on the new primary.
    let following = std::time::Instant::now();
    let mut new_primary = setup.primary().connection().await;
    for probe in 1000_u64.. {
        item(&cache, &source, probe).await;
        let landed: u64 = redis::cmd("EXISTS")
            .arg(format!("{}item:{probe}", cache.prefix()))
            .query_async(&mut new_primary)
            .await
            .expect("EXISTS on the new primary");
        if landed == 1 {
            break;
        }
        assert!(
            following.elapsed() < Duration::from_secs(5),
            "the cache did not follow the new primary within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "the cache followed the new primary {:?} after the harness saw it",
        following.elapsed()
    );

    write_item(&cache, &source, 1).await;
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut setup.primary().connection().await)
        .await
        .expect("EXISTS on the new primary");
    assert_eq!(
        exists, 0,
        "the invalidation went to the demoted primary: the new one still holds the old value"
    );
    assert_eq!(item(&cache, &source, 1).await, (1, 1));
    // Once the demoted primary follows the new one, the value read is still the new one.
    let settled = setup.wait_healthy(Duration::from_secs(30)).await;
    eprintln!("the demoted primary replicated the new one {settled:?} later");
    assert_eq!(
        with_outcome(item(&cache, &source, 1)).await,
        ((1, 1), Some(Outcome::Hit))
    );
}

// ---------------------------------------------------------------------------------------
// The stale-set race, and refused writes, behind Sentinel.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_reads_after_invalidation_over_20k_operations() {
    let cache = sentinel_cache("stale_set").await;
    let checked = scenarios::stale_set::run_checker(cache, 20_000).await;
    scenarios::stale_set::assert_fresh_and_cached(&checked);
}

/// A primary that refuses writes (`OOM` under `noeviction`) still serves reads: hits stay
/// hits through the plain `GET` fallback, and a miss returns its value without storing it.
#[tokio::test]
async fn a_primary_refusing_writes_keeps_hits_hits() {
    let _serial = SERIAL.lock().await;
    let setup = RedisSentinel::start();
    let cache = topology_builder(&setup.url(), "refused")
        .build()
        .await
        .expect("connects");
    let source = Versions::default();
    item(&cache, &source, 1).await;
    let mut primary = setup.primary().connection().await;
    harness::config_set(&mut primary, "maxmemory-policy", "noeviction").await;
    harness::config_set(&mut primary, "maxmemory", "1").await;
    assert_eq!(
        with_outcome(item(&cache, &source, 1)).await,
        ((1, 0), Some(Outcome::Hit))
    );
    for _ in 0..2 {
        assert_eq!(
            with_outcome(item(&cache, &source, 2)).await,
            ((2, 0), Some(Outcome::Miss)),
            "refused, so not stored"
        );
    }
    harness::config_set(&mut primary, "maxmemory", "0").await;
}
