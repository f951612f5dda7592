//! `timeout = ..`: the body is dropped at the limit, and the call returns its shape's
//! `Err(TimedOut.into())`.

use crate::private::shape::{OkOf, OkSomeOf};
use crate::timed_out::TimedOut;
use std::future::Future;
use std::time::Duration;

/// The output a call of return type `R` gives when its body timed out.
#[diagnostic::on_unimplemented(
    message = "`timeout` needs the function's error type to implement `From<redis_cached::TimedOut>`",
    label = "a body that runs too long returns `Err(redis_cached::TimedOut.into())`",
    note = "implement `From<redis_cached::TimedOut>` for the error type, or remove `timeout`"
)]
pub trait TimesOut<R> {
    /// `Err(TimedOut.into())`.
    fn timed_out() -> R;
}

impl<T, E: From<TimedOut>> TimesOut<Result<T, E>> for OkOf {
    fn timed_out() -> Result<T, E> {
        Err(TimedOut.into())
    }
}

impl<T, E: From<TimedOut>> TimesOut<Result<Option<T>, E>> for OkSomeOf {
    fn timed_out() -> Result<Option<T>, E> {
        Err(TimedOut.into())
    }
}

/// Runs `body` for at most `millis`, else drops it and returns the shape's timed-out output.
pub async fn time_limit<S, R, F>(millis: u64, body: F) -> R
where
    S: TimesOut<R>,
    F: Future<Output = R>,
{
    match tokio::time::timeout(Duration::from_millis(millis), body).await {
        Ok(output) => output,
        Err(_) => {
            tracing::debug!("a cached body ran past its timeout and was dropped");
            S::timed_out()
        }
    }
}
