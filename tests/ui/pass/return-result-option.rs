//! `Result<Option<T>, E>`: `Ok(Some)` is stored; `Ok(None)` too with `cache_none = true`.
#![deny(warnings)]

use redis_cached::redis_cached;

#[derive(Debug)]
struct DbError;

#[redis_cached(key = "lookup:<id>", ttl = "1h", cache_none = true)]
async fn lookup(id: u64) -> Result<Option<String>, DbError> {
    match id {
        0 => Err(DbError),
        1 => Ok(None),
        _ => Ok(Some(id.to_string())),
    }
}

#[redis_cached(key = "lookup-io:<id>")]
async fn lookup_io(id: u64) -> std::io::Result<Option<u64>> {
    Ok(Some(id))
}

fn main() {
    let _ = lookup(1);
    let _ = lookup_io(1);
}
