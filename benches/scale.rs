//! Scale-out and tags, measured side by side in one run (issues #12 and #15):
//!
//! 1. hit and miss throughput of 64 concurrent callers on one server, a 3-primary Redis
//!    Cluster and a Sentinel-managed primary, rounds interleaved;
//! 2. a hit's latency with 0, 1 and 3 tags against an untagged hit, interleaved call by call;
//! 3. invalidating one tag over 100,000 entries against deleting the same entries by
//!    `SCAN` + `UNLINK`: time, commands (round trips) and Redis's CPU time.
//!
//! `cargo bench --bench scale` measures and prints markdown tables; `cargo test --benches`
//! runs every part once at a tiny size. Servers are started here and stopped at the end.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::RedisServer;
use harness::cluster::RedisCluster;
use harness::sentinel::RedisSentinel;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, redis_cached};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[redis_cached(key = "user:<id>", ttl = 3600, cache = cache)]
async fn user(cache: &Cache, id: u64) -> String {
    format!("{{\"id\":{id},\"name\":\"user {id}\",\"email\":\"user{id}@example.com\"}}")
}

#[redis_cached(key = "tag0:<id>", ttl = 3600, cache = cache)]
async fn untagged(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "tag1:<id>", ttl = 3600, cache = cache, tags = ["a"])]
async fn one_tag(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "tag3:<id>", ttl = 3600, cache = cache, tags = ["a", "b:<id>", "c"])]
async fn three_tags(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "bulk:<id>", ttl = 3600, cache = cache, tags = ["bulk"])]
async fn bulk(cache: &Cache, id: u64) -> u64 {
    id
}

/// How big a run is: `cargo bench` measures, `cargo test --benches` only exercises.
struct Size {
    rounds: usize,
    window: Duration,
    callers: u64,
    latency_calls: usize,
    entries: u64,
}

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let size = if measuring {
        Size {
            rounds: 3,
            window: Duration::from_secs(3),
            callers: 64,
            latency_calls: 3000,
            entries: 100_000,
        }
    } else {
        Size {
            rounds: 1,
            window: Duration::from_millis(100),
            callers: 4,
            latency_calls: 10,
            entries: 200,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let single = RedisServer::start();
    let cluster = RedisCluster::start();
    let sentinel = RedisSentinel::start();
    runtime.block_on(async {
        let single_url = single.url();
        let topologies = [
            ("one server", single_url.as_str()),
            ("cluster, 3 primaries", &cluster.url()),
            ("sentinel", &sentinel.url()),
        ];
        throughput(&topologies, &size).await;
        tag_latency(&single_url, &size).await;
        tag_invalidation(&single, &size).await;
    });
}

/// Calls per second of `callers` tasks running `op` for `window`.
async fn rate<F, Fut>(callers: u64, window: Duration, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (op, stop, done) = (op.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    op(caller + n).await;
                    n += 1;
                }
                done.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

async fn throughput(topologies: &[(&str, &str)], size: &Size) {
    let mut caches = Vec::new();
    for (name, url) in topologies {
        let cache = Cache::builder(url)
            .prefix("bench:")
            .timeout(Duration::from_secs(1))
            .build()
            .await
            .expect("connects");
        // 100 hot ids, warm.
        for id in 0..100 {
            user(&cache, id).await;
        }
        caches.push((*name, cache));
    }
    let mut hits: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut misses: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..size.rounds {
        // Who goes first rotates with the round.
        for index in 0..caches.len() {
            let (name, cache) = &caches[(index + round) % caches.len()];
            let hot = cache.clone();
            let hit_rate = rate(size.callers, size.window, move |n| {
                let cache = hot.clone();
                async move {
                    black_box(user(&cache, n % 100).await);
                }
            })
            .await;
            let cold = cache.clone();
            let miss_rate = rate(size.callers, size.window, move |_| {
                let cache = cold.clone();
                async move {
                    // Ids no call used before: each is a lookup, the body and a fill.
                    static FRESH: AtomicU64 = AtomicU64::new(1_000);
                    let id = FRESH.fetch_add(1, Ordering::Relaxed);
                    black_box(user(&cache, id).await);
                }
            })
            .await;
            hits.entry(name).or_default().push(hit_rate);
            misses.entry(name).or_default().push(miss_rate);
        }
    }
    println!(
        "\n#### Throughput, {} concurrent callers, medians of {} interleaved rounds of {:?}\n",
        size.callers, size.rounds, size.window
    );
    println!("| store | hits/s | relative | misses/s | relative |");
    println!("|---|--:|--:|--:|--:|");
    let base_hits = median(hits[caches[0].0].clone());
    let base_misses = median(misses[caches[0].0].clone());
    for (name, _) in &caches {
        let (h, m) = (median(hits[name].clone()), median(misses[name].clone()));
        println!(
            "| {name} | {h:.0} | {:.2} | {m:.0} | {:.2} |",
            h / base_hits,
            m / base_misses
        );
    }
}

async fn tag_latency(url: &str, size: &Size) {
    let cache = Cache::builder(url)
        .prefix("tags:")
        .build()
        .await
        .expect("connects");
    untagged(&cache, 1).await;
    one_tag(&cache, 1).await;
    three_tags(&cache, 1).await;
    let mut times: [Vec<f64>; 3] = Default::default();
    for call in 0..size.latency_calls {
        for turn in 0..3 {
            let which = (turn + call) % 3;
            let started = Instant::now();
            match which {
                0 => black_box(untagged(&cache, 1).await),
                1 => black_box(one_tag(&cache, 1).await),
                _ => black_box(three_tags(&cache, 1).await),
            };
            times[which].push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    let [zero, one, three] = times.map(median);
    println!(
        "\n#### A hit's latency by number of tags (one server, {} interleaved calls each, medians)\n",
        size.latency_calls
    );
    println!("| tags | µs | relative to no tags |");
    println!("|--:|--:|--:|");
    for (tags, micros) in [(0, zero), (1, one), (3, three)] {
        println!("| {tags} | {micros:.1} | {:.2} |", micros / zero);
    }
}

/// Redis's own time (`INFO commandstats`, µs) and calls, summed over every command.
async fn redis_work(connection: &mut MultiplexedConnection) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .expect("INFO");
    let field = |line: &str, name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|part| part.strip_prefix(name))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    info.lines()
        .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info"))
        .fold((0, 0), |(usec, calls), line| {
            (usec + field(line, "usec="), calls + field(line, "calls="))
        })
}

async fn fill_bulk(cache: &Cache, entries: u64) {
    let cache = cache.clone();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (cache, next) = (cache.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= entries {
                        return;
                    }
                    bulk(&cache, id).await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

async fn tag_invalidation(server: &RedisServer, size: &Size) {
    let cache = Cache::builder(&server.url())
        .prefix("bulk:")
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("connects");
    let mut admin = server.connection().await;

    fill_bulk(&cache, size.entries).await;
    let before = redis_work(&mut admin).await;
    let started = Instant::now();
    cache.invalidate_tags(&["bulk"]).await.expect("invalidated");
    let tag_time = started.elapsed();
    let after = redis_work(&mut admin).await;
    let tag = (tag_time, after.1 - before.1, after.0 - before.0);
    // Every entry is a miss now (checked on a sample).
    for id in (0..size.entries).step_by((size.entries / 10).max(1) as usize) {
        let (_, outcome) = redis_cached::with_outcome(bulk(&cache, id)).await;
        assert_eq!(outcome, Some(redis_cached::Outcome::Miss));
    }

    fill_bulk(&cache, size.entries).await;
    let before = redis_work(&mut admin).await;
    let started = Instant::now();
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("bulk:bulk:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut admin)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut admin)
                .await
                .expect("UNLINK");
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let scan_time = started.elapsed();
    let after = redis_work(&mut admin).await;
    let scan = (scan_time, after.1 - before.1, after.0 - before.0);
    println!(
        "\n#### Invalidating {} entries (one server)\n",
        size.entries
    );
    println!("| how | time | commands (round trips) | Redis CPU |");
    println!("|---|--:|--:|--:|");
    for (how, (time, calls, usec)) in [
        ("`invalidate_tags([\"bulk\"])` (one tag)", tag),
        ("`SCAN MATCH .. COUNT 1000` + `UNLINK` per batch", scan),
    ] {
        println!("| {how} | {time:.2?} | {calls} | {usec} µs |");
    }
}
