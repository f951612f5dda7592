//! Helpers for test bodies on top of `harness` (the servers every binary declares; this one
//! needs it): caches with prefixes of their own, body-run counters, what the cache wrote,
//! cached functions, log capture. A new helper goes here, unless it starts, reaches or
//! counts a server: then in `harness`.
#![allow(dead_code)]

use crate::harness;
use crate::harness::cluster::RedisCluster;
use crate::harness::sentinel::RedisSentinel;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, CacheBuilder, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tracing_subscriber::filter::LevelFilter;

/// A prefix no other test (in this process or another) uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("test:{}:{n}:{test}:", std::process::id())
}

/// A cache builder for the shared server with a prefix of its own.
pub fn shared_builder(test: &str) -> CacheBuilder {
    Cache::builder(harness::shared_url()).prefix(unique_prefix(test))
}

/// A cache on the shared server with a prefix of its own.
pub async fn redis_cache(test: &str) -> Cache {
    shared_builder(test)
        .build()
        .await
        .expect("the shared redis-server answers")
}

/// The cluster shared by the tests of a binary that leave its nodes alone.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| timed("cluster", RedisCluster::start))
}

/// The Sentinel setup shared by the tests of a binary that leave its servers alone.
pub fn shared_sentinel() -> &'static RedisSentinel {
    static SETUP: OnceLock<RedisSentinel> = OnceLock::new();
    SETUP.get_or_init(|| timed("sentinel setup", RedisSentinel::start))
}

/// `start()`, printing how long it took.
fn timed<T>(what: &str, start: fn() -> T) -> T {
    let started = Instant::now();
    let topology = start();
    eprintln!("shared {what} started in {:?}", started.elapsed());
    topology
}

/// A cache builder for the topology at `url` with a prefix of its own. Its timeout leaves
/// room for a loaded machine, so that the scenarios' counts of body runs are not disturbed
/// by slow replies.
pub fn topology_builder(url: &str, test: &str) -> CacheBuilder {
    Cache::builder(url)
        .prefix(unique_prefix(test))
        .timeout(Duration::from_secs(1))
}

/// `topology_builder` for the shared cluster.
pub fn cluster_builder(test: &str) -> CacheBuilder {
    topology_builder(&shared_cluster().url(), test)
}

/// `topology_builder` for the shared Sentinel setup.
pub fn sentinel_builder(test: &str) -> CacheBuilder {
    topology_builder(&shared_sentinel().url(), test)
}

/// A cache on the shared cluster with a prefix of its own.
pub async fn cluster_cache(test: &str) -> Cache {
    cluster_builder(test)
        .build()
        .await
        .expect("the cluster answers")
}

/// A cache behind the shared Sentinel setup with a prefix of its own.
pub async fn sentinel_cache(test: &str) -> Cache {
    sentinel_builder(test)
        .build()
        .await
        .expect("the sentinels name a primary")
}

/// A `mem://` cache (each one is an empty store of its own).
pub async fn mem_cache() -> Cache {
    Cache::builder("mem://")
        .build()
        .await
        .expect("mem:// always builds")
}

/// How many times a body counting in `counter` ran.
pub fn runs(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// Counts one more body run in `counter`; returns the count, this run included.
pub fn bump(counter: &AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}

/// What the server behind `redis` holds under `key` (the full key, prefix included).
pub async fn get(redis: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(redis)
        .await
        .expect("GET")
}

/// The length of the trailer every stored entry ends with: the marker byte, the codec (`S`
/// JSON, `M` MessagePack), the function's version (4 bytes) and its stored type's shape
/// fingerprint (8 bytes).
pub const TRAILER_LEN: usize = 14;

/// An entry's bytes without its trailer, if it has one.
pub fn untrailed(bytes: &[u8]) -> &[u8] {
    match bytes.len().checked_sub(TRAILER_LEN) {
        Some(at) if bytes[at..].starts_with(b"\xc1S") || bytes[at..].starts_with(b"\xc1M") => {
            &bytes[..at]
        }
        _ => bytes,
    }
}

/// `get` as text: the value as its codec wrote it, without the entry's trailer.
pub async fn get_text(redis: &mut MultiplexedConnection, key: &str) -> Option<String> {
    get(redis, key).await.map(|bytes| {
        String::from_utf8(untrailed(&bytes).to_vec()).expect("the cache stores UTF-8 text")
    })
}

/// What the shared server holds under `key` (the full key, prefix included).
pub async fn raw_get(key: &str) -> Option<Vec<u8>> {
    get(&mut harness::raw_connection().await, key).await
}

/// `raw_get` as text.
pub async fn raw_get_text(key: &str) -> Option<String> {
    get_text(&mut harness::raw_connection().await, key).await
}

/// Writes `value` under `key` on the shared server, bypassing the cache.
pub async fn raw_set(key: &str, value: &[u8]) {
    let mut redis = harness::raw_connection().await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .expect("SET on the shared server");
}

/// Whether `key` exists on the shared server.
pub async fn raw_exists(key: &str) -> bool {
    let mut redis = harness::raw_connection().await;
    let count: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("EXISTS on the shared server");
    count == 1
}

/// The remaining TTL of `key` on the shared server, in seconds (`-2`: no key, `-1`: none).
pub async fn raw_ttl(key: &str) -> i64 {
    let mut redis = harness::raw_connection().await;
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("TTL on the shared server")
}

/// Every key on the shared server that starts with `prefix`, sorted.
pub async fn keys_under(prefix: &str) -> Vec<String> {
    let mut redis = harness::raw_connection().await;
    keys_matching(&mut redis, prefix).await
}

/// Every key on the server behind `redis` that starts with `prefix`, sorted (SCAN, so
/// that a `REDIS_CACHED_TEST_URL` server shared with others is not blocked).
pub async fn keys_matching(redis: &mut MultiplexedConnection, prefix: &str) -> Vec<String> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// `text` with Redis glob metacharacters escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Calls `attempt` until it returns true, at most until `limit` has passed.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if attempt().await {
            return;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest a checked call may take, whatever fails underneath.
pub const CALL_BOUND: Duration = Duration::from_secs(3);

/// A cached function that counts its body runs in `counter`.
#[redis_cached(key = "square:<id>", ttl = 60, cache = cache)]
pub async fn square(cache: &Cache, counter: &AtomicUsize, id: u64) -> Result<u64, String> {
    bump(counter);
    Ok(id * id)
}

/// Invalidates `square(id)`.
#[invalidates("square:<id>", cache = cache)]
pub async fn forget(cache: &Cache, id: u64) -> &'static str {
    let _ = id;
    "forgotten"
}

/// `square(id)`, checked to be right and to return within `CALL_BOUND`, with its outcome.
pub async fn checked_square(cache: &Cache, counter: &AtomicUsize, id: u64) -> Option<Outcome> {
    let started = Instant::now();
    let (value, outcome) = with_outcome(square(cache, counter, id)).await;
    assert_eq!(value, Ok(id * id));
    let elapsed = started.elapsed();
    assert!(elapsed < CALL_BOUND, "a call took {elapsed:?}");
    outcome
}

/// Calls `call` twice and asserts that the first is a miss and the second a hit.
pub async fn assert_miss_then_hit<F, Fut>(mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Outcome>>,
{
    assert_eq!(call().await, Some(Outcome::Miss), "the first call");
    assert_eq!(call().await, Some(Outcome::Hit), "the second call");
}

/// Everything logged through a `tracing_subscriber::fmt()` subscriber writing here, as text.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// A `tracing_subscriber::fmt()` subscriber up to `level`, without colours, writing here.
    pub fn subscriber(&self, level: LevelFilter) -> impl tracing::Subscriber + Send + Sync + use<> {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish()
    }

    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// A cached read of `id` from `source`: `(id, its version)`.
#[redis_cached(key = "item:<id>", ttl = 600, cache = cache)]
pub async fn item(cache: &Cache, source: &Versions, id: u64) -> (u64, u64) {
    (id, source.read(id))
}

/// A write of `id` to `source` that invalidates `item(id)`; returns the new version.
#[invalidates("item:<id>", cache = cache)]
pub async fn write_item(cache: &Cache, source: &Versions, id: u64) -> u64 {
    source.write(id)
}

/// A source of truth for tests that write and invalidate: a version per id (0 until the
/// first write), and how many reads the cached bodies made.
#[derive(Default)]
pub struct Versions {
    versions: Mutex<std::collections::HashMap<u64, u64>>,
    pub reads: AtomicUsize,
}

impl Versions {
    /// The current version of `id`, counted as a read of the source.
    pub fn read(&self, id: u64) -> u64 {
        bump(&self.reads);
        self.current(id)
    }

    /// The current version of `id`, not counted.
    pub fn current(&self, id: u64) -> u64 {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions.get(&id).copied().unwrap_or(0)
    }

    /// A write: the next version of `id`, returned.
    pub fn write(&self, id: u64) -> u64 {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        let version = versions.entry(id).or_insert(0);
        *version += 1;
        *version
    }
}

/// One test at a time (`lock`), on `scripts/test`'s first pass only: tests of what does not
/// depend on the server's version (network faults, failovers and restarts seen through
/// `INFO server`) say on the other passes (`REDIS_CACHED_RERUN`) that they are skipped, and
/// get no turn.
pub async fn first_pass_only(
    lock: &'static tokio::sync::Mutex<()>,
    test: &str,
) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    if harness::rerun_skips(test) {
        return None;
    }
    Some(lock.lock().await)
}
