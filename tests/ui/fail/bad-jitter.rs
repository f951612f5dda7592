use redis_cached::redis_cached;
use std::collections::HashMap;

#[redis_cached(key = "user:<id>", ttl = 60, jitter = "150%")]
async fn over_the_ttl(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<id>", ttl = 60, jitter = "abc")]
async fn not_a_percentage(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<id>", ttl = 60, jitter = "100%")]
async fn the_whole_ttl(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<id>", jitter = 0.1)]
async fn a_fraction(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<ids>", ttl = 60, jitter = "-5%", batch = ids)]
async fn batch(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id)).collect()
}

fn main() {
    let _ = (
        over_the_ttl(1),
        not_a_percentage(1),
        the_whole_ttl(1),
        a_fraction(1),
        batch(&[1]),
    );
}
