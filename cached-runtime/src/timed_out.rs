//! [`TimedOut`]: what a call of a function with `timeout` returns when its body ran too long.

/// The error a `#[redis_cached(timeout = "2s")]` call returns, converted into the function's
/// error type, when its body ran longer than the limit. The body was dropped at the limit,
/// nothing was stored, its fill lease was released, and the callers that waited for it were
/// released at once.
///
/// The function's error type implements `From<TimedOut>` (a compile error at `timeout`
/// otherwise):
///
/// ```
/// use redis_cached::{TimedOut, redis_cached};
///
/// #[derive(Debug)]
/// enum DbError {
///     TimedOut,
/// }
///
/// impl From<TimedOut> for DbError {
///     fn from(_: TimedOut) -> Self {
///         DbError::TimedOut
///     }
/// }
///
/// #[redis_cached(key = "report:<id>", ttl = 60, timeout = "50ms")]
/// async fn report(id: u64) -> Result<String, DbError> {
///     tokio::time::sleep(std::time::Duration::from_secs(10)).await;
///     Ok(format!("report {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// assert!(matches!(report(7).await, Err(DbError::TimedOut)));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("the cached function's body ran past its timeout")]
pub struct TimedOut;
