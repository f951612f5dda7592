//! Background work: tasks spawned from synchronous code (a `Drop`), work that outlives a
//! dropped caller, and the pause between retries.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Spawns `work` on the current Tokio runtime; says whether there was one to spawn on (in a
/// `Drop` outside any runtime there is none, and the work cannot be done).
pub(crate) fn spawn_detached<F>(work: F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(work);
            true
        }
        Err(_) => false,
    }
}

/// An invalidation that finishes even if its caller is dropped while awaiting it (a
/// cancelled request): dropped unfinished, it goes on in a task of its own, and its output
/// is dropped there. Dropped outside a Tokio runtime (or while one shuts down) it cannot go
/// on; that is logged at error level.
pub(crate) struct Completing<F>(Option<Pin<Box<F>>>)
where
    F: Future + Send + 'static,
    F::Output: Send;

impl<F> Completing<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    pub(crate) fn new(work: F) -> Self {
        Completing(Some(Box::pin(work)))
    }
}

impl<F> Future for Completing<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(work) = self.0.as_mut() else {
            return Poll::Pending; // polled after completion: never again ready
        };
        let polled = work.as_mut().poll(cx);
        if polled.is_ready() {
            self.0 = None;
        }
        polled
    }
}

impl<F> Drop for Completing<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    fn drop(&mut self) {
        if let Some(work) = self.0.take() {
            let spawned = spawn_detached(async move {
                let _ = work.await;
            });
            if !spawned {
                tracing::error!(
                    "an invalidation dropped outside a Tokio runtime could not finish: its \
                     entries stay until their TTL"
                );
            }
        }
    }
}

/// A pause that doubles after each failed try, up to a cap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            next: first,
            max,
        }
    }

    /// The pause before the next try; the one after it is twice as long, up to the cap.
    pub(crate) fn next(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Starts again from the first pause (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(50), ms(250));
        let pauses: Vec<_> = (0..5).map(|_| backoff.next()).collect();
        assert_eq!(pauses, [ms(50), ms(100), ms(200), ms(250), ms(250)]);
        backoff.reset();
        assert_eq!(backoff.next(), ms(50));
    }
}
