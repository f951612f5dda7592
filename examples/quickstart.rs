//! The smallest useful program: one cached function, one invalidation.
//!
//! `cargo run --example quickstart` uses `REDIS_URL` (default `redis://127.0.0.1:6379`),
//! or the in-process `mem://` backend when no Redis answers.

use redis_cached::{Outcome, invalidates, redis_cached, with_outcome};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

static NAME_VERSION: AtomicU32 = AtomicU32::new(1);

/// Pretends to be a slow database read.
#[redis_cached(key = "quickstart:user:<id>", ttl = "10m")]
async fn get_user(id: u64) -> Result<User, std::io::Error> {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let version = NAME_VERSION.load(Ordering::SeqCst);
    Ok(User {
        id,
        name: format!("user {id}, version {version}"),
    })
}

/// Pretends to write to the database, then drops the stale entry.
#[invalidates("quickstart:user:<id>")]
async fn rename_user(id: u64) -> Result<(), std::io::Error> {
    let _ = id;
    NAME_VERSION.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn show(id: u64) -> Result<(), std::io::Error> {
    let started = Instant::now();
    let (user, outcome) = with_outcome(get_user(id)).await;
    let outcome = outcome.map_or("-", Outcome::as_str);
    println!("{outcome:>7} in {:>6.1?}: {:?}", started.elapsed(), user?);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let cache = match redis_cached::init(&url).await {
        Ok(cache) => cache,
        Err(err) => {
            println!("Redis at {url} does not answer ({err}); using the in-process mem:// cache");
            redis_cached::init("mem://").await?
        }
    };
    println!("cache backend: {}", cache.backend_kind());
    show(42).await?; // MISS: runs the body (200 ms)
    show(42).await?; // HIT: from the cache
    rename_user(42).await?; // deletes quickstart:user:42
    show(42).await?; // MISS again, with the new name
    show(42).await?; // HIT
    Ok(())
}
