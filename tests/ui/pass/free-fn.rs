//! A free function returning a plain value, with each form of `ttl`.
#![deny(warnings)]

use redis_cached::redis_cached;

#[redis_cached(key = "double:<id>")]
async fn double(id: u64) -> u64 {
    id * 2
}

#[redis_cached(key = "seconds:<id>", ttl = 3600)]
async fn seconds(id: u64) -> String {
    id.to_string()
}

#[redis_cached(key = "minutes:<id>", ttl = "15m")]
async fn minutes(id: u32) -> Vec<u32> {
    vec![id]
}

#[redis_cached(ttl = "1h30m", key = "mixed:<a>:<b>")]
async fn mixed(a: i64, b: bool) -> (i64, bool) {
    (a, b)
}

#[redis_cached(key = "constant", ttl = "7d")]
async fn constant() -> u8 {
    7
}

#[redis_cached(key = "unit:<id>", ttl = "90s")]
async fn unit(id: u64) {
    let _ = id;
}

fn main() {
    let _ = double(1);
    let _ = seconds(1);
    let _ = minutes(1);
    let _ = mixed(-1, true);
    let _ = constant();
    let _ = unit(1);
}
