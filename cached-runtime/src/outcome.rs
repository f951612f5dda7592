//! How a caller learns what a cached call did: a hit, a miss, a refresh, a wait for another
//! caller's fill, or a bypass of the cache.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static OUTCOME: Cell<Option<Outcome>>;
}

/// What a cached call did, as a caller (or an `X-Cache` header) needs to tell apart.
///
/// ```
/// assert_eq!(redis_cached::Outcome::Hit.as_str(), "HIT");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The value came from the cache (Redis, or the near tier) at once.
    Hit,
    /// The value came from another caller's fill of the key, which this call waited for
    /// (single-flight, in this process or another): the body did not run here, but the call
    /// took as long as the other caller's body.
    Coalesced,
    /// The body ran with the cache available: its value was stored (unless it was not to be:
    /// an `Err`, a `None`, an invalidation during the body).
    Miss,
    /// The body ran to refresh the entry (the caller asked for it, or the call claimed the
    /// refresh of an entry ahead of its expiry or in its `stale` window), and its value was
    /// stored unless an invalidation came first.
    Refresh,
    /// A value past its TTL was returned: in the `stale` window, while another caller
    /// refreshes it (or after the refresh failed), or in the `stale_if_error` window because
    /// the body returned an `Err`.
    Stale,
    /// The cache was not used: none is installed, Redis is unreachable (or the breaker is
    /// open), the key's invalidation has not reached Redis yet, or the call came from inside
    /// the body filling the same key. The body ran, or concurrent calls on the key shared
    /// one run; nothing was stored.
    Bypass,
}

impl Outcome {
    /// `"HIT"`, `"COALESCED"`, `"MISS"`, `"REFRESH"`, `"STALE"` or `"BYPASS"`, as in an `X-Cache`
    /// response header.
    ///
    /// ```
    /// assert_eq!(redis_cached::Outcome::Bypass.as_str(), "BYPASS");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Coalesced => "COALESCED",
            Outcome::Miss => "MISS",
            Outcome::Refresh => "REFRESH",
            Outcome::Stale => "STALE",
            Outcome::Bypass => "BYPASS",
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
