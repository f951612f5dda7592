//! Tags: `#[redis_cached(tags = [...])]` entries, invalidated as a group by
//! `#[invalidates(tags = [...])]` and `Cache::invalidate_tags`, against a real redis-server
//! (and `mem://`, where the semantics carry over).

mod harness;
mod scenarios;
mod support;

use redis_cached::{Cache, Outcome, redis_cached};
use scenarios::tags::{Db, employee, outcome};

scenarios::scenario_tests!(tags, support::shared_builder);

/// A hit on a tagged entry is the lookup and one `MGET` of its tags, sent together: two
/// commands, one round trip, nothing written, no script.
#[tokio::test]
async fn a_tagged_hit_is_the_lookup_and_one_mget_of_its_tags() {
    let server = harness::RedisServer::start();
    let cache = Cache::connect(&server.url()).await.expect("connects");
    let db = Db::default();
    employee(&cache, &db, 7, 1).await;
    let mut admin = server.connection().await;
    // `SET .. NX GET`, or the script standing in for it before Redis 7.0.
    let lookup = harness::lookup_command(&mut admin).await;
    let before = harness::command_calls_on(&mut admin).await;
    assert_eq!(outcome(&cache, &db, 7, 1).await.1, Some(Outcome::Hit));
    let after = harness::command_calls_on(&mut admin).await;
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!((delta(lookup), delta("mget")), (1, 1), "{after:?}");
    let others = ["set", "evalsha", "unlink", "del", "pexpire"]
        .iter()
        .filter(|name| **name != lookup);
    assert_eq!(others.map(|name| delta(name)).sum::<u64>(), 0, "{after:?}");
}

/// While Redis refuses writes (`OOM` under `noeviction`), a tagged entry stays a hit: the
/// lookup's refused `SET .. NX GET` falls back to a `GET`, and its tags' versions, read in
/// the same pipeline, still stamp it. The breaker stays closed.
#[tokio::test]
async fn under_oom_a_tagged_entry_stays_a_hit() {
    let server = harness::RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let cache = Cache::connect(&server.url()).await.expect("connects");
    let db = Db::default();
    employee(&cache, &db, 7, 1).await;
    let mut admin = server.connection().await;
    harness::config_set(&mut admin, "maxmemory", "1").await;
    for _ in 0..3 {
        assert_eq!(
            outcome(&cache, &db, 7, 1).await,
            ("employee 1 v0".to_owned(), Some(Outcome::Hit))
        );
    }
    assert_eq!(db.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(!cache.is_degraded(), "refused writes are no outage");
}

/// As `employee`, with 600 bytes of padding, so that entries fill the server's memory.
#[redis_cached(key = "padded:<id>", ttl = 600, tags = ["department:<dept>", "employees"], cache = cache)]
async fn padded_employee(cache: &Cache, db: &Db, dept: u32, id: u64) -> String {
    format!("{} {}", db.name(id), "x".repeat(600))
}

/// Tag keys are versions, not counters: a tag key that is evicted (or expires, or is
/// deleted) is re-created with a new random version, so no entry stamped before is ever
/// served again. Here under `maxmemory` with `allkeys-lru`, which evicts tag keys and
/// entries alike while every department is rewritten.
#[tokio::test]
async fn evicted_tag_keys_never_resurrect_stale_entries() {
    let server = harness::RedisServer::start_with(&[
        "--maxmemory",
        "2mb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let cache = Cache::connect(&server.url()).await.expect("connects");
    let db = Db::default();
    let mut evicted_before = 0_u64;
    for round in 0..4_u64 {
        for id in 0..3_000_u64 {
            let dept = (id % 300) as u32;
            let name = padded_employee(&cache, &db, dept, id).await;
            let current = format!("employee {id} v{round} ");
            assert!(
                name.starts_with(&current),
                "a stale entry was served: {name:.20}"
            );
        }
        // Every department's data changes: all tags invalidated.
        db.write();
        cache
            .invalidate_tags(&["employees"])
            .await
            .expect("invalidated");
        evicted_before = evicted_keys(&server).await;
    }
    assert!(
        evicted_before > 0,
        "the server evicted nothing: the test did not test eviction"
    );
}

async fn evicted_keys(server: &harness::RedisServer) -> u64 {
    let mut admin = server.connection().await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut admin)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("evicted_keys:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// A fill makes its tag keys outlive the entry it stores.
#[tokio::test]
async fn tag_keys_outlive_their_entries() {
    let cache = support::redis_cache("tags_ttl").await;
    let db = Db::default();
    employee(&cache, &db, 7, 1).await;
    let tag = format!("{}\\@department:7", cache.prefix());
    let ttl = support::raw_ttl(&tag).await;
    assert!(ttl >= 600, "tag key TTL {ttl} s, entry 600 s");
}

/// Tagged entries are not kept by the near tier (an invalidated tag changes no entry's key,
/// so no push would evict them): another process's tag invalidation is seen at once.
#[tokio::test]
async fn tagged_entries_skip_the_near_tier() {
    let near =
        || support::shared_builder("tags_near").near_cache(redis_cached::NearCache::new(1 << 20));
    let reader = near().build().await.expect("connects");
    let writer = Cache::builder(harness::shared_url())
        .prefix(reader.prefix())
        .build()
        .await
        .expect("connects");
    let db = Db::default();
    employee(&reader, &db, 7, 1).await;
    assert_eq!(outcome(&reader, &db, 7, 1).await.1, Some(Outcome::Hit));
    db.write();
    writer
        .invalidate_tags(&["department:7"])
        .await
        .expect("invalidated");
    assert_eq!(
        outcome(&reader, &db, 7, 1).await,
        ("employee 1 v1".to_owned(), Some(Outcome::Miss))
    );
}

/// Reads `db`, then pauses: a fill during which a tag can be invalidated.
#[redis_cached(key = "slow_tagged:<id>", ttl = 600, tags = ["slow_tagged"], cache = cache)]
async fn slow_tagged(cache: &Cache, db: &Db, id: u64) -> String {
    let name = db.name(id);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    name
}

/// A call that starts after a tag's invalidation returned never joins a fill of this process
/// that read the source before it: the fill's lease is still on the key (a tag invalidation
/// deletes the tag key only), but the fill read the tag's old version.
#[tokio::test]
async fn a_call_after_a_tag_invalidation_never_joins_a_fill_that_read_before_it() {
    let cache = support::redis_cache("tag_join").await;
    let db = std::sync::Arc::new(Db::default());
    let first = tokio::spawn({
        let (cache, db) = (cache.clone(), db.clone());
        async move { slow_tagged(&cache, &db, 1).await }
    });
    // The first call has read version 0 and holds the lease.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    db.write();
    cache
        .invalidate_tags(&["slow_tagged"])
        .await
        .expect("invalidated");
    let (name, outcome) = redis_cached::with_outcome(slow_tagged(&cache, &db, 1)).await;
    assert_eq!(name, "employee 1 v1", "{outcome:?}");
    assert_eq!(first.await.expect("the first call"), "employee 1 v0");
}

/// The same while Redis is down: calls share one body run per key (a degraded flight), and
/// a call after a tag's invalidation (deferred: Redis is down) never joins a run that began
/// before it.
#[tokio::test]
async fn while_redis_is_down_a_call_after_a_tag_invalidation_never_joins_a_run_before_it() {
    let mut server = harness::RedisServer::start();
    let cache = Cache::builder(&server.url())
        .timeout(std::time::Duration::from_millis(100))
        .build()
        .await
        .expect("connects");
    server.kill();
    let db = std::sync::Arc::new(Db::default());
    let first = tokio::spawn({
        let (cache, db) = (cache.clone(), db.clone());
        async move { slow_tagged(&cache, &db, 1).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    db.write();
    let deferred = cache.invalidate_tags(&["slow_tagged"]).await;
    assert!(
        deferred.is_err(),
        "Redis is down: the invalidation is deferred"
    );
    let (name, outcome) = redis_cached::with_outcome(slow_tagged(&cache, &db, 1)).await;
    assert_eq!(name, "employee 1 v1", "{outcome:?}");
    assert_eq!(first.await.expect("the first call"), "employee 1 v0");
}
