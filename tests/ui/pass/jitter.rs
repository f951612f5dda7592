//! `jitter = "N%"` on a single function (with a literal TTL, the default, `ttl_from`, a
//! `stale` window, `"0%"`) and a batch function.
use redis_cached::redis_cached;
use std::collections::HashMap;
use std::time::Duration;

#[redis_cached(key = "user:<id>", ttl = 60, jitter = "10%")]
async fn user(id: u64) -> u64 {
    id
}

#[redis_cached(key = "default:<id>", jitter = "12.5%")]
async fn with_the_default_ttl(id: u64) -> u64 {
    id
}

fn ttl_of(value: &u64) -> Duration {
    Duration::from_secs(*value)
}

#[redis_cached(key = "from:<id>", ttl_from = ttl_of, jitter = "20%", stale = "1m")]
async fn from_value(id: u64) -> u64 {
    id
}

#[redis_cached(key = "off:<id>", ttl = 60, jitter = "0%")]
async fn off(id: u64) -> u64 {
    id
}

#[redis_cached(key = "users:<ids>", ttl = 60, batch = ids, jitter = "50%")]
async fn users(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|id| (*id, *id)).collect()
}

fn main() {
    let _ = (
        user(1),
        with_the_default_ttl(1),
        from_value(1),
        off(1),
        users(&[1]),
    );
}
