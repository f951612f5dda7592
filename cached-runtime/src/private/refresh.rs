//! Entries past or near their TTL, of functions with `stale`, `stale_if_error` or
//! `refresh_ahead`: what a call does with one it read, judged by its envelope (see
//! `freshness.rs`), and the refreshes it claims, run by the caller or, with
//! `revalidate = "background"`, in a task of their own so that the claimant is served the
//! stored entry at once, as every other caller is.

use crate::Outcome;
use crate::freshness::{self, Freshness};
use crate::private::call::{Call, Context, Continuation, Fallback, Refresh, run};
use crate::private::shape::Shape;
use crate::private::stored::ValueCodec;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::telemetry::{self, Op};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Runs a body handed over (see [`Continuation`]) to its end, in a task of its own, and
/// stores its value: a refresh under its claim (an `Err` stores nothing: the claim lapses
/// after a lease's length, and the entry is served until then), a fill under its lease (an
/// `Err` puts the fallback back).
pub(crate) async fn continue_detached<S, R, F>(
    call: Call,
    codec: ValueCodec<S::Stored>,
    continuation: Continuation,
    body: Pin<Box<F>>,
) where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let Some(cx) = Context::new(&call, codec) else {
        return;
    };
    let (output, took) = run(cx.function, cx.key, body).await;
    let failed = S::failed(&output);
    let replacement = (!failed).then(|| replacement::<S, R>(&cx, &output, took));
    drop(output);
    match continuation {
        Continuation::Refresh(refresh) => match replacement {
            Some(replacement) => {
                store_refresh(&cx, (&refresh.claim, &refresh.stamp), replacement).await;
            }
            None => tracing::debug!(
                function = cx.function,
                "background refresh failed; the entry is served until its claim lapses"
            ),
        },
        Continuation::Fill {
            lease,
            stamp,
            fallback,
        } => {
            let (store, key, tags) = (&cx.cache.store, cx.key, cx.tags);
            let stored = match replacement {
                Some(Some((value, kept))) => {
                    store.fill(key, &lease, &value, kept, tags, &stamp).await
                }
                Some(None) => store.release(key, &lease).await.map(|()| false),
                None => {
                    let (value, kept) = (&fallback.stored, fallback.left);
                    store.fill(key, &lease, value, kept, tags, &stamp).await
                }
            };
            if let Err(error) = stored {
                cx.error(Op::Fill, &error);
            }
        }
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
    cx: &Context<'_, S::Stored>,
    bytes: &[u8],
    stamp: &Stamp,
    body: F,
) -> Judged<R>
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let (call, cache, key, function) = (cx.call, cx.cache, cx.key, cx.function);
    let store = &cache.store;
    let Some((header, value)) = freshness::open(bytes) else {
        // Stored by a function without these options (or not a value): overwrite it.
        return Judged::Miss;
    };
    let serve = |outcome| match crate::request::decode_kept(cx, value).and_then(S::output) {
        Some(output) => {
            crate::spans::item_size(bytes.len());
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
            let kept = call.kept_past_ttl(store.leases());
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
    let Some(refreshing) = cache.flights.refresh(key, &claim) else {
        return serve(served_as);
    };
    let until = now.saturating_add(freshness::millis(store.leases().ttl()));
    match store
        .claim(key, cx.tags, (header.fresh_until, now, until), &claim)
        .await
    {
        Ok(true) => {}
        Ok(false) => return serve(served_as),
        Err(error) => {
            cx.error(Op::Fetch, &error);
            return serve(served_as);
        }
    }
    // With `revalidate = "background"` the caller serves the entry like everyone else and
    // the refresh runs in a task; with `soft_timeout`, so it does once the body outlives it.
    let ran = match call.refresh_in_background {
        true => None,
        false => cx.run_soft(body).await,
    };
    let Some((output, took)) = ran else {
        let served = serve(served_as);
        if matches!(served, Judged::Served(_)) {
            call.hand_over(Continuation::Refresh(Refresh {
                claim,
                stamp: stamp.clone(),
                _refreshing: refreshing,
            }));
        }
        return served;
    };
    if S::failed(&output) {
        // Every other caller is served the entry meanwhile: so is this one. The claim
        // lapses by itself, which spaces out the retries of a failing source.
        tracing::debug!(function, "refresh failed; serving the stored value");
        return match serve(served_as) {
            Judged::Miss => Judged::Served(output),
            served => served,
        };
    }
    let replacement = replacement::<S, R>(cx, &output, took);
    // What the caller is served, as the request's scopes record it: the value stored.
    let stored = replacement
        .as_ref()
        .and_then(|(stored, _)| freshness::open(stored));
    match stored.zip(S::stored(&output, call.cache_none)) {
        Some(((_, value), entry)) => crate::request::keep(cx, value, entry, None),
        None => crate::request::unknown(),
    }
    store_refresh(cx, (&claim, stamp), replacement).await;
    drop(refreshing);
    Judged::Served(output)
}

/// What a claimed refresh stores for `output` (computed in `took`), and for how long; `None`
/// for a `None` not to be stored, a value that does not encode or whose TTL is not
/// positive: the entry is deleted instead (the old value is not served again).
fn replacement<S, R>(
    cx: &Context<'_, S::Stored>,
    output: &R,
    took: Duration,
) -> Option<(Vec<u8>, Duration)>
where
    S: Shape<R>,
{
    let entry = S::stored(output, cx.call.cache_none)?;
    let encoded = cx.encode(entry)?;
    let ttl = cx.entry_ttl(entry)?;
    let (stored, kept) = cx.stored_form(&encoded, ttl, took);
    Some((stored.into_owned(), kept))
}

/// Stores a claimed refresh's `replacement` (see [`replacement`]) if the claim is still in
/// the entry. Records a `Refresh`.
async fn store_refresh<T>(
    cx: &Context<'_, T>,
    (claim, stamp): (&Lease, &Stamp),
    replacement: Option<(Vec<u8>, Duration)>,
) {
    let (key, function) = (cx.key, cx.function);
    let (value, kept) = match &replacement {
        Some((stored, kept)) => (Some(&stored[..]), *kept),
        None => (None, Duration::ZERO),
    };
    let replace = cx
        .cache
        .store
        .fill_claimed(key, claim, value, kept, (cx.tags, stamp));
    match telemetry::timed(function, Op::Fill, replace).await {
        Ok(true) => {}
        Ok(false) => tracing::debug!(
            function,
            "refresh claim lost (invalidated or overtaken); value not stored"
        ),
        Err(error) => cx.error(Op::Fill, &error),
    }
    telemetry::outcome(function, Outcome::Refresh);
}
