use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 60, cache_none = true)]
async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = get_user(1);
}
