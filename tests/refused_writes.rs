//! Redis refusing commands is not an outage. When it refuses writes but serves reads
//! (`OOM` under `noeviction`, `READONLY` from a replica, `NOREPLICAS`, `MISCONF`), the
//! lookup falls back to a plain `GET`: hits stay hits, and a miss returns its value without
//! storing it; a batch lookup (its transaction on one server, its `SET .. NX GET` pipeline
//! to a Cluster primary) falls back to a `GET` per key. Other refusals (`WRONGTYPE`:
//! another program stored a list under the key) run the body uncached and leave the key
//! alone. In every case the breaker stays closed. Each test makes one server refuse in one
//! way, with an entry stored before; on a Cluster, one primary refuses while the others
//! store.

mod harness;
mod support;

use harness::RedisServer;
use harness::cluster::{RedisCluster, ids_per_primary};
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Outcome, redis_cached};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use support::{assert_miss_then_hit, checked_square, get_text, runs};

/// The ids each run of [`squares`]' body was asked for.
#[derive(Default)]
struct Asked(Mutex<Vec<Vec<u64>>>);

impl Asked {
    fn record(&self, ids: &[u64]) {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ids);
    }

    /// The ids asked for since the last `take`, each run's sorted.
    fn take(&self) -> Vec<Vec<u64>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The batch form of `support::square`, on the same keys: an entry either stores is a hit
/// for both.
#[redis_cached(key = "square:<ids>", ttl = 60, batch = ids, cache = cache)]
async fn squares(cache: &Cache, asked: &Asked, ids: &[u64]) -> HashMap<u64, u64> {
    asked.record(ids);
    squared(ids)
}

/// Each of `ids` with its square: what `squares(ids)` returns.
fn squared(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id * id)).collect()
}

async fn cache_on(url: &str) -> Cache {
    Cache::builder(url)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("the test's server answers")
}

/// `key` of `INFO section` on the server behind `redis`.
async fn info_field(redis: &mut MultiplexedConnection, section: &str, key: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(redis)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|line| line.trim().strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} has no {key}"))
        .to_owned()
}

/// With `cache`'s server refusing writes with `code`, and `square(2)` stored before: the
/// stored entry is still a hit, for a single call and in a batch (`squares`); a new key
/// runs its body on every call, single or batch, and is not stored; the breaker stays
/// closed. `redis` is a connection to the same server.
async fn hits_stay_hits(cache: &Cache, redis: &mut MultiplexedConnection, code: &str) {
    let counter = AtomicUsize::new(0);
    // The server does refuse writes, with this code.
    let refused = redis::cmd("SET")
        .arg("refused:probe")
        .arg("x")
        .query_async::<()>(redis)
        .await
        .expect_err("the server refuses writes");
    assert_eq!(refused.code(), Some(code), "{refused}");

    for _ in 0..3 {
        assert_eq!(
            checked_square(cache, &counter, 2).await,
            Some(Outcome::Hit),
            "a stored entry is a hit while Redis refuses writes with {code}"
        );
    }
    assert_eq!(runs(&counter), 0);
    for round in 1..=3 {
        assert_eq!(
            checked_square(cache, &counter, 9).await,
            Some(Outcome::Miss)
        );
        assert_eq!(runs(&counter), round, "nothing could be stored");
    }
    // A batch lookup (`MULTI`, `MGET`, the lease script, `EXEC`) refused: a `GET` per key.
    let asked = Asked::default();
    for _ in 0..2 {
        assert_eq!(squares(cache, &asked, &[2, 9]).await, squared(&[2, 9]));
        assert_eq!(
            asked.take(),
            [[9]],
            "in a batch while Redis refuses writes with {code}, 2 is a hit and 9 is not stored"
        );
    }
    assert_eq!(get_text(redis, "square:9").await, None);
    assert!(
        !cache.is_degraded(),
        "{code} replies are refused writes, not connection failures"
    );
}

/// Stores `square(2)` through `cache` and checks that it is a hit.
async fn store_one(cache: &Cache) {
    let counter = AtomicUsize::new(0);
    assert_miss_then_hit(|| checked_square(cache, &counter, 2)).await;
}

#[tokio::test]
async fn under_oom_hits_stay_hits() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let cache = cache_on(&server.url()).await;
    store_one(&cache).await;
    let mut redis = server.connection().await;
    harness::config_set(&mut redis, "maxmemory", "1").await;
    hits_stay_hits(&cache, &mut redis, "OOM").await;
}

#[tokio::test]
async fn on_a_read_only_replica_hits_stay_hits() {
    // The replica syncs at once, not after 7.0's default 5 s diskless-sync delay.
    let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    store_one(&cache_on(&primary.url()).await).await;
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    let mut redis = replica.connection().await;
    support::eventually(
        Duration::from_secs(10),
        "the replica never received the entry",
        || {
            let mut redis = redis.clone();
            async move { get_text(&mut redis, "square:2").await.is_some() }
        },
    )
    .await;
    let cache = cache_on(&replica.url()).await;
    hits_stay_hits(&cache, &mut redis, "READONLY").await;
}

#[tokio::test]
async fn without_enough_replicas_hits_stay_hits() {
    let server = RedisServer::start();
    let cache = cache_on(&server.url()).await;
    store_one(&cache).await;
    let mut redis = server.connection().await;
    harness::config_set(&mut redis, "min-replicas-to-write", "1").await;
    hits_stay_hits(&cache, &mut redis, "NOREPLICAS").await;
}

#[tokio::test]
async fn after_a_failed_snapshot_hits_stay_hits() {
    // Snapshots on, into a directory no file can be created in (even by root): the next
    // BGSAVE fails, and with `stop-writes-on-bgsave-error` (the default) writes are refused.
    let server = RedisServer::start_with(&["--dir", "/proc", "--save", "3600", "1"]);
    let cache = cache_on(&server.url()).await;
    store_one(&cache).await;
    let mut redis = server.connection().await;
    let _: String = redis::cmd("BGSAVE")
        .query_async(&mut redis)
        .await
        .expect("BGSAVE starts");
    support::eventually(Duration::from_secs(10), "BGSAVE never failed", || {
        let mut redis = redis.clone();
        async move {
            info_field(&mut redis, "persistence", "rdb_bgsave_in_progress").await == "0"
                && info_field(&mut redis, "persistence", "rdb_last_bgsave_status").await == "err"
        }
    })
    .await;
    hits_stay_hits(&cache, &mut redis, "MISCONF").await;
}

#[tokio::test]
async fn a_key_of_another_type_runs_the_body_uncached_and_is_left_alone() {
    let server = RedisServer::start();
    let cache = cache_on(&server.url()).await;
    let mut redis = server.connection().await;
    // Another program keeps a list under the key the function renders.
    let _: u64 = redis::cmd("RPUSH")
        .arg("square:5")
        .arg("someone else's")
        .query_async(&mut redis)
        .await
        .expect("RPUSH");
    let counter = AtomicUsize::new(0);
    for round in 1..=5 {
        assert_eq!(
            checked_square(&cache, &counter, 5).await,
            Some(Outcome::Bypass),
            "WRONGTYPE: the body runs, uncached"
        );
        assert_eq!(runs(&counter), round);
    }
    let kind: String = redis::cmd("TYPE")
        .arg("square:5")
        .query_async(&mut redis)
        .await
        .expect("TYPE");
    assert_eq!(kind, "list", "the other program's list is left alone");
    assert!(
        !cache.is_degraded(),
        "WRONGTYPE is a refusal, not a connection failure: the breaker stays closed"
    );
    // Other keys are cached as usual.
    assert_miss_then_hit(|| checked_square(&cache, &counter, 6)).await;
}

/// On a Cluster whose topology the cache knows, a batch goes to each primary as one
/// pipeline of `SET .. NX GET` (before 7.0, the `FETCH` script). One primary refusing
/// writes (`OOM`) costs the batch only the storing of that primary's misses: its stored ids
/// stay hits (a `GET` per key), its new ids run the body on every call and are not stored;
/// the other primaries store theirs; the breakers stay closed.
#[tokio::test]
async fn on_a_cluster_a_primary_refusing_writes_keeps_its_hits_and_the_others_store() {
    let cluster = RedisCluster::start();
    let cache = Cache::builder(&cluster.url())
        .timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("the cluster answers");
    let prefix = cache.prefix().to_owned();
    let key = |id: &u64| format!("{prefix}square:{id}");
    // Per primary, ids in increasing order over several slots: two stored before the
    // refusal, two new.
    let per_primary = ids_per_primary(&cluster, 4, |id| key(&id));
    let stored: Vec<u64> = per_primary
        .values()
        .flat_map(|ids| ids[..2].to_vec())
        .collect();
    let mut new: Vec<u64> = per_primary
        .values()
        .flat_map(|ids| ids[2..].to_vec())
        .collect();
    new.sort_unstable();
    let asked = Asked::default();
    // Stored; meanwhile the cache has read the topology (the path is checked below).
    assert_eq!(squares(&cache, &asked, &stored).await, squared(&stored));
    asked.take();

    let refusing = cluster.primaries()[0];
    let refusing_new = per_primary[&refusing][2..].to_vec();
    let mut redis = cluster.connection(refusing).await;
    harness::config_set(&mut redis, "maxmemory", "1").await;
    let refused = redis::cmd("SET")
        .arg(key(&per_primary[&refusing][0]))
        .arg("x")
        .query_async::<()>(&mut redis)
        .await
        .expect_err("the primary refuses writes (noeviction is the default policy)");
    assert_eq!(refused.code(), Some("OOM"), "{refused}");

    // The stored ids of every primary and the refusing primary's new ids: the stored ids
    // are hits, on the refusing primary too.
    let first: Vec<u64> = stored.iter().chain(&refusing_new).copied().collect();
    let before = cluster.command_calls(refusing).await;
    assert_eq!(squares(&cache, &asked, &first).await, squared(&first));
    let after = cluster.command_calls(refusing).await;
    assert_eq!(
        asked.take(),
        std::slice::from_ref(&refusing_new),
        "every stored id was a hit"
    );
    // The path of a known topology: one pipeline to the primary. Without the topology, each
    // slot's keys would go as a transaction (`MULTI` .. `EXEC`).
    let calls = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!(
        calls("multi"),
        0,
        "a transaction reached the refusing primary: the topology was not known"
    );
    // Then every new id, twice: after the refusal was met, the other primaries still
    // store theirs; the refusing primary's run the body each time.
    let all: Vec<u64> = stored.iter().chain(&new).copied().collect();
    assert_eq!(squares(&cache, &asked, &all).await, squared(&all));
    assert_eq!(asked.take(), std::slice::from_ref(&new));
    assert_eq!(squares(&cache, &asked, &all).await, squared(&all));
    assert_eq!(
        asked.take(),
        std::slice::from_ref(&refusing_new),
        "the other primaries stored their new ids, the refusing one could not"
    );
    let keys: Vec<String> = new.iter().map(key).collect();
    let present: Vec<u64> = (new.iter().zip(cluster.existing(&keys).await))
        .filter_map(|(&id, exists)| exists.then_some(id))
        .collect();
    let others_new: Vec<u64> = (new.iter().copied())
        .filter(|id| !refusing_new.contains(id))
        .collect();
    assert_eq!(
        present, others_new,
        "new ids stored on every primary but the refusing one"
    );
    assert!(
        !cache.is_degraded(),
        "OOM on one primary is a refused write, not a connection failure"
    );
}
