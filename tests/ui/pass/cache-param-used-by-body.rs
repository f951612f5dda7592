//! `cache = cache` borrows the parameter, so the body may still use (here, drop) it.
#![deny(warnings)]

use redis_cached::{Cache, redis_cached};

#[redis_cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn get_user(cache: Cache, id: u64) -> u64 {
    drop(cache);
    id
}

fn main() {
    let _ = |cache: Cache| get_user(cache, 1);
}
