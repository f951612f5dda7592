//! The process-wide cache that cached functions use when they name no `cache = ...`.

use crate::{Cache, Error};
use std::sync::{Once, PoisonError, RwLock};

static GLOBAL: RwLock<Option<Cache>> = RwLock::new(None);

/// Connects to `url` and installs the result as the process-wide cache.
///
/// # Errors
///
/// As [`Cache::connect`]: an invalid URL, or Redis not answering.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// let cache = redis_cached::init("mem://").await?;
/// # Ok(()) }
/// ```
pub async fn init(url: &str) -> Result<Cache, Error> {
    let cache = Cache::connect(url).await?;
    install(cache.clone());
    Ok(cache)
}

/// Installs `cache` as the process-wide cache, returning the one it replaces.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// let cache = redis_cached::Cache::builder("mem://").prefix("app:").build().await?;
/// redis_cached::install(cache);
/// # Ok(()) }
/// ```
pub fn install(cache: Cache) -> Option<Cache> {
    GLOBAL
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(cache)
}

/// The installed cache, if any.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// assert!(redis_cached::installed().is_some());
/// # Ok(()) }
/// ```
pub fn installed() -> Option<Cache> {
    GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The installed cache; the first call that finds none says so once in the log.
pub(crate) fn global() -> Option<Cache> {
    static WARNED: Once = Once::new();
    let cache = installed();
    if cache.is_none() {
        WARNED.call_once(|| {
            const WARNING: &str = "no cache is installed: cached functions run their bodies \
                                   uncached; call redis_cached::init(url) at start-up";
            // Said whatever logging the application has: on stderr when no `tracing`
            // subscriber would show it.
            if tracing::dispatcher::has_been_set() {
                tracing::warn!("{WARNING}");
            } else {
                eprintln!("redis-cached: {WARNING}");
            }
        });
    }
    cache
}
