use redis_cached::redis_cached;
use serde::Serialize;

#[derive(Serialize)]
struct User {
    id: u64,
}

#[redis_cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Result<User, String> {
    Ok(User { id })
}

fn main() {
    let _ = get_user(1);
}
