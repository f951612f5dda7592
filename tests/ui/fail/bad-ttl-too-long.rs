use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 99999999999999999)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get_user(1);
}
