//! Stampede protection: concurrent cold calls on one key run the body once, within one
//! process (single-flight), across `Cache` instances and across OS processes (fill leases),
//! and a lease holder that dies delays the others by at most its lease.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Body runs per id: each test uses ids of its own, so that tests running in parallel do
/// not count each other's runs.
static BODY_RUNS: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

fn body_runs(id: u64) -> usize {
    BODY_RUNS[id as usize].load(Ordering::SeqCst)
}

/// How long the body of a concurrent call takes: long enough that every caller's lookup is
/// answered (and finds the lease) before the fill lands, even on a loaded 2-core machine
/// where a thousand answers take a few hundred milliseconds to reach their tasks.
const BODY_MS: u64 = 1000;

/// A slow read, so that every concurrent call arrives while the first one is filling.
#[redis_cached(key = "stampede:<id>", ttl = 60, cache = cache)]
async fn slow_read(cache: &Cache, id: u64, delay_ms: u64) -> u64 {
    BODY_RUNS[id as usize].fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    id * 10
}

async fn concurrent_calls(caches: &[Cache], calls_per_cache: usize, id: u64) -> Vec<u64> {
    let mut tasks = Vec::new();
    for cache in caches {
        for _ in 0..calls_per_cache {
            let cache = cache.clone();
            tasks.push(tokio::spawn(
                async move { slow_read(&cache, id, BODY_MS).await },
            ));
        }
    }
    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.expect("no call panics"));
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_process_1000_cold_calls_run_the_body_once() {
    let server = harness::RedisServer::start();
    let cache = Cache::connect(&server.url()).await.expect("redis answers");
    // Warm up: the server learns the scripts on their first use.
    slow_read(&cache, 0, 0).await;
    let before = lookups(&server).await;
    let values = concurrent_calls(std::slice::from_ref(&cache), 1000, 1).await;
    assert!(values.iter().all(|&value| value == 10));
    assert_eq!(body_runs(1), 1);
    // Single-flight: the 999 callers that found the lease awaited the flight in this
    // process instead of polling Redis until the value appeared (each poll a lookup: with
    // the flights disabled, more than 20 per caller over the body's second). A caller whose
    // answer reaches it only after the flight landed looks once more (and hits).
    let lookups = lookups(&server).await - before;
    assert!(lookups <= 1000 + 200, "{lookups} lookups for 1000 calls");
}

/// How many lookups the server has run: `SET .. NX PX .. GET` (Redis 7.0 and later), or the
/// lookup script on older servers (which also counts fills).
async fn lookups(server: &harness::RedisServer) -> u64 {
    let calls = server.command_calls().await;
    ["set", "evalsha", "eval"]
        .iter()
        .filter_map(|name| calls.get(*name))
        .sum()
}

/// `count` caches sharing one prefix on the shared server, as separate processes would. A
/// lookup that timed out would run the body without the lease: these tests are about the
/// lease, so lookups get time even on a loaded machine.
async fn patient_caches(test: &str, count: usize) -> Vec<Cache> {
    let prefix = support::unique_prefix(test);
    let mut caches = Vec::new();
    for _ in 0..count {
        let cache = Cache::builder(harness::shared_url())
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(5))
            .build()
            .await
            .expect("redis answers");
        caches.push(cache);
    }
    caches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_caches_share_one_fill_through_the_lease() {
    let caches = patient_caches("cross-cache", 4).await;
    let values = concurrent_calls(&caches, 250, 2).await;
    assert!(values.iter().all(|&value| value == 20));
    assert_eq!(body_runs(2), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_leases_every_cache_instance_runs_the_body() {
    // The control: the same load with the protection off runs the body many times.
    let prefix = support::unique_prefix("no-leases");
    let mut caches = Vec::new();
    for _ in 0..4 {
        let cache = Cache::builder(harness::shared_url())
            .prefix(prefix.clone())
            .without_fill_leases()
            .build()
            .await
            .expect("redis answers");
        caches.push(cache);
    }
    concurrent_calls(&caches, 25, 3).await;
    assert!(body_runs(3) > 4);
}

/// Run by `four_processes_250_cold_calls_each_run_the_body_once` in child processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a child process of another test"]
async fn stampede_worker() {
    let (Ok(url), Ok(prefix), Ok(start_at)) = (
        std::env::var("STAMPEDE_URL"),
        std::env::var("STAMPEDE_PREFIX"),
        std::env::var("STAMPEDE_START_AT_MS"),
    ) else {
        return;
    };
    let cache = Cache::builder(&url)
        .prefix(prefix)
        .build()
        .await
        .expect("redis answers");
    // Start together with the other processes.
    let start_at: u128 = start_at.parse().expect("a time");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    if let Some(wait) = start_at.checked_sub(now.as_millis()) {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let values = concurrent_calls(&[cache], 250, 4).await;
    assert!(values.iter().all(|&value| value == 40));
    println!("BODY_RUNS={}", body_runs(4));
}

#[test]
fn four_processes_250_cold_calls_each_run_the_body_once() {
    let server = harness::RedisServer::start();
    let prefix = support::unique_prefix("processes");
    let start_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        + Duration::from_millis(1500);
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(std::env::current_exe().expect("the test binary"))
                .args(["--exact", "stampede_worker", "--ignored", "--nocapture"])
                .env("STAMPEDE_URL", server.url())
                .env("STAMPEDE_PREFIX", &prefix)
                .env("STAMPEDE_START_AT_MS", start_at.as_millis().to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("the test binary runs")
        })
        .collect();
    let mut total_runs = 0;
    for child in children {
        let output = child.wait_with_output().expect("the child finishes");
        assert!(output.status.success(), "a worker failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let runs: usize = stdout
            .lines()
            .find_map(|line| line.strip_prefix("BODY_RUNS="))
            .expect("the worker reports its body runs")
            .parse()
            .expect("a count");
        total_runs += runs;
    }
    assert_eq!(total_runs, 1, "4 processes x 250 cold calls");
}

/// Run by `a_killed_lease_holder_delays_others_by_at_most_its_lease`: takes the lease on
/// `stampede:5` and fills forever, until it is killed.
#[tokio::test]
#[ignore = "a child process of another test"]
async fn lease_holder_worker() {
    let (Ok(url), Ok(prefix)) = (
        std::env::var("STAMPEDE_URL"),
        std::env::var("STAMPEDE_PREFIX"),
    ) else {
        return;
    };
    let cache = Cache::builder(&url)
        .prefix(prefix)
        .fill_lease(HOLDER_LEASE)
        .build()
        .await
        .expect("redis answers");
    slow_read(&cache, 5, 600_000).await;
}

const HOLDER_LEASE: Duration = Duration::from_millis(1000);

#[tokio::test]
async fn a_killed_lease_holder_delays_others_by_at_most_its_lease() {
    let prefix = support::unique_prefix("dead-filler");
    let mut holder = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "lease_holder_worker", "--ignored"])
        .env("STAMPEDE_URL", harness::shared_url())
        .env("STAMPEDE_PREFIX", &prefix)
        .stdout(Stdio::null())
        .spawn()
        .expect("the test binary runs");
    let mut redis = harness::raw_connection().await;
    let key = format!("{prefix}stampede:5");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("redis");
        if held {
            break;
        }
        assert!(Instant::now() < deadline, "the holder never took the lease");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    holder.kill().expect("SIGKILL the holder");
    let _ = holder.wait();

    let survivor = Cache::builder(harness::shared_url())
        .prefix(prefix)
        .build()
        .await
        .expect("redis answers");
    let started = Instant::now();
    assert_eq!(slow_read(&survivor, 5, 0).await, 50);
    let waited = started.elapsed();
    assert_eq!(body_runs(5), 1);
    // Bounded by the holder's lease (plus one poll interval and scheduling slack).
    assert!(
        waited < HOLDER_LEASE + Duration::from_millis(500),
        "waited {waited:?} behind a dead filler with a {HOLDER_LEASE:?} lease"
    );
}

/// Callers that waited for another caller's fill say so: one `MISS`, the others
/// `COALESCED`, in one process (single-flight) and across caches (the lease in Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_report_coalesced_and_the_filler_miss() {
    let caches = patient_caches("coalesced", 2).await;
    let mut tasks = Vec::new();
    for cache in &caches {
        for _ in 0..10 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                with_outcome(slow_read(&cache, 6, 300)).await
            }));
        }
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        let (value, outcome) = task.await.expect("no call panics");
        assert_eq!(value, 60);
        outcomes.push(outcome);
    }
    let count = |wanted| {
        outcomes
            .iter()
            .filter(|&&outcome| outcome == Some(wanted))
            .count()
    };
    assert_eq!(body_runs(6), 1);
    assert_eq!(count(Outcome::Miss), 1, "{outcomes:?}");
    assert_eq!(count(Outcome::Coalesced), 19, "{outcomes:?}");
    let (_, outcome) = with_outcome(slow_read(&caches[1], 6, 300)).await;
    assert_eq!(outcome, Some(Outcome::Hit));
}
