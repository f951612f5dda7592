//! A batch function against what it replaces: 100 ids, 90 of them cached, read by
//! `#[redis_cached(batch = ids)]`, by 100 concurrent single `#[redis_cached]` calls, and by a
//! hand-written `MGET` + decode (+ one pipelined `SET` of the misses) on a
//! `ConnectionManager`, against a `redis-server` started here.
//!
//! `cargo bench --bench batch` measures; `cargo test --benches` runs each benchmark once.
//! Before each measured call, 10 of the 100 entries are deleted (not timed), so every call
//! finds 90 hits and 10 misses whose values it computes and stores.
//!
//! `REDIS_CACHED_COUNT_BATCH=<contender> REDIS_CACHED_ROUNDS=<n>` runs only `n` rounds of
//! one contender (`redis_cached_batch`, `hand_written_mget`, or `evict_only`: the deletions
//! alone, which every round makes), one after another on a current-thread runtime:
//! `scripts/instructions` counts two such runs under callgrind.

#[path = "../tests/harness/mod.rs"]
mod harness;

use criterion::Criterion;
use harness::RedisServer;
use redis::aio::ConnectionManager;
use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const IDS: u64 = 100;
const MISSES: u64 = 10;
const PREFIX: &str = "bench-batch:";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
    email: String,
    department: String,
    title: String,
}

fn employee(id: u64) -> Employee {
    Employee {
        id,
        name: format!("Employee Number {id}"),
        email: format!("employee.{id}@example.com"),
        department: "Engineering".into(),
        title: "Staff Engineer".into(),
    }
}

#[redis_cached(key = "batch:<ids>", ttl = 3600, batch = ids, cache = cache)]
async fn employees(cache: &Cache, ids: &[u64]) -> HashMap<u64, Employee> {
    ids.iter().map(|&id| (id, employee(id))).collect()
}

#[redis_cached(key = "single:<id>", ttl = 3600, cache = cache)]
async fn single(cache: &Cache, id: u64) -> Employee {
    employee(id)
}

/// 100 single calls at once, each a task.
async fn singles(cache: &Cache, ids: &[u64]) -> HashMap<u64, Employee> {
    let mut calls = tokio::task::JoinSet::new();
    for &id in ids {
        let cache = cache.clone();
        calls.spawn(async move { (id, single(&cache, id).await) });
    }
    calls.join_all().await.into_iter().collect()
}

/// The hand-written equivalent: one `MGET`, decode the hits, compute the misses and store
/// them in one pipeline (no leases: no protection against a racing invalidation).
async fn hand_written(redis: &ConnectionManager, ids: &[u64]) -> HashMap<u64, Employee> {
    let keys: Vec<String> = ids.iter().map(|id| format!("{PREFIX}hand:{id}")).collect();
    let mut connection = redis.clone();
    let read: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    let mut found = HashMap::with_capacity(ids.len());
    let mut pipe = redis::pipe();
    for ((&id, key), bytes) in ids.iter().zip(&keys).zip(read) {
        match bytes.and_then(|bytes| serde_json::from_slice::<Employee>(&bytes).ok()) {
            Some(value) => {
                found.insert(id, value);
            }
            None => {
                let value = employee(id);
                if let Ok(bytes) = serde_json::to_vec(&value) {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(bytes)
                        .arg("EX")
                        .arg(3600)
                        .ignore();
                }
                found.insert(id, value);
            }
        }
    }
    let _: Result<(), _> = pipe.query_async(&mut connection).await;
    found
}

/// Deletes the entries of the `round`'s 10 missing ids under `template` (`batch:`, ...).
async fn evict(redis: &ConnectionManager, template: &str, round: u64) {
    let first = (round * MISSES) % IDS;
    let keys: Vec<String> = (first..first + MISSES)
        .map(|id| format!("{PREFIX}{template}{id}"))
        .collect();
    let mut connection = redis.clone();
    let _: Result<(), _> = redis::cmd("UNLINK")
        .arg(keys)
        .query_async(&mut connection)
        .await;
}

/// One round of `contender`: the deletion of its 10 entries, then its call.
async fn round(contender: &str, (cache, redis): (&Cache, &ConnectionManager), n: u64, ids: &[u64]) {
    match contender {
        "redis_cached_batch" => {
            evict(redis, "batch:", n).await;
            black_box(employees(cache, ids).await);
        }
        "hand_written_mget" => {
            evict(redis, "hand:", n).await;
            black_box(hand_written(redis, ids).await);
        }
        "evict_only" => evict(redis, "none:", n).await,
        other => panic!("no contender {other:?}"),
    }
}

/// `REDIS_CACHED_COUNT_BATCH`: `REDIS_CACHED_ROUNDS` rounds of one contender, after one
/// round of warm-up (connections, scripts loaded, every entry stored).
fn count_rounds(contender: &str) {
    let rounds: u64 = std::env::var("REDIS_CACHED_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .expect("REDIS_CACHED_ROUNDS=<number of rounds>");
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (cache, redis) = connect(&server).await;
        let ids: Vec<u64> = (0..IDS).collect();
        for n in 0..=rounds {
            round(contender, (&cache, &redis), n, &ids).await;
        }
    });
}

async fn connect(server: &RedisServer) -> (Cache, ConnectionManager) {
    let cache = Cache::builder(&server.url())
        .prefix(PREFIX)
        .build()
        .await
        .expect("the server answers");
    let client = redis::Client::open(server.url()).expect("a valid URL");
    let redis = ConnectionManager::new(client)
        .await
        .expect("the server answers");
    (cache, redis)
}

fn main() {
    if let Ok(contender) = std::env::var("REDIS_CACHED_COUNT_BATCH") {
        return count_rounds(&contender);
    }
    let server = RedisServer::start();
    let runtime = Runtime::new().expect("a runtime");
    let (cache, redis) = runtime.block_on(connect(&server));
    let ids: Vec<u64> = (0..IDS).collect();
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("batch_100_ids_90_hits");
    group.bench_function("redis_cached_batch", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (cache, redis, ids) = (&cache, &redis, &ids);
            async move {
                let mut total = Duration::ZERO;
                for round in 0..iters {
                    evict(redis, "batch:", round).await;
                    let started = Instant::now();
                    black_box(employees(cache, ids).await);
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.bench_function("redis_cached_100_single_calls", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (cache, redis, ids) = (&cache, &redis, &ids);
            async move {
                let mut total = Duration::ZERO;
                for round in 0..iters {
                    evict(redis, "single:", round).await;
                    let started = Instant::now();
                    black_box(singles(cache, ids).await);
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.bench_function("hand_written_mget", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (redis, ids) = (&redis, &ids);
            async move {
                let mut total = Duration::ZERO;
                for round in 0..iters {
                    evict(redis, "hand:", round).await;
                    let started = Instant::now();
                    black_box(hand_written(redis, ids).await);
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.finish();
    criterion.final_summary();
}
