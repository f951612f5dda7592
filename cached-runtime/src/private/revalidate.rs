//! `revalidate = "background"`: a refresh that a call claims (ahead of the expiry, or in the
//! `stale` window; see `freshness.rs`) runs in a task of its own, so that the claimant is
//! served the stored entry at once, as every other caller is. The body then outlives the
//! call: it must own what it uses (`Send + 'static`), which the macro asks for by boxing it.

use crate::flight::Pilot;
use crate::private::call::{Call, cached_with, replacement, run, store_refresh};
use crate::private::shape::Shape;
use crate::private::stored::Stores;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::task::spawn_detached;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// A refresh a call claimed and left to run in the background.
pub(crate) struct Refresh {
    /// The claim written into the entry: the refresh stores only while it is still there.
    pub(crate) claim: Lease,
    /// The tag versions read with the entry.
    pub(crate) stamp: Stamp,
    /// Keeps this process's other callers from claiming the same refresh meanwhile.
    pub(crate) _refreshing: Pilot,
}

/// [`cached`](crate::private::cached) for `revalidate = "background"`: the same, except that
/// a refresh the call claims runs in a spawned task after the call returned the entry.
pub async fn cached_revalidating<S, R, F>(
    mut call: Call,
    stores: Stores<S::Stored>,
    mut body: Pin<Box<F>>,
) -> R
where
    S: Shape<R> + 'static,
    S::Stored: 'static,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    call.revalidate_in_background();
    let output = cached_with::<S, R, F>(&call, stores, body.as_mut()).await;
    if let Some(refresh) = call.take_claimed() {
        spawn_detached(refresh_detached::<S, R, F>(call, stores, refresh, body));
    }
    output
}

/// Runs the body of a claimed refresh and stores its value (an `Err` stores nothing: the
/// claim lapses after a lease's length, and the entry is served until then).
async fn refresh_detached<S, R, F>(
    call: Call,
    stores: Stores<S::Stored>,
    refresh: Refresh,
    body: Pin<Box<F>>,
) where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let (function, Some((_, key))) = call.parts() else {
        return;
    };
    let started = Instant::now();
    let output = run(function, key, body).await;
    if S::failed(&output) {
        tracing::debug!(
            function,
            "background refresh failed; the entry is served until its claim lapses"
        );
        return;
    }
    let replacement = replacement::<S, R>(&call, stores, &output, started.elapsed());
    drop(output);
    store_refresh(&call, key, (&refresh.claim, &refresh.stamp), replacement).await;
}
