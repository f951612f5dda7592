//! Generic aliases of `Result` whose name ends in `Result` store their `Ok` value, as
//! `Result` does. (An alias without type parameters cannot be told from a struct named
//! `SearchResult`, which is stored whole: see `struct-named-result.rs`.)
#![deny(warnings)]

use redis_cached::redis_cached;

#[derive(Debug)]
struct AppError;

type AppResult<T> = Result<T, AppError>;

#[redis_cached(key = "alias:<id>")]
async fn with_alias(id: u64) -> AppResult<u64> {
    if id == 0 {
        return Err(AppError);
    }
    Ok(id)
}

#[redis_cached(key = "alias-option:<id>", cache_none = true)]
async fn with_alias_option(id: u64) -> AppResult<Option<u64>> {
    Ok(Some(id))
}

fn main() {
    let _ = with_alias(1);
    let _ = with_alias_option(1);
}
