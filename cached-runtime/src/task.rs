//! Background work: tasks spawned from synchronous code (a `Drop`), and the pause between
//! retries.

use std::future::Future;
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
