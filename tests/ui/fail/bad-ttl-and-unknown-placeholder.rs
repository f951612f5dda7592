//! Two mistakes in one attribute, both reported by one build.

use redis_cached::redis_cached;

#[redis_cached(key = "user:<user_id>", ttl = 0)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get_user(1);
}
