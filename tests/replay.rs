//! Invalidations applied again when the servers beneath change (`CacheBuilder::replay_window`):
//! a server restarted from its snapshot (the dropped connection makes lookups wait for the
//! run id, so none reads an old entry), and a coordinated Sentinel failover under a writer
//! and a reader, as a user tries it. What they measure is printed (`--nocapture`).
//! `tests/lost_invalidation.rs` has the deterministic failover on a Cluster and behind
//! Sentinel.

mod harness;
mod support;

use harness::RedisServer;
use harness::sentinel::RedisSentinel;
use redis_cached::{Cache, CacheBuilder, Outcome, with_outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Versions, item, write_item};

/// One test at a time: they restart and fail over servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const KEYS: u64 = 10;

/// What concurrent readers saw: how many reads served an older version than the source's,
/// and when each was.
#[derive(Default)]
struct OldReads(std::sync::Mutex<Vec<Instant>>);

/// Reads every key through `cache` from `READERS` tasks until `stop`, recording the reads
/// of an older version than the source's in `old`.
const READERS: usize = 8;

fn read_concurrently(
    cache: &Cache,
    source: &Arc<Versions>,
    stop: &Arc<AtomicBool>,
    old: &Arc<OldReads>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..READERS)
        .map(|_| {
            let (cache, source, stop, old) =
                (cache.clone(), source.clone(), stop.clone(), old.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    for id in 0..KEYS {
                        let ((_, version), _) = with_outcome(item(&cache, &source, id)).await;
                        if version < source.current(id) {
                            old.0.lock().unwrap().push(Instant::now());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect()
}

/// Fills the keys, snapshots them (`SAVE`), invalidates them all, and restarts the server
/// from the snapshot (it comes back with the old entries) while readers read every key.
/// Returns the reads of the old values, and when the last one was after the restart.
async fn restarted_from_snapshot(
    configure: fn(CacheBuilder) -> CacheBuilder,
) -> (usize, Option<Duration>) {
    let mut server = RedisServer::start();
    let cache = configure(Cache::builder(&server.url()))
        .prefix(support::unique_prefix("restart"))
        .build()
        .await
        .expect("the server answers");
    let source = Arc::new(Versions::default());
    for id in 0..KEYS {
        item(&cache, &source, id).await;
    }
    let () = redis::cmd("SAVE")
        .query_async(&mut server.connection().await)
        .await
        .expect("SAVE");
    for id in 0..KEYS {
        write_item(&cache, &source, id).await;
    }
    let (stop, old) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(OldReads::default()),
    );
    let readers = read_concurrently(&cache, &source, &stop, &old);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let restarted = tokio::task::block_in_place(|| {
        server.kill();
        server.restart();
        Instant::now()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("a reader");
    }
    let old = old.0.lock().unwrap();
    let last = old
        .iter()
        .map(|at| at.saturating_duration_since(restarted))
        .max();
    eprintln!(
        "after the restart, under {READERS} readers: {} reads of an old value, the last \
         {last:?} after it",
        old.len()
    );
    (old.len(), last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_from_its_snapshot_serves_no_invalidated_entry() {
    let Some(_serial) = support::first_pass_only(
        &SERIAL,
        "a_server_restarted_from_its_snapshot_serves_no_invalidated_entry",
    )
    .await
    else {
        return;
    };
    let (old, last) = restarted_from_snapshot(|builder| builder).await;
    assert_eq!(
        old, 0,
        "old values read, the last {last:?} after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replay_window_a_restarted_server_serves_invalidated_entries() {
    let Some(_serial) = support::first_pass_only(
        &SERIAL,
        "without_a_replay_window_a_restarted_server_serves_invalidated_entries",
    )
    .await
    else {
        return;
    };
    let (old, last) =
        restarted_from_snapshot(|builder| builder.replay_window(Duration::ZERO)).await;
    assert!(
        last.is_some_and(|last| last > Duration::from_secs(2)),
        "the control: old values are served until their TTL ({old} reads, the last {last:?})"
    );
}

/// As a user tries it: two caches on one Sentinel-managed primary, a reader reading 50 keys
/// in a loop and a writer invalidating them while `SENTINEL FAILOVER` runs (the old
/// primary takes writes until the sentinels reconfigure it, which are lost). Once both
/// caches follow the new primary and a moment has passed, neither serves an old value; no
/// call takes longer than the time to see the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinated_sentinel_failover_leaves_no_invalidated_entry_served() {
    let Some(_serial) = support::first_pass_only(
        &SERIAL,
        "a_coordinated_sentinel_failover_leaves_no_invalidated_entry_served",
    )
    .await
    else {
        return;
    };
    const IDS: u64 = 50;
    let setup = RedisSentinel::start();
    let prefix = support::unique_prefix("coordinated");
    let open = || async {
        Cache::builder(&setup.url())
            .prefix(prefix.clone())
            .timeout(Duration::from_millis(200))
            .build()
            .await
            .expect("the sentinels name a primary")
    };
    let (writer, reader) = (open().await, open().await);
    let source = Arc::new(Versions::default());
    for id in 0..IDS {
        item(&reader, &source, id).await;
    }
    setup.wait_replicated(Duration::from_secs(5)).await;

    // The reader reads every key in a loop, timing each call.
    let stop = Arc::new(AtomicBool::new(false));
    let reading = tokio::spawn({
        let (reader, source, stop) = (reader.clone(), source.clone(), stop.clone());
        async move {
            let mut longest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                for id in 0..IDS {
                    let started = Instant::now();
                    item(&reader, &source, id).await;
                    longest = longest.max(started.elapsed());
                }
            }
            longest
        }
    });
    // The writer writes every key once, spread over the failover.
    let writing = tokio::spawn({
        let (writer, source) = (writer.clone(), source.clone());
        async move {
            let mut longest = Duration::ZERO;
            for id in 0..IDS {
                let started = Instant::now();
                write_item(&writer, &source, id).await;
                longest = longest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            longest
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    setup.failover().await;
    let switched = setup.wait_new_primary(Duration::from_secs(20)).await;
    let longest_write = writing.await.expect("the writer");
    // The time both caches take to see the switch and replay, with room.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let longest_read = reading.await.expect("the reader");

    let mut old = Vec::new();
    for (name, cache) in [("writer", &writer), ("reader", &reader)] {
        for id in 0..IDS {
            let ((_, version), outcome) = with_outcome(item(cache, &source, id)).await;
            if version < source.current(id) {
                old.push((name, id, outcome));
            }
        }
    }
    eprintln!(
        "SENTINEL FAILOVER switched in {switched:?}; longest read {longest_read:?}, longest \
         write {longest_write:?}; {} old values served 2 s later: {old:?}",
        old.len()
    );
    assert!(old.is_empty(), "old values served: {old:?}");
    let longest = longest_read.max(longest_write);
    assert!(
        longest < Duration::from_secs(2),
        "a call took {longest:?} against a 200 ms timeout"
    );
    assert_eq!(
        with_outcome(item(&reader, &source, 0)).await.1,
        Some(Outcome::Hit)
    );
}

/// A lease left by a fill that the restart lost (in the snapshot, its filler gone): a call
/// that finds it in the first lease after the restart takes the key over after a tenth of a
/// lease instead of waiting for it to lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_leftover_lease_is_taken_over_in_a_tenth_of_a_lease() {
    let Some(_serial) = support::first_pass_only(
        &SERIAL,
        "after_a_restart_a_leftover_lease_is_taken_over_in_a_tenth_of_a_lease",
    )
    .await
    else {
        return;
    };
    const LEASE: Duration = Duration::from_secs(20);
    let mut server = RedisServer::start();
    let prefix = support::unique_prefix("leftover");
    let open = || {
        Cache::builder(&server.url())
            .prefix(prefix.clone())
            .fill_lease(LEASE)
            .build()
    };
    let (filler, reader) = (open().await.expect("B"), open().await.expect("A"));
    let source = Arc::new(Versions::default());
    // The filler's body never ends in time: its lease is on the key.
    let filling = tokio::spawn({
        let (filler, source) = (filler.clone(), source.clone());
        async move { slow_item(&filler, &source, 1).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let () = redis::cmd("SAVE")
        .query_async(&mut server.connection().await)
        .await
        .expect("SAVE");
    // The filler goes (its lease released), then the restart brings its lease back.
    filling.abort();
    drop(filler);
    tokio::task::block_in_place(|| {
        server.kill();
        server.restart();
    });
    // The reader sees the restart (its run ids are read every second) before the call.
    let _ = with_outcome(item(&reader, &source, 2)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let (value, outcome) = with_outcome(slow_item(&reader, &source, 1)).await;
    let took = started.elapsed();
    eprintln!("the call on the leftover lease took {took:?} ({outcome:?})");
    assert_eq!(value, (1, 0));
    assert!(
        took < LEASE / 10 + Duration::from_secs(2),
        "waited {took:?} for a lease nobody keeps (a lease is {LEASE:?})"
    );
}

/// `item`, under another key, whose body takes a second.
#[redis_cached::redis_cached(key = "slow_item:<id>", ttl = 600, cache = cache)]
async fn slow_item(cache: &Cache, source: &Versions, id: u64) -> (u64, u64) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    (id, source.read(id))
}
