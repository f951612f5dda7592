//! The near tier's eviction-lag probe: every process with a tier writes a probe key now and
//! then, and every tier that gets its push records the lag (`Cache::near_eviction_lag`, the
//! `redis_cached_near_eviction_lag_seconds` histogram). A probe is counted once, evicts no
//! real entry, leaves no key behind, and is not written while the tier is bypassed.

mod harness;
mod support;

use harness::RedisServer;
use redis_cached::{Cache, NearCache, invalidates, redis_cached};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use support::{Logs, Versions, eventually};
use tracing_subscriber::filter::LevelFilter;

static VERSIONS: LazyLock<Versions> = LazyLock::new(Versions::default);

#[redis_cached(key = "lag:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> u64 {
    VERSIONS.current(id)
}

#[invalidates("lag:<id>", cache = cache)]
async fn write(cache: &Cache, id: u64) -> u64 {
    VERSIONS.write(id)
}

/// Probes this often in the tests (10 s in production).
const PERIOD: Duration = Duration::from_millis(100);

/// A cache on `url` whose near tier probes every `every` (`ZERO`: never).
async fn probing_cache(url: &str, prefix: &str, every: Duration) -> Cache {
    Cache::builder(url)
        .prefix(prefix)
        .near_cache(NearCache::new(4 << 20).probe_every(every))
        .build()
        .await
        .expect("redis answers")
}

fn count(cache: &Cache) -> u64 {
    cache.near_eviction_lag().map_or(0, |lag| lag.count)
}

/// Key reads the server served so far (keyspace hits and misses): a lookup counts, a
/// probe (a write and a deletion, in the same script as a lookup would be) does not.
async fn reads(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut server.connection().await)
        .await
        .expect("INFO stats");
    ["keyspace_hits", "keyspace_misses"]
        .iter()
        .filter_map(|field| harness::info_field(&info, field))
        .map(|value| value.trim().parse::<u64>().expect("a count"))
        .sum()
}

/// Each tier records the probes of both writers, its own and the other's: more than one
/// writer alone could have written in the time (one per 0.9 `PERIOD` at most, plus one).
/// A cache that writes none still records the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tier_records_the_probes_of_every_writer() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix("lag-both");
    let started = Instant::now();
    let a = probing_cache(&server.url(), &prefix, PERIOD).await;
    let b = probing_cache(&server.url(), &prefix, PERIOD).await;
    let silent = probing_cache(&server.url(), &prefix, Duration::ZERO).await;
    let one_writer_at_most =
        || (started.elapsed().as_secs_f64() / (PERIOD.as_secs_f64() * 0.9)) as u64 + 1;
    eventually(
        Duration::from_secs(10),
        "each tier counts more probes than one writer could write",
        || async { count(&a) > one_writer_at_most() && count(&b) > one_writer_at_most() },
    )
    .await;
    assert!(
        count(&silent) > 0,
        "a tier that writes no probe records none"
    );
    let lag = a.near_eviction_lag().expect("samples");
    assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max, "{lag:?}");
    // Loopback, one host: the lag is a round trip or two, not seconds.
    assert!(lag.p50 < Duration::from_millis(250), "{lag:?}");
}

/// A probe's push evicts nothing: 3000 entries (about three per stripe of the tier's
/// epochs) are all still near hits after ten probes, and no probe key is left in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_evicts_no_entry_and_leaves_no_key() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix("lag-entries");
    let cache = probing_cache(&server.url(), &prefix, PERIOD).await;
    const ENTRIES: u64 = 3000;
    // Once the tier is live, a read of a warmed entry costs no command.
    eventually(Duration::from_secs(5), "the tier serves", || async {
        read(&cache, 0).await;
        let before = reads(&server).await;
        read(&cache, 0).await;
        reads(&server).await == before
    })
    .await;
    // A fill, then a read from Redis, which the tier keeps.
    for _ in 0..2 {
        for id in 0..ENTRIES {
            read(&cache, id).await;
        }
    }
    let warmed = count(&cache);
    let before = reads(&server).await;
    // Every entry read again, with no read reaching Redis.
    let all_near_hits = async |what: &str| {
        for id in 0..ENTRIES {
            read(&cache, id).await;
        }
        assert_eq!(reads(&server).await, before, "{what}");
    };
    all_near_hits("not every entry was a near hit").await;
    eventually(Duration::from_secs(10), "ten probes arrive", || async {
        count(&cache) >= warmed + 10
    })
    .await;
    all_near_hits("a probe evicted real entries: they were read from Redis again").await;
    let mut redis = server.connection().await;
    let probes: Vec<String> = (support::keys_matching(&mut redis, &prefix).await)
        .into_iter()
        .filter(|key| key.contains("near-probe"))
        .collect();
    assert!(probes.is_empty(), "probe keys left in Redis: {probes:?}");
}

/// While Redis is down the tier is bypassed: no probe is written (none fails) and none is
/// recorded; once Redis is back, probes are recorded again.
#[tokio::test]
async fn no_probe_while_the_tier_is_bypassed() {
    let logs = Logs::default();
    // On a current-thread runtime every task runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(logs.subscriber(LevelFilter::DEBUG));
    let mut server = RedisServer::start();
    let prefix = support::unique_prefix("lag-bypassed");
    let cache = probing_cache(&server.url(), &prefix, PERIOD).await;
    eventually(Duration::from_secs(5), "a probe arrives", || async {
        count(&cache) > 0
    })
    .await;
    server.kill();
    // The tracking connection's drop is seen at once; a probe already on its way may fail.
    tokio::time::sleep(PERIOD * 3).await;
    let (recorded, failed) = (count(&cache), probe_failures(&logs));
    tokio::time::sleep(PERIOD * 10).await;
    assert_eq!(
        count(&cache),
        recorded,
        "a probe was recorded while Redis was down"
    );
    assert_eq!(
        probe_failures(&logs),
        failed,
        "probes were written while the tier was bypassed"
    );
    server.restart();
    eventually(Duration::from_secs(10), "probes resume", || async {
        count(&cache) > recorded
    })
    .await;
}

/// On a Cluster each probe's key lands in some primary's slots and every process gets its
/// push; the tier also tracks the replicas, which push the replicated write again: each probe
/// still counts once (no more than one writer could write in the time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_process_counts_each_probe_once() {
    let url = support::shared_cluster().url();
    let prefix = support::unique_prefix("lag-cluster");
    let writer = probing_cache(&url, &prefix, PERIOD).await;
    let silent = probing_cache(&url, &prefix, Duration::ZERO).await;
    eventually(
        Duration::from_secs(15),
        "both tiers count probes",
        || async { count(&writer) >= 5 && count(&silent) >= 5 },
    )
    .await;
    let started = Instant::now();
    let counted = count(&writer);
    tokio::time::sleep(PERIOD * 15).await;
    let most = (started.elapsed().as_secs_f64() / (PERIOD.as_secs_f64() * 0.9)) as u64 + 1;
    assert!(
        count(&writer) - counted <= most,
        "{} probes counted in {:?}: some twice",
        count(&writer) - counted,
        started.elapsed()
    );
}

fn probe_failures(logs: &Logs) -> usize {
    logs.text().matches("eviction-lag probe failed").count()
}

/// The figures in README.md's guarantees and BENCHMARKS.md: 200 invalidations of real keys
/// in one cache, each timed from the return of the `#[invalidates]` call to the moment
/// another cache's near tier returns the new value (so with one read's round trip), and the
/// probes' own figure over the same run. `cargo test --test near_lag -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on purpose"]
async fn measure_eviction_lag() {
    let server = RedisServer::start();
    let prefix = support::unique_prefix("lag-measure");
    let reader = probing_cache(&server.url(), &prefix, Duration::from_millis(20)).await;
    let writer = probing_cache(&server.url(), &prefix, Duration::from_millis(20)).await;
    eventually(Duration::from_secs(5), "the tier serves", || async {
        count(&reader) > 0
    })
    .await;
    let mut windows = Vec::new();
    for _ in 0..200 {
        read(&reader, 1).await;
        read(&reader, 1).await; // now in the near tier
        let version = write(&writer, 1).await;
        let written = Instant::now();
        while read(&reader, 1).await < version {
            assert!(written.elapsed() < Duration::from_secs(2), "never evicted");
            tokio::task::yield_now().await;
        }
        windows.push(written.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    windows.sort();
    eprintln!(
        "invalidation to eviction, 200 keys: p50 {:?}, p99 {:?}, max {:?}",
        windows[windows.len() / 2],
        windows[windows.len() * 99 / 100],
        windows[windows.len() - 1]
    );
    eprintln!("probes, reader: {:?}", reader.near_eviction_lag());
    eprintln!("probes, writer: {:?}", writer.near_eviction_lag());
}
