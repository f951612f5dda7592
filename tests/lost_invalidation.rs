//! The lost invalidation, made deterministic (SCALE-OUT-NOTES §8), on a cluster and behind
//! Sentinel: the replica is paused (SIGSTOP) and its replication link closed by the primary
//! (a paused replica still receives the stream into its socket buffer: pausing alone loses
//! nothing), an invalidation goes through the cache, the primary is killed before the
//! replica had it (SIGKILL), and the replica, continued, is promoted with the old value.
//!
//! Without `replicated_invalidation` the old value is read back after the invalidation
//! returned (printed: the hazard the topologies guide states). With it, the invalidation's `WAIT`
//! falls short, the key stays pending, this process never reads the old value, and the
//! deletion is applied again on the promoted node.
//!
//! Its own file: `replicated_invalidation` is new API, and its own topologies; one test at
//! a time (`SERIAL`).

mod harness;
mod support;

use harness::cluster::RedisCluster;
use harness::sentinel::RedisSentinel;
use redis_cached::{Cache, CacheBuilder, Outcome, with_outcome};
use std::future::Future;
use std::time::{Duration, Instant};
use support::{Versions, item, write_item};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the replicated invalidation waits for the replica's acknowledgement.
const WAIT_TIMEOUT: Duration = Duration::from_millis(200);

fn configured(builder: CacheBuilder, replicated: bool) -> CacheBuilder {
    let builder = builder
        .prefix(support::unique_prefix("lost"))
        .timeout(Duration::from_millis(500));
    if replicated {
        builder.replicated_invalidation(1, WAIT_TIMEOUT)
    } else {
        builder
    }
}

/// What the reads after the invalidation saw, in order.
struct Reads(Vec<((u64, u64), Option<Outcome>)>);

impl Reads {
    fn stale(&self) -> usize {
        self.0
            .iter()
            .filter(|((_, version), _)| *version == 0)
            .count()
    }
}

/// The scenario on any topology: `pause_replica` (which also cuts its link),
/// `kill_primary_promote_replica` (which
/// returns once the replica is the primary) and `exists_on_primary` (whether the key is
/// on the current primary) act on it. Returns the reads made after the invalidation, until
/// the key was a hit again, or (for a pending key) deleted on the new primary and 5 s more.
async fn lost_invalidation<Pause, Promote, PromoteFut, Exists, ExistsFut>(
    cache: Cache,
    wait_replicated: impl Future<Output = Duration>,
    pause_replica: Pause,
    kill_primary_promote_replica: Promote,
    exists_on_primary: Exists,
) -> Reads
where
    Pause: FnOnce(),
    Promote: FnOnce() -> PromoteFut,
    PromoteFut: Future<Output = ()>,
    Exists: Fn(String) -> ExistsFut,
    ExistsFut: Future<Output = bool>,
{
    let source = Versions::default();
    let key = format!("{}item:1", cache.prefix());
    assert_eq!(item(&cache, &source, 1).await, (1, 0));
    assert_eq!(
        with_outcome(item(&cache, &source, 1)).await,
        ((1, 0), Some(Outcome::Hit))
    );
    wait_replicated.await;

    pause_replica();
    let started = Instant::now();
    write_item(&cache, &source, 1).await;
    eprintln!("the invalidation returned after {:?}", started.elapsed());
    let mut reads = vec![with_outcome(item(&cache, &source, 1)).await];

    kill_primary_promote_replica().await;
    let promoted = Instant::now();
    let mut deleted_after = None;
    loop {
        let read = with_outcome(item(&cache, &source, 1)).await;
        reads.push(read);
        if read.1 == Some(Outcome::Hit) {
            break;
        }
        if deleted_after.is_none() && !exists_on_primary(key.clone()).await {
            deleted_after = Some(promoted.elapsed());
        }
        if deleted_after.is_some_and(|after| promoted.elapsed() > after + Duration::from_secs(5)) {
            break;
        }
        assert!(
            promoted.elapsed() < Duration::from_secs(20),
            "neither a hit nor the deletion on the promoted node: {reads:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if deleted_after.is_none() && !exists_on_primary(key.clone()).await {
        deleted_after = Some(promoted.elapsed());
    }
    eprintln!(
        "reads after the invalidation (value, outcome): {reads:?}; the key was deleted on the \
         promoted node {deleted_after:?} after the promotion"
    );
    Reads(reads)
}

async fn on_cluster(replicated: bool) -> Reads {
    let cluster = RedisCluster::start();
    let cache = configured(Cache::builder(&cluster.url()), replicated)
        .build()
        .await
        .expect("the cluster answers");
    let key = format!("{}item:1", cache.prefix());
    let primary = cluster.primary_for(&key);
    let replica = cluster.replica_of(primary);
    let cluster = &cluster;
    lost_invalidation(
        cache,
        cluster.wait_replicated(primary, Duration::from_secs(5)),
        || {
            cluster.stop(replica);
            cluster.disconnect_replicas(primary);
        },
        || async move {
            cluster.kill(primary);
            cluster.cont(replica);
            cluster.failover_takeover(replica);
            let promoted = cluster
                .wait_promoted(replica, Duration::from_secs(20))
                .await;
            eprintln!("cluster: the continued replica took over in {promoted:?}");
        },
        |key| async move { cluster.exists(&key).await },
    )
    .await
}

async fn behind_sentinel(replicated: bool) -> Reads {
    let setup = RedisSentinel::start();
    let cache = configured(Cache::builder(&setup.url()), replicated)
        .build()
        .await
        .expect("the sentinels name a primary");
    let setup = &setup;
    lost_invalidation(
        cache,
        setup.wait_replicated(Duration::from_secs(5)),
        || {
            setup.replica().stop();
            setup.disconnect_replica();
        },
        || async move {
            setup.kill_primary();
            setup.replica().cont();
            setup.failover().await;
            let switched = setup.wait_new_primary(Duration::from_secs(20)).await;
            eprintln!("sentinel: the continued replica was promoted in {switched:?}");
        },
        |key| async move {
            let exists: u64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut setup.primary().connection().await)
                .await
                .expect("EXISTS on the new primary");
            exists == 1
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_without_replicated_invalidation_reads_the_old_value_back() {
    let _serial = SERIAL.lock().await;
    let reads = on_cluster(false).await;
    assert!(
        reads.stale() > 0,
        "the promoted replica never served the invalidated value: {:?}",
        reads.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_with_replicated_invalidation_never_reads_the_old_value() {
    let _serial = SERIAL.lock().await;
    let reads = on_cluster(true).await;
    assert_eq!(reads.stale(), 0, "{:?}", reads.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_without_replicated_invalidation_reads_the_old_value_back() {
    let _serial = SERIAL.lock().await;
    let reads = behind_sentinel(false).await;
    assert!(
        reads.stale() > 0,
        "the promoted replica never served the invalidated value: {:?}",
        reads.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_with_replicated_invalidation_never_reads_the_old_value() {
    let _serial = SERIAL.lock().await;
    let reads = behind_sentinel(true).await;
    assert_eq!(reads.stale(), 0, "{:?}", reads.0);
}
