//! Writes paused (`CLIENT PAUSE <ms> WRITE`, as `FAILOVER` and managed services pause them).
//! A lookup is a write (`SET .. NX GET`, which takes the fill lease), so Redis holds it until
//! the pause ends, and on the multiplexed connection everything queued behind it waits too,
//! while Redis would still serve reads. After the first lookup that times out, lookups are
//! plain `GET`s on a connection of their own until writes flow again: stored entries stay
//! hits, a miss runs its body and returns its value without storing it, and nothing stale
//! is served. Batch functions read likewise: a pause seen by a single call or by a batch
//! holds no later batch for the timeout.

mod harness;
mod support;

use harness::RedisServer;
use harness::cluster::RedisCluster;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{Versions, get, item, write_item};

/// The cache's timeout: what a lookup stuck behind the pause costs.
const TIMEOUT: Duration = Duration::from_millis(200);
/// Room for a loaded machine on top of the timeout.
const SLACK: Duration = Duration::from_millis(300);
const PAUSE: Duration = Duration::from_secs(2);

/// `item(id)`, with its outcome, checked to return within the timeout (and some slack).
async fn timed_item(cache: &Cache, source: &Versions, id: u64) -> ((u64, u64), Option<Outcome>) {
    let started = Instant::now();
    let (value, outcome) = with_outcome(item(cache, source, id)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed <= TIMEOUT + SLACK,
        "item({id}) took {elapsed:?} while writes were paused"
    );
    (value, outcome)
}

/// `item`'s batch form: the same keys and values.
#[redis_cached(key = "item:<ids>", ttl = 600, batch = ids, cache = cache)]
async fn items(cache: &Cache, source: &Versions, ids: Vec<u64>) -> HashMap<u64, (u64, u64)> {
    ids.into_iter()
        .map(|id| (id, (id, source.read(id))))
        .collect()
}

/// `items(ids)`, checked to return every id's value within the timeout (and some slack),
/// and how many of them the body was asked for.
async fn timed_items(cache: &Cache, source: &Versions, ids: &[u64]) -> usize {
    items_took(cache, source, ids).await.0
}

/// [`timed_items`], and how long the call took.
async fn items_took(cache: &Cache, source: &Versions, ids: &[u64]) -> (usize, Duration) {
    let (started, reads) = (Instant::now(), support::runs(&source.reads));
    let found = items(cache, source, ids.to_vec()).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed <= TIMEOUT + SLACK,
        "items({ids:?}) took {elapsed:?} while writes were paused"
    );
    for id in ids {
        assert_eq!(
            found.get(id),
            Some(&(*id, source.current(*id))),
            "items({ids:?})"
        );
    }
    (support::runs(&source.reads) - reads, elapsed)
}

/// Calls made once a pause was seen, and how many of them took the timeout or longer, as a
/// write held by the pause makes them (a key taken over, a lease set). A majority must not:
/// a loaded machine may stall one call that long, but not most.
#[derive(Default)]
struct Waits {
    calls: u32,
    waited: u32,
}

impl Waits {
    fn record(&mut self, took: Duration) {
        self.calls += 1;
        self.waited += u32::from(took >= TIMEOUT);
    }

    fn check(&self) {
        let Waits { calls, waited } = self;
        assert!(
            *calls >= 4 && waited * 2 < *calls,
            "{waited} of {calls} calls during the pause waited for the timeout"
        );
    }
}

/// Stores another program's value, which does not decode, under `key`.
async fn write_undecodable(redis: &mut MultiplexedConnection, key: &str) {
    let () = redis::cmd("SET")
        .arg(key)
        .arg("not an item")
        .query_async(redis)
        .await
        .expect("SET");
}

/// A cache on `server`, with the test's timeout.
async fn cache_on(server: &RedisServer) -> Cache {
    Cache::builder(&server.url())
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("the test's server answers")
}

/// Pauses the writes of every client of the server behind `redis` for `PAUSE`.
async fn pause_writes(redis: &mut MultiplexedConnection) -> Instant {
    let paused_at = Instant::now();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE.as_millis() as u64)
        .arg("WRITE")
        .query_async(redis)
        .await
        .expect("CLIENT PAUSE .. WRITE (Redis 6.2 and later)");
    paused_at
}

/// Where the test pauses writes, and how it sees what was stored.
trait Paused {
    /// A connection to the server whose writes are paused.
    async fn connection(&self) -> MultiplexedConnection;
    /// Whether `item(id)`'s entry is stored.
    async fn stored(&self, id: u64) -> bool;
    /// The key of `item(id)`'s entry.
    fn key(&self, id: u64) -> String;
    /// A connection to the server of `item(id)`'s entry.
    async fn owner(&self, id: u64) -> MultiplexedConnection;
    /// Whether every miss during the pause stores nothing. On a Cluster the pause is one
    /// primary's: a miss of a key on another primary may be stored (before the pause is
    /// seen, or once a write probe that reached another primary answered).
    const EVERY_MISS_UNSTORED: bool = true;
}

struct Single(RedisServer);

impl Single {
    async fn stored_in(server: &RedisServer, id: u64) -> bool {
        get(&mut server.connection().await, &format!("item:{id}"))
            .await
            .is_some()
    }
}

impl Paused for Single {
    async fn connection(&self) -> MultiplexedConnection {
        self.0.connection().await
    }

    async fn stored(&self, id: u64) -> bool {
        Single::stored_in(&self.0, id).await
    }

    fn key(&self, id: u64) -> String {
        format!("item:{id}")
    }

    async fn owner(&self, _: u64) -> MultiplexedConnection {
        self.0.connection().await
    }
}

/// The shared cluster, with the prefix of the test's cache; writes are paused on the
/// primary of `item(1)`.
struct Cluster {
    cluster: &'static RedisCluster,
    prefix: String,
}

impl Paused for Cluster {
    const EVERY_MISS_UNSTORED: bool = false;

    async fn connection(&self) -> MultiplexedConnection {
        self.owner(1).await
    }

    async fn stored(&self, id: u64) -> bool {
        self.cluster.exists(&self.key(id)).await
    }

    fn key(&self, id: u64) -> String {
        format!("{}item:{id}", self.prefix)
    }

    async fn owner(&self, id: u64) -> MultiplexedConnection {
        self.cluster.owner_connection(&self.key(id)).await
    }
}

/// Stores `item(1..=3)`, pauses writes on `paused` for `PAUSE`, and checks the calls
/// during the pause and after it.
async fn serves_through_a_pause<P: Paused>(cache: &Cache, paused: &P) {
    let source = Versions::default();
    for id in 1..=3 {
        assert_eq!(timed_item(cache, &source, id).await.1, Some(Outcome::Miss));
    }
    // Outside a pause, a call takes this entry over; during one, it must not wait to.
    write_undecodable(&mut paused.owner(5).await, &paused.key(5)).await;
    let paused_at = pause_writes(&mut paused.connection().await).await;
    // The first lookups after the pause began wait out the timeout (their bodies run);
    // from then on, lookups read.
    let detected = paused_at + TIMEOUT + SLACK;
    let (mut hits, mut misses, mut early) = (0, 0, 0);
    let (mut single_waits, mut batch_waits) = (Waits::default(), Waits::default());
    let mut fresh = 100;
    while paused_at.elapsed() < PAUSE - SLACK {
        let started = Instant::now();
        let reads = support::runs(&source.reads);
        for id in 1..=3 {
            let (value, outcome) = timed_item(cache, &source, id).await;
            assert_eq!(value, (id, 0));
            if started < detected {
                early += 1;
                continue;
            }
            assert_eq!(
                outcome,
                Some(Outcome::Hit),
                "item({id}), stored before the pause, {:?} into it",
                started - paused_at
            );
            hits += 1;
        }
        if started >= detected {
            assert_eq!(support::runs(&source.reads), reads, "hits run no body");
            // The entry that does not decode: the body runs, without the timeout's wait.
            let started = Instant::now();
            assert_eq!(timed_item(cache, &source, 5).await.1, Some(Outcome::Miss));
            single_waits.record(started.elapsed());
        }
        // A batch of the stored ids, the undecodable one and a new one: the body is asked
        // for the last two only, and once the pause is seen, without the timeout's wait.
        fresh += 1;
        let ids = [1, 2, 3, 5, fresh];
        if started >= detected {
            let (asked, took) = items_took(cache, &source, &ids).await;
            assert_eq!(asked, 2, "a batch {:?} into the pause", started - paused_at);
            batch_waits.record(took);
        } else {
            timed_items(cache, &source, &ids).await;
        }
        assert!(
            !P::EVERY_MISS_UNSTORED || !paused.stored(fresh).await,
            "no batch stores while writes are paused"
        );
        fresh += 1;
        let (value, outcome) = timed_item(cache, &source, fresh).await;
        assert_eq!(value, (fresh, 0));
        if started >= detected {
            assert_eq!(outcome, Some(Outcome::Miss), "item({fresh}) is new");
            misses += 1;
        }
        assert!(
            !P::EVERY_MISS_UNSTORED || !paused.stored(fresh).await,
            "nothing is stored while writes are paused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("during the pause: {hits} hits, {misses} misses, {early} calls before detection");
    assert!(hits >= 9 && misses >= 3, "{hits} hits, {misses} misses");
    single_waits.check();
    batch_waits.check();

    // An invalidation during the pause: its write waits out the timeout, and the entry is
    // never served again, during the pause or after it.
    let started = Instant::now();
    assert_eq!(write_item(cache, &source, 2).await, 1);
    assert!(started.elapsed() <= TIMEOUT + SLACK);
    assert_eq!(timed_item(cache, &source, 2).await.0, (2, 1));

    // After the pause: normal operation.
    tokio::time::sleep((paused_at + PAUSE + SLACK).saturating_duration_since(Instant::now())).await;
    support::eventually(Duration::from_secs(5), "hits never came back", || {
        let source = &source;
        async move { timed_item(cache, source, 1).await.1 == Some(Outcome::Hit) }
    })
    .await;
    assert_eq!(
        timed_item(cache, &source, 2).await.0,
        (2, 1),
        "the invalidated entry is not served"
    );
    let fresh = fresh + 1;
    assert_eq!(
        timed_item(cache, &source, fresh).await.1,
        Some(Outcome::Miss)
    );
    assert_eq!(
        timed_item(cache, &source, fresh).await.1,
        Some(Outcome::Hit)
    );
    assert!(paused.stored(fresh).await);
    let fresh = fresh + 1;
    assert_eq!(timed_items(cache, &source, &[1, fresh]).await, 1);
    assert_eq!(timed_items(cache, &source, &[1, fresh]).await, 0);
    assert!(
        paused.stored(fresh).await,
        "batches store again after the pause"
    );
}

#[tokio::test]
async fn while_writes_are_paused_stored_entries_stay_hits_and_misses_return_unstored() {
    let server = RedisServer::start();
    let cache = cache_on(&server).await;
    serves_through_a_pause(&cache, &Single(server)).await;
}

#[tokio::test]
async fn on_a_cluster_a_paused_primary_keeps_serving_hits() {
    let cluster = support::shared_cluster();
    let prefix = support::unique_prefix("paused");
    let cache = Cache::builder(&cluster.url())
        .prefix(prefix.clone())
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("the cluster answers");
    serves_through_a_pause(&cache, &Cluster { cluster, prefix }).await;
}

/// Batches alone see a pause: the first batch's lookup waits out the timeout (its ids run
/// the body), and from then on batches read: stored ids are hits and new ids are not stored.
/// None waits for the timeout again, not even for an entry it cannot decode (which it would
/// take over outside a pause). After the pause, batches store again.
#[tokio::test]
async fn batches_alone_detect_a_pause_read_through_it_and_store_after_it() {
    let server = RedisServer::start();
    let cache = cache_on(&server).await;
    let source = Versions::default();
    assert_eq!(timed_items(&cache, &source, &[1, 2, 3]).await, 3);
    assert_eq!(timed_items(&cache, &source, &[1, 2, 3]).await, 0);
    let mut redis = server.connection().await;
    write_undecodable(&mut redis, "item:5").await;
    let paused_at = pause_writes(&mut redis).await;
    // The first batch after the pause began may wait out the timeout.
    timed_items(&cache, &source, &[1, 2, 3]).await;
    let mut waits = Waits::default();
    for fresh in 10.. {
        if paused_at.elapsed() >= PAUSE - SLACK {
            break;
        }
        let (asked, took) = items_took(&cache, &source, &[1, 2, 3, 5, fresh]).await;
        assert_eq!(
            asked,
            2,
            "a batch {:?} into the pause asks for 5 and {fresh}",
            paused_at.elapsed()
        );
        waits.record(took);
        assert!(
            !Single::stored_in(&server, fresh).await,
            "nothing is stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waits.check();

    tokio::time::sleep((paused_at + PAUSE + SLACK).saturating_duration_since(Instant::now())).await;
    support::eventually(Duration::from_secs(5), "batches never stored again", || {
        let (cache, source) = (&cache, &source);
        async move { timed_items(cache, source, &[1, 100]).await == 0 }
    })
    .await;
    assert!(Single::stored_in(&server, 100).await);
    assert_eq!(
        timed_items(&cache, &source, &[1, 5]).await,
        1,
        "5 taken over"
    );
    assert_eq!(timed_items(&cache, &source, &[1, 5]).await, 0, "and stored");
}
