use redis_cached::redis_cached;

#[redis_cached(key = "rates:<currency>", ttl = 60, soft_timeout = "200ms")]
async fn rates(currency: String) -> Vec<u64> {
    vec![currency.len() as u64]
}

fn main() {}
