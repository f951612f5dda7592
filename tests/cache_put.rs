//! `#[cache_put]`, the fenced write-through, against a real redis-server and a real Cluster:
//! a put stores its value (the next read is a hit), overlapping writes leave the key empty
//! rather than old, and writers racing readers over a versioned source of truth never leave
//! the cache older than the source.

mod harness;
mod support;

use redis_cached::{
    Cache, Outcome, cache_put, commit, invalidates, redis_cached, transaction, with_outcome,
};
use std::sync::Arc;
use std::time::Duration;
use support::{Versions, raw_exists};
use tokio::sync::Notify;

/// The reading side: `(id, version)` read from the source.
#[redis_cached(key = "record:<id>", ttl = 600, cache = cache)]
async fn record(cache: &Cache, source: &Versions, id: u64) -> (u64, u64) {
    let version = source.read(id);
    // A read that takes a while, so that writes overlap it.
    tokio::time::sleep(jitter(id)).await;
    (id, version)
}

/// A write of `id` that stores the new `(id, version)` under the reader's key; `hold` (if
/// any) is awaited after the source's write, before the put stores.
#[cache_put("record:<id>", ttl = 600, cache = cache)]
async fn write_record(
    cache: &Cache,
    source: &Versions,
    id: u64,
    hold: Option<Arc<Notify>>,
) -> (u64, u64) {
    tokio::time::sleep(jitter(id)).await;
    let version = source.write(id);
    if let Some(hold) = hold {
        hold.notified().await;
    }
    tokio::time::sleep(jitter(id + 1)).await;
    (id, version)
}

/// A write that fails after (perhaps) changing the source.
#[cache_put("record:<id>", ttl = 600, cache = cache)]
async fn failing_write(cache: &Cache, source: &Versions, id: u64) -> Result<(u64, u64), String> {
    source.write(id);
    Err("the commit's outcome is unknown".into())
}

/// The last record written, whichever id.
#[redis_cached(key = "latest_record", ttl = 600, cache = cache)]
async fn latest(cache: &Cache, source: &Versions) -> (u64, u64) {
    (u64::MAX, source.read(u64::MAX))
}

/// A write stored under two keys, in two hash slots on a Cluster.
#[cache_put("record:<id>", "latest_record", ttl = 600, cache = cache)]
async fn write_both(cache: &Cache, source: &Versions, id: u64) -> (u64, u64) {
    (id, source.write(id))
}

/// A write under two keys whose body reads its second one (the reader of "latest_record").
#[cache_put("record:<id>", "latest_record", ttl = 600, cache = cache)]
async fn write_reading_latest(cache: &Cache, source: &Versions, id: u64) -> (u64, u64) {
    let _ = latest(cache, source).await;
    (id, source.write(id))
}

/// Two templates that may render the same key.
#[cache_put("record:<id>", "record:<other>", ttl = 600, cache = cache)]
async fn write_twice(cache: &Cache, source: &Versions, id: u64, other: u64) -> (u64, u64) {
    let _ = other;
    (id, source.write(id))
}

/// A write whose body takes `took`.
#[cache_put("record:<id>", ttl = 600, cache = cache)]
async fn slow_write(cache: &Cache, source: &Versions, id: u64, took: Duration) -> (u64, u64) {
    tokio::time::sleep(took).await;
    (id, source.write(id))
}

#[invalidates("record:<id>", cache = cache)]
async fn invalidate_record(cache: &Cache, id: u64) {}

/// Up to 3 ms, varied per call.
fn jitter(seed: u64) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(seed);
    Duration::from_micros(random % 3_000)
}

fn key(cache: &Cache, id: u64) -> String {
    format!("{}record:{id}", cache.prefix())
}

#[tokio::test]
async fn a_put_stores_its_value_and_the_next_read_is_a_hit() {
    let cache = support::redis_cache("put-stores").await;
    let source = Versions::default();
    assert_eq!(record(&cache, &source, 1).await, (1, 0));
    assert_eq!(write_record(&cache, &source, 1, None).await, (1, 1));
    let reads = support::runs(&source.reads);
    let (read, outcome) = with_outcome(record(&cache, &source, 1)).await;
    assert_eq!(read, (1, 1), "the put's value is read back");
    assert_eq!(outcome, Some(Outcome::Hit));
    assert_eq!(
        support::runs(&source.reads),
        reads,
        "the source was not read"
    );
}

#[tokio::test]
async fn a_put_under_keys_in_two_hash_slots_stores_both_on_a_cluster() {
    let cache = support::cluster_cache("put-two-slots").await;
    let source = Versions::default();
    record(&cache, &source, 3).await;
    latest(&cache, &source).await;
    let written = write_both(&cache, &source, 3).await;
    let reads = support::runs(&source.reads);
    assert_eq!(
        with_outcome(record(&cache, &source, 3)).await,
        (written, Some(Outcome::Hit))
    );
    assert_eq!(
        with_outcome(latest(&cache, &source)).await,
        (written, Some(Outcome::Hit))
    );
    assert_eq!(support::runs(&source.reads), reads);
}

#[tokio::test]
async fn inside_a_memo_scope_a_put_makes_the_next_read_see_its_value() {
    let cache = support::redis_cache("put-memo").await;
    let source = Versions::default();
    redis_cached::memo(async {
        assert_eq!(record(&cache, &source, 8).await, (8, 0));
        let written = write_record(&cache, &source, 8, None).await;
        assert_eq!(
            record(&cache, &source, 8).await,
            written,
            "not the scope's old value"
        );
    })
    .await;
}

#[tokio::test]
async fn two_overlapping_puts_leave_the_key_empty() {
    let cache = support::redis_cache("put-overlap").await;
    let source = Versions::default();
    let hold = Arc::new(Notify::new());
    // The first writer takes its fence and writes the source, then waits; the second runs
    // from start to end meanwhile (its put stores, since its fence is the last).
    let first = tokio::spawn({
        let (cache, hold) = (cache.clone(), hold.clone());
        async move {
            let source = Versions::default();
            write_record(&cache, &source, 1, Some(hold)).await
        }
    });
    support::eventually(Duration::from_secs(5), "the first writer's fence", || {
        let key = key(&cache, 1);
        async move { raw_exists(&key).await }
    })
    .await;
    write_record(&cache, &source, 1, None).await;
    assert!(raw_exists(&key(&cache, 1)).await, "the second put stored");
    hold.notify_one();
    first.await.expect("the first writer finishes");
    assert!(
        !raw_exists(&key(&cache, 1)).await,
        "the first put found its fence gone and invalidated the key"
    );
}

#[tokio::test]
async fn an_invalidation_during_a_put_leaves_the_key_empty() {
    let cache = support::redis_cache("put-invalidated").await;
    let source = Arc::new(Versions::default());
    let hold = Arc::new(Notify::new());
    let writer = tokio::spawn({
        let (cache, source, hold) = (cache.clone(), source.clone(), hold.clone());
        async move { write_record(&cache, &source, 1, Some(hold)).await }
    });
    support::eventually(Duration::from_secs(5), "the writer's fence", || {
        let key = key(&cache, 1);
        async move { raw_exists(&key).await }
    })
    .await;
    invalidate_record(&cache, 1).await;
    hold.notify_one();
    writer.await.expect("the writer finishes");
    assert!(!raw_exists(&key(&cache, 1)).await);
    let (read, outcome) = with_outcome(record(&cache, &source, 1)).await;
    assert_eq!((read, outcome), ((1, 1), Some(Outcome::Miss)));
}

#[tokio::test]
async fn a_failed_put_invalidates_its_keys() {
    let cache = support::redis_cache("put-failed").await;
    let source = Versions::default();
    assert_eq!(record(&cache, &source, 1).await, (1, 0));
    assert!(failing_write(&cache, &source, 1).await.is_err());
    assert!(!raw_exists(&key(&cache, 1)).await, "the old value is gone");
    assert_eq!(record(&cache, &source, 1).await, (1, 1));
}

#[tokio::test]
async fn inside_a_transaction_the_put_waits_for_the_commit_and_a_rollback_invalidates() {
    let cache = support::redis_cache("put-transaction").await;
    let source = Versions::default();
    transaction(async {
        write_record(&cache, &source, 1, None).await;
        let held = support::raw_get(&key(&cache, 1)).await;
        assert!(
            held.is_some_and(|bytes| bytes.starts_with(&[0xC1, b'L'])),
            "before the commit the key holds the put's lease"
        );
        commit(async { Ok::<(), ()>(()) }).await.ok();
        let (read, outcome) = with_outcome(record(&cache, &source, 1)).await;
        assert_eq!((read, outcome), ((1, 1), Some(Outcome::Hit)));
    })
    .await;
    // A rollback: the scope ends without a commit.
    transaction(async {
        write_record(&cache, &source, 1, None).await;
    })
    .await;
    support::eventually(
        Duration::from_secs(5),
        "the rollback's invalidation",
        || {
            let key = key(&cache, 1);
            async move { !raw_exists(&key).await }
        },
    )
    .await;
}

#[tokio::test]
async fn after_a_failed_or_nested_commit_the_put_invalidates() {
    let cache = support::redis_cache("put-failed-commit").await;
    let source = Versions::default();
    record(&cache, &source, 1).await;
    // The commit fails: its outcome is unknown, so nothing is stored.
    let _ = transaction(async {
        write_record(&cache, &source, 1, None).await;
        commit(async { Err::<(), &str>("serialization failure") }).await
    })
    .await;
    assert!(
        !raw_exists(&key(&cache, 1)).await,
        "no value after a failed commit"
    );
    // An inner commit inside an open scope: the outer one may still roll back.
    transaction(async {
        transaction(async {
            write_record(&cache, &source, 1, None).await;
            commit(async { Ok::<(), ()>(()) }).await.ok();
        })
        .await;
        assert!(
            !raw_exists(&key(&cache, 1)).await,
            "no value before the outer commit"
        );
        commit(async { Ok::<(), ()>(()) }).await.ok();
    })
    .await;
}

#[tokio::test]
async fn a_body_reading_one_of_its_own_keys_does_not_wait_for_its_fence() {
    let cache = support::shared_builder("put-reads-own-key")
        .max_wait(Duration::from_secs(10))
        .build()
        .await
        .expect("redis answers");
    let source = Versions::default();
    let written = tokio::time::timeout(
        Duration::from_secs(2),
        write_reading_latest(&cache, &source, 4),
    )
    .await
    .expect("the body's read of its own key ran at once");
    assert_eq!(
        with_outcome(latest(&cache, &source)).await,
        (written, Some(Outcome::Hit))
    );
}

#[tokio::test]
async fn two_templates_rendering_one_key_store_it_once() {
    let cache = support::redis_cache("put-same-key").await;
    let source = Versions::default();
    let written = write_twice(&cache, &source, 5, 5).await;
    assert_eq!(
        with_outcome(record(&cache, &source, 5)).await,
        (written, Some(Outcome::Hit))
    );
}

#[tokio::test]
async fn a_body_outliving_its_lease_still_stores_and_readers_wait_for_it() {
    let cache = support::shared_builder("put-slow")
        .fill_lease(Duration::from_millis(300))
        .build()
        .await
        .expect("redis answers");
    let source = Arc::new(Versions::default());
    let writer = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { slow_write(&cache, &source, 6, Duration::from_millis(1200)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A reader in this process waits for the put's value rather than reading the source.
    let read = record(&cache, &source, 6).await;
    let written = writer.await.expect("the writer finishes");
    assert_eq!(read, written, "the reader got the put's value");
    assert_eq!(support::runs(&source.reads), 0, "the source was not read");
    assert_eq!(
        with_outcome(record(&cache, &source, 6)).await,
        (written, Some(Outcome::Hit))
    );
}

/// 16 writers (puts) and 16 readers on 4 keys, `rounds` times; after each round, a read of
/// each key returns the source's current version. Returns how many of those reads were older,
/// and how many were hits (a cache that stored nothing would be trivially fresh).
async fn race(cache: &Cache, rounds: usize) -> (usize, usize) {
    let source = Arc::new(Versions::default());
    let (mut older, mut hits) = (0, 0);
    for _ in 0..rounds {
        let mut tasks = Vec::new();
        for n in 0..32u64 {
            let (cache, source) = (cache.clone(), source.clone());
            let id = n % 4;
            tasks.push(tokio::spawn(async move {
                if n % 2 == 0 {
                    write_record(&cache, &source, id, None).await;
                } else {
                    record(&cache, &source, id).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("no task panics");
        }
        for id in 0..4 {
            let ((_, version), outcome) = with_outcome(record(cache, &source, id)).await;
            older += usize::from(version < source.current(id));
            hits += usize::from(outcome == Some(Outcome::Hit));
        }
    }
    (older, hits)
}

fn assert_fresh_and_cached((older, hits): (usize, usize), reads: usize) {
    eprintln!("{older} older of {reads} reads after the rounds, {hits} hits");
    assert_eq!(
        older, 0,
        "reads after a round returned an older version than the source's"
    );
    assert!(
        hits >= reads / 4,
        "too few hits ({hits} of {reads}): the puts stored little"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_and_readers_never_leave_an_older_version() {
    let cache = support::redis_cache("put-race").await;
    assert_fresh_and_cached(race(&cache, 40).await, 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_and_readers_never_leave_an_older_version_on_a_cluster() {
    let cache = support::cluster_cache("put-race-cluster").await;
    assert_fresh_and_cached(race(&cache, 60).await, 240);
}
