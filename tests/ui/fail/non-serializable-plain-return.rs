use redis_cached::redis_cached;

struct User {
    id: u64,
}

#[redis_cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> User {
    User { id }
}

fn main() {
    let _ = get_user(1);
}
