//! Helpers shared by the integration tests on top of `common`: looking at what the cache
//! wrote in Redis, and building caches that `common` does not offer.
#![allow(dead_code)]

use crate::common;
use redis::aio::MultiplexedConnection;
use redis_cached::Cache;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A `mem://` cache (each one is an empty store of its own).
pub async fn mem_cache() -> Cache {
    Cache::builder("mem://")
        .build()
        .await
        .expect("mem:// always builds")
}

/// A port on 127.0.0.1 that nothing listens on (bound once, then closed).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a local address").port()
}

/// What the shared server holds under `key` (the full key, prefix included).
pub async fn raw_get(key: &str) -> Option<Vec<u8>> {
    let mut redis = common::raw_connection().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("GET on the shared server")
}

/// `raw_get` as text.
pub async fn raw_get_text(key: &str) -> Option<String> {
    raw_get(key)
        .await
        .map(|bytes| String::from_utf8(bytes).expect("the cache stores UTF-8 JSON"))
}

/// Writes `value` under `key` on the shared server, bypassing the cache.
pub async fn raw_set(key: &str, value: &[u8]) {
    let mut redis = common::raw_connection().await;
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
    let mut redis = common::raw_connection().await;
    let count: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("EXISTS on the shared server");
    count == 1
}

/// The remaining TTL of `key` on the shared server, in seconds (`-2`: no key, `-1`: none).
pub async fn raw_ttl(key: &str) -> i64 {
    let mut redis = common::raw_connection().await;
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("TTL on the shared server")
}

/// Every key on the shared server that starts with `prefix`, sorted.
pub async fn keys_under(prefix: &str) -> Vec<String> {
    let mut redis = common::raw_connection().await;
    keys_matching(&mut redis, prefix).await
}

/// Every key on the server behind `redis` that starts with `prefix`, sorted (SCAN, so
/// that a shared `REDIS_URL` server is not blocked).
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

/// A connection to a server of the test's own.
pub async fn connect(server: &common::RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test's redis-server answers")
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
