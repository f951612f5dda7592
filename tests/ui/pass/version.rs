//! `version = N` on a single and a batch function.
use redis_cached::redis_cached;
use std::collections::HashMap;

#[redis_cached(key = "user:<id>", ttl = 60, version = 2)]
async fn user(id: u64) -> u64 {
    id
}

#[redis_cached(key = "users:<ids>", ttl = 60, batch = ids, version = 3)]
async fn users(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|id| (*id, *id)).collect()
}

fn main() {
    let _ = (user(1), users(&[1]));
}
