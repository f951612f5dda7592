//! The lost invalidation, made deterministic (SCALE-OUT-NOTES §8), on a cluster and behind
//! Sentinel: the replica is paused (SIGSTOP) and its replication link closed by the primary
//! (a paused replica still receives the stream into its socket buffer: pausing alone loses
//! nothing), an invalidation goes through the cache, the primary is killed before the
//! replica had it (SIGKILL), and the replica, continued, is promoted with the old value.
//!
//! With no guard (`replay_window(0)`, the control) the old value is read back after the
//! invalidation returned, for good. By default the cache sees the promotion (a new run id),
//! applies its recent invalidations again, and the reads end on the new value; how long
//! the old one was read first is printed: the window that remains. With
//! `replicated_invalidation`, the invalidation's `WAIT` falls short, the key stays pending,
//! this process never reads the old value, and the deletion is applied again on the
//! promoted node.
//!
//! Its own file: its own topologies; one test at a time (`SERIAL`).

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

/// How the cache guards against a lost invalidation.
#[derive(Clone, Copy)]
enum Guard {
    /// Nothing: the journal is off (`replay_window(0)`).
    Nothing,
    /// The default: recent invalidations applied again once the cache sees the failover.
    Replay,
    /// `replicated_invalidation`: a replica must confirm each one.
    Replicated,
}

fn configured(builder: CacheBuilder, guard: Guard) -> CacheBuilder {
    let builder = builder
        .prefix(support::unique_prefix("lost"))
        .timeout(Duration::from_millis(500));
    match guard {
        Guard::Nothing => builder.replay_window(Duration::ZERO),
        Guard::Replay => builder,
        Guard::Replicated => builder
            .replay_window(Duration::ZERO)
            .replicated_invalidation(1, WAIT_TIMEOUT),
    }
}

/// What the reads after the invalidation saw, in order, and when the last read of the old
/// value was after the promotion.
struct Reads(Vec<((u64, u64), Option<Outcome>)>, Option<Duration>);

impl Reads {
    fn stale(&self) -> usize {
        self.0
            .iter()
            .filter(|((_, version), _)| *version == 0)
            .count()
    }

    /// The old value, if read at all, only before the cache saw the promotion: lookups read
    /// nothing between seeing it and the end of the replay.
    fn assert_old_only_at_first(&self) {
        assert!(
            self.1.is_none_or(|last| last < Duration::from_millis(100)),
            "the old value was read {:?} after the promotion: {:?}",
            self.1,
            self.0
        );
    }

    /// Whether the last read was a hit on the new value.
    fn ends_fresh(&self) -> bool {
        self.0.last() == Some(&((1, 1), Some(Outcome::Hit)))
    }
}

/// The scenario on any topology: `pause_replica` (which also cuts its link),
/// `kill_primary_promote_replica` (which
/// returns once the replica is the primary) and `exists_on_primary` (whether the key is
/// on the current primary) act on it. Returns the reads made after the invalidation, until
/// a hit on the new value, 2 s after the old value was first read back, or 5 s after the
/// key was seen deleted on the new primary.
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
    // Until a hit on the new value, or 2 s after the first read of the old one (which a
    // replay would have ended well before).
    let mut first_stale: Option<Duration> = None;
    let mut last_stale: Option<Duration> = None;
    let mut deleted_after = None;
    loop {
        let read = with_outcome(item(&cache, &source, 1)).await;
        reads.push(read);
        if read.0.1 == 0 {
            first_stale.get_or_insert(promoted.elapsed());
            last_stale = Some(promoted.elapsed());
        }
        if read == ((1, 1), Some(Outcome::Hit)) {
            break;
        }
        if first_stale.is_some_and(|first| promoted.elapsed() > first + Duration::from_secs(2)) {
            break;
        }
        // A pending key (replicated invalidation, with no replica left to confirm) stays a
        // miss here: 5 s after its deletion on the new primary is enough to see no old read.
        if deleted_after.is_none() && !exists_on_primary(key.clone()).await {
            deleted_after = Some(promoted.elapsed());
        }
        if deleted_after.is_some_and(|after| promoted.elapsed() > after + Duration::from_secs(5)) {
            break;
        }
        assert!(
            promoted.elapsed() < Duration::from_secs(20),
            "neither a hit on the new value nor the old one read back: {reads:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "reads after the invalidation (value, outcome): {reads:?}; the old value was read \
         from {first_stale:?} to {last_stale:?} after the promotion; the key was first seen \
         absent on the promoted node {deleted_after:?} after it"
    );
    Reads(reads, last_stale)
}

async fn on_cluster(guard: Guard) -> Reads {
    let cluster = RedisCluster::start();
    let cache = configured(Cache::builder(&cluster.url()), guard)
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

async fn behind_sentinel(guard: Guard) -> Reads {
    let setup = RedisSentinel::start();
    let cache = configured(Cache::builder(&setup.url()), guard)
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

/// `test`: the scenario on a topology (`on_cluster` or `behind_sentinel`) with `guard`, and
/// what `guard` promises of its reads: with none, the old value read back for good; with
/// the replay, the new value in the end, the old one only before the cache saw the
/// promotion; with the replicated invalidation, the old value never read.
async fn guard_holds<Scenario>(test: &str, on: impl FnOnce(Guard) -> Scenario, guard: Guard)
where
    Scenario: Future<Output = Reads>,
{
    let Some(_serial) = support::first_pass_only(&SERIAL, test).await else {
        return;
    };
    let reads = on(guard).await;
    match guard {
        Guard::Nothing => assert!(
            reads.stale() > 0 && !reads.ends_fresh(),
            "the promoted replica never served the invalidated value: {:?}",
            reads.0
        ),
        Guard::Replay => {
            assert!(reads.ends_fresh(), "the old value stayed: {:?}", reads.0);
            reads.assert_old_only_at_first();
        }
        Guard::Replicated => assert_eq!(reads.stale(), 0, "{:?}", reads.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_without_any_guard_reads_the_old_value_back() {
    guard_holds(
        "cluster_without_any_guard_reads_the_old_value_back",
        on_cluster,
        Guard::Nothing,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_applies_the_lost_invalidation_again_on_the_promoted_replica() {
    guard_holds(
        "cluster_applies_the_lost_invalidation_again_on_the_promoted_replica",
        on_cluster,
        Guard::Replay,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_with_replicated_invalidation_never_reads_the_old_value() {
    guard_holds(
        "cluster_with_replicated_invalidation_never_reads_the_old_value",
        on_cluster,
        Guard::Replicated,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_without_any_guard_reads_the_old_value_back() {
    guard_holds(
        "sentinel_without_any_guard_reads_the_old_value_back",
        behind_sentinel,
        Guard::Nothing,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_applies_the_lost_invalidation_again_on_the_promoted_replica() {
    guard_holds(
        "sentinel_applies_the_lost_invalidation_again_on_the_promoted_replica",
        behind_sentinel,
        Guard::Replay,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_with_replicated_invalidation_never_reads_the_old_value() {
    guard_holds(
        "sentinel_with_replicated_invalidation_never_reads_the_old_value",
        behind_sentinel,
        Guard::Replicated,
    )
    .await;
}
