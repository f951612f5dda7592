//! Cached functions return `Send` futures, so they work as axum handlers and in
//! `tokio::spawn`.
#![deny(warnings)]

use redis_cached::{Cache, invalidates, redis_cached};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
struct User {
    id: u64,
}

#[derive(Clone)]
struct AppState {
    cache: Cache,
}

struct Path<T>(T);

#[redis_cached(key = "user:<id>", ttl = "10m")]
async fn get_user(Path(id): Path<u64>) -> Result<String, String> {
    tokio::task::yield_now().await;
    Ok(id.to_string())
}

#[redis_cached(key = "state-user:<id>", cache = &state.cache)]
async fn with_state(state: AppState, Path(id): Path<u64>) -> Option<u64> {
    tokio::task::yield_now().await;
    Some(id)
}

#[redis_cached(key = "borrowed:<name>")]
async fn borrowed(name: &str) -> User {
    User {
        id: name.len() as u64,
    }
}

#[invalidates("user:<id>", cache = state.cache.clone())]
async fn update(state: Arc<AppState>, id: u64) -> Result<(), String> {
    tokio::task::yield_now().await;
    Ok(())
}

fn assert_send<T: Send>(_: T) {}

fn assert_handler<F: std::future::Future + Send + 'static>(_: F) {}

#[tokio::main]
async fn main() {
    assert_send(get_user(Path(1)));
    assert_handler(get_user(Path(1)));
    let _ = |state: AppState| assert_handler(with_state(state, Path(1)));
    assert_send(borrowed("x"));
    let _ = |state: Arc<AppState>| assert_handler(update(state, 1));
    // The future can be spawned; with no cache installed it just runs the body.
    let spawned = tokio::spawn(get_user(Path(7)));
    assert_eq!(spawned.await.unwrap(), Ok("7".to_owned()));
    let _ = |user: User| user.id;
}
