//! `Result<T, E>`: only `Ok` values are stored; `E` needs no trait at all.
#![deny(warnings)]

use redis_cached::redis_cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// Neither `Serialize` nor `Clone`: errors are never stored.
#[derive(Debug)]
struct NotFound;

#[redis_cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Result<User, NotFound> {
    if id == 0 {
        return Err(NotFound);
    }
    Ok(User {
        id,
        name: format!("user {id}"),
    })
}

#[redis_cached(key = "boxed:<id>")]
async fn boxed(id: u64) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(id.to_string())
}

#[redis_cached(key = "full:<id>")]
async fn full_path(id: u64) -> core::result::Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = get_user(1);
    let _ = boxed(1);
    let _ = full_path(1);
    let _ = |user: User| (user.id, user.name);
}
