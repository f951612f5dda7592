//! Redis Cluster (three primaries, three replicas, started by `harness::cluster`): the
//! scenario list, invalidation across slots (also with a primary frozen), a stampede, the
//! stale-set checker, keys that user input cannot pin to a slot, a breaker per primary,
//! failover under load, and the near tier tracking every node.
//!
//! Tests that stop, kill or fail over nodes start a cluster of their own and run one at a
//! time (`SERIAL`); the others share one cluster. What they measure is printed
//! (`--nocapture`).

mod harness;
mod scenarios;
mod support;

use harness::cluster::{RedisCluster, ids_per_primary};
use redis_cached::{Cache, NearCache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{
    Versions, bump, cluster_builder, cluster_cache, item, runs, shared_cluster, topology_builder,
    write_item,
};

/// Tests that stop, kill or fail over nodes run one at a time: failovers are timed by the
/// cluster's own clocks, which a machine busy with several of them would stretch.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

scenarios::scenario_tests!(all, support::cluster_builder);

#[tokio::test]
async fn a_cluster_url_opens_a_cluster_cache() {
    let cluster = shared_cluster();
    let cache = Cache::connect(&cluster.url())
        .await
        .expect("the cluster answers");
    assert_eq!(cache.backend_kind(), "redis-cluster");
    cache.ping().await.expect("ping");
    // One seed is enough, whichever node it is.
    for node in cluster.nodes() {
        let url = format!("redis+cluster://127.0.0.1:{}", node.port());
        let cache = Cache::connect(&url).await.expect("the cluster answers");
        assert_eq!(cache.backend_kind(), "redis-cluster");
    }
}

/// A single-node URL pointing at a cluster node would half-work (only that node's slots
/// cached): it is refused at start-up, naming the scheme to use.
#[tokio::test]
async fn a_single_node_url_to_a_cluster_node_names_the_cluster_scheme() {
    let port = shared_cluster().nodes()[0].port();
    let error = Cache::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect_err("a cluster node is no single server");
    assert!(error.to_string().contains("redis+cluster://"), "{error}");
}

// ---------------------------------------------------------------------------------------
// Invalidation across slots.

#[invalidates("item:<a>", "item:<b>", "item:<c>", cache = cache)]
async fn write_three(cache: &Cache, source: &Versions, a: u64, b: u64, c: u64) {
    for id in [a, b, c] {
        source.write(id);
    }
}

fn item_key(cache: &Cache, id: u64) -> String {
    format!("{}item:{id}", cache.prefix())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalidation_deletes_keys_in_many_slots_on_every_primary() {
    let cluster = shared_cluster();
    let cache = cluster_cache("many_slots").await;
    let source = Versions::default();
    let ids: Vec<u64> = (0..300).collect();
    let keys: Vec<String> = ids.iter().map(|&id| item_key(&cache, id)).collect();
    let mut slots = cluster.slots(&keys);
    let owners = cluster.slot_owners();
    let mut primaries: Vec<usize> = slots.iter().map(|&s| owners[usize::from(s)]).collect();
    primaries.sort();
    primaries.dedup();
    slots.sort();
    slots.dedup();
    // CRC16 is linear: keys differing only in their last digits collide more than at random
    // (210 distinct slots for the worst prefix seen, about 299 on average).
    assert!(slots.len() > 150, "300 keys in {} slots", slots.len());
    assert_eq!(primaries.len(), 3);

    for &id in &ids {
        assert_eq!(item(&cache, &source, id).await, (id, 0));
    }
    assert!(
        cluster.existing(&keys).await.iter().all(|&exists| exists),
        "every key is stored on the primary serving it"
    );
    for &id in &ids {
        source.write(id);
    }
    let rendered: Vec<String> = ids.iter().map(|id| format!("item:{id}")).collect();
    let rendered: Vec<&str> = rendered.iter().map(String::as_str).collect();
    cache
        .invalidate(&rendered)
        .await
        .expect("every primary answers");
    let left: Vec<&String> = keys
        .iter()
        .zip(cluster.existing(&keys).await)
        .filter_map(|(key, exists)| exists.then_some(key))
        .collect();
    assert!(
        left.is_empty(),
        "{} keys survived the invalidation: {left:?}",
        left.len()
    );
    for &id in &ids {
        assert_eq!(
            with_outcome(item(&cache, &source, id)).await,
            ((id, 1), Some(Outcome::Miss))
        );
    }

    // `#[invalidates]` with templates whose keys are on three primaries: one call, three nodes.
    let per_primary = ids_per_primary(cluster, 1, |id| item_key(&cache, id));
    let [a, b, c] = [0, 1, 2].map(|primary| per_primary[&primary][0]);
    for id in [a, b, c] {
        assert_eq!(
            with_outcome(item(&cache, &source, id)).await.1,
            Some(Outcome::Hit)
        );
    }
    write_three(&cache, &source, a, b, c).await;
    let three = [a, b, c].map(|id| item_key(&cache, id));
    assert_eq!(cluster.existing(&three).await, vec![false; 3]);
    for id in [a, b, c] {
        assert_eq!(
            with_outcome(item(&cache, &source, id)).await,
            ((id, 2), Some(Outcome::Miss))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_primary_frozen_the_other_slots_are_deleted_at_once_and_its_keys_later() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    // The frozen primary stays the owner of its slots, and the others serve theirs meanwhile.
    cluster.without_automatic_failover();
    let cache = topology_builder(&cluster.url(), "frozen_primary")
        .timeout(Duration::from_millis(250))
        .build()
        .await
        .expect("the cluster answers");
    let source = Versions::default();
    let per_primary = ids_per_primary(&cluster, 5, |id| item_key(&cache, id));
    let frozen = 0;
    let frozen_ids = per_primary[&frozen].clone();
    let other_ids: Vec<u64> = per_primary
        .iter()
        .filter(|&(&primary, _)| primary != frozen)
        .flat_map(|(_, ids)| ids.clone())
        .collect();
    let all_ids: Vec<u64> = per_primary.values().flatten().copied().collect();
    for &id in &all_ids {
        item(&cache, &source, id).await;
    }
    let other_keys: Vec<String> = other_ids.iter().map(|&id| item_key(&cache, id)).collect();
    assert!(cluster.existing(&other_keys).await.iter().all(|&e| e));

    let lookups = || async {
        let calls = cluster.command_calls(frozen).await;
        LOOKUPS
            .iter()
            .filter_map(|name| calls.get(*name))
            .sum::<u64>()
    };
    let lookups_before = lookups().await;
    cluster.stop(frozen);
    for &id in &all_ids {
        source.write(id);
    }
    let rendered: Vec<String> = all_ids.iter().map(|id| format!("item:{id}")).collect();
    let rendered: Vec<&str> = rendered.iter().map(String::as_str).collect();
    let started = Instant::now();
    let result = cache.invalidate(&rendered).await;
    let took = started.elapsed();
    eprintln!("invalidation with a primary frozen: {result:?} after {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "the invalidation took {took:?}"
    );
    assert_eq!(
        cluster.existing(&other_keys).await,
        vec![false; other_keys.len()],
        "the keys of the running primaries are deleted by the time the call returns"
    );
    // The frozen primary's keys are misses for this process: the body runs, with the new
    // version, and promptly.
    for &id in &frozen_ids {
        let started = Instant::now();
        let (value, outcome) = with_outcome(item(&cache, &source, id)).await;
        assert_eq!(value, (id, 1), "{outcome:?}");
        assert_ne!(outcome, Some(Outcome::Hit));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    for &id in &other_ids {
        assert_eq!(item(&cache, &source, id).await, (id, 1));
    }
    // Only the frozen primary's keys went pending: the others were stored again, and hit.
    for &id in &other_ids {
        assert_eq!(
            with_outcome(item(&cache, &source, id)).await,
            ((id, 1), Some(Outcome::Hit)),
            "a running primary's key went pending with the frozen one's"
        );
    }

    // Continued, the frozen primary first runs what was sent to it meanwhile (the timed-out
    // UNLINK among it): no lookup of a key whose invalidation was pending.
    cluster.cont(frozen);
    let continued = Instant::now();
    assert_eq!(
        lookups().await,
        lookups_before,
        "keys whose invalidation was pending were looked up on the frozen primary"
    );
    // Until the deferred deletion lands, this process never reads the old values.
    let frozen_keys: Vec<String> = frozen_ids.iter().map(|&id| item_key(&cache, id)).collect();
    loop {
        for &id in &frozen_ids {
            assert_eq!(
                item(&cache, &source, id).await,
                (id, 1),
                "an old value was read before its deferred deletion landed"
            );
        }
        // Still the old value (the reads above may have filled the new one since).
        let mut left = 0;
        for (&id, key) in frozen_ids.iter().zip(&frozen_keys) {
            let mut owner = cluster.owner_connection(key).await;
            let held = support::get(&mut owner, key).await;
            let old = serde_json::to_vec(&(id, 0_u64)).expect("JSON");
            left += usize::from(held.is_some_and(|held| support::untrailed(&held) == old));
        }
        if left == 0 {
            break;
        }
        assert!(
            continued.elapsed() < Duration::from_secs(10),
            "{left} keys of the continued primary were never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the frozen primary's keys were deleted {:?} after it continued",
        continued.elapsed()
    );
    for &id in &frozen_ids {
        support::eventually(Duration::from_secs(5), "hits again", || async {
            with_outcome(item(&cache, &source, id)).await == ((id, 1), Some(Outcome::Hit))
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// The stale-set race, on the cluster.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_reads_after_invalidation_over_20k_operations() {
    let cache = cluster_cache("stale_set").await;
    let checked = scenarios::stale_set::run_checker(cache, 20_000).await;
    scenarios::stale_set::assert_fresh_and_cached(&checked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_finds_stale_reads_without_fill_leases_on_the_cluster_too() {
    let cache = cluster_builder("stale_set_off")
        .without_fill_leases()
        .build()
        .await
        .expect("the cluster answers");
    let checked = scenarios::stale_set::run_checker(cache, 20_000).await;
    assert!(
        checked.violations > 0,
        "the checker should see the classic race"
    );
}

/// A primary that refuses writes (`OOM` under `noeviction`) still serves reads: hits on its
/// keys stay hits through the plain `GET` fallback, a miss returns its value unstored, and
/// the other primaries' keys are stored as usual.
#[tokio::test]
async fn a_primary_refusing_writes_keeps_its_hits_hits() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    let cache = topology_builder(&cluster.url(), "refused")
        .build()
        .await
        .expect("connects");
    let source = Versions::default();
    item(&cache, &source, 1).await;
    let full = cluster.primary_for(&item_key(&cache, 1));
    let mut primary = cluster.connection(full).await;
    harness::config_set(&mut primary, "maxmemory-policy", "noeviction").await;
    harness::config_set(&mut primary, "maxmemory", "1").await;
    assert_eq!(
        with_outcome(item(&cache, &source, 1)).await,
        ((1, 0), Some(Outcome::Hit))
    );
    let same_primary = (2..).find(|id| cluster.primary_for(&item_key(&cache, *id)) == full);
    let other_primary = (2..).find(|id| cluster.primary_for(&item_key(&cache, *id)) != full);
    let (Some(same), Some(other)) = (same_primary, other_primary) else {
        panic!("ids on both kinds of primary")
    };
    for _ in 0..2 {
        assert_eq!(
            with_outcome(item(&cache, &source, same)).await,
            ((same, 0), Some(Outcome::Miss)),
            "refused, so not stored"
        );
    }
    item(&cache, &source, other).await;
    assert_eq!(
        with_outcome(item(&cache, &source, other)).await,
        ((other, 0), Some(Outcome::Hit))
    );
}

// ---------------------------------------------------------------------------------------
// Braces in arguments do not choose the slot.

#[redis_cached(key = "tagged:<name>", ttl = 600, cache = cache)]
async fn by_name(cache: &Cache, counter: &AtomicUsize, name: &str) -> String {
    bump(counter);
    name.to_owned()
}

#[tokio::test]
async fn braces_in_arguments_do_not_choose_the_slot() {
    let cluster = shared_cluster();
    let cache = cluster_cache("braces").await;
    let counter = AtomicUsize::new(0);
    // Unescaped, each of these keys would hash only `x`, and all would share its slot.
    let names: Vec<String> = (0..32).map(|n| format!("{{x}}{n}")).collect();
    for name in &names {
        assert_eq!(by_name(&cache, &counter, name).await, *name);
        assert_eq!(
            with_outcome(by_name(&cache, &counter, name)).await.1,
            Some(Outcome::Hit)
        );
    }
    assert_eq!(runs(&counter), names.len());
    let mut stored = Vec::new();
    for primary in cluster.primaries() {
        stored.extend(
            support::keys_matching(&mut cluster.connection(primary).await, cache.prefix()).await,
        );
    }
    assert_eq!(stored.len(), names.len(), "{stored:?}");
    let mut slots = cluster.slots(&stored);
    let tag_slot = cluster.slot("x");
    assert!(
        slots.iter().filter(|&&slot| slot == tag_slot).count() <= 1,
        "keys landed in the slot of the tag their argument spelt: {stored:?}"
    );
    slots.sort();
    slots.dedup();
    assert!(
        slots.len() > 16,
        "32 keys in {} slots: {stored:?}",
        slots.len()
    );
    for key in &stored {
        let tail = key.strip_prefix(cache.prefix()).expect("the prefix");
        assert!(!tail.contains('{') && !tail.contains('}'), "{key}");
    }
}

// ---------------------------------------------------------------------------------------
// A breaker per primary.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_trips_its_own_breaker_only() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    cluster.without_automatic_failover();
    let timeout = Duration::from_millis(500);
    let cache = topology_builder(&cluster.url(), "breaker")
        .timeout(timeout)
        .build()
        .await
        .expect("the cluster answers");
    let source = Versions::default();
    let per_primary = ids_per_primary(&cluster, 3, |id| item_key(&cache, id));
    let frozen = 1;
    let frozen_ids = per_primary[&frozen].clone();
    let other_ids: Vec<u64> = per_primary
        .iter()
        .filter(|&(&primary, _)| primary != frozen)
        .flat_map(|(_, ids)| ids.clone())
        .collect();
    for ids in per_primary.values() {
        for &id in ids {
            item(&cache, &source, id).await;
            assert_eq!(
                with_outcome(item(&cache, &source, id)).await.1,
                Some(Outcome::Hit)
            );
        }
    }

    cluster.stop(frozen);
    // A few calls pay the timeout until the breaker of the frozen primary opens; then its
    // keys' calls run their bodies at once, but for a probe now and then.
    let mut slow = 0;
    let rounds = 60;
    for round in 0..rounds {
        let id = frozen_ids[round % frozen_ids.len()];
        let started = Instant::now();
        let (value, outcome) = with_outcome(item(&cache, &source, id)).await;
        let took = started.elapsed();
        assert_eq!(value, (id, 0));
        assert_ne!(outcome, Some(Outcome::Hit));
        assert!(took < Duration::from_secs(2), "a call took {took:?}");
        if took >= timeout / 2 {
            slow += 1;
        }
        // Meanwhile the other primaries' keys keep hitting.
        for &other in &other_ids {
            let started = Instant::now();
            assert_eq!(
                with_outcome(item(&cache, &source, other)).await,
                ((other, 0), Some(Outcome::Hit)),
                "a key of a running primary, round {round}"
            );
            assert!(started.elapsed() < timeout / 2);
        }
    }
    eprintln!("{slow} of {rounds} calls on the frozen primary's keys waited for it");
    assert!(
        slow <= 12,
        "{slow} of {rounds} calls on the frozen primary's keys waited for it: no breaker?"
    );

    cluster.cont(frozen);
    for &id in &frozen_ids {
        support::eventually(
            Duration::from_secs(10),
            "hits on the continued primary",
            || async { with_outcome(item(&cache, &source, id)).await.1 == Some(Outcome::Hit) },
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// Failover under load.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_fails_no_call() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    let cache = Cache::builder(&cluster.url())
        .prefix(support::unique_prefix("failover"))
        .build()
        .await
        .expect("the cluster answers");
    let per_primary = ids_per_primary(&cluster, 8, |id| format!("{}load:{id}", cache.prefix()));
    let victim = 2;
    let replica = cluster.replica_of(victim);
    let ids: Vec<u64> = per_primary.values().flatten().copied().collect();
    scenarios::failover::failover_under_load(cache, ids, per_primary[&victim].clone(), || async {
        cluster.kill(victim);
        let promoted = cluster
            .wait_promoted(replica, Duration::from_secs(20))
            .await;
        eprintln!("node {replica} promoted {promoted:?} after node {victim} was killed");
    })
    .await;
}

/// A primary that hangs (SIGSTOP: its connections stay open, nothing answers) and is failed
/// over by the cluster: every call stays bounded by the timeout, and hits come back on the
/// promoted replica. The hung node is continued at the end (it rejoins as a replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_primary_failed_over_under_load_fails_no_call() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    let cache = Cache::builder(&cluster.url())
        .prefix(support::unique_prefix("hung"))
        .build()
        .await
        .expect("the cluster answers");
    let per_primary = ids_per_primary(&cluster, 8, |id| format!("{}load:{id}", cache.prefix()));
    let victim = 1;
    let replica = cluster.replica_of(victim);
    let ids: Vec<u64> = per_primary.values().flatten().copied().collect();
    scenarios::failover::failover_under_load(cache, ids, per_primary[&victim].clone(), || async {
        cluster.stop(victim);
        let promoted = cluster
            .wait_promoted(replica, Duration::from_secs(20))
            .await;
        eprintln!("node {replica} promoted {promoted:?} after node {victim} hung");
    })
    .await;
    cluster.cont(victim);
}

// ---------------------------------------------------------------------------------------
// The near tier tracks every node.

/// The commands a lookup may send (`SET .. NX GET`, the `GET` after a refused write, the
/// scripts of older servers).
const LOOKUPS: &[&str] = &["set", "get", "evalsha", "eval"];

/// The commands a cached call sends to read or fill a key (not what topology refreshes,
/// health checks and tracking send).
const DATA_COMMANDS: &[&str] = &["get", "set", "evalsha", "eval", "pttl", "exists"];

/// Waits until `cache` serves `id` from its near tier: a second read sends no data command.
async fn warm_near(cluster: &RedisCluster, cache: &Cache, source: &Versions, id: u64) {
    support::eventually(Duration::from_secs(5), "a near hit", || async {
        item(cache, source, id).await;
        let before = cluster.calls_of(DATA_COMMANDS).await;
        item(cache, source, id).await;
        cluster.calls_of(DATA_COMMANDS).await == before
    })
    .await;
}

/// Waits until `reader` returns version `version` of `id`; returns how long that took.
async fn wait_version(reader: &Cache, source: &Versions, id: u64, version: u64) -> Duration {
    let started = Instant::now();
    loop {
        let (_, seen) = item(reader, source, id).await;
        if seen == version {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the near tier served version {seen} of {id} 2 s after version {version} was written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_tier_follows_writes_on_every_primary_and_is_flushed_by_a_failover() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start();
    // Two caches sharing keys, as two processes would; a long local lifetime, so that only
    // tracking can evict.
    let prefix = support::unique_prefix("near");
    let near = || NearCache::new(1 << 20).max_lifetime(Duration::from_secs(600));
    let open = || async {
        Cache::builder(&cluster.url())
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(1))
            .near_cache(near())
            .build()
            .await
            .expect("the cluster answers")
    };
    let (reader, writer) = (open().await, open().await);
    let source = Versions::default();
    let per_primary = ids_per_primary(&cluster, 1, |id| format!("{prefix}item:{id}"));

    // A write through one cache evicts the other's near entry, whichever node the key is on.
    for (&primary, ids) in &per_primary {
        let id = ids[0];
        warm_near(&cluster, &reader, &source, id).await;
        let version = write_item(&writer, &source, id).await;
        let took = wait_version(&reader, &source, id, version).await;
        eprintln!(
            "near tier: a write on node {primary} evicted the other cache's entry in {took:?}"
        );
    }

    // A failover (coordinated: no write lost) flushes the near tier: the next reads of a
    // key of the failed-over shard go to the cluster again.
    let (&primary, ids) = per_primary.iter().next().unwrap();
    let id = ids[0];
    warm_near(&cluster, &reader, &source, id).await;
    let replica = cluster.replica_of(primary);
    cluster.failover(replica);
    let promoted = cluster
        .wait_promoted(replica, Duration::from_secs(20))
        .await;
    let flushed = Instant::now();
    support::eventually(
        Duration::from_secs(5),
        "the near tier is flushed",
        || async {
            let before = cluster.calls_of(DATA_COMMANDS).await;
            item(&reader, &source, id).await;
            cluster.calls_of(DATA_COMMANDS).await > before
        },
    )
    .await;
    eprintln!(
        "near tier: flushed {:?} after node {replica}'s promotion ({promoted:?})",
        flushed.elapsed()
    );
    // And it tracks the new primary: a write there evicts the entry again.
    warm_near(&cluster, &reader, &source, id).await;
    let version = write_item(&writer, &source, id).await;
    let took = wait_version(&reader, &source, id, version).await;
    eprintln!(
        "near tier: a write on the promoted node evicted the other cache's entry in {took:?}"
    );
}
