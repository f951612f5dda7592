use redis_cached::redis_cached;

#[redis_cached(key = "#{}:user:<id>", ttl = 60)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
