//! `#[invalidates("each:employee:<ids>", each = ids)]` against a real redis-server and a real
//! Redis Cluster: one key per element of a collection parameter (`&[K]` and `Vec<K>`), next
//! to templates rendered once; after filling 50 ids, invalidating 30 leaves exactly the
//! other 20 cached; all keys go in one `UNLINK` on one server (counted by `INFO
//! commandstats`), one per hash slot on a Cluster (the keys checked to span several slots
//! with `CLUSTER KEYSLOT`); tag templates naming the ids; held to the commit inside a
//! `transaction` scope; deferred while the breaker is open and deleted once Redis answers;
//! the start-up check matches `each` templates against the batch function's key.

mod harness;
mod support;

use harness::RedisServer;
use redis::aio::ConnectionLike;
use redis_cached::registry::FindingKind;
use redis_cached::{Cache, commit, invalidates, redis_cached, transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use support::eventually;

/// The ids each body was called with, for one test (tests run concurrently).
#[derive(Default)]
struct Calls(Mutex<Vec<Vec<u64>>>);

impl Calls {
    fn last(&self) -> Vec<u64> {
        let calls = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        calls.last().cloned().unwrap_or_default()
    }
}

#[redis_cached(key = "each:employee:<ids>", ttl = 600, batch = ids, cache = cache)]
async fn employees(cache: &Cache, calls: &Calls, ids: &[u64]) -> HashMap<u64, u64> {
    (calls
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()))
    .push(ids.to_vec());
    ids.iter().map(|&id| (id, id * 10)).collect()
}

#[invalidates("each:employee:<ids>", "each:payroll:<month>", each = ids, cache = cache)]
async fn give_raises(cache: &Cache, ids: &[u64], month: &str) {
    let _ = (ids, month);
}

/// `each` over a `Vec<K>`, which the body then owns.
#[invalidates("each:employee:<ids>", each = ids, cache = cache)]
async fn remove_all(cache: &Cache, ids: Vec<u64>) -> usize {
    ids.len()
}

#[redis_cached(key = "each:payroll:<month>", ttl = 600, cache = cache)]
async fn payroll(cache: &Cache, month: &str) -> usize {
    month.len()
}

#[redis_cached(key = "each:badge:<id>", ttl = 600, tags = ["each:team:<team>"], cache = cache)]
async fn badge(cache: &Cache, id: u64, team: &str) -> String {
    format!("{id} of {team}")
}

/// Tag templates naming the ids are rendered per element too.
#[invalidates(tags = ["each:team:<teams>"], each = teams, cache = cache)]
async fn reorganise(cache: &Cache, teams: &[&str]) {
    let _ = teams;
}

/// A typo: the start-up check reports it, `each` or not.
#[allow(dead_code)]
#[invalidates("each:employe:<ids>", each = ids)]
async fn typo(ids: &[u64]) {
    let _ = ids;
}

const IDS: u64 = 50;
const INVALIDATED: u64 = 30;

/// Which of `ids` have a key under `cache`'s prefix behind `redis` (one `EXISTS` each: on a
/// Cluster the keys are on several nodes).
async fn cached_ids(cache: &Cache, redis: &mut impl ConnectionLike, ids: &[u64]) -> Vec<u64> {
    let mut cached = Vec::new();
    for &id in ids {
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("{}each:employee:{id}", cache.prefix()))
            .query_async(redis)
            .await
            .expect("EXISTS answers");
        if exists {
            cached.push(id);
        }
    }
    cached
}

/// Fills the 50 `ids`, checks all are cached, invalidates the first 30 with `invalidate`;
/// checks exactly the other 20 are left, and that a call for all 50 runs the body with
/// exactly the invalidated ids.
async fn fill_then_invalidate_30(
    cache: &Cache,
    redis: &mut impl ConnectionLike,
    ids: &[u64],
    invalidate: impl AsyncFnOnce(&[u64]),
) {
    assert_eq!(ids.len() as u64, IDS);
    let calls = Calls::default();
    assert_eq!(employees(cache, &calls, ids).await.len(), ids.len());
    assert_eq!(cached_ids(cache, redis, ids).await, ids, "all 50 filled");

    let (invalidated, left) = ids.split_at(INVALIDATED as usize);
    invalidate(invalidated).await;
    let cached = cached_ids(cache, redis, ids).await;
    assert_eq!(cached, left, "exactly the other 20 left");

    assert_eq!(employees(cache, &calls, ids).await.len(), ids.len());
    let refilled = calls.last();
    assert_eq!(
        refilled, invalidated,
        "the body ran for the invalidated ids only"
    );
}

/// `0..IDS`.
fn fifty() -> Vec<u64> {
    (0..IDS).collect()
}

/// `INFO commandstats` deltas between `before` and `after`, without `INFO` itself.
fn sent(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    (after.iter())
        .filter(|(name, _)| *name != "info")
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, calls)| *calls > 0)
        .collect()
}

#[tokio::test]
async fn thirty_of_fifty_ids_are_invalidated_in_one_unlink() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix("app:")
        .build()
        .await
        .unwrap();
    let mut redis = server.connection().await;
    payroll(&cache, "march").await;
    // Warm-up: the connection's set-up is not counted.
    give_raises(&cache, &[], "none").await;

    let server = &server;
    fill_then_invalidate_30(&cache, &mut redis, &fifty(), async |ids| {
        let before = server.command_calls().await;
        give_raises(&cache, ids, "march").await;
        let after = server.command_calls().await;
        assert_eq!(
            sent(&before, &after),
            HashMap::from([("unlink".to_owned(), 1)]),
            "31 keys, one UNLINK and nothing else"
        );
    })
    .await;
    let payroll: bool = redis::cmd("EXISTS")
        .arg("app:each:payroll:march")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        !payroll,
        "the template without the ids is deleted with them"
    );
}

#[tokio::test]
async fn each_takes_a_vec_too() {
    let cache = support::redis_cache("each_takes_a_vec").await;
    let mut redis = harness::raw_connection().await;
    fill_then_invalidate_30(&cache, &mut redis, &fifty(), async |ids| {
        assert_eq!(remove_all(&cache, ids.to_vec()).await, ids.len());
    })
    .await;
}

/// On a Cluster the 30 keys span 10 slots, 3 keys in each (ids chosen with
/// `CLUSTER KEYSLOT`): one `UNLINK` per slot, not per key, summed over the primaries (this
/// binary's only Cluster test: no other traffic is counted).
#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_there_is_one_unlink_per_slot() {
    let cluster = support::shared_cluster();
    let cache = support::cluster_cache("each_on_a_cluster").await;
    let key = |id: u64| format!("{}each:employee:{id}", cache.prefix());
    let candidates: Vec<u64> = (0..20_000).collect();
    let keys: Vec<String> = candidates.iter().map(|&id| key(id)).collect();
    let mut by_slot: HashMap<u16, Vec<u64>> = HashMap::new();
    for (id, slot) in candidates.iter().zip(cluster.slots(&keys)) {
        by_slot.entry(slot).or_default().push(*id);
    }
    let mut shared: Vec<&Vec<u64>> = by_slot.values().filter(|ids| ids.len() >= 3).collect();
    shared.sort();
    let mut ids: Vec<u64> = (shared.iter().take(10))
        .flat_map(|ids| &ids[..3])
        .copied()
        .collect();
    let alone = by_slot.values().filter(|ids| ids.len() == 1);
    ids.extend(alone.take(20).map(|ids| ids[0]));
    let invalidated: Vec<String> = ids[..INVALIDATED as usize]
        .iter()
        .map(|&id| key(id))
        .collect();
    let slots: HashSet<u16> = cluster.slots(&invalidated).into_iter().collect();
    assert_eq!(slots.len(), 10, "the 30 keys span 10 slots, 3 keys each");
    let mut redis = cluster_connection(cluster).await;
    give_raises(&cache, &[], "warm-up").await;

    let unlinks = async || {
        let mut total = 0;
        for index in cluster.primaries() {
            let calls = cluster.node(index).command_calls().await;
            total += calls.get("unlink").copied().unwrap_or(0);
        }
        total
    };
    fill_then_invalidate_30(&cache, &mut redis, &ids, async |ids| {
        let before = unlinks().await;
        give_raises(&cache, ids, "march").await;
        let payroll_slot = cluster.slot(&format!("{}each:payroll:march", cache.prefix()));
        let groups = slots.len() + usize::from(!slots.contains(&payroll_slot));
        assert_eq!(
            unlinks().await - before,
            groups as u64,
            "one UNLINK per slot of the 31 keys"
        );
    })
    .await;
}

/// A connection that follows the Cluster's redirections, for `EXISTS` of keys anywhere.
async fn cluster_connection(
    cluster: &harness::cluster::RedisCluster,
) -> redis::cluster_async::ClusterConnection {
    let nodes: Vec<String> = cluster.nodes().iter().map(harness::Node::url).collect();
    redis::cluster::ClusterClient::new(nodes)
        .expect("node URLs")
        .get_async_connection()
        .await
        .expect("the cluster answers")
}

#[tokio::test]
async fn tag_templates_naming_the_ids_are_rendered_per_element() {
    let cache = support::redis_cache("each_tags").await;
    for (id, team) in [(1, "red"), (2, "blue"), (3, "green")] {
        badge(&cache, id, team).await;
    }
    reorganise(&cache, &["red", "blue"]).await;
    let outcome = async |id, team| redis_cached::with_outcome(badge(&cache, id, team)).await.1;
    assert_eq!(outcome(1, "red").await, Some(redis_cached::Outcome::Miss));
    assert_eq!(outcome(2, "blue").await, Some(redis_cached::Outcome::Miss));
    assert_eq!(outcome(3, "green").await, Some(redis_cached::Outcome::Hit));
}

#[tokio::test]
async fn inside_a_transaction_the_keys_are_held_to_the_commit() {
    let cache = support::redis_cache("each_in_a_transaction").await;
    let mut redis = harness::raw_connection().await;
    fill_then_invalidate_30(&cache, &mut redis, &fifty(), async |ids| {
        let mut raw = harness::raw_connection().await;
        let held: Result<(), ()> = transaction(async {
            give_raises(&cache, ids, "march").await;
            assert_eq!(
                cached_ids(&cache, &mut raw, &fifty()).await.len(),
                IDS as usize,
                "held until the commit"
            );
            commit(async { Ok(()) }).await
        })
        .await;
        assert_eq!(held, Ok(()));
    })
    .await;
}

/// While the breaker is open the deletion is not sent: its keys are deferred, and deleted
/// once Redis answers again.
#[tokio::test(flavor = "multi_thread")]
async fn while_the_breaker_is_open_the_keys_are_deferred() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let mut redis = server.connection().await;
    fill_then_invalidate_30(&cache, &mut redis, &fifty(), async |ids| {
        server.signal("STOP");
        // Single operations open it (a batch's timeouts do not: see the batches guide).
        let mut tries = 0;
        while !cache.is_degraded() {
            let _ = cache.invalidate(&["unrelated"]).await;
            tries += 1;
            assert!(tries < 100, "the breaker opens");
        }
        give_raises(&cache, ids, "march").await;
        server.signal("CONT");
        eventually(
            Duration::from_secs(10),
            "the deferred keys are deleted",
            || async {
                let mut raw = server.connection().await;
                cached_ids(&cache, &mut raw, &fifty()).await.len() == (IDS - INVALIDATED) as usize
            },
        )
        .await;
    })
    .await;
}

#[test]
fn the_start_up_check_matches_each_templates() {
    let invalidates_nothing = |name: &str| {
        let path = format!("invalidates_each::{name}");
        redis_cached::check()
            .findings
            .into_iter()
            .filter(|finding| {
                finding.kind == FindingKind::InvalidatesNothing
                    && finding.functions.contains(&path.as_str())
            })
            .count()
    };
    assert_eq!(invalidates_nothing("give_raises"), 0);
    assert_eq!(invalidates_nothing("remove_all"), 0);
    assert_eq!(invalidates_nothing("reorganise"), 0);
    assert_eq!(invalidates_nothing("typo"), 1);
}
