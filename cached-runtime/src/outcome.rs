//! How a caller learns whether a cached call was a hit, a miss or a refresh.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static OUTCOME: Cell<Option<Outcome>>;
}

/// What a cached call did.
///
/// ```
/// assert_eq!(redis_cached::Outcome::Hit.as_str(), "HIT");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The value came from the cache.
    Hit,
    /// The body ran because the cache had no usable value (or could not be reached).
    Miss,
    /// The body ran because the caller asked for a refresh, and the entry was overwritten.
    Refresh,
}

impl Outcome {
    /// `"HIT"`, `"MISS"` or `"REFRESH"`, as in an `X-Cache` response header.
    ///
    /// ```
    /// assert_eq!(redis_cached::Outcome::Refresh.as_str(), "REFRESH");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Refresh => "REFRESH",
        }
    }
}

/// Runs `future` and returns its output with the outcome of the last cached call that
/// completed inside it (for nested calls, the outermost), or `None` if it made none.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use redis_cached::{Outcome, redis_cached, with_outcome};
///
/// #[redis_cached(key = "answer", ttl = 60)]
/// async fn answer() -> u32 { 42 }
///
/// redis_cached::init("mem://").await?;
/// assert_eq!(with_outcome(answer()).await, (42, Some(Outcome::Miss)));
/// assert_eq!(with_outcome(answer()).await, (42, Some(Outcome::Hit)));
/// # Ok(()) }
/// ```
pub async fn with_outcome<F: Future>(future: F) -> (F::Output, Option<Outcome>) {
    OUTCOME
        .scope(Cell::new(None), async {
            let output = future.await;
            (output, OUTCOME.with(Cell::get))
        })
        .await
}

pub(crate) fn record(outcome: Outcome) {
    let _ = OUTCOME.try_with(|cell| cell.set(Some(outcome)));
}
