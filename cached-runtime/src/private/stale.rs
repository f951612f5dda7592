//! Entries of functions with `stale`, `stale_if_error` or `refresh_ahead`: what a call does
//! with one it read, judged by its envelope (see `freshness.rs`), and the refreshes it
//! claims, run by the caller or, with `revalidate = "background"`, in a task of their own so
//! that the claimant is served the stored entry at once, as every other caller is. A
//! background body outlives its call: it must own what it uses (`Send + 'static`), which the
//! macro asks for by boxing it.

use crate::Outcome;
use crate::cache::Cache;
use crate::flight::Pilot;
use crate::freshness::{self, Freshness};
use crate::private::call::{Call, cached_with, decode, encode, run};
use crate::private::shape::Shape;
use crate::private::stored::Stores;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::task::spawn_detached;
use crate::telemetry::{self, Op};
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::time::Duration;

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
    let output = cached_with::<S, R, F, &Call>(&call, stores, body.as_mut()).await;
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
    let (function, Some((_, key))) = (call.function, &call.target) else {
        return;
    };
    let (output, took) = run(function, key, body).await;
    if S::failed(&output) {
        tracing::debug!(
            function,
            "background refresh failed; the entry is served until its claim lapses"
        );
        return;
    }
    let replacement = replacement::<S, R>(&call, stores, &output, took);
    drop(output);
    store_refresh(&call, key, (&refresh.claim, &refresh.stamp), replacement).await;
}

/// An entry within `stale_if_error`, as read: what a failing body is answered with.
pub(crate) struct Fallback {
    /// The stored bytes (out of any tag envelope), to put back.
    pub(crate) stored: Vec<u8>,
    /// Until the end of the longer window.
    pub(crate) left: Duration,
}

impl Fallback {
    pub(crate) fn value(&self) -> &[u8] {
        &self.stored[freshness::HEADER_LEN..]
    }
}

/// What judging an entry past (or near) its TTL gave.
pub(crate) enum Judged<R> {
    /// The call's output: the entry, or the refresh the call ran.
    Served(R),
    /// A miss (an entry that is no envelope, or does not decode): overwritten.
    Miss,
    /// An entry past its windows (or within `stale_if_error` only: with it): a miss, whose
    /// key is taken over only if it still holds the entry read, fresh until this.
    Expired(u64, Option<Fallback>),
}

/// An entry of a function with `stale`, `stale_if_error` or `refresh_ahead`, by its envelope
/// (see `freshness.rs`): served, refreshed by this call (one caller across processes: the
/// claim is taken in the entry), or a miss.
pub(crate) async fn judge<S, R, F>(
    call: &Call,
    stores: Stores<S::Stored>,
    cache: &Cache,
    key: &str,
    bytes: &[u8],
    stamp: &Stamp,
    body: F,
) -> Judged<R>
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let function = call.function;
    let parts = &*cache.inner;
    let store = &parts.store;
    let Some((header, value)) = freshness::open(bytes) else {
        // Stored by a function without these options (or not a value): overwrite it.
        return Judged::Miss;
    };
    let serve = |outcome| match decode(stores, cache, value, function).and_then(S::output) {
        Some(output) => {
            telemetry::outcome(function, outcome);
            Judged::Served(output)
        }
        None => Judged::Miss,
    };
    let now = freshness::now();
    let served_as = match call.windows.judge(&header, now) {
        Freshness::Fresh => return serve(Outcome::Hit),
        Freshness::RefreshEarly => Outcome::Hit,
        Freshness::Stale => Outcome::Stale,
        Freshness::ErrorFallback => {
            let kept = call.kept_past_ttl(store.lease_ttl());
            let kept_until = header.fresh_until.saturating_add(freshness::millis(kept));
            let left = Duration::from_millis(kept_until.saturating_sub(now));
            let stored = bytes.to_vec();
            return Judged::Expired(header.fresh_until, Some(Fallback { stored, left }));
        }
        Freshness::Expired => return Judged::Expired(header.fresh_until, None),
    };
    // Another caller's claim is current, in the entry or in this process: serve the entry.
    let claim = Lease::new();
    if header.claimed_until > now {
        return serve(served_as);
    }
    let Some(refreshing) = parts.flights.refresh(key, &claim) else {
        return serve(served_as);
    };
    let tags = call.tags(parts.default_ttl, store.lease_ttl());
    let until = now.saturating_add(freshness::millis(store.lease_ttl().unwrap_or_default()));
    match store
        .claim(key, tags, (header.fresh_until, now, until), &claim)
        .await
    {
        Ok(true) => {}
        Ok(false) => return serve(served_as),
        Err(error) => {
            telemetry::error(&parts.log, function, Op::Fetch, &error);
            return serve(served_as);
        }
    }
    if let Some(slot) = &call.background {
        // The caller serves the entry like everyone else, and runs the refresh in a task.
        let served = serve(served_as);
        if matches!(served, Judged::Served(_)) {
            let stamp = stamp.clone();
            let refresh = Refresh {
                claim,
                stamp,
                _refreshing: refreshing,
            };
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(refresh);
        }
        return served;
    }
    let (output, took) = run(function, key, body).await;
    if S::failed(&output) {
        // Every other caller is served the entry meanwhile: so is this one. The claim
        // lapses by itself, which spaces out the retries of a failing source.
        tracing::debug!(function, "refresh failed; serving the stored value");
        return match serve(served_as) {
            Judged::Miss => Judged::Served(output),
            served => served,
        };
    }
    let replacement = replacement::<S, R>(call, stores, &output, took);
    store_refresh(call, key, (&claim, stamp), replacement).await;
    drop(refreshing);
    Judged::Served(output)
}

/// What a claimed refresh stores for `output` (computed in `took`), and for how long; `None`
/// for a `None` not to be stored, a value that does not encode or whose TTL is not
/// positive: the entry is deleted instead (the old value is not served again).
pub(crate) fn replacement<S, R>(
    call: &Call,
    stores: Stores<S::Stored>,
    output: &R,
    took: Duration,
) -> Option<(Vec<u8>, Duration)>
where
    S: Shape<R>,
{
    let (cache, _) = call.target.as_ref()?;
    let parts = &*cache.inner;
    let entry = S::stored(output, call.cache_none)?;
    let encoded = encode(stores, cache, entry, call.function)?;
    let ttl = call.entry_ttl(stores, entry, parts)?;
    let (stored, kept) = call.stored_form(&encoded, (ttl, parts.store.lease_ttl()), took);
    Some((stored.into_owned(), kept))
}

/// Stores a claimed refresh's `replacement` (see [`replacement`]) if the claim is still in
/// the entry. Records a `Refresh`.
pub(crate) async fn store_refresh(
    call: &Call,
    key: &str,
    (claim, stamp): (&Lease, &Stamp),
    replacement: Option<(Vec<u8>, Duration)>,
) {
    let function = call.function;
    let Some((cache, _)) = &call.target else {
        return;
    };
    let parts = &*cache.inner;
    let store = &parts.store;
    let tags = call.tags(parts.default_ttl, store.lease_ttl());
    let (value, kept) = match &replacement {
        Some((stored, kept)) => (Some(&stored[..]), *kept),
        None => (None, Duration::ZERO),
    };
    let replace = store.fill_claimed(key, claim, value, kept, (tags, stamp));
    match telemetry::timed(function, Op::Fill, replace).await {
        Ok(true) => {}
        Ok(false) => tracing::debug!(
            function,
            "refresh claim lost (invalidated or overtaken); value not stored"
        ),
        Err(error) => telemetry::error(&parts.log, function, Op::Fill, &error),
    }
    telemetry::outcome(function, Outcome::Refresh);
}
