//! Aliases of `Result` whose name ends in `Result` store their `Ok` value, as `Result` does.
#![deny(warnings)]

use redis_cached::redis_cached;

#[derive(Debug)]
struct AppError;

type AppResult<T> = Result<T, AppError>;
type UserResult = Result<String, AppError>;

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

#[redis_cached(key = "alias-full:<id>")]
async fn with_full_alias(id: u64) -> UserResult {
    Ok(id.to_string())
}

fn main() {
    let _ = with_alias(1);
    let _ = with_alias_option(1);
    let _ = with_full_alias(1);
}
