use redis_cached::redis_cached;

#[redis_cached(key = "user:{<id>}:profile", ttl = 60)]
async fn profile(id: u64) -> u64 {
    id
}

fn main() {}
