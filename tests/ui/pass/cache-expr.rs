//! `cache = <expr>`: a parameter, a static, a function call; `Cache` or `&Cache`.
#![deny(warnings)]

use redis_cached::{Cache, redis_cached};
use std::sync::{Arc, OnceLock};

static CACHE: OnceLock<Cache> = OnceLock::new();

fn app_cache() -> &'static Cache {
    CACHE.get().expect("cache initialised at start-up")
}

struct State {
    cache: Arc<Cache>,
}

#[redis_cached(key = "param:<id>", cache = cache)]
async fn from_param(cache: &Cache, id: u64) -> u64 {
    id
}

/// An owned `Cache` moves into the call; it is not used in the body.
#[redis_cached(key = "owned:<id>", cache = cache)]
async fn from_owned_param(cache: Cache, id: u64) -> u64 {
    id
}

/// An owned `Cache` the body uses too is lent with `&`.
#[redis_cached(key = "lent:<id>", cache = &cache)]
async fn from_lent_param(cache: Cache, id: u64) -> u64 {
    drop(cache);
    id
}

#[redis_cached(key = "static:<id>", cache = CACHE.get().unwrap())]
async fn from_static(id: u64) -> u64 {
    id
}

#[redis_cached(key = "call:<id>", cache = app_cache())]
async fn from_call(id: u64) -> u64 {
    id
}

#[redis_cached(key = "arc:<id>", cache = &*state.cache)]
async fn from_arc(state: &State, id: u64) -> u64 {
    let _ = state;
    id
}

struct AppState {
    cache: Cache,
    db: Vec<u64>,
}

/// A field moved out of an owned parameter, while the body uses the other fields.
#[redis_cached(key = "field:<id>", cache = state.cache)]
async fn from_moved_field(state: AppState, id: u64) -> Option<u64> {
    state.db.get(id as usize).copied()
}

fn main() {
    let _ = |cache: &Cache| {
        let _ = from_param(cache, 1);
    };
    let _ = |cache: Cache| from_owned_param(cache, 1);
    let _ = |cache: Cache| from_lent_param(cache, 1);
    let _ = |state: AppState| from_moved_field(state, 1);
    let _ = from_static(1);
    let _ = from_call(1);
    let _ = |state: &State| {
        let _ = from_arc(state, 1);
    };
}
