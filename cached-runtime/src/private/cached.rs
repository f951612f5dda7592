//! The cache-aside algorithm of a `#[redis_cached]` call, which generated code awaits.
//!
//! ```text
//! near tier hit? -> return
//! fetch (one command: read, or take our lease if absent)
//!   Hit(value)   -> decode -> return (undecodable: take the lease, fill); with freshness
//!                   windows, judged by its envelope first (`refresh.rs`)
//!   Ours         -> fill: run the body as a flight's pilot, store under our lease
//!   Theirs(lease)-> wait for that filler (its flight here, or its value in the store),
//!                   however long its body runs (its lease is kept alive), at most the
//!                   cache's `max_wait`; then one waiter takes the key over, the others
//!                   wait for it. A fill that fails hands its `Err` to its waiters (when it
//!                   can be cloned), or they look again and coalesce on one retry.
//!   error        -> degraded: one body run per key for concurrent calls, nothing stored
//! ```

use crate::cache::Inner;
use crate::flight::{self, Boarding, Joined, Landing, Shared};
use crate::near::NearTier;
use crate::private::call::{Call, Context, run};
use crate::private::call::{Continuation, Fallback};
use crate::private::refresh::{Judged, continue_detached, judge};
use crate::private::shape::Shape;
use crate::private::share::Sharing;
use crate::private::stored::ValueCodec;
use crate::request;
use crate::spans::{self, CallSpan, within};
use crate::store::Fetch;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::task::{Backoff, spawn_detached};
use crate::telemetry::{self, Op};
use crate::tombstone::Tombstone;
use crate::{Error, Outcome};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The first and longest pauses between two looks at a key another process is filling.
const POLL: Backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(50));

/// Cache-aside around `body`: look up, else run and store. Cache failures only cost time.
///
/// One lookup is one command that also takes a fill lease when the key is absent. Then: a
/// value is a hit; our lease means we run the body and store conditionally; another
/// caller's lease means we join its flight (same process) or wait for its value (another
/// process), up to the cache's `max_wait`, then take the key over. A call from inside the
/// body of a fill of the same key runs its body at once: it would otherwise wait for itself.
///
/// `codec` comes from the macro's check of the stored type (`stored_ok::<User>()`, ..):
/// this function puts no bound of its own on that type.
///
/// Everything but a hit (fills, waits, degraded runs, lease takeovers) is awaited boxed, so
/// that the future of a call, which a server allocates and moves per request, holds only
/// what a hit needs.
///
/// Not an `async fn` around `cached_with`: that would be one more future, the size of the
/// whole call, copied into its caller's on every call.
pub fn cached<S, R, F>(
    call: Call,
    codec: ValueCodec<S::Stored>,
    sharing: Sharing<S::Failure>,
    body: Pin<&mut F>,
) -> impl Future<Output = R>
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let span = call_span(&call);
    cached_with::<S, R, F, Call>(call, (codec, sharing, span), body)
}

/// [`cached`] for a body that may outlive its call (`revalidate = "background"`,
/// `soft_timeout`): the same, except that a body the call left running (a refresh it claimed,
/// a fill past `soft_timeout`) is run to its end in a spawned task after the call returned
/// the stored value. Such a body must own what it uses (`Send + 'static`), which the macro
/// asks for by boxing it.
pub async fn cached_revalidating<S, R, F>(
    mut call: Call,
    codec: ValueCodec<S::Stored>,
    sharing: Sharing<S::Failure>,
    mut body: Pin<Box<F>>,
) -> R
where
    S: Shape<R> + 'static,
    S::Stored: 'static,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    call.may_continue();
    let span = call_span(&call);
    let follows = span.handle();
    let output = cached_with::<S, R, F, &Call>(&call, (codec, sharing, span), body.as_mut()).await;
    if let Some(continuation) = call.take_continuation() {
        let traced = spans::continuation(call.function, &follows);
        let continued = continue_detached::<S, R, F>(call, codec, continuation, body);
        spawn_detached(continued.instrument(traced));
    }
    output
}

/// The `cache.get` span of `call`, if a subscriber takes it.
fn call_span(call: &Call) -> CallSpan {
    let (cache, key) = match &call.target {
        Some((cache, key)) => (Some(&cache.inner.spans), Some(key.as_str())),
        None => (None, None),
    };
    CallSpan::new(spans::call(call.function, cache, key))
}

/// [`cached`], on an owned or a borrowed call: `cached_revalidating` reads the call again
/// after it.
///
/// The call's span is entered only around what runs code of others (a body, a fill, a wait:
/// all boxed, `spans::within`); a hit records its outcome in it directly, so that a call
/// without a span pays no wrapper around its future.
async fn cached_with<S, R, F, C>(
    call: C,
    (codec, sharing, span): (ValueCodec<S::Stored>, Sharing<S::Failure>, CallSpan),
    mut body: Pin<&mut F>,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
    C: std::borrow::Borrow<Call>,
{
    let call = call.borrow();
    let Some(cx) = Context::new(call, codec) else {
        request::unknown();
        let output = Box::pin(within(&span, body)).await;
        served(&span, call.function, Outcome::Bypass, None);
        return output;
    };
    let (cache, key, function) = (cx.cache, cx.key, cx.function);
    let store = &cache.store;
    if cache.pending.contains(key) || cx.tags.keys.iter().any(|tag| cache.pending.contains(tag)) {
        // The key's (or a tag's) invalidation has not reached the store: neither read nor
        // write it.
        return Box::pin(within(&span, degraded::<S, R, _>(&cx, sharing, body))).await;
    }
    // The request's memo answers a key it was served already; so that it holds what the
    // call is served, the call records it there (and its identity, for a validator).
    let scope = request::current();
    if let Some(scope) = &scope
        && !call.refresh
        && let Some(output) = scope
            .recall(&cx, |held| codec.near_value(held, |bytes| cx.decode(bytes)))
            .and_then(S::output)
    {
        served(&span, function, Outcome::Hit, None);
        return output;
    }
    // The near tier's epoch for the key is taken before Redis is read: what is read is
    // kept locally only if no invalidation of the key came in meanwhile. Tagged entries
    // skip the tier: an invalidated tag changes no entry's key, so no push would evict them.
    let near = cache
        .near
        .as_deref()
        .filter(|tier| !call.tagged() && !call.windows.any() && tier.serves(call.near))
        .map(|tier| (tier, tier.epoch(key)));
    if let Some((tier, _)) = near
        && !call.refresh
        && let Some(held) = tier.get(key)
        && let Some(output) = codec
            .near_value(&held, |bytes| cx.decode(bytes))
            .and_then(S::output)
    {
        if let Some(scope) = &scope {
            scope.keep_near(&cx, held);
        }
        served(&span, function, Outcome::Hit, None);
        return output;
    }
    let lease = Lease::new();
    let want_ttl = near.is_some() || scope.as_ref().is_some_and(request::Request::wants_ttl);
    let tags = cx.tags;
    // With each lookup, the tags' versions it read (before the body runs): what a fill
    // records.
    let look_up = || {
        telemetry::timed(
            function,
            Op::Fetch,
            store.fetch(key, &lease, want_ttl, tags),
        )
    };
    // Boxed, as every path but a hit's (see above). While writes are paused, the lease's
    // write would wait for the timeout: the body runs, and nothing is stored.
    let take_over = || async {
        if store.writes_paused() {
            return Ok((Fetch::Absent, Stamp::default()));
        }
        let stamp = Box::pin(store.take_lease(key, &lease, tags)).await?;
        Ok((Fetch::Ours(None), stamp))
    };
    let mut fetched = if call.refresh {
        take_over().await
    } else {
        look_up().await
    };
    let mut poll = POLL;
    // The other caller's lease this call waits for, and until when: a hit needs no clock.
    let mut waiting: Option<(Lease, Instant, u64)> = None;
    // An entry past its TTL within `stale_if_error`, for when the body fails.
    let mut fallback = None;
    loop {
        match fetched {
            Ok((Fetch::Hit(bytes, _), stamp)) if call.windows.any() => {
                let judged = within(&span, judge::<S, R, _>(&cx, &bytes, &stamp, body.as_mut()));
                match Box::pin(judged).await {
                    Judged::Served(output) => return output,
                    Judged::Miss if cx.written_by_later(&bytes) => break,
                    Judged::Miss => fetched = take_over().await,
                    // Of the callers that read it, one takes the key over; the others look
                    // again, find its lease, and wait for its fill.
                    Judged::Expired(..) if store.writes_paused() => break,
                    Judged::Expired(fresh_until, found) => {
                        fallback = found;
                        let taken = store.take_over(key, tags, fresh_until, &lease);
                        fetched = match Box::pin(taken).await {
                            Ok(true) => Ok((Fetch::Ours(None), stamp)),
                            Ok(false) => look_up().await,
                            Err(error) => Err(error),
                        };
                    }
                }
            }
            Ok((Fetch::Hit(bytes, ttl), _)) => {
                if let Some(entry) = cx.decode(&bytes) {
                    if let Some(scope) = &scope {
                        scope.keep(&cx, (&bytes, entry.as_ref()), ttl);
                    }
                    let held = near
                        .zip(ttl)
                        .map(|(near, ttl)| (near, ttl, codec.hold(&bytes, entry.as_ref())));
                    if let Some(output) = S::output(entry) {
                        if let Some(((tier, epoch), ttl, held)) = held {
                            tier.keep(key, held, bytes.len(), ttl, epoch);
                        }
                        // After waiting for another process's fill, its value.
                        let outcome = if waiting.is_some() {
                            Outcome::Coalesced
                        } else {
                            Outcome::Hit
                        };
                        served(&span, function, outcome, Some(bytes.len()));
                        return output;
                    }
                }
                if cx.written_by_later(&bytes) {
                    break;
                }
                // Undecodable, oversized, of an earlier version or another shape: overwrite.
                fetched = take_over().await;
            }
            // Writes are paused: run the body, store nothing.
            Ok((Fetch::Absent, _)) => break,
            Ok((Fetch::Ours(cause), stamp)) => {
                let held = (&lease, &stamp, cause.as_deref());
                let fill = fill::<S, R, _>(&cx, sharing, held, (near, fallback), body);
                return Box::pin(within(&span, fill)).await;
            }
            Ok((Fetch::Theirs(other), stamp)) => {
                if flight::is_filling(key) {
                    let uncached = uncached(function, key, body, Outcome::Bypass);
                    return Box::pin(within(&span, uncached)).await;
                }
                // A filler that took the key over starts the wait again. So does a new
                // generation of the servers (a failover, a restart): the lease may be a
                // leftover whose fill went to the old primary, so it is taken over at once.
                let (other, give_up, generation) = match waiting.take() {
                    Some((waited, give_up, generation)) if waited == other => {
                        (waited, give_up, generation)
                    }
                    _ => (
                        other,
                        Instant::now() + patience(store, cx.max_wait()),
                        store.generation(),
                    ),
                };
                let waited = wait_for_filler(cache, key, (&other, &stamp), give_up, &mut poll);
                match Box::pin(waited).await {
                    Waited::Landed(bytes) => {
                        let decoded = request::decode_kept(&cx, &bytes);
                        if let Some(output) = decoded.and_then(S::output) {
                            served(&span, function, Outcome::Coalesced, Some(bytes.len()));
                            return output;
                        }
                        break;
                    }
                    Waited::Shared(output) => {
                        if let Some(output) = sharing.take(&*output).map(S::from_failure) {
                            request::unknown();
                            served(&span, function, Outcome::Coalesced, None);
                            return output;
                        }
                        break;
                    }
                    Waited::RunBody => break,
                    // The filler outlived the longest wait (or is a stray value of a lease's
                    // form, or a lease this process gave up that landed late): one waiter
                    // takes the key over, by a compare-and-set on the lease, and the others
                    // find its lease and wait for it.
                    Waited::LookAgain
                        if Instant::now() >= give_up
                            || store.generation() != generation
                            || store.given_up(key, &other) =>
                    {
                        let replaced = store.replace_lease(key, &other, &lease, tags);
                        fetched = match Box::pin(replaced).await {
                            Ok(Some(stamp)) => Ok((Fetch::Ours(None), stamp)),
                            Ok(None) => look_up().await,
                            Err(error) => Err(error),
                        };
                    }
                    Waited::LookAgain => fetched = look_up().await,
                }
                waiting = Some((other, give_up, generation));
            }
            Err(error) => {
                cx.error(Op::Fetch, &error);
                if !matches!(error, Error::Unavailable) {
                    // The lookup may still reach Redis and set our lease after we gave up
                    // on it; a release queued behind it on the connection undoes that.
                    store.release_detached(key, &lease);
                }
                return Box::pin(within(&span, degraded::<S, R, _>(&cx, sharing, body))).await;
            }
        }
    }
    // The body runs uncached: its filler's output cannot be shared, or the entry is a later
    // version's, left in place during a rolling deploy (so that old and new processes do
    // not overwrite each other on every call).
    Box::pin(within(&span, uncached(function, key, body, Outcome::Miss))).await
}

/// Records what a call served without entering its span (a hit, a shared fill, a bypass
/// without a cache): in its span and in the metrics.
fn served(span: &CallSpan, function: &'static str, outcome: Outcome, size: Option<usize>) {
    spans::served(span, outcome, size);
    telemetry::outcome(function, outcome);
}

/// How long a call waits for another process's lease before taking the key over: the
/// cache's `max_wait`; within one fill lease of a failover or a restart, a tenth of a lease
/// (500 ms by default), since the lease may be a leftover whose fill went to the old
/// primary and that nobody keeps alive (a live filler loses at most its store).
fn patience(store: &crate::store::Store, max_wait: Duration) -> Duration {
    let lease = store.leases().ttl();
    match store.changed_within(lease) {
        true => max_wait.min(lease / 10),
        false => max_wait,
    }
}

/// What waiting for another caller's fill gave.
enum Waited {
    /// The bytes its flight in this process stored.
    Landed(Arc<[u8]>),
    /// The output its flight did not store, to clone.
    Shared(Shared),
    /// Its flight's output is not stored and cannot be shared: run the body.
    RunBody,
    /// No flight of this process holds that lease (any more): look the key up again.
    LookAgain,
}

/// Waits for the caller holding `lease` on `key`: this process's flight if it has one and
/// it read the tag versions `stamp` (at most until `give_up`), else a pause before the key
/// is looked up again.
async fn wait_for_filler(
    cache: &Inner,
    key: &str,
    lease: (&Lease, &Stamp),
    give_up: Instant,
    poll: &mut Backoff,
) -> Waited {
    let left = || give_up.saturating_duration_since(Instant::now());
    // A flight of this process may register a moment after its lease is seen: look again
    // after the pause before asking the store again.
    let mut joined = cache.flights.join(key, lease, left()).await;
    if matches!(joined, Joined::NoFlight) {
        tokio::time::sleep(poll.next().min(left())).await;
        joined = cache.flights.join(key, lease, left()).await;
    }
    match joined {
        Joined::Value(bytes) => Waited::Landed(bytes),
        Joined::Output(output) => Waited::Shared(output),
        Joined::NoValue => Waited::RunBody,
        // A failed flight released its lease: the key is looked up again, where one caller
        // takes it for a retry and the others join that one. A flight that outlasted the
        // wait is taken over by one of its waiters.
        Joined::Failed | Joined::TimedOut | Joined::NoFlight => Waited::LookAgain,
    }
}

/// Runs the body under our lease, shares the result with this process's joiners, and
/// stores it if the lease still holds the key, stamped with the tag versions read before.
/// `cause` is the tombstone our lease replaced: the invalidation that made this a miss.
/// With a `fallback` (an entry within `stale_if_error`), an `Err` of the body is answered
/// with it, and it is put back.
async fn fill<S, R, F>(
    cx: &Context<'_, S::Stored>,
    sharing: Sharing<S::Failure>,
    (lease, stamp, cause): (&Lease, &Stamp, Option<&Tombstone>),
    (near, mut fallback): (Option<(&NearTier, u64)>, Option<Fallback>),
    mut body: Pin<&mut F>,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let (cache, key, function) = (cx.cache, cx.key, cx.function);
    // The invalidation that left the tombstone this miss replaced, if any.
    telemetry::invalidation_to_miss(function, cause);
    let store = &cache.store;
    let pilot = store
        .leases()
        .on()
        .then(|| cache.flights.depart(store, key, lease, stamp));
    let ran = match &fallback {
        Some(_) => cx.run_soft(body.as_mut()).await,
        None => Some(run(function, key, body.as_mut()).await),
    };
    let (output, took) = match ran {
        Some(ran) => ran,
        None => {
            // Past `soft_timeout` in `stale_if_error`'s window: the stored value answers this
            // call and its joiners now; the body goes on in a task of its own and fills under
            // our lease (on an `Err`, puts the value back).
            let fallen_back = fallback
                .as_ref()
                .and_then(|fallback| request::decode_kept(cx, fallback.value()));
            if let Some(stale) = fallen_back.and_then(S::output)
                && let Some(fallback) = fallback.take()
            {
                if let Some(pilot) = pilot {
                    pilot.land(Landing::Value(fallback.value().into()));
                }
                let (lease, stamp) = (lease.clone(), stamp.clone());
                cx.call.hand_over(Continuation::Fill {
                    lease,
                    stamp,
                    fallback,
                });
                telemetry::outcome(function, Outcome::Stale);
                return stale;
            }
            run(function, key, body.as_mut()).await
        }
    };
    if S::failed(&output)
        && let Some(fallback) = fallback
        && let Some(stale) = request::decode_kept(cx, fallback.value()).and_then(S::output)
    {
        // Joiners get the old value too, and later callers find it again (unless an
        // invalidation took our lease meanwhile).
        if let Some(pilot) = pilot {
            pilot.land(Landing::Value(fallback.value().into()));
        }
        let restore = store.fill(key, lease, &fallback.stored, fallback.left, cx.tags, stamp);
        if let Err(error) = restore.await {
            cx.error(Op::Fill, &error);
        }
        telemetry::outcome(function, Outcome::Stale);
        return stale;
    }
    let entry = S::stored(&output, cx.call.cache_none);
    let encoded = entry.and_then(|entry| cx.encode(entry));
    let ttl = entry.and_then(|entry| cx.entry_ttl(entry));
    let storing = match (&encoded, entry, ttl) {
        (Some(bytes), Some(entry), Some(ttl)) => Some((bytes, entry, ttl)),
        _ => None,
    };
    // What the caller is served, as the request's scopes record it: the value stored.
    match storing {
        Some((bytes, entry, ttl)) => request::keep(cx, bytes, entry, Some(ttl)),
        None => request::unknown(),
    }
    // Released before the joiners wake, so that one of them finds the key free for a retry
    // when there is nothing to share.
    let released = match storing {
        Some(_) => Ok(()),
        None => store.release(key, lease).await,
    };
    if let Some(pilot) = pilot {
        pilot.land(match &encoded {
            Some(bytes) => Landing::Value(bytes.clone()),
            None => landing::<S, R>(sharing, &output),
        });
    }
    let stored = match storing {
        Some((bytes, entry, ttl)) => {
            spans::item_size(bytes.len());
            let (stored, kept) = cx.stored_form(bytes, ttl, took);
            telemetry::timed(
                function,
                Op::Fill,
                store.fill(key, lease, &stored, kept, cx.tags, stamp),
            )
            .await
            .map(|filled| match near {
                _ if !filled => tracing::debug!(
                    function,
                    "fill lease lost (invalidated or expired); value not stored"
                ),
                Some((tier, epoch)) => {
                    tier.keep(key, cx.codec.hold(bytes, entry), bytes.len(), ttl, epoch);
                }
                None => {}
            })
        }
        None => released,
    };
    if let Err(error) = stored {
        cx.error(Op::Fill, &error);
    }
    let outcome = if cx.call.refresh {
        Outcome::Refresh
    } else {
        Outcome::Miss
    };
    telemetry::outcome(function, outcome);
    output
}

/// For calls that cannot use the store (it is unreachable, or the key's invalidation is
/// pending): concurrent calls on a key run the body once and share its result, as a fill's
/// joiners do, so that an outage does not multiply the load on the source. Nothing is read
/// from or written to the store.
async fn degraded<S, R, F>(cx: &Context<'_, S::Stored>, sharing: Sharing<S::Failure>, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let (cache, key, function) = (cx.cache, cx.key, cx.function);
    request::unknown();
    // Without leases there is no single-flight, degraded or not.
    if !cache.store.leases().on() || flight::is_filling(key) {
        return uncached(function, key, body, Outcome::Bypass).await;
    }
    match cache.flights.board_degraded(key) {
        Boarding::Pilot(pilot) => {
            let (output, _) = run(function, key, body).await;
            let encoded = S::stored(&output, cx.call.cache_none).and_then(|entry| cx.encode(entry));
            pilot.land(match encoded {
                Some(bytes) => Landing::Value(bytes),
                None => landing::<S, R>(sharing, &output),
            });
            telemetry::outcome(function, Outcome::Bypass);
            output
        }
        Boarding::Passenger(passenger) => {
            let shared = match passenger.wait(cx.max_wait()).await {
                Joined::Value(bytes) => cx.decode(&bytes).and_then(S::output),
                Joined::Output(output) => sharing.take(&*output).map(S::from_failure),
                _ => None,
            };
            if let Some(output) = shared {
                telemetry::outcome(function, Outcome::Bypass);
                return output;
            }
            uncached(function, key, body, Outcome::Bypass).await
        }
    }
}

/// Runs the body without touching the cache, and records `outcome`.
async fn uncached<R, F: Future<Output = R>>(
    function: &'static str,
    key: &str,
    body: F,
    outcome: Outcome,
) -> R {
    request::unknown();
    let (output, _) = run(function, key, body).await;
    telemetry::outcome(function, outcome);
    output
}

/// What a flight hands its joiners for an `output` it does not store: its `Err`, when the
/// error type can be shared.
fn landing<S: Shape<R>, R>(sharing: Sharing<S::Failure>, output: &R) -> Landing {
    match S::failure(output) {
        Some(failure) => match sharing.share(failure) {
            Some(failure) => Landing::Output(failure),
            None => Landing::Nothing { failed: true },
        },
        None => Landing::Nothing { failed: false },
    }
}
