//! Faults: the application never notices Redis failing, except in speed. A real
//! redis-server is killed, frozen and restarted while calls run concurrently; every call
//! returns the right value, latency stays bounded, and caching comes back after recovery.

mod harness;
mod support;

use harness::RedisServer;
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(100);
const BODY: Duration = Duration::from_millis(2);

/// The source of truth: version `n` of every item, bumped by writes.
static VERSION: AtomicU64 = AtomicU64::new(0);

#[redis_cached(key = "fault:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> (u64, u64) {
    tokio::time::sleep(BODY).await;
    (id, VERSION.load(Ordering::SeqCst))
}

#[invalidates("fault:<id>", cache = cache)]
async fn write(cache: &Cache, id: u64) {
    VERSION.fetch_add(1, Ordering::SeqCst);
}

async fn cache_for(server: &RedisServer) -> Cache {
    Cache::builder(&server.url())
        .timeout(TIMEOUT)
        .lazy(true)
        .build()
        .await
        .expect("a valid URL")
}

/// Calls from 16 tasks until `stop`; returns each call's latency. Panics on a wrong value.
fn load(cache: &Cache, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Duration>>> {
    (0..16)
        .map(|task| {
            let (cache, stop) = (cache.clone(), stop.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = task;
                while !stop.load(Ordering::Relaxed) {
                    let id = n % 20;
                    n += 1;
                    let started = Instant::now();
                    let (got, _) = read(&cache, id).await;
                    latencies.push(started.elapsed());
                    assert_eq!(got, id, "a call returned another key's value");
                }
                latencies
            })
        })
        .collect()
}

async fn p99(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> (usize, Duration) {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("no call panics"));
    }
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    (all.len(), p99)
}

/// Waits until a repeated call is served from the cache; returns how long that took.
async fn time_to_first_hit(cache: &Cache) -> Duration {
    let started = Instant::now();
    loop {
        if with_outcome(read(cache, 999)).await.1 == Some(Outcome::Hit) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "caching never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn under_fault(fault: impl AsyncFnOnce(&mut RedisServer)) {
    let mut server = RedisServer::start();
    let cache = cache_for(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&cache, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fault(&mut server).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (calls, p99) = p99(tasks).await;
    let recovery = time_to_first_hit(&cache).await;
    eprintln!("{calls} calls, p99 {p99:?}, first hit {recovery:?} after recovery");
    // Generous bounds: a lookup and a store may each run into the timeout.
    assert!(
        p99 <= 2 * TIMEOUT + BODY + Duration::from_millis(100),
        "p99 {p99:?}"
    );
    assert!(
        recovery <= Duration::from_secs(2),
        "caching came back after {recovery:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_on_the_same_port() {
    under_fault(async |server: &mut RedisServer| {
        server.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.restart();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_frozen_then_resumed() {
    under_fault(async |server: &mut RedisServer| {
        server.signal("STOP");
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.signal("CONT");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_trips_the_breaker_so_calls_stop_waiting_for_the_timeout() {
    let mut server = RedisServer::start();
    let cache = cache_for(&server).await;
    server.kill();
    for id in 0..5 {
        read(&cache, id).await;
    }
    assert!(cache.is_degraded());
    let started = Instant::now();
    for id in 0..50 {
        assert_eq!(read(&cache, id).await.0, id);
    }
    // 50 calls cost far less than 50 timeouts: the breaker skips Redis.
    assert!(started.elapsed() < 10 * TIMEOUT, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidations_made_while_redis_is_frozen_are_applied_before_reads_resume() {
    let server = RedisServer::start();
    let cache = cache_for(&server).await;
    let before = read(&cache, 7).await.1;
    assert_eq!(with_outcome(read(&cache, 7)).await.1, Some(Outcome::Hit));

    // Frozen, not dead: the stale entry is still in Redis when it comes back.
    server.signal("STOP");
    write(&cache, 7).await;
    let during = read(&cache, 7).await.1;
    assert!(during > before, "served the stale value during the outage");
    server.signal("CONT");

    // Right after recovery and until the deferred delete lands, no read may be stale.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let (_, version) = read(&cache, 7).await;
        assert!(version > before, "served the stale entry after the outage");
    }
    let mut redis = server.connection().await;
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg("fault:7")
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_ne!(
        stored.as_deref().map(support::untrailed),
        Some(format!("[7,{before}]").as_bytes()),
        "the stale entry survived"
    );
}

#[tokio::test]
async fn writes_refused_for_lack_of_memory_are_failed_writes_not_an_outage() {
    let server = RedisServer::start_with(&["--maxmemory", "1", "--maxmemory-policy", "noeviction"]);
    let cache = cache_for(&server).await;
    for _ in 0..10 {
        assert_eq!(read(&cache, 3).await.0, 3);
    }
    assert!(
        !cache.is_degraded(),
        "OOM replies are not connection failures"
    );
}

#[tokio::test]
async fn a_read_only_replica_serves_calls_without_failing_them() {
    let primary = RedisServer::start();
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    let cache = cache_for(&replica).await;
    for _ in 0..10 {
        assert_eq!(read(&cache, 4).await.0, 4);
    }
    assert!(
        !cache.is_degraded(),
        "READONLY replies are not connection failures"
    );
}
