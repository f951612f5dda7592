use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = if hot { "1m" } else { "1h" })]
async fn get_user(id: u64, hot: bool) -> u64 {
    id
}

fn main() {
    let _ = get_user(1, true);
}
