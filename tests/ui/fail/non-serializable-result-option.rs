use redis_cached::redis_cached;

struct User {
    id: u64,
}

#[redis_cached(key = "user:<id>", ttl = 60, cache_none = true)]
async fn find_user(id: u64) -> Result<Option<User>, String> {
    Ok(Some(User { id }))
}

fn main() {
    let _ = find_user(1);
}
