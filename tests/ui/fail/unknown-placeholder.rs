use redis_cached::redis_cached;

#[redis_cached(key = "user:<user_id>", ttl = 60)]
async fn get_user(id: u64, name: &str) -> u64 {
    id + name.len() as u64
}

fn main() {
    let _ = get_user(1, "a");
}
