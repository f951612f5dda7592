//! The near cache: hits without a round trip, kept coherent across caches and processes by
//! Redis's tracking invalidations, flushed when the tracking connection drops, and never
//! outliving the Redis entry.

mod common;

use common::RedisServer;
use redis_cached::{Cache, NearCache, Outcome, invalidates, redis_cached, with_outcome};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The source of truth, shared by the caches of this process.
static VERSION: AtomicU64 = AtomicU64::new(0);

#[redis_cached(key = "near:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> u64 {
    VERSION.load(Ordering::SeqCst)
}

#[redis_cached(key = "near-short:<id>", ttl = 1, cache = cache)]
async fn read_short(cache: &Cache, id: u64) -> u64 {
    VERSION.load(Ordering::SeqCst)
}

#[redis_cached(key = "near-off:<id>", ttl = 60, cache = cache, near_cache = false)]
async fn read_remote_only(cache: &Cache, id: u64) -> u64 {
    VERSION.load(Ordering::SeqCst)
}

/// Held decoded in the near tier (an `Arc`, cloned cheaply on each hit).
#[redis_cached(key = "near-decoded:<id>", ttl = 60, cache = cache, near_cache = true)]
async fn read_decoded(cache: &Cache, id: u64) -> std::sync::Arc<Vec<u64>> {
    std::sync::Arc::new(vec![id, VERSION.load(Ordering::SeqCst)])
}

#[invalidates("near-decoded:<id>", cache = cache)]
async fn write_decoded(cache: &Cache, id: u64) -> u64 {
    VERSION.fetch_add(1, Ordering::SeqCst) + 1
}

#[invalidates("near:<id>", cache = cache)]
async fn write(cache: &Cache, id: u64) -> u64 {
    VERSION.fetch_add(1, Ordering::SeqCst) + 1
}

async fn near_cache(url: &str) -> Cache {
    Cache::builder(url)
        .near_cache(NearCache::new(1 << 20))
        .build()
        .await
        .expect("redis answers")
}

/// Commands the server has run so far (all kinds but what counting sends).
async fn commands(server: &RedisServer) -> u64 {
    server.command_calls().await.values().sum()
}

/// Waits until the tracking connection is up (a second read is then kept locally).
async fn warm(cache: &Cache, server: &RedisServer, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        read(cache, id).await;
        let before = commands(server).await;
        read(cache, id).await;
        if commands(server).await == before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the near cache never served a hit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_near_hit_costs_no_round_trip() {
    let server = RedisServer::start();
    let cache = near_cache(&server.url()).await;
    warm(&cache, &server, 1).await;
    let before = commands(&server).await;
    for _ in 0..100 {
        assert_eq!(with_outcome(read(&cache, 1)).await.1, Some(Outcome::Hit));
    }
    assert_eq!(commands(&server).await, before);

    // A function that opts out still goes to Redis every time.
    read_remote_only(&cache, 1).await;
    let before = commands(&server).await;
    read_remote_only(&cache, 1).await;
    assert!(commands(&server).await > before);
}

#[tokio::test]
async fn near_cache_true_holds_decoded_values_and_invalidations_evict_them() {
    let server = RedisServer::start();
    let cache = near_cache(&server.url()).await;
    let writer = Cache::connect(&server.url()).await.expect("redis");
    warm(&cache, &server, 7).await;
    let first = read_decoded(&cache, 7).await;
    read_decoded(&cache, 7).await; // from Redis, now held decoded
    let before = commands(&server).await;
    assert_eq!(read_decoded(&cache, 7).await, first);
    assert_eq!(commands(&server).await, before, "a near hit sends nothing");
    let version = write_decoded(&writer, 7).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while read_decoded(&cache, 7).await[1] < version {
        assert!(Instant::now() < deadline, "never evicted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_elsewhere_evicts_the_entry_and_the_window_is_short() {
    let server = RedisServer::start();
    let reader = near_cache(&server.url()).await;
    let writer = Cache::connect(&server.url()).await.expect("redis");
    warm(&reader, &server, 2).await;
    let mut windows = Vec::new();
    for _ in 0..200 {
        read(&reader, 2).await;
        read(&reader, 2).await; // now in the near tier
        let version = write(&writer, 2).await;
        let written = Instant::now();
        while read(&reader, 2).await < version {
            assert!(written.elapsed() < Duration::from_secs(2), "never evicted");
            tokio::task::yield_now().await;
        }
        windows.push(written.elapsed());
    }
    windows.sort();
    eprintln!(
        "staleness window after an invalidation elsewhere: p50 {:?}, p99 {:?}, max {:?}",
        windows[windows.len() / 2],
        windows[windows.len() * 99 / 100],
        windows[windows.len() - 1]
    );
}

#[tokio::test]
async fn the_writer_reads_its_own_write_at_once() {
    let server = RedisServer::start();
    let cache = near_cache(&server.url()).await;
    warm(&cache, &server, 3).await;
    let version = write(&cache, 3).await;
    assert_eq!(read(&cache, 3).await, version);
}

#[tokio::test]
async fn a_dropped_tracking_connection_flushes_the_near_cache() {
    let server = RedisServer::start();
    let cache = near_cache(&server.url()).await;
    warm(&cache, &server, 4).await;
    let mut redis = server.connection().await;
    // Kill the tracking connection only (flag `t`), not the one that reads data.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis)
        .await
        .expect("CLIENT LIST");
    let tracking_id = clients
        .lines()
        .find(|line| {
            line.split(' ')
                .any(|field| field.starts_with("flags=") && field.contains('t'))
        })
        .and_then(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .expect("a tracking connection")
        .to_owned();
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&tracking_id)
        .query_async(&mut redis)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Invalidations may have been missed: the tier must not serve what it held.
    let before = commands(&server).await;
    read(&cache, 4).await;
    assert!(
        commands(&server).await > before,
        "served from a near cache that lost tracking"
    );
    // And it comes back once tracking is re-established.
    warm(&cache, &server, 4).await;
}

#[tokio::test]
async fn an_entry_never_outlives_its_redis_ttl() {
    let server = RedisServer::start();
    let cache = near_cache(&server.url()).await;
    warm(&cache, &server, 5).await;
    read_short(&cache, 5).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    read_short(&cache, 5).await; // read from Redis with ~600 ms left, kept locally
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Past the Redis entry's expiry: the call must go to Redis (and miss).
    assert_eq!(
        with_outcome(read_short(&cache, 5)).await.1,
        Some(Outcome::Miss)
    );
}

/// Run by `an_invalidation_in_another_process_evicts_the_entry`: invalidates key 6 once.
#[tokio::test]
#[ignore = "a child process of another test"]
async fn near_writer_worker() {
    let Ok(url) = std::env::var("NEAR_URL") else {
        return;
    };
    let cache = Cache::connect(&url).await.expect("redis");
    VERSION.store(1000, Ordering::SeqCst);
    write(&cache, 6).await;
}

#[tokio::test]
async fn an_invalidation_in_another_process_evicts_the_entry() {
    let server = RedisServer::start();
    let cache = near_cache(&server.url()).await;
    warm(&cache, &server, 6).await;
    let stale = read(&cache, 6).await;
    VERSION.store(stale + 500, Ordering::SeqCst);
    let status = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "near_writer_worker", "--ignored"])
        .env("NEAR_URL", server.url())
        .stdout(Stdio::null())
        .status()
        .expect("the test binary runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(2);
    while read(&cache, 6).await == stale {
        assert!(
            Instant::now() < deadline,
            "the other process's invalidation never arrived"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
