//! The cache-aside algorithm of a `#[redis_cached]` call.
//!
//! ```text
//! near tier hit? -> return
//! fetch (one command: read, or take our lease if absent)
//!   Hit(value)   -> decode -> return (undecodable: take the lease, fill)
//!   Ours         -> fill: run the body as a flight's pilot, store under our lease
//!   Theirs(lease)-> wait for that filler (its flight here, or its value in the store),
//!                   at most the lease's length; then run the body ourselves
//!   error        -> degraded: one body run per key for concurrent calls, nothing stored
//! ```

use crate::cache::Cache;
use crate::entry::Entry;
use crate::flight::{self, Boarding, Joined};
use crate::freshness::{self, Windows};
use crate::key::KeyBuilder;
use crate::near::NearTier;
use crate::private::shape::Shape;
use crate::private::stale::{Fallback, Judged, Refresh, judge};
use crate::private::stored::Stores;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::store::{Fetch, Tags};
use crate::task::Backoff;
use crate::telemetry::{self, Op};
use crate::ttl;
use crate::{Error, IntoTtl, Outcome};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One call of a `#[redis_cached]` function: its cache, rendered key and options.
pub struct Call {
    pub(crate) function: &'static str,
    pub(crate) target: Option<(Cache, String)>,
    /// Rendered tag keys (see `store/tags.rs`).
    tags: Vec<String>,
    ttl: Option<Duration>,
    /// `ttl = <expr>` gave a TTL that is not positive: nothing is stored.
    ttl_refused: bool,
    /// `stale`, `stale_if_error`, `refresh_ahead`.
    pub(crate) windows: Windows,
    refresh: bool,
    pub(crate) cache_none: bool,
    near: Option<bool>,
    /// With `revalidate = "background"`: where `judge` leaves the refresh this call claimed,
    /// for `cached_revalidating` to run in a task of its own.
    pub(crate) background: Option<Box<Mutex<Option<Refresh>>>>,
}

impl Call {
    /// Renders the key at once (before the body can move the arguments), if there is a cache.
    pub fn new(
        cache: Option<Cache>,
        function: &'static str,
        render: impl FnOnce(&mut KeyBuilder),
    ) -> Self {
        let target = cache.map(|cache| {
            let key = cache.inner.keys.render(render);
            (cache, key)
        });
        Call {
            function,
            target,
            tags: Vec::new(),
            ttl: None,
            ttl_refused: false,
            windows: Windows::default(),
            refresh: false,
            cache_none: false,
            near: None,
            background: None,
        }
    }

    /// Renders one more tag at once, if there is a cache.
    pub fn tag(mut self, render: impl FnOnce(&mut KeyBuilder)) -> Self {
        if let Some((cache, _)) = &self.target {
            self.tags.push(cache.inner.keys.render_tag(render));
        }
        self
    }

    /// Use (or not) the cache's near tier, whatever its default.
    pub fn near(mut self, near: bool) -> Self {
        self.near = Some(near);
        self
    }

    /// A TTL in whole seconds, checked to be positive by the macro.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Some(ttl::seconds(seconds));
        self
    }

    /// A TTL computed at run time (`ttl = <expr>`); one that is not positive stores nothing.
    pub fn ttl_value(mut self, ttl: impl IntoTtl) -> Self {
        match ttl.into_ttl() {
            Some(ttl) => self.ttl = Some(ttl),
            None => self.ttl_refused = true,
        }
        self
    }

    /// Serve entries up to `seconds` past their TTL while one caller refreshes them.
    pub fn stale(mut self, seconds: u64) -> Self {
        self.windows.stale = ttl::seconds(seconds);
        self
    }

    /// Answer an `Err` of the body with an entry up to `seconds` past its TTL.
    pub fn stale_if_error(mut self, seconds: u64) -> Self {
        self.windows.stale_if_error = ttl::seconds(seconds);
        self
    }

    /// Refresh ahead of the TTL, by XFetch with this `beta` (checked positive by the macro).
    pub fn refresh_ahead(mut self, beta: f64) -> Self {
        self.windows.beta = beta;
        self
    }

    /// Skip the lookup and overwrite the entry.
    pub fn refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// Store `None` too.
    pub fn cache_none(mut self, cache_none: bool) -> Self {
        self.cache_none = cache_none;
        self
    }
}

impl Call {
    /// Claimed refreshes are left for the caller to run in the background.
    pub(crate) fn revalidate_in_background(&mut self) {
        self.background = Some(Box::default());
    }

    /// The refresh `judge` claimed and left, if any.
    pub(crate) fn take_claimed(&self) -> Option<Refresh> {
        let slot = self.background.as_ref()?;
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The call's tags, with how long a tag key it creates lives.
    pub(crate) fn tags(&self, default_ttl: Duration, lease_ttl: Option<Duration>) -> Tags<'_> {
        Tags {
            keys: &self.tags,
            ttl: self.ttl.unwrap_or(default_ttl)
                + self.kept_past_ttl(lease_ttl)
                + lease_ttl.unwrap_or_default(),
        }
    }

    /// The TTL to store `entry` with: `ttl_from`'s, the call's or the cache's default;
    /// `None` (logged at debug level: a TTL of zero is how a value says "do not cache me")
    /// when it is not positive.
    pub(crate) fn entry_ttl<T>(
        &self,
        stores: Stores<T>,
        entry: Entry<&T>,
        parts: &crate::cache::Inner,
    ) -> Option<Duration> {
        let ttl = match stores.ttl_of(entry) {
            Some(from_value) => from_value,
            None if self.ttl_refused => None,
            None => Some(self.ttl.unwrap_or(parts.default_ttl)),
        };
        if ttl.is_none() {
            tracing::debug!(
                function = self.function,
                "the TTL is not positive: the value is returned but not stored"
            );
        }
        ttl
    }

    /// How long past its TTL the store keeps an entry: the longer window; with
    /// `refresh_ahead`, at least a lease's length, so that a refresh claimed just before the
    /// expiry still finds the entry to store over.
    pub(crate) fn kept_past_ttl(&self, lease_ttl: Option<Duration>) -> Duration {
        let extra = self.windows.extra();
        if self.windows.beta > 0.0 {
            extra.max(lease_ttl.unwrap_or_default())
        } else {
            extra
        }
    }

    /// The bytes to store for `encoded` and how long the store keeps them: with `stale`,
    /// `stale_if_error` or `refresh_ahead`, in an envelope fresh for `ttl` (computed in
    /// `took`), kept [`kept_past_ttl`](Self::kept_past_ttl) longer.
    pub(crate) fn stored_form<'a>(
        &self,
        encoded: &'a [u8],
        (ttl, lease_ttl): (Duration, Option<Duration>),
        took: Duration,
    ) -> (Cow<'a, [u8]>, Duration) {
        if !self.windows.any() {
            return (Cow::Borrowed(encoded), ttl);
        }
        let fresh_until = freshness::now().saturating_add(freshness::millis(ttl));
        let wrapped = freshness::wrap(encoded, fresh_until, took);
        (Cow::Owned(wrapped), ttl + self.kept_past_ttl(lease_ttl))
    }
}

/// The first and longest pauses between two looks at a key another process is filling.
const POLL: Backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(50));

/// Cache-aside around `body`: look up, else run and store. Cache failures only cost time.
///
/// One lookup is one command that also takes a fill lease when the key is absent. Then: a
/// value is a hit; our lease means we run the body and store conditionally; another
/// caller's lease means we join its flight (same process) or wait for its value (another
/// process), up to the lease's length, then run the body ourselves. A call from inside the
/// body of a fill of the same key runs its body at once: it would otherwise wait for itself.
///
/// `stores` comes from the macro's check of the stored type (`stored_ok::<User>()`, ..):
/// this function puts no bound of its own on that type.
///
/// Everything but a hit (fills, waits, degraded runs, lease takeovers) is awaited boxed, so
/// that the future of a call, which a server allocates and moves per request, holds only
/// what a hit needs (for a `Result<Option<T>, _>` function with a trivial body, release
/// build: 2.9 KiB, against 6.6 KiB with those paths inline).
///
/// Not an `async fn` around `cached_with`: that would be one more future, the size of the
/// whole call, copied into its caller's on every call.
pub fn cached<S, R, F>(
    call: Call,
    stores: Stores<S::Stored>,
    body: Pin<&mut F>,
) -> impl Future<Output = R>
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    cached_with::<S, R, F, Call>(call, stores, body)
}

/// [`cached`], on an owned or a borrowed call: `cached_revalidating` reads the call again
/// after it.
pub(crate) async fn cached_with<S, R, F, C>(
    call: C,
    stores: Stores<S::Stored>,
    mut body: Pin<&mut F>,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
    C: std::borrow::Borrow<Call>,
{
    let call = call.borrow();
    let function = call.function;
    let Some((cache, key)) = &call.target else {
        let output = body.await;
        telemetry::outcome(function, Outcome::Bypass);
        return output;
    };
    let parts = &*cache.inner;
    let store = &parts.store;
    if parts.pending.contains(key) || call.tags.iter().any(|tag| parts.pending.contains(tag)) {
        // The key's (or a tag's) invalidation has not reached the store: neither read nor
        // write it.
        return Box::pin(degraded::<S, R, _>(call, stores, cache, key, body)).await;
    }
    // The near tier's epoch for the key is taken before Redis is read: what is read is
    // kept locally only if no invalidation of the key came in meanwhile. Tagged entries
    // skip the tier: an invalidated tag changes no entry's key, so no push would evict them.
    let near = parts
        .near
        .as_deref()
        .filter(|tier| call.tags.is_empty() && !call.windows.any() && tier.serves(call.near))
        .map(|tier| (tier, tier.epoch(key)));
    if let Some((tier, _)) = near
        && !call.refresh
        && let Some(output) = tier
            .get(key)
            .and_then(|held| {
                stores.near_value(&held, |bytes| decode(stores, cache, bytes, function))
            })
            .and_then(S::output)
    {
        telemetry::outcome(function, Outcome::Hit);
        return output;
    }
    let lease = Lease::new();
    let want_ttl = near.is_some();
    let tags = call.tags(parts.default_ttl, store.lease_ttl());
    // With each lookup, the tags' versions it read (before the body runs): what a fill
    // records.
    let look_up = || {
        telemetry::timed(
            function,
            Op::Fetch,
            store.fetch(key, &lease, want_ttl, tags),
        )
    };
    // Boxed, as every path but a hit's (see above).
    let take_over = || async {
        let stamp = Box::pin(store.take_lease(key, &lease, tags)).await?;
        Ok((Fetch::Ours, stamp))
    };
    let mut fetched = if call.refresh {
        take_over().await
    } else {
        look_up().await
    };
    let mut poll = POLL;
    // Set when another caller's lease is first seen: a hit needs no clock.
    let mut give_up = None;
    // An entry past its TTL within `stale_if_error`, for when the body fails.
    let mut fallback = None;
    loop {
        match fetched {
            Ok((Fetch::Hit(bytes, _), stamp)) if call.windows.any() => {
                let judged =
                    judge::<S, R, _>(call, stores, cache, key, &bytes, &stamp, body.as_mut());
                match Box::pin(judged).await {
                    Judged::Served(output) => return output,
                    Judged::Miss => fetched = take_over().await,
                    // Of the callers that read it, one takes the key over; the others look
                    // again, find its lease, and wait for its fill.
                    Judged::Expired(fresh_until, found) => {
                        fallback = found;
                        let taken = store.take_over(key, tags, fresh_until, &lease);
                        fetched = match Box::pin(taken).await {
                            Ok(true) => Ok((Fetch::Ours, stamp)),
                            Ok(false) => look_up().await,
                            Err(error) => Err(error),
                        };
                    }
                }
            }
            Ok((Fetch::Hit(bytes, ttl), _)) => {
                if let Some(entry) = decode(stores, cache, &bytes, function) {
                    let held = near
                        .zip(ttl)
                        .map(|(near, ttl)| (near, ttl, stores.hold(&bytes, entry.as_ref())));
                    if let Some(output) = S::output(entry) {
                        if let Some(((tier, epoch), ttl, held)) = held {
                            tier.keep(key, held, bytes.len(), ttl, epoch);
                        }
                        // After waiting for another process's fill, its value.
                        let outcome = if give_up.is_some() {
                            Outcome::Coalesced
                        } else {
                            Outcome::Hit
                        };
                        telemetry::outcome(function, outcome);
                        return output;
                    }
                }
                // Undecodable, oversized or not of this function's shape: overwrite it.
                fetched = take_over().await;
            }
            Ok((Fetch::Ours, stamp)) => {
                let lease = (&lease, &stamp);
                let fill = fill::<S, R, _>(call, stores, cache, key, lease, near, fallback, body);
                return Box::pin(fill).await;
            }
            Ok((Fetch::Theirs(other), _)) => {
                if flight::is_filling(key) {
                    return Box::pin(uncached(function, key, body, Outcome::Bypass)).await;
                }
                let give_up = *give_up
                    .get_or_insert_with(|| Instant::now() + store.lease_ttl().unwrap_or_default());
                match Box::pin(wait_for_filler(parts, key, &other, give_up, &mut poll)).await {
                    Waited::Landed(bytes) => {
                        if let Some(output) =
                            decode(stores, cache, &bytes, function).and_then(S::output)
                        {
                            telemetry::outcome(function, Outcome::Coalesced);
                            return output;
                        }
                        return Box::pin(uncached(function, key, body, Outcome::Miss)).await;
                    }
                    Waited::RunBody => {
                        return Box::pin(uncached(function, key, body, Outcome::Miss)).await;
                    }
                    // Another process's lease, or a marker that outlived any lease's length
                    // (a stray value of the lease's form): take the key over once it is up.
                    Waited::LookAgain if Instant::now() >= give_up => {
                        fetched = take_over().await;
                    }
                    Waited::LookAgain => fetched = look_up().await,
                }
            }
            Err(error) => {
                telemetry::error(&parts.log, function, Op::Fetch, &error);
                if !matches!(error, Error::Unavailable) {
                    // The lookup may still reach Redis and set our lease after we gave up
                    // on it; a release queued behind it on the connection undoes that.
                    store.release_detached(key, &lease);
                }
                return Box::pin(degraded::<S, R, _>(call, stores, cache, key, body)).await;
            }
        }
    }
}

/// What waiting for another caller's fill gave.
enum Waited {
    /// The bytes its flight in this process stored.
    Landed(Arc<[u8]>),
    /// Its flight ended without a value to share, or outlasted the lease: run the body.
    RunBody,
    /// No flight of this process holds that lease: look the key up again.
    LookAgain,
}

/// Waits for the caller holding `lease` on `key`: this process's flight if it has one (at
/// most until `give_up`), else a pause before the key is looked up again.
async fn wait_for_filler(
    parts: &crate::cache::Inner,
    key: &str,
    lease: &Lease,
    give_up: Instant,
    poll: &mut Backoff,
) -> Waited {
    let left = || give_up.saturating_duration_since(Instant::now());
    // A flight of this process may register a moment after its lease is seen: look again
    // after the pause before asking the store again.
    let mut joined = parts.flights.join(key, lease, left()).await;
    if matches!(joined, Joined::NoFlight) {
        tokio::time::sleep(poll.next().min(left())).await;
        joined = parts.flights.join(key, lease, left()).await;
    }
    match joined {
        Joined::Value(bytes) => Waited::Landed(bytes),
        Joined::NoValue | Joined::TimedOut => Waited::RunBody,
        Joined::NoFlight => Waited::LookAgain,
    }
}

/// Runs the body under our lease, shares the result with this process's joiners, and
/// stores it if the lease still holds the key, stamped with the tag versions read before.
/// With a `fallback` (an entry within `stale_if_error`), an `Err` of the body is answered
/// with it, and it is put back.
#[allow(clippy::too_many_arguments)] // One call site; the arguments are the fill's state.
async fn fill<S, R, F>(
    call: &Call,
    stores: Stores<S::Stored>,
    cache: &Cache,
    key: &str,
    (lease, stamp): (&Lease, &Stamp),
    near: Option<(&NearTier, u64)>,
    fallback: Option<Fallback>,
    body: F,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let function = call.function;
    let parts = &*cache.inner;
    let store = &parts.store;
    let tags = call.tags(parts.default_ttl, store.lease_ttl());
    let pilot = store
        .lease_ttl()
        .map(|_| parts.flights.depart(store, key, lease));
    let (output, took) = run(function, key, body).await;
    if S::failed(&output)
        && let Some(fallback) = fallback
        && let Some(stale) = decode(stores, cache, fallback.value(), function).and_then(S::output)
    {
        // Joiners get the old value too, and later callers find it again (unless an
        // invalidation took our lease meanwhile).
        if let Some(pilot) = pilot {
            pilot.land(Some(fallback.value().into()));
        }
        let restore = store.fill(key, lease, &fallback.stored, fallback.left, tags, stamp);
        if let Err(error) = restore.await {
            telemetry::error(&parts.log, function, Op::Fill, &error);
        }
        telemetry::outcome(function, Outcome::Stale);
        return stale;
    }
    let entry = S::stored(&output, call.cache_none);
    let encoded = entry.and_then(|entry| encode(stores, cache, entry, function));
    if let Some(pilot) = pilot {
        pilot.land(encoded.clone());
    }
    let ttl = entry.and_then(|entry| call.entry_ttl(stores, entry, parts));
    let stored = match (&encoded, entry, ttl) {
        (Some(bytes), Some(entry), Some(ttl)) => {
            let (stored, kept) = call.stored_form(bytes, (ttl, store.lease_ttl()), took);
            telemetry::timed(
                function,
                Op::Fill,
                store.fill(key, lease, &stored, kept, tags, stamp),
            )
            .await
            .map(|filled| match near {
                _ if !filled => tracing::debug!(
                    function,
                    "fill lease lost (invalidated or expired); value not stored"
                ),
                Some((tier, epoch)) => {
                    tier.keep(key, stores.hold(bytes, entry), bytes.len(), ttl, epoch);
                }
                None => {}
            })
        }
        _ => store.release(key, lease).await,
    };
    if let Err(error) = stored {
        telemetry::error(&parts.log, function, Op::Fill, &error);
    }
    let outcome = if call.refresh {
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
async fn degraded<S, R, F>(
    call: &Call,
    stores: Stores<S::Stored>,
    cache: &Cache,
    key: &str,
    body: F,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let function = call.function;
    let parts = &*cache.inner;
    // Without leases there is no single-flight, degraded or not.
    let Some(wait) = parts.store.lease_ttl() else {
        return uncached(function, key, body, Outcome::Bypass).await;
    };
    if flight::is_filling(key) {
        return uncached(function, key, body, Outcome::Bypass).await;
    }
    match parts.flights.board_degraded(key) {
        Boarding::Pilot(pilot) => {
            let (output, _) = run(function, key, body).await;
            let entry = S::stored(&output, call.cache_none);
            pilot.land(entry.and_then(|entry| encode(stores, cache, entry, function)));
            telemetry::outcome(function, Outcome::Bypass);
            output
        }
        Boarding::Passenger(passenger) => {
            if let Joined::Value(bytes) = passenger.wait(wait).await
                && let Some(output) = decode(stores, cache, &bytes, function).and_then(S::output)
            {
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
    let (output, _) = run(function, key, body).await;
    telemetry::outcome(function, outcome);
    output
}

/// Runs the body for `key` (calls of `key` from inside it run their bodies at once), and
/// says how long it took: recorded here, and what a freshness envelope keeps as XFetch's delta.
pub(crate) async fn run<R, F: Future<Output = R>>(
    function: &'static str,
    key: &str,
    body: F,
) -> (R, Duration) {
    let started = Instant::now();
    let output = flight::filling(key, body).await;
    let took = started.elapsed();
    telemetry::body_time(function, took);
    (output, took)
}

/// The bytes to store for `entry`, unless it does not encode (logged).
pub(crate) fn encode<T>(
    stores: Stores<T>,
    cache: &Cache,
    entry: Entry<&T>,
    function: &'static str,
) -> Option<Arc<[u8]>> {
    stores
        .encode(cache.inner.codec, entry)
        .map_err(|error| telemetry::error(&cache.inner.log, function, Op::Encode, &error))
        .ok()
        .map(Arc::from)
}

/// A stored entry, unless it is oversized or does not decode (both logged).
pub(crate) fn decode<T>(
    stores: Stores<T>,
    cache: &Cache,
    bytes: &[u8],
    function: &'static str,
) -> Option<Entry<T>> {
    let parts = &*cache.inner;
    if parts.store.oversized(bytes) {
        let error = "stored value is over the size cap";
        telemetry::error(&parts.log, function, Op::Decode, &error);
        return None;
    }
    stores
        .decode(parts.codec, bytes)
        .map_err(|error| telemetry::error(&parts.log, function, Op::Decode, &error))
        .ok()
}
