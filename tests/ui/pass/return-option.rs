//! `Option<T>`: `Some` is stored; `None` too with `cache_none = true`.
#![deny(warnings)]

use redis_cached::redis_cached;

#[redis_cached(key = "find:<id>")]
async fn find(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

#[redis_cached(key = "find-none:<id>", cache_none = true, ttl = 30)]
async fn find_caching_none(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

#[redis_cached(key = "find-explicit:<id>", cache_none = false)]
async fn find_explicit(id: u64) -> std::option::Option<u64> {
    Some(id)
}

fn main() {
    let _ = find(1);
    let _ = find_caching_none(1);
    let _ = find_explicit(1);
}
