use redis_cached::redis_cached;

#[redis_cached(key = "tenant:<tenant>}:user:<id>", ttl = 60)]
async fn user(tenant: u32, id: u64) -> u64 {
    u64::from(tenant) + id
}

fn main() {}
