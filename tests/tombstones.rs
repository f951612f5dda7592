//! Invalidation tombstones (`CacheBuilder::tombstones`), against a real redis-server, a Redis
//! Cluster, Sentinel and `mem://`: an invalidated key holds a tombstone naming the write,
//! every reader treats it as absent, the miss that replaces it records the delay since the
//! write, a fill that the tombstone overtook does not store, batch lookups, the near tier, a
//! process without tombstones sharing the keys, `inspect_key` and `clear`, deferred and
//! replicated invalidations. Round trips with
//! tombstones on are counted in `round_trips.rs`, with its recorder.

mod harness;
mod support;

use redis_cached::{Cache, CacheBuilder, Error, KeyKind, NearCache, Outcome};
use redis_cached::{invalidates, redis_cached, with_outcome};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use support::Versions;

const LIFETIME: Duration = Duration::from_secs(60);

/// The first two bytes of every tombstone.
const TOMBSTONE: &[u8] = b"\xc1X";

/// Read by one test only (the histogram is counted by function).
#[redis_cached(key = "noted:<id>", ttl = 600, cache = cache)]
async fn noted(cache: &Cache, source: &Versions, id: u64) -> u64 {
    source.read(id)
}

#[invalidates("noted:<id>", cache = cache)]
async fn edit_noted(cache: &Cache, source: &Versions, id: u64) -> u64 {
    source.write(id)
}

/// A body slow enough to be overtaken by an invalidation.
#[redis_cached(key = "slow:<id>", ttl = 600, cache = cache)]
async fn slow(cache: &Cache, source: &Versions, id: u64) -> u64 {
    let version = source.read(id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    version
}

#[invalidates("slow:<id>", cache = cache)]
async fn edit_slow(cache: &Cache, source: &Versions, id: u64) -> u64 {
    source.write(id)
}

/// Records the ids its body was asked for.
#[redis_cached(key = "many:<ids>", ttl = 600, batch = ids, cache = cache)]
async fn many(cache: &Cache, asked: &Mutex<Vec<u64>>, ids: &[u64]) -> HashMap<u64, u64> {
    asked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(ids);
    ids.iter().map(|id| (*id, id * 10)).collect()
}

#[invalidates("many:<id>", cache = cache)]
async fn edit_many(cache: &Cache, id: u64) {
    let _ = id;
}

/// Tagged: its tag key must still be deleted, not tombstoned.
#[redis_cached(key = "member:<id>", ttl = 600, tags = ["team:<team>"], cache = cache)]
async fn member(cache: &Cache, source: &Versions, team: u64, id: u64) -> u64 {
    let _ = team;
    source.read(id)
}

#[invalidates("member:<id>", tags = ["team:<team>"], cache = cache)]
async fn move_member(cache: &Cache, team: u64, id: u64) {
    let _ = (team, id);
}

#[redis_cached(key = "near:<id>", ttl = 600, cache = cache)]
async fn near_read(cache: &Cache, source: &Versions, id: u64) -> u64 {
    source.current(id)
}

#[invalidates("near:<id>", cache = cache)]
async fn near_write(cache: &Cache, source: &Versions, id: u64) -> u64 {
    source.write(id)
}

/// The process-wide recorder of this binary, installed once.
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this binary");
        redis_cached::describe_metrics();
        handle
    })
}

/// How many misses of `function` (its name in this file) recorded the time since the
/// invalidation whose tombstone they replaced.
fn misses_after_invalidations(function: &str) -> u64 {
    let series = format!(
        "redis_cached_invalidation_to_miss_seconds_count{{function=\"tombstones::{function}\"}} "
    );
    prometheus()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Where a test's cache lives, and how to read its keys past the cache.
#[derive(Clone, Copy, Debug)]
enum Topology {
    Server,
    Cluster,
    Memory,
}

impl Topology {
    fn builder(self, test: &str) -> CacheBuilder {
        match self {
            Topology::Server => support::shared_builder(test),
            Topology::Cluster => support::cluster_builder(test),
            Topology::Memory => Cache::builder("mem://"),
        }
    }

    async fn cache(self, test: &str) -> Cache {
        self.builder(test)
            .tombstones(LIFETIME)
            .build()
            .await
            .expect("the store answers")
    }

    /// The bytes under `key` (the cache's prefix and the rendered key), read past the
    /// cache: `GET` on the server holding it; on `mem://`, which only the cache reads, the
    /// inspection's decoding of them.
    async fn raw(self, cache: &Cache, key: &str) -> Option<Vec<u8>> {
        let full = format!("{}{key}", cache.prefix());
        match self {
            Topology::Server => support::raw_get(&full).await,
            Topology::Cluster => {
                let cluster = support::shared_cluster();
                support::get(&mut cluster.owner_connection(&full).await, &full).await
            }
            Topology::Memory => {
                let state = cache.inspect_key(key).await.expect("mem:// answers");
                (state.state == KeyKind::Tombstone).then(|| TOMBSTONE.to_vec())
            }
        }
    }
}

fn is_tombstone(bytes: &Option<Vec<u8>>) -> bool {
    bytes
        .as_deref()
        .is_some_and(|bytes| bytes.starts_with(TOMBSTONE))
}

/// An invalidation leaves a tombstone naming the invalidating function; the next call is a
/// miss (the body runs once), which stores its value and records the delay since the write
/// in the histogram; the call after is a hit.
async fn the_miss_after_an_invalidation_replaces_its_tombstone(topology: Topology) {
    let cache = topology.cache("tombstone_then_miss").await;
    let source = Versions::default();
    assert_eq!(noted(&cache, &source, 1).await, 0);
    assert_eq!(noted(&cache, &source, 1).await, 0);
    assert_eq!(source.reads.load(Ordering::SeqCst), 1, "a miss, then a hit");

    let recorded = misses_after_invalidations("noted");
    assert_eq!(edit_noted(&cache, &source, 1).await, 1);
    let raw = topology.raw(&cache, "noted:1").await;
    assert!(is_tombstone(&raw), "{topology:?}: {raw:?}");
    if let (Topology::Server | Topology::Cluster, Some(raw)) = (topology, &raw) {
        let text = String::from_utf8_lossy(raw);
        assert!(text.contains("tombstones::edit_noted"), "{text}");
    }

    assert_eq!(
        with_outcome(noted(&cache, &source, 1)).await,
        (1, Some(Outcome::Miss))
    );
    assert_eq!(source.reads.load(Ordering::SeqCst), 2, "the body ran once");
    assert_eq!(
        misses_after_invalidations("noted"),
        recorded + 1,
        "{topology:?}: one observation"
    );
    assert!(!is_tombstone(&topology.raw(&cache, "noted:1").await));
    assert_eq!(
        with_outcome(noted(&cache, &source, 1)).await,
        (1, Some(Outcome::Hit))
    );
    assert_eq!(source.reads.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miss_after_an_invalidation_replaces_its_tombstone_and_records_the_delay() {
    // One after the other: the histogram is counted by function.
    for topology in [Topology::Server, Topology::Cluster, Topology::Memory] {
        the_miss_after_an_invalidation_replaces_its_tombstone(topology).await;
    }
}

/// A body that read the source before the invalidation finishes after it: its lease was
/// replaced by the tombstone, so its value is not stored.
async fn a_fill_overtaken_by_a_tombstone_does_not_store(topology: Topology) {
    let cache = topology.cache("overtaken_fill").await;
    let source = Arc::new(Versions::default());
    let filling = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { with_outcome(slow(&cache, &source, 1)).await }
    });
    // The body has read the source (its lease is in the key) when the write lands.
    support::eventually(Duration::from_secs(5), "the fill's lease", || async {
        source.reads.load(Ordering::SeqCst) == 1
            && cache.inspect_key("slow:1").await.expect("answers").state == KeyKind::Lease
    })
    .await;
    edit_slow(&cache, &source, 1).await;
    assert_eq!(filling.await.expect("the call"), (0, Some(Outcome::Miss)));

    let state = cache.inspect_key("slow:1").await.expect("answers");
    assert_eq!(state.state, KeyKind::Tombstone, "{topology:?}: {state:?}");
    assert!(is_tombstone(&topology.raw(&cache, "slow:1").await));
    assert_eq!(
        with_outcome(slow(&cache, &source, 1)).await,
        (1, Some(Outcome::Miss))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_whose_lease_a_tombstone_replaced_does_not_store() {
    tokio::join!(
        a_fill_overtaken_by_a_tombstone_does_not_store(Topology::Server),
        a_fill_overtaken_by_a_tombstone_does_not_store(Topology::Memory),
    );
}

/// A batch over ids of which some are tombstoned: those are misses (the body is asked for
/// them alone, and records the delay), the others hits.
async fn tombstoned_ids_are_the_misses_of_a_batch(topology: Topology) {
    let cache = topology.cache("batch").await;
    let asked = Mutex::new(Vec::new());
    let ids = [1, 2, 3, 4, 5, 6];
    let all: HashMap<u64, u64> = ids.iter().map(|id| (*id, id * 10)).collect();
    assert_eq!(many(&cache, &asked, &ids).await, all);
    asked.lock().unwrap_or_else(PoisonError::into_inner).clear();

    edit_many(&cache, 2).await;
    edit_many(&cache, 5).await;
    assert!(is_tombstone(&topology.raw(&cache, "many:5").await));
    let recorded = misses_after_invalidations("many");
    assert_eq!(many(&cache, &asked, &ids).await, all);
    let mut missed = asked.lock().unwrap_or_else(PoisonError::into_inner).clone();
    missed.sort_unstable();
    assert_eq!(missed, [2, 5], "{topology:?}");
    assert_eq!(misses_after_invalidations("many"), recorded + 2);
    // Stored under the leases that replaced the tombstones: all hits now.
    asked.lock().unwrap_or_else(PoisonError::into_inner).clear();
    assert_eq!(many(&cache, &asked, &ids).await, all);
    assert!(
        asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_misses_exactly_its_tombstoned_ids() {
    for topology in [Topology::Server, Topology::Cluster, Topology::Memory] {
        tombstoned_ids_are_the_misses_of_a_batch(topology).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_written_by_another_cache_evicts_the_near_tier() {
    // A server of its own: its script calls tell a near hit (none) from a lookup.
    let server = harness::RedisServer::start();
    let builder = || Cache::builder(&server.url()).tombstones(LIFETIME);
    let reader = builder()
        .near_cache(NearCache::new(1 << 20))
        .build()
        .await
        .expect("redis answers");
    let writer = builder().build().await.expect("redis answers");
    let source = Versions::default();
    let lookups = || async { server.command_calls().await.get("evalsha").copied() };
    // Until tracking is up, a read is not kept: read until one is served locally.
    support::eventually(Duration::from_secs(5), "a near hit", || async {
        near_read(&reader, &source, 3).await;
        let before = lookups().await;
        near_read(&reader, &source, 3).await;
        lookups().await == before
    })
    .await;

    let version = near_write(&writer, &source, 3).await;
    let key = "near:3";
    let state = reader.inspect_key(key).await.expect("answers").state;
    assert_eq!(state, KeyKind::Tombstone, "a tombstone, not a deletion");
    let written = Instant::now();
    while near_read(&reader, &source, 3).await < version {
        assert!(written.elapsed() < Duration::from_secs(2), "never evicted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_without_tombstones_takes_a_tombstone_for_a_miss() {
    let test = "mixed";
    let prefix = support::unique_prefix(test);
    let with = Cache::builder(harness::shared_url())
        .prefix(prefix.clone())
        .tombstones(LIFETIME)
        .build()
        .await
        .expect("redis answers");
    let without = Cache::builder(harness::shared_url())
        .prefix(prefix.clone())
        .build()
        .await
        .expect("redis answers");
    let source = Versions::default();
    assert_eq!(noted(&without, &source, 8).await, 0);
    edit_noted(&with, &source, 8).await;
    let key = format!("{prefix}noted:8");
    assert!(is_tombstone(&support::raw_get(&key).await));

    assert_eq!(
        with_outcome(noted(&without, &source, 8)).await,
        (1, Some(Outcome::Miss))
    );
    // Overwritten (take-over, then fill): a hit for either cache from now on.
    assert!(!is_tombstone(&support::raw_get(&key).await));
    assert_eq!(
        with_outcome(noted(&without, &source, 8)).await,
        (1, Some(Outcome::Hit))
    );
    assert_eq!(
        with_outcome(noted(&with, &source, 8)).await,
        (1, Some(Outcome::Hit))
    );
}

#[tokio::test]
async fn inspect_key_names_a_tombstone_and_clear_deletes_it() {
    for topology in [Topology::Server, Topology::Memory] {
        let cache = topology.cache("inspect").await;
        let source = Versions::default();
        noted(&cache, &source, 4).await;
        cache.invalidate(&["noted:4"]).await.expect("invalidated");

        let state = cache.inspect_key("noted:4").await.expect("answers");
        assert_eq!(state.state, KeyKind::Tombstone, "{topology:?}");
        let value = state.value.expect("the tombstone, as JSON");
        assert_eq!(value["by"], "Cache::invalidate");
        assert!(value["at_unix_ms"].as_u64().is_some_and(|at| at > 0));
        let hint = state.hint.expect("who and when");
        assert!(
            hint.starts_with("invalidated by Cache::invalidate "),
            "{hint}"
        );
        assert!(state.ttl_ms.is_some_and(|ttl| ttl <= 60_000));

        assert_eq!(cache.clear().await.expect("cleared"), 1, "{topology:?}");
        let state = cache.inspect_key("noted:4").await.expect("answers");
        assert_eq!(state.state, KeyKind::Absent);
    }
}

/// One `#[invalidates]` call over keys in many slots writes every tombstone (one pipeline
/// per slot), and still deletes its tag key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_an_invalidation_over_many_slots_writes_every_tombstone() {
    let cache = Topology::Cluster.cache("cluster_spread").await;
    let source = Versions::default();
    let cluster = support::shared_cluster();
    let ids: Vec<u64> = (0..24).collect();
    for &id in &ids {
        member(&cache, &source, 7, id).await;
    }
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("{}member:{id}", cache.prefix()))
        .collect();
    let primaries: std::collections::BTreeSet<usize> =
        keys.iter().map(|key| cluster.primary_for(key)).collect();
    assert_eq!(primaries.len(), 3, "the keys span every primary");
    let tag = format!("{}\\@team:7", cache.prefix());
    assert!(cluster.exists(&tag).await);

    let names: Vec<String> = ids.iter().map(|id| format!("member:{id}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    cache.invalidate(&names).await.expect("invalidated");
    move_member(&cache, 7, 0).await;
    for key in &keys {
        let raw = support::get(&mut cluster.owner_connection(key).await, key).await;
        assert!(is_tombstone(&raw), "{key}: {raw:?}");
    }
    assert!(
        !cluster.exists(&tag).await,
        "a tag key is deleted, not tombstoned"
    );
    let reads = source.reads.load(Ordering::SeqCst);
    for &id in &ids {
        member(&cache, &source, 7, id).await;
    }
    assert_eq!(source.reads.load(Ordering::SeqCst), reads + ids.len());
}

#[tokio::test]
async fn a_lifetime_under_a_second_is_refused() {
    for lifetime in [Duration::ZERO, Duration::from_millis(999)] {
        let built = Cache::builder("mem://").tombstones(lifetime).build().await;
        assert!(
            matches!(built, Err(Error::InvalidConfig(_))),
            "{lifetime:?}"
        );
    }
    assert!(
        Cache::builder("mem://")
            .tombstones(Duration::from_secs(1))
            .build()
            .await
            .is_ok()
    );
}

/// An invalidation made while Redis is down is deferred; once Redis answers, its replay
/// writes the tombstone, naming the function that invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_invalidation_writes_its_tombstone_once_redis_answers() {
    let mut server = harness::RedisServer::start();
    let cache = Cache::builder(&server.url())
        .timeout(Duration::from_millis(100))
        .lazy(true)
        .tombstones(LIFETIME)
        .build()
        .await
        .expect("a valid URL");
    server.kill();
    let source = Versions::default();
    edit_noted(&cache, &source, 9).await; // deferred
    server.restart();
    support::eventually(
        Duration::from_secs(10),
        "the deferred tombstone",
        || async {
            // Traffic on another key probes Redis and closes the breaker.
            noted(&cache, &source, 1).await;
            let raw = support::get(&mut server.connection().await, "noted:9").await;
            is_tombstone(&raw)
                && raw.is_some_and(|raw| String::from_utf8_lossy(&raw).ends_with("::edit_noted"))
        },
    )
    .await;
}

/// With `replicated_invalidation`, the tombstones' `SET`s are followed by `WAIT`: with the
/// replica stopped the invalidation fails (`NotReplicated`); once it runs again, it holds
/// the tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replicated_invalidation_tombstones_wait_for_the_replica() {
    let setup = support::shared_sentinel();
    let cache = support::sentinel_builder("replicated")
        .replicated_invalidation(1, Duration::from_millis(300))
        .tombstones(LIFETIME)
        .build()
        .await
        .expect("the sentinels name a primary");
    let source = Versions::default();
    noted(&cache, &source, 5).await;
    let key = format!("{}noted:5", cache.prefix());

    setup.replica().stop();
    let invalidated = cache.invalidate(&["noted:5"]).await;
    setup.replica().cont();
    assert!(
        matches!(invalidated, Err(Error::NotReplicated { .. })),
        "{invalidated:?}"
    );
    setup.wait_replicated(Duration::from_secs(5)).await;
    let on_replica = support::get(&mut setup.replica().connection().await, &key).await;
    assert!(is_tombstone(&on_replica), "{on_replica:?}");
}
