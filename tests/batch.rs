//! Batch functions, `#[redis_cached(key = "employee:<ids>", batch = ids)]`, against a real
//! redis-server, `mem://`, a Redis Cluster and Sentinel: hits and misses in one call (the body sees
//! exactly the missing ids), partial results, errors, an invalidation racing the body (the
//! fill lease), outages, the lookup's one round trip, and ids spread over many slots.

mod harness;
mod support;

use harness::RedisServer;
use harness::cluster::RedisCluster;
use harness::sentinel::RedisSentinel;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, invalidates, redis_cached};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: i64,
    version: u32,
}

/// The source of truth behind the batch function: employees by id with a version each,
/// the id lists the body was called with, and switches for failures and pauses.
#[derive(Default)]
struct Source {
    versions: Mutex<HashMap<i64, u32>>,
    /// Ids the source does not have (the body leaves them out of its map).
    unknown: Mutex<HashSet<i64>>,
    calls: Mutex<Vec<Vec<i64>>>,
    fail: AtomicBool,
    /// When set, the body reads, then signals `entered` and waits for `resume`.
    pause: AtomicBool,
    entered: Notify,
    resume: Notify,
}

impl Source {
    fn calls(&self) -> Vec<Vec<i64>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn bump(&self, id: i64) {
        *self
            .versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_default() += 1;
    }

    async fn read(&self, ids: &[i64]) -> Result<HashMap<i64, Employee>, String> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ids.to_vec());
        if self.fail.load(Ordering::SeqCst) {
            return Err("the database is down".into());
        }
        let read: HashMap<i64, Employee> = {
            let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
            let unknown = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
            ids.iter()
                .filter(|id| !unknown.contains(id))
                .map(|&id| {
                    let version = versions.get(&id).copied().unwrap_or_default();
                    (id, Employee { id, version })
                })
                .collect()
        };
        if self.pause.load(Ordering::SeqCst) {
            self.entered.notify_one();
            self.resume.notified().await;
        }
        Ok(read)
    }
}

#[redis_cached(key = "employee:<ids>", ttl = 60, batch = ids, cache = cache)]
async fn employees(
    cache: &Cache,
    source: &Source,
    ids: &[i64],
) -> Result<HashMap<i64, Employee>, String> {
    source.read(ids).await
}

/// The same entries, one id at a time.
#[redis_cached(key = "employee:<id>", ttl = 60, cache = cache)]
async fn employee(cache: &Cache, source: &Source, id: i64) -> Result<Employee, String> {
    let mut found = source.read(&[id]).await?;
    found.remove(&id).ok_or_else(|| format!("no employee {id}"))
}

/// A batch function over a `Vec` parameter (bound `mut`), returning a plain map.
#[redis_cached(key = "name:<ids>", ttl = 60, batch = ids, cache = cache)]
async fn names(cache: &Cache, source: &Source, mut ids: Vec<i64>) -> HashMap<i64, String> {
    ids.sort_unstable();
    let read = source.read(&ids).await.unwrap_or_default();
    read.into_iter()
        .map(|(id, employee)| (id, format!("employee {id} v{}", employee.version)))
        .collect()
}

#[invalidates("employee:<id>", cache = cache)]
async fn update(cache: &Cache, source: &Source, id: i64) {
    source.bump(id);
}

fn ids(found: &HashMap<i64, Employee>) -> Vec<i64> {
    let mut ids: Vec<i64> = found.keys().copied().collect();
    ids.sort_unstable();
    ids
}

// ---------------------------------------------------------------------------------------
// The scenarios, each run on Redis, `mem://` and the cluster.

/// Hits and misses mixed: the map holds every id, the body saw only the missing ones, once.
async fn hits_and_misses(cache: Cache) {
    let source = Source::default();
    let warm = employees(&cache, &source, &[1, 2]).await.expect("Ok");
    assert_eq!(ids(&warm), [1, 2]);
    let mixed = employees(&cache, &source, &[1, 2, 3, 4, 3])
        .await
        .expect("Ok");
    assert_eq!(ids(&mixed), [1, 2, 3, 4]);
    assert_eq!(mixed[&3], Employee { id: 3, version: 0 });
    assert_eq!(
        source.calls(),
        [vec![1, 2], vec![3, 4]],
        "the body saw exactly the missing ids, each once"
    );
    let hits = employees(&cache, &source, &[4, 3, 2, 1]).await.expect("Ok");
    assert_eq!(hits, mixed);
    assert_eq!(source.calls().len(), 2, "all hits: the body did not run");
    assert_eq!(
        employees(&cache, &source, &[]).await,
        Ok(HashMap::new()),
        "no ids: an empty map"
    );
    // A `Vec` parameter, a plain map.
    let named = names(&cache, &source, vec![5, 6]).await;
    assert_eq!(named.len(), 2);
    assert_eq!(names(&cache, &source, vec![6, 7]).await.len(), 2);
    assert_eq!(source.calls()[2..], [vec![5, 6], vec![7]]);
}

/// Ids the body does not return are not stored, and their leases are released: a single
/// call of such a key runs at once instead of waiting for the lease.
async fn partial_results(cache: Cache) {
    let source = Source::default();
    source
        .unknown
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(5);
    let found = employees(&cache, &source, &[4, 5]).await.expect("Ok");
    assert_eq!(ids(&found), [4]);
    let started = Instant::now();
    assert!(employee(&cache, &source, 5).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a single call of an id the batch did not return waited {:?}: its lease was not released",
        started.elapsed()
    );
    let again = employees(&cache, &source, &[4, 5]).await.expect("Ok");
    assert_eq!(ids(&again), [4]);
    assert_eq!(source.calls()[2], [5], "4 was stored, 5 asked for again");
}

/// An `Err` is returned, nothing stored, every lease released.
async fn errors_are_not_stored(cache: Cache) {
    let source = Source::default();
    employees(&cache, &source, &[1]).await.expect("Ok");
    source.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        employees(&cache, &source, &[1, 6, 7]).await,
        Err("the database is down".into()),
        "the Err is returned, hits or not"
    );
    source.fail.store(false, Ordering::SeqCst);
    let started = Instant::now();
    employee(&cache, &source, 6).await.expect("Ok");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a single call after a failed batch waited {:?}: the batch's lease was not released",
        started.elapsed()
    );
    employees(&cache, &source, &[1, 6, 7]).await.expect("Ok");
    assert_eq!(
        source.calls()[1..],
        [vec![6, 7], vec![6], vec![7]],
        "nothing of the failed call was stored"
    );
}

/// An invalidation of one id while the body runs: that id is not stored (the lease was
/// revoked with the key), the others are.
async fn an_invalidation_during_the_body_is_not_stored(cache: Cache) {
    let source = Arc::new(Source::default());
    source.pause.store(true, Ordering::SeqCst);
    let batch = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { employees(&cache, &source, &[8, 9]).await }
    });
    source.entered.notified().await;
    source.pause.store(false, Ordering::SeqCst);
    update(&cache, &source, 8).await;
    source.resume.notify_one();
    let read = batch.await.expect("the batch task").expect("Ok");
    assert_eq!(read[&8].version, 0, "the body read before the write");
    let after = employees(&cache, &source, &[8, 9]).await.expect("Ok");
    assert_eq!(
        after[&8].version, 1,
        "the value read before the invalidation was stored over it"
    );
    assert_eq!(source.calls()[1], [8], "9 was stored, 8 was not");
}

async fn all<F: Future<Output = Cache>>(cache: impl Fn() -> F) {
    hits_and_misses(cache().await).await;
    partial_results(cache().await).await;
    errors_are_not_stored(cache().await).await;
    an_invalidation_during_the_body_is_not_stored(cache().await).await;
}

#[tokio::test]
async fn on_redis() {
    all(|| support::redis_cache("batch")).await;
}

#[tokio::test]
async fn on_mem() {
    all(support::mem_cache).await;
}

#[tokio::test]
async fn behind_sentinel() {
    let sentinel = RedisSentinel::start();
    let cache = || async {
        Cache::builder(&sentinel.url())
            .prefix(support::unique_prefix("batch_sentinel"))
            .timeout(Duration::from_secs(1))
            .build()
            .await
            .expect("the sentinel's primary answers")
    };
    all(cache).await;
}

#[tokio::test]
async fn on_a_cluster_with_ids_across_slots() {
    let cluster = RedisCluster::start();
    let cache = || {
        Cache::builder(&cluster.url())
            .prefix(support::unique_prefix("batch_cluster"))
            .timeout(Duration::from_secs(1))
            .build()
    };
    let cache = || async { cache().await.expect("the cluster answers") };
    all(cache).await;
    // 100 ids over many slots: each group its own pipeline, all filled and then hit.
    let cache = cache().await;
    let source = Source::default();
    let ids: Vec<i64> = (0..100).collect();
    let keys: Vec<String> = ids.iter().map(|id| format!("employee:{id}")).collect();
    let slots: HashSet<u16> = cluster.slots(&keys).into_iter().collect();
    assert!(
        slots.len() > 50,
        "the ids spread over {} slots",
        slots.len()
    );
    assert_eq!(
        employees(&cache, &source, &ids).await.expect("Ok").len(),
        100
    );
    assert_eq!(
        employees(&cache, &source, &ids).await.expect("Ok").len(),
        100
    );
    assert_eq!(source.calls().len(), 1, "the second call was all hits");
}

/// 30,000 ids on a 3-primary Cluster with the default timeout (250 ms): the lookup goes out
/// as one pipeline per primary and chunk of keys, not one per hash slot, so that it ends in
/// time; everything is stored, and the second call is all hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_thousand_ids_on_a_cluster_are_stored_and_then_all_hits() {
    let cache = Cache::builder(&support::shared_cluster().url())
        .prefix(support::unique_prefix("batch_cluster_large"))
        .build()
        .await
        .expect("the cluster answers");
    let source = Source::default();
    let ids: Vec<i64> = (0..30_000).collect();
    assert_eq!(
        employees(&cache, &source, &ids).await.expect("Ok").len(),
        30_000
    );
    assert_eq!(
        employees(&cache, &source, &ids).await.expect("Ok").len(),
        30_000
    );
    let calls = source.calls();
    assert_eq!(
        calls.len(),
        1,
        "the second call ran the body for {} ids",
        calls.get(1).map_or(0, Vec::len)
    );
    assert!(!cache.is_degraded(), "no breaker opened");
}

/// A primary that hangs (SIGSTOP) costs a batch only the ids on it: the others are hits, the
/// body sees exactly the hung primary's ids, and the timed-out request opens no breaker
/// (which every function on that primary shares).
#[tokio::test]
async fn a_hung_primary_costs_a_batch_only_its_own_ids() {
    let cluster = RedisCluster::start();
    cluster.without_automatic_failover();
    let cache = Cache::builder(&cluster.url())
        .prefix(support::unique_prefix("batch_cluster_hung"))
        .build()
        .await
        .expect("the cluster answers");
    let source = Source::default();
    let ids: Vec<i64> = (0..300).collect();
    assert_eq!(
        employees(&cache, &source, &ids).await.expect("Ok").len(),
        300
    );
    let hung = cluster.primaries()[0];
    let mut on_hung: Vec<i64> = (ids.iter().copied())
        .filter(|id| cluster.primary_for(&format!("{}employee:{id}", cache.prefix())) == hung)
        .collect();
    assert!(!on_hung.is_empty() && on_hung.len() < 300);
    cluster.stop(hung);
    let found = employees(&cache, &source, &ids).await;
    cluster.cont(hung);
    assert_eq!(found.expect("Ok").len(), 300, "every id answered");
    let mut second = source.calls().get(1).cloned().unwrap_or_default();
    second.sort_unstable();
    on_hung.sort_unstable();
    assert_eq!(
        second, on_hung,
        "the body ran for the hung primary's ids only"
    );
    assert!(!cache.is_degraded(), "no breaker opened");
}

// ---------------------------------------------------------------------------------------
// Redis only.

/// With Redis down, the body runs for every id and nothing is stored.
#[tokio::test]
async fn with_redis_down_the_body_runs_for_every_id() {
    let cache = Cache::builder(&format!("redis://127.0.0.1:{}", harness::free_port()))
        .timeout(Duration::from_millis(200))
        .lazy(true)
        .build()
        .await
        .expect("a valid URL");
    let source = Source::default();
    for _ in 0..2 {
        let found = employees(&cache, &source, &[1, 2, 3]).await.expect("Ok");
        assert_eq!(ids(&found), [1, 2, 3]);
    }
    assert_eq!(source.calls(), [vec![1, 2, 3], vec![1, 2, 3]]);
}

/// A cache on `server` (a test's own, for a fault of its own), with ids 1 and 2 stored from
/// the returned source, and a connection to the server.
async fn two_stored_on(server: &RedisServer) -> (Cache, Source, MultiplexedConnection) {
    let cache = Cache::builder(&server.url())
        .build()
        .await
        .expect("the server answers");
    let source = Source::default();
    employees(&cache, &source, &[1, 2]).await.expect("Ok");
    (cache, source, server.connection().await)
}

/// While Redis refuses writes (`OOM`), cached ids stay hits (a plain `MGET` reads them) and
/// the others come from the body; nothing fails.
#[tokio::test]
async fn under_oom_hits_stay_hits() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let (cache, source, mut redis) = two_stored_on(&server).await;
    harness::config_set(&mut redis, "maxmemory", "1").await;
    let found = employees(&cache, &source, &[1, 2, 3]).await.expect("Ok");
    assert_eq!(ids(&found), [1, 2, 3]);
    assert_eq!(source.calls()[1], [3], "1 and 2 were hits under OOM");
    employees(&cache, &source, &[1, 2, 3]).await.expect("Ok");
    assert_eq!(source.calls()[2], [3], "3 could not be stored");
}

/// A server that lost the lookup's script (`SCRIPT FLUSH`, as after a failover to a replica
/// that never ran it, or a restart) answers `NOSCRIPT`: the lookup loads the script and is
/// sent again, in the same call, so hits stay hits and misses are leased and stored.
#[tokio::test]
async fn a_server_without_the_lookup_script_loads_it_and_hits_stay_hits() {
    let server = RedisServer::start();
    let (cache, source, mut redis) = two_stored_on(&server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .expect("SCRIPT FLUSH");
    let found = employees(&cache, &source, &[1, 2, 3]).await.expect("Ok");
    assert_eq!(ids(&found), [1, 2, 3]);
    assert_eq!(source.calls()[1], [3], "1 and 2 were hits after the flush");
    employees(&cache, &source, &[1, 2, 3]).await.expect("Ok");
    assert_eq!(source.calls().len(), 2, "3 was leased and stored");
}

/// A tagged entry (or any other marker) under an id's key is never decoded as a value: a
/// miss, and left alone.
#[tokio::test]
async fn markers_are_misses_and_left_alone() {
    let cache = support::redis_cache("batch_markers").await;
    let prefix = cache.prefix();
    let source = Source::default();
    employees(&cache, &source, &[1]).await.expect("Ok");
    let key = format!("{prefix}employee:1");
    assert!(support::raw_exists(&key).await, "the entry is under {key}");
    let marker = b"\xC1T\x01\x02{\"id\":1,\"version\":7}".to_vec();
    support::raw_set(&key, &marker).await;
    let found = employees(&cache, &source, &[1]).await.expect("Ok");
    assert_eq!(found[&1].version, 0, "the marker's contents were decoded");
    assert_eq!(source.calls().len(), 2, "a marker is a miss");
    assert_eq!(
        support::raw_get(&key).await,
        Some(marker),
        "and is not overwritten"
    );
    // Garbage that is no marker is overwritten, as a single call does.
    support::raw_set(&key, b"not json").await;
    employees(&cache, &source, &[1]).await.expect("Ok");
    employees(&cache, &source, &[1]).await.expect("Ok");
    assert_eq!(
        source.calls().len(),
        3,
        "the garbage was replaced by the value"
    );
}

#[redis_cached(key = "employee:<ids>", ttl = 60, batch = ids, cache = cache)]
async fn employees_one_by_one(
    cache: &Cache,
    source: &Source,
    ids: &[i64],
) -> Result<HashMap<i64, Employee>, String> {
    let mut found = HashMap::new();
    for &id in ids {
        found.insert(id, employee(cache, source, id).await?);
    }
    Ok(found)
}

/// A single call of an id from inside a batch body (which holds that id's lease) runs its
/// body at once, as a call inside a single fill does, rather than waiting for the batch.
#[tokio::test]
async fn a_single_call_inside_a_batch_body_does_not_wait_for_the_batch() {
    let cache = support::redis_cache("batch_nested").await;
    let source = Source::default();
    let started = Instant::now();
    let found = employees_one_by_one(&cache, &source, &[1, 2])
        .await
        .expect("Ok");
    assert_eq!(found.len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}: the inner calls waited for the batch's leases",
        started.elapsed()
    );
    // The batch stored both.
    employees(&cache, &source, &[1, 2]).await.expect("Ok");
    assert_eq!(source.calls().len(), 2, "{:?}", source.calls());
}

/// Each id's entry lives the function's TTL (60 s) in Redis.
#[tokio::test]
async fn batch_entries_live_the_functions_ttl() {
    let cache = support::redis_cache("batch_ttl").await;
    let prefix = cache.prefix();
    employees(&cache, &Source::default(), &[1, 2])
        .await
        .expect("Ok");
    let mut redis = harness::raw_connection().await;
    for id in [1, 2] {
        let left: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}employee:{id}"))
            .query_async(&mut redis)
            .await
            .expect("PTTL");
        assert!(
            (55_000..=60_000).contains(&left),
            "employee {id} lives {left} ms"
        );
    }
}

/// As `employee`, with a stale window: its entries sit in a freshness envelope.
#[redis_cached(key = "employee:<id>", ttl = Duration::from_millis(300), stale = 60, cache = cache)]
async fn employee_with_stale(cache: &Cache, source: &Source, id: i64) -> Result<Employee, String> {
    let mut read = source.read(&[id]).await?;
    read.remove(&id)
        .ok_or_else(|| "no such employee".to_owned())
}

/// A batch sharing keys with a single function that has `stale`: the entry's value is a hit
/// while it is fresh, and past its TTL a miss that is not stored over (the single function
/// refreshes it).
#[tokio::test]
async fn a_fresh_entry_of_a_function_with_stale_is_a_hit() {
    let cache = support::redis_cache("batch_fresh_envelope").await;
    let prefix = cache.prefix();
    let source = Source::default();
    employee_with_stale(&cache, &source, 1).await.expect("Ok");
    let found = employees(&cache, &source, &[1]).await.expect("Ok");
    assert_eq!(found[&1].version, 0);
    assert_eq!(source.calls().len(), 1, "the fresh entry was a hit");
    tokio::time::sleep(Duration::from_millis(400)).await;
    source.bump(1);
    let found = employees(&cache, &source, &[1]).await.expect("Ok");
    assert_eq!(found[&1].version, 1, "past its TTL: the source");
    let stored = support::raw_get(&format!("{prefix}employee:1")).await;
    assert!(
        stored.is_some_and(|bytes| bytes.starts_with(b"\xC1F")),
        "the envelope was not stored over"
    );
}

/// The lookup of 100 ids is one round trip: behind a relay that delays every request by
/// 100 ms, 100 hits take about 100 ms (one round trip after another would take 10 s), and
/// the server saw one transaction, an `MGET` and a script that set no lease (hits need
/// none), and nothing else.
#[tokio::test]
async fn the_lookup_of_100_ids_is_one_round_trip() {
    let server = RedisServer::start();
    let relay = delaying_relay(server.port(), Duration::from_millis(100)).await;
    let cache = Cache::builder(&relay)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("the relay answers");
    let source = Source::default();
    let ids: Vec<i64> = (0..100).collect();
    employees(&cache, &source, &ids).await.expect("Ok");
    let mut control = server.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut control)
        .await
        .expect("CONFIG RESETSTAT");
    let started = Instant::now();
    let found = employees(&cache, &source, &ids).await.expect("Ok");
    let took = started.elapsed();
    assert_eq!(found.len(), 100);
    assert_eq!(source.calls().len(), 1, "all hits");
    assert!(
        took < Duration::from_millis(350),
        "100 hits took {took:?} behind a 100 ms relay: more than one round trip"
    );
    let calls = harness::command_calls_on(&mut control).await;
    let data: HashMap<&str, u64> = calls
        .iter()
        .filter(|(name, _)| !name.starts_with("config"))
        .map(|(name, count)| (name.as_str(), *count))
        .collect();
    // One transaction: the `MGET`, and the script that leases absent keys, whose two-byte
    // `GETRANGE`s the server counts too (run inside it, not round trips); no `SET`: hits
    // take no lease.
    let expected = HashMap::from([
        ("multi", 1),
        ("mget", 1),
        ("evalsha", 1),
        ("getrange", 100),
        ("exec", 1),
    ]);
    assert_eq!(data, expected, "one lookup for the batch, nothing else");
}

/// A relay to `port` that holds every chunk the client sends for `delay`.
async fn delaying_relay(port: u16, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!(
        "redis://127.0.0.1:{}",
        listener.local_addr().expect("bound").port()
    );
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let mut buffer = vec![0; 256 * 1024];
                while let Ok(read) = client_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if server_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    url
}
