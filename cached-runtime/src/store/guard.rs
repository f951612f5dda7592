//! [`Guarded`]: one operation on a server, past that server's breaker.

use super::Store;
use crate::Error;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pin_project_lite::pin_project! {
    /// [`Store::guarded`]'s future: refused at once while the breaker of the operation's
    /// server is open, else the operation's, polled in place, its outcome told to the
    /// breaker. Not an `async fn`: that would hold the operation twice, as its argument and
    /// as what it awaits, and every lookup's future (a hit's) would carry both.
    pub(crate) struct Guarded<'a, F> {
        #[pin]
        op: F,
        store: &'a Store,
        slot: Option<u16>,
        started: bool,
    }
}

impl<'a, F> Guarded<'a, F> {
    pub(super) fn new(store: &'a Store, slot: Option<u16>, op: F) -> Self {
        Guarded {
            op,
            store,
            slot,
            started: false,
        }
    }
}

impl<T, F: Future<Output = Result<T, Error>>> Future for Guarded<'_, F> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Asked when first polled, as an `async fn` would: `allow` may take the breaker's
        // one probe, which only a running operation may hold.
        if !*this.started {
            *this.started = true;
            if !this.store.breaker(*this.slot).allow() {
                return Poll::Ready(Err(Error::Unavailable));
            }
        }
        let result = ready!(this.op.poll(cx));
        this.store.record(*this.slot, &result);
        Poll::Ready(result)
    }
}
