use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 60, stale = "1m", near_cache = true)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get_user(1);
}
