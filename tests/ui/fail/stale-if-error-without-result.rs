use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 60, stale_if_error = "1h")]
async fn get_user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = get_user(1);
}
