use redis_cached::redis_cached;

struct User {
    id: u64,
}

#[redis_cached(key = "user:<id>", ttl = 60)]
async fn find_user(id: u64) -> Option<User> {
    Some(User { id })
}

fn main() {
    let _ = find_user(1);
}
