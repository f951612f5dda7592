//! What the macros cost against the code they replace: hand-written redis-rs calls on a
//! `ConnectionManager` with the same settings, against a `redis-server` started here.
//!
//! `cargo bench --bench cache` measures; `cargo test --benches` runs each benchmark once.
//! Groups: `hit`, `miss`, `key`, `mem_hit`, `invalidate`, and `hit_concurrent` (CPU
//! time per hit with many tasks on a multi-thread runtime, see [`Concurrent`]). Before them, the
//! hit, miss and invalidation comparisons run once more with the contenders interleaved call
//! by call (see [`interleaved`]), printing medians, ratios and the server's time per command;
//! and the concurrent hits in interleaved rounds, then once more with a Prometheus recorder
//! installed (last: it stays installed), printing the CPU per hit of each.

#[path = "../tests/harness/mod.rs"]
mod harness;

use criterion::{BenchmarkId, Criterion};
use harness::RedisServer;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis_cached::codec::MessagePack;
use redis_cached::{Cache, KeyPart, invalidates, redis_cached};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

#[path = "common/product.rs"]
mod product;

use product::{Product, product};

const TTL: u64 = 3600;

#[redis_cached(key = "product:<id>", ttl = 3600, cache = cache)]
async fn get_product(cache: &Cache, id: u64) -> Product {
    product(id)
}

#[redis_cached(key = "count:<id>", ttl = 3600, cache = cache)]
async fn get_count(cache: &Cache, id: u64) -> u64 {
    id
}

/// The `u64` of [`get_count`] with one tag: what a tagged hit adds (the tag's version read
/// alongside the entry, the envelope checked).
#[redis_cached(key = "count_one_tag:<id>", ttl = 3600, tags = ["counts:<id>"], cache = cache)]
async fn get_count_one_tag(cache: &Cache, id: u64) -> u64 {
    id
}

/// The `u64` of [`get_count`] with three tags.
#[redis_cached(
    key = "count_three_tags:<id>",
    ttl = 3600,
    tags = ["counts:<id>", "counts", "numbers:<id>"],
    cache = cache
)]
async fn get_count_three_tags(cache: &Cache, id: u64) -> u64 {
    id
}

/// The Redis URL of the `cached` crate's stores, which their `create` blocks read.
static CACHED_CRATE_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The `cached` crate's store for the contenders below, as its documentation builds one.
macro_rules! cached_crate_store {
    ($prefix:literal) => {
        cached::AsyncRedisCache::builder($prefix)
            .ttl(Duration::from_secs(TTL))
            .connection_string(CACHED_CRATE_URL.get().expect("set before the first call"))
            .connection_manager(true)
            .build()
            .await
            .expect("the cached crate's store connects")
    };
}

/// The product through the `cached` crate (`#[concurrent_cached]` over `AsyncRedisCache`, on
/// a `ConnectionManager`): the peer users would pick instead.
#[cached::macros::concurrent_cached(
    map_error = r##"|error| format!("{error:?}")"##,
    ty = "cached::AsyncRedisCache<u64, Product>",
    convert = r##"{ id }"##,
    create = r##"{ cached_crate_store!("cached-crate-product:") }"##
)]
async fn get_product_cached_crate(id: u64) -> Result<Product, String> {
    Ok(product(id))
}

/// The `u64` through the `cached` crate.
#[cached::macros::concurrent_cached(
    map_error = r##"|error| format!("{error:?}")"##,
    ty = "cached::AsyncRedisCache<u64, u64>",
    convert = r##"{ id }"##,
    create = r##"{ cached_crate_store!("cached-crate-count:") }"##
)]
async fn get_count_cached_crate(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[invalidates("product:<id>", cache = cache)]
async fn update_product(cache: &Cache, id: u64) {
    black_box(id);
}

#[invalidates("product:<id>", "products:all", "category:<category>:products", cache = cache)]
async fn move_product(cache: &Cache, id: u64, category: &str) {
    black_box((id, category));
}

/// The hand-written cache-aside a handler would contain.
mod by_hand {
    use super::*;

    /// The hand-written side's keys: plain JSON, as cache-aside written by hand stores it
    /// (the library's entries end with a trailer this code would not read).
    pub fn key(id: u64) -> String {
        format!("hand:product:{id}")
    }

    pub async fn get(connection: &mut ConnectionManager, id: u64) -> Option<Product> {
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key(id))
            .query_async(connection)
            .await
            .ok()?;
        serde_json::from_slice(&bytes?).ok()
    }

    pub async fn get_or_fill(connection: &mut ConnectionManager, id: u64) -> Product {
        if let Some(product) = get(connection, id).await {
            return product;
        }
        let value = product(id);
        let bytes = serde_json::to_vec(&value).expect("encodes");
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key(id))
            .arg(bytes)
            .arg("EX")
            .arg(TTL)
            .query_async(connection)
            .await;
        value
    }

    pub async fn unlink(connection: &mut ConnectionManager, keys: &[String]) {
        let _: redis::RedisResult<()> =
            redis::cmd("UNLINK").arg(keys).query_async(connection).await;
    }
}

/// The server, the runtime and every client the benchmarks use.
struct Bench {
    runtime: Runtime,
    /// Fill leases on (the default).
    cache: Cache,
    /// `without_fill_leases()`: plain GET and SET EX.
    plain: Cache,
    memory: Cache,
    /// The hand-written side.
    manager: ConnectionManager,
    /// For untimed housekeeping (deleting keys between misses).
    admin: MultiplexedConnection,
    _server: RedisServer,
}

impl Bench {
    fn start() -> Bench {
        let server = RedisServer::start();
        // One thread: the caller and the connection's driver task share it, as in a
        // single-threaded runtime, so scheduling noise stays out of the figures.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let url = server.url();
        let (cache, plain, memory, manager, admin) = runtime.block_on(async {
            let cache = Cache::connect(&url).await.expect("redis-server answers");
            let plain = Cache::builder(&url)
                .without_fill_leases()
                .build()
                .await
                .expect("redis-server answers");
            let memory = Cache::connect("mem://").await.expect("mem:// opens");
            // The settings `Cache` gives its own manager (250 ms timeouts).
            let client = redis::Client::open(url.as_str()).expect("a valid URL");
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(250)))
                .set_response_timeout(Some(Duration::from_millis(250)))
                .set_max_delay(Duration::from_secs(2));
            let manager = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .expect("redis-server answers");
            let admin = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis-server answers");
            (cache, plain, memory, manager, admin)
        });
        let bench = Bench {
            runtime,
            cache,
            plain,
            memory,
            manager,
            admin,
            _server: server,
        };
        bench.warm_up();
        bench
    }

    /// Loads the scripts and fills `product:42`, so the first measured call is like the rest.
    fn warm_up(&self) {
        self.runtime.block_on(async {
            let expected = product(42);
            assert_eq!(get_product(&self.cache, 42).await, expected);
            assert_eq!(get_product(&self.plain, 42).await, expected);
            assert_eq!(get_product(&self.memory, 42).await, expected);
            assert_eq!(get_count(&self.memory, 7).await, 7);
            get_product(&self.cache, 43).await;
            self.delete("product:43").await;
            by_hand::get_or_fill(&mut self.manager.clone(), 42).await;
            assert_eq!(
                by_hand::get(&mut self.manager.clone(), 42).await,
                Some(expected),
                "the hand-written side reads what it stored"
            );
        });
    }

    /// Deletes `key`, and the hand-written side's copy of it.
    async fn delete(&self, key: &str) {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .arg(format!("hand:{key}"))
            .query_async(&mut self.admin.clone())
            .await
            .expect("DEL");
    }
}

/// (a) A hit: one lookup and a JSON decode of ~1 KiB.
fn hit(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("hit");
    group.bench_function("redis_cached", |b| {
        b.to_async(&bench.runtime)
            .iter(|| async { black_box(get_product(&bench.cache, black_box(42)).await) })
    });
    group.bench_function("redis_cached_without_leases", |b| {
        b.to_async(&bench.runtime)
            .iter(|| async { black_box(get_product(&bench.plain, black_box(42)).await) })
    });
    group.bench_function("hand_written_get", |b| {
        b.to_async(&bench.runtime).iter(|| async {
            let mut connection = bench.manager.clone();
            black_box(by_hand::get(&mut connection, black_box(42)).await)
        })
    });
    group.finish();
}

/// Times `call` for `iters` misses on `product:<id>`, deleting the key (untimed) before each.
async fn misses<F: Future<Output = Product>>(
    bench: &Bench,
    iters: u64,
    mut call: impl FnMut() -> F,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        bench.delete("product:1000").await;
        let started = Instant::now();
        black_box(call().await);
        total += started.elapsed();
    }
    total
}

/// (b) A miss: lookup, body, encode and store; the key is deleted before each call.
fn miss(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("miss");
    group.bench_function("redis_cached", |b| {
        b.to_async(&bench.runtime).iter_custom(|iters| {
            misses(bench, iters, || get_product(&bench.cache, black_box(1000)))
        })
    });
    group.bench_function("redis_cached_without_leases", |b| {
        b.to_async(&bench.runtime).iter_custom(|iters| {
            misses(bench, iters, || get_product(&bench.plain, black_box(1000)))
        })
    });
    group.bench_function("hand_written_get_set", |b| {
        b.to_async(&bench.runtime).iter_custom(|iters| {
            misses(bench, iters, || async {
                let mut connection = bench.manager.clone();
                by_hand::get_or_fill(&mut connection, black_box(1000)).await
            })
        })
    });
    group.finish();
}

/// (c) Rendering `user:<id>:posts:<slug>` alone, as the generated code does (through
/// `KeyPart`, escaping the string), and with `format!` (no escaping).
fn key(c: &mut Criterion) {
    let mut group = c.benchmark_group("key");
    let id: u64 = 1_234_567;
    let slug = String::from("why-cache-aside-works");
    group.bench_function("key_part", |b| {
        b.iter(|| {
            let (id, slug) = black_box((&id, &slug));
            let mut key = String::with_capacity(32);
            key.push_str("user:");
            id.write_key(&mut key);
            key.push_str(":posts:");
            slug.write_key(&mut key);
            key
        })
    });
    group.bench_function("format", |b| {
        b.iter(|| {
            let (id, slug) = black_box((&id, &slug));
            format!("user:{id}:posts:{slug}")
        })
    });
    group.finish();
}

/// (d) A hit on `mem://`: no network, so what is left is the library and the decode.
fn mem_hit(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("mem_hit");
    group.bench_function("product_1kib", |b| {
        b.to_async(&bench.runtime)
            .iter(|| async { black_box(get_product(&bench.memory, black_box(42)).await) })
    });
    group.bench_function("u64", |b| {
        b.to_async(&bench.runtime)
            .iter(|| async { black_box(get_count(&bench.memory, black_box(7)).await) })
    });
    group.finish();
}

/// (e) `#[invalidates]` with 1 and 3 keys against one hand-written `UNLINK`.
fn invalidate(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("invalidate");
    group.bench_function(BenchmarkId::new("redis_cached", 1), |b| {
        b.to_async(&bench.runtime)
            .iter(|| update_product(&bench.cache, black_box(42)))
    });
    group.bench_function(BenchmarkId::new("hand_written_unlink", 1), |b| {
        b.to_async(&bench.runtime).iter(|| async {
            let id = black_box(42);
            by_hand::unlink(&mut bench.manager.clone(), &[format!("product:{id}")]).await
        })
    });
    group.bench_function(BenchmarkId::new("redis_cached", 3), |b| {
        b.to_async(&bench.runtime)
            .iter(|| move_product(&bench.cache, black_box(42), black_box("kitchen")))
    });
    group.bench_function(BenchmarkId::new("hand_written_unlink", 3), |b| {
        b.to_async(&bench.runtime).iter(|| async {
            let (id, category) = black_box((42, "kitchen"));
            let keys = [
                format!("product:{id}"),
                "products:all".to_owned(),
                format!("category:{category}:products"),
            ];
            by_hand::unlink(&mut bench.manager.clone(), &keys).await
        })
    });
    group.finish();
}

/// Calls the contenders of one comparison in turn, call by call, `rounds` times, timing each
/// call alone (`before` runs untimed ahead of each). On this machine a loopback round trip
/// takes ~10 µs or ~70 µs depending on what else runs (an idle virtual CPU is slow to wake),
/// and the state can change between two criterion benchmarks; interleaving gives every
/// contender the same mix, so the ratios hold whatever the state.
async fn interleaved(
    rounds: usize,
    contenders: usize,
    mut before: impl AsyncFnMut(),
    mut call: impl AsyncFnMut(usize),
) -> Vec<Vec<Duration>> {
    let mut times = vec![Vec::with_capacity(rounds); contenders];
    for round in 0..rounds {
        for turn in 0..contenders {
            // Rotate who goes first, so no contender always follows the same one.
            let which = (round + turn) % contenders;
            before().await;
            let started = Instant::now();
            call(which).await;
            times[which].push(started.elapsed());
        }
    }
    times
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort_unstable();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

/// Prints each contender's median and p90, and its median over the last one's (the
/// hand-written baseline), then what the server spent per command (`INFO commandstats`).
async fn report(bench: &Bench, title: &str, names: &[&str], mut times: Vec<Vec<Duration>>) {
    let medians: Vec<Duration> = times.iter_mut().map(|t| percentile(t, 0.5)).collect();
    let baseline = medians[medians.len() - 1];
    println!("interleaved {title} ({} rounds):", times[0].len());
    for ((name, t), median) in names.iter().zip(&mut times).zip(&medians) {
        println!(
            "  {name:32} median {:>9.2?}  p90 {:>9.2?}  ratio {:.2}",
            median,
            percentile(t, 0.9),
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut bench.admin.clone())
        .await
        .expect("INFO");
    let server: Vec<String> = info
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let usec = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("usec_per_call="))?;
            ["evalsha", "get", "set", "unlink"]
                .contains(&name)
                .then(|| format!("{name} {usec} µs"))
        })
        .collect();
    println!(
        "  server time per call (commands run by scripts counted too): {}",
        server.join(", ")
    );
}

async fn reset_server_stats(bench: &Bench) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut bench.admin.clone())
        .await
        .expect("CONFIG RESETSTAT");
}

/// The hit, miss and invalidation comparisons again, interleaved (see [`interleaved`]).
fn interleaved_comparisons(bench: &Bench, rounds: usize) {
    bench.runtime.block_on(async {
        let none = async || {};

        reset_server_stats(bench).await;
        let names = [
            "hit redis_cached",
            "hit redis_cached_without_leases",
            "hit hand_written_get",
        ];
        let times = interleaved(rounds, 3, none, async |which| match which {
            0 => drop(black_box(get_product(&bench.cache, 42).await)),
            1 => drop(black_box(get_product(&bench.plain, 42).await)),
            _ => drop(black_box(
                by_hand::get(&mut bench.manager.clone(), 42).await,
            )),
        })
        .await;
        report(bench, "hit", &names, times).await;

        reset_server_stats(bench).await;
        let names = [
            "miss redis_cached",
            "miss redis_cached_without_leases",
            "miss hand_written_get_set",
        ];
        let delete = async || bench.delete("product:1000").await;
        let times = interleaved(rounds, 3, delete, async |which| match which {
            0 => drop(black_box(get_product(&bench.cache, 1000).await)),
            1 => drop(black_box(get_product(&bench.plain, 1000).await)),
            _ => drop(black_box(
                by_hand::get_or_fill(&mut bench.manager.clone(), 1000).await,
            )),
        })
        .await;
        report(bench, "miss", &names, times).await;

        reset_server_stats(bench).await;
        let names = [
            "invalidate/1 redis_cached",
            "invalidate/3 redis_cached",
            "invalidate/1 hand_written_unlink",
            "invalidate/3 hand_written_unlink",
        ];
        let times = interleaved(rounds, 4, none, async |which| match which {
            0 => update_product(&bench.cache, black_box(42)).await,
            1 => move_product(&bench.cache, black_box(42), black_box("kitchen")).await,
            2 => by_hand::unlink(&mut bench.manager.clone(), &["product:42".to_owned()]).await,
            _ => {
                let keys = [
                    "product:42".to_owned(),
                    "products:all".to_owned(),
                    "category:kitchen:products".to_owned(),
                ];
                by_hand::unlink(&mut bench.manager.clone(), &keys).await
            }
        })
        .await;
        // Two baselines here: print 1 key against 1 key, 3 against 3.
        let mut times = times.into_iter();
        let (ours1, ours3, hand1, hand3) = (
            times.next().unwrap(),
            times.next().unwrap(),
            times.next().unwrap(),
            times.next().unwrap(),
        );
        report(
            bench,
            "invalidate, 1 key",
            &[names[0], names[2]],
            vec![ours1, hand1],
        )
        .await;
        report(
            bench,
            "invalidate, 3 keys",
            &[names[1], names[3]],
            vec![ours3, hand3],
        )
        .await;
    });
}

/// Hits under concurrency: `TASKS` tasks on a multi-thread runtime of two workers, all on
/// one connection (the cache's, or the hand-written `ConnectionManager`), as a server's
/// handlers are. What is measured is this process's **CPU time per hit** (all its threads,
/// from `/proc/self/task/*/schedstat`): with many round trips in flight the wall clock says
/// little, but every microsecond the library adds to a hit is CPU the server spends.
struct Concurrent {
    runtime: Runtime,
    clients: Clients,
}

/// What the contenders of [`Concurrent`] read through.
#[derive(Clone)]
struct Clients {
    cache: Cache,
    plain: Cache,
    /// Stores MessagePack (with field names), as the `cached` crate stores MessagePack.
    msgpack: Cache,
    manager: ConnectionManager,
}

/// Tasks in flight in [`Concurrent`].
const TASKS: usize = 64;

/// The CPU time this process's threads have run, from the scheduler's statistics.
fn process_cpu() -> Duration {
    let mut total = 0_u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// What one concurrent hit reads: the 1 KiB product or a `u64` (where the library's fixed
/// cost is most of a hit), through the cache with leases, without, by hand, or through the
/// `cached` crate; the `u64` also with one and with three tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HitKind {
    Product,
    ProductWithoutLeases,
    ProductMessagePack,
    ProductByHand,
    ProductCachedCrate,
    Count,
    CountOneTag,
    CountThreeTags,
    CountByHand,
    CountCachedCrate,
}

impl HitKind {
    const ALL: [HitKind; 10] = [
        HitKind::Product,
        HitKind::ProductWithoutLeases,
        HitKind::ProductMessagePack,
        HitKind::ProductByHand,
        HitKind::ProductCachedCrate,
        HitKind::Count,
        HitKind::CountOneTag,
        HitKind::CountThreeTags,
        HitKind::CountByHand,
        HitKind::CountCachedCrate,
    ];

    /// The hand-written hit of the same value, the baseline of the ratios.
    fn baseline(self) -> HitKind {
        match self {
            HitKind::Count
            | HitKind::CountOneTag
            | HitKind::CountThreeTags
            | HitKind::CountByHand
            | HitKind::CountCachedCrate => HitKind::CountByHand,
            _ => HitKind::ProductByHand,
        }
    }

    /// The `cached` crate's hit of the same value.
    fn peer(self) -> HitKind {
        match self.baseline() {
            HitKind::CountByHand => HitKind::CountCachedCrate,
            _ => HitKind::ProductCachedCrate,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HitKind::Product => "product redis_cached",
            HitKind::ProductWithoutLeases => "product redis_cached_without_leases",
            HitKind::ProductMessagePack => "product redis_cached_msgpack",
            HitKind::ProductByHand => "product hand_written_get",
            HitKind::ProductCachedCrate => "product cached_crate",
            HitKind::Count => "u64 redis_cached",
            HitKind::CountOneTag => "u64 redis_cached_one_tag",
            HitKind::CountThreeTags => "u64 redis_cached_three_tags",
            HitKind::CountByHand => "u64 hand_written_get",
            HitKind::CountCachedCrate => "u64 cached_crate",
        }
    }
}

impl Clients {
    /// Connects every contender to `url` and fills what they read.
    async fn connect(url: &str) -> Clients {
        CACHED_CRATE_URL.get_or_init(|| url.to_owned());
        let cache = Cache::connect(url).await.expect("redis-server answers");
        let plain = Cache::builder(url)
            .without_fill_leases()
            .build()
            .await
            .expect("redis-server answers");
        let msgpack = Cache::builder(url)
            .prefix("msgpack:")
            .codec(MessagePack)
            .build()
            .await
            .expect("redis-server answers");
        let client = redis::Client::open(url).expect("a valid URL");
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(250)))
            .set_response_timeout(Some(Duration::from_millis(250)))
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .expect("redis-server answers");
        // Filled: the library's entries, and the hand-written side's plain JSON.
        assert_eq!(get_count(&cache, 7).await, 7);
        assert_eq!(get_count_one_tag(&cache, 7).await, 7);
        assert_eq!(get_count_three_tags(&cache, 7).await, 7);
        assert_eq!(get_product(&cache, 42).await, product(42));
        by_hand::get_or_fill(&mut manager.clone(), 42).await;
        let _: () = redis::cmd("SET")
            .arg("hand:count:7")
            .arg(b"7")
            .query_async(&mut manager.clone())
            .await
            .expect("SET");
        let clients = Clients {
            cache,
            plain,
            msgpack,
            manager,
        };
        for kind in HitKind::ALL {
            Concurrent::hit(&clients, kind).await;
        }
        clients
    }
}

impl Concurrent {
    fn start(url: &str) -> Concurrent {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let clients = runtime.block_on(Clients::connect(url));
        let concurrent = Concurrent { runtime, clients };
        for kind in HitKind::ALL {
            concurrent.hits(kind, TASKS);
        }
        concurrent
    }

    async fn hit(clients: &Clients, kind: HitKind) {
        let Clients {
            cache,
            plain,
            msgpack,
            manager,
        } = clients;
        match kind {
            HitKind::Product => drop(black_box(get_product(cache, black_box(42)).await)),
            HitKind::ProductWithoutLeases => {
                drop(black_box(get_product(plain, black_box(42)).await));
            }
            HitKind::ProductMessagePack => {
                drop(black_box(get_product(msgpack, black_box(42)).await));
            }
            HitKind::ProductByHand => {
                let found = by_hand::get(&mut manager.clone(), black_box(42)).await;
                assert!(black_box(found).is_some(), "a hit");
            }
            HitKind::ProductCachedCrate => {
                let found = get_product_cached_crate(black_box(42)).await;
                assert!(black_box(found).is_ok(), "a hit");
            }
            HitKind::Count => drop(black_box(get_count(cache, black_box(7)).await)),
            HitKind::CountOneTag => drop(black_box(get_count_one_tag(cache, black_box(7)).await)),
            HitKind::CountThreeTags => {
                black_box(get_count_three_tags(cache, black_box(7)).await);
            }
            HitKind::CountByHand => {
                let id: u64 = black_box(7);
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(format!("hand:count:{id}"))
                    .query_async(&mut manager.clone())
                    .await
                    .ok()
                    .flatten();
                let count: Option<u64> = bytes.and_then(|b| serde_json::from_slice(&b).ok());
                assert_eq!(black_box(count), Some(7), "a hit");
            }
            HitKind::CountCachedCrate => {
                let count = get_count_cached_crate(black_box(7)).await;
                assert_eq!(black_box(count), Ok(7), "a hit");
            }
        }
    }

    /// Runs `total` hits of `kind` from `TASKS` tasks at once; returns the CPU time spent.
    fn hits(&self, kind: HitKind, total: usize) -> Duration {
        let per_task = total.div_ceil(TASKS);
        let started = process_cpu();
        self.runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let clients = self.clients.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            Concurrent::hit(&clients, kind).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("hits do not panic");
            }
        });
        let spent = process_cpu().saturating_sub(started);
        spent.mul_f64(total as f64 / (per_task * TASKS) as f64)
    }
}

/// (g) CPU time per hit with 64 tasks on two workers and one connection.
fn hit_concurrent(c: &mut Criterion, concurrent: &Concurrent) {
    let mut group = c.benchmark_group("hit_concurrent");
    for kind in HitKind::ALL {
        group.bench_function(kind.name(), |b| {
            b.iter_custom(|iters| {
                concurrent.hits(kind, usize::try_from(iters).unwrap_or(usize::MAX).max(1))
            })
        });
    }
    group.finish();
}

/// The concurrent hits in `rounds` rounds of `TASKS * 100` hits per contender, the order
/// rotated from round to round; prints each one's median CPU per hit and its ratio to the
/// hand-written hit of the same value.
fn interleaved_concurrent(concurrent: &Concurrent, rounds: usize, title: &str) {
    let kinds = HitKind::ALL;
    let per_round = TASKS * 100;
    let mut times = vec![Vec::with_capacity(rounds); kinds.len()];
    for round in 0..rounds {
        for turn in 0..kinds.len() {
            let which = (round + turn) % kinds.len();
            let spent = concurrent.hits(kinds[which], per_round);
            times[which].push(spent / u32::try_from(per_round).unwrap_or(u32::MAX));
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|t| percentile(t, 0.5)).collect();
    println!(
        "interleaved concurrent hits, {title} ({rounds} rounds of {per_round} hits, {TASKS} tasks, CPU time per hit):"
    );
    for (i, kind) in kinds.iter().enumerate() {
        let median_of = |of: HitKind| {
            medians[kinds.iter().position(|other| *other == of).unwrap_or(i)].as_secs_f64()
        };
        let (median, baseline) = (medians[i].as_secs_f64(), median_of(kind.baseline()));
        println!(
            "  {:40} median {:>9.2?}  ratio {:.3}  difference {:+.2} µs, {:+.2} µs to the cached crate",
            kind.name(),
            medians[i],
            median / baseline,
            (median - baseline) * 1e6,
            (median - median_of(kind.peer())) * 1e6
        );
    }
}

/// `mem://` hits of a `u64` (no network: the library's own CPU per hit and a tiny decode),
/// timed in blocks alternating with a control (the same key rendered with `format!` and the
/// value decoded by hand), so that drift shows in the control. Returns the medians per call.
fn mem_hit_blocks(bench: &Bench, blocks: usize) -> (Duration, Duration) {
    const CALLS: u32 = 20_000;
    let (mut ours, mut control) = (Vec::new(), Vec::new());
    bench.runtime.block_on(async {
        for _ in 0..blocks {
            let started = Instant::now();
            for _ in 0..CALLS {
                black_box(get_count(&bench.memory, black_box(7)).await);
            }
            ours.push(started.elapsed() / CALLS);
            let started = Instant::now();
            for _ in 0..CALLS {
                let key = format!("count:{}", black_box(7));
                let value: u64 = serde_json::from_slice(black_box(b"7")).expect("decodes");
                black_box((key, value));
            }
            control.push(started.elapsed() / CALLS);
        }
    });
    (percentile(&mut ours, 0.5), percentile(&mut control, 0.5))
}

/// `REDIS_CACHED_COUNT_HITS=<contender> REDIS_CACHED_HITS=<n>` (names as `hit_concurrent`
/// prints them): only `n` hits of that contender, one after another on a current-thread
/// runtime, with a Prometheus recorder installed first if `REDIS_CACHED_RECORDER=prometheus`,
/// and a `tracing_subscriber::fmt()` subscriber (writing nowhere, without colours) if
/// `REDIS_CACHED_SUBSCRIBER=fmt`.
/// `scripts/instructions` counts the instructions of two such runs under callgrind: counts
/// are the same from run to run, where time on a shared machine is not.
fn count_hits(name: &str) {
    let kind = HitKind::ALL
        .into_iter()
        .find(|kind| kind.name() == name)
        .unwrap_or_else(|| panic!("no contender {name:?}"));
    let hits: usize = std::env::var("REDIS_CACHED_HITS")
        .ok()
        .and_then(|hits| hits.parse().ok())
        .expect("REDIS_CACHED_HITS=<number of hits>");
    if std::env::var("REDIS_CACHED_RECORDER").as_deref() == Ok("prometheus") {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this process");
    }
    // The subscriber most applications install, as a service runs it (no terminal colours):
    // its default level (INFO) takes the spans.
    if std::env::var("REDIS_CACHED_SUBSCRIBER").as_deref() == Ok("fmt") {
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_ansi(false)
            .init();
    }
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let clients = Clients::connect(&server.url()).await;
        for _ in 0..hits {
            Concurrent::hit(&clients, kind).await;
        }
    });
}

fn main() {
    if let Ok(name) = std::env::var("REDIS_CACHED_COUNT_HITS") {
        return count_hits(&name);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then each
    // benchmark runs once and the interleaved pass only a few rounds.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    // A filter (`cargo bench --bench cache -- hit_concurrent`) skips the interleaved passes
    // of the other groups.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wanted = |group: &str| {
        filter
            .as_deref()
            .is_none_or(|filter| group.contains(filter) || filter.contains(group))
    };
    let bench = Bench::start();
    if wanted("hit miss invalidate") {
        interleaved_comparisons(&bench, if measuring { 3000 } else { 3 });
    }
    hit(&mut c, &bench);
    miss(&mut c, &bench);
    key(&mut c);
    mem_hit(&mut c, &bench);
    invalidate(&mut c, &bench);
    let concurrent = Concurrent::start(&bench._server.url());
    let rounds = if measuring { 15 } else { 1 };
    if wanted("hit_concurrent") {
        interleaved_concurrent(&concurrent, rounds, "no recorder");
    }
    hit_concurrent(&mut c, &concurrent);
    // Last, since it stays installed: what the library's metrics cost in a real recorder.
    if wanted("hit_concurrent") {
        let blocks = if measuring { 15 } else { 1 };
        let (before, control_before) = mem_hit_blocks(&bench, blocks);
        let _prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this process");
        redis_cached::describe_metrics();
        let (after, control_after) = mem_hit_blocks(&bench, blocks);
        let drift = control_after.as_secs_f64() / control_before.as_secs_f64();
        println!(
            "mem:// hit of a u64, medians of {blocks} blocks: {before:.2?} without a recorder, \
             {after:.2?} with a Prometheus recorder installed (control {control_before:.2?} -> \
             {control_after:.2?}): the metrics of a hit cost {:+.0} ns in Prometheus",
            (after.as_secs_f64() - before.as_secs_f64() * drift) * 1e9
        );
        interleaved_concurrent(&concurrent, rounds, "Prometheus recorder installed");
    }
    c.final_summary();
}
