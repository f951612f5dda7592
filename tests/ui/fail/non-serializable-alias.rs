//! Through a `Result` alias the macro cannot see the stored type: it is inferred, and still
//! named in the message.
use redis_cached::redis_cached;

struct User {
    id: u64,
}

type AppResult<T> = Result<T, String>;

#[redis_cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> AppResult<User> {
    Ok(User { id })
}

fn main() {
    let _ = get_user(1);
}
