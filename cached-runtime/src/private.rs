//! What generated code calls. Not public API: names and signatures change without notice.

pub use crate::entry::Entry;
pub use crate::key::KeyBuilder;
pub use crate::near::{CloneValue, DecodeEach, NearMode, NearValue};
pub use crate::shape::{OkOf, OkSomeOf, Shape, SomeOf, Whole};

use crate::backend::Fetch;
use crate::flight::{self, Boarding, Joined};
use crate::lease::Lease;
use crate::near::NearTier;
use crate::{Cache, Error, Outcome, telemetry};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `cache = <expr>` may evaluate to: a `Cache`, or any reference to one.
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must be a `redis_cached::Cache` or a reference to one, not `{Self}`",
    label = "expected a `Cache` or `&Cache`, as in `cache = &self.cache`"
)]
pub trait IntoCache {
    /// The cache, cloned (a clone is one `Arc` increment).
    fn to_cache(&self) -> Cache;
}

impl IntoCache for Cache {
    fn to_cache(&self) -> Cache {
        self.clone()
    }
}

impl<T: IntoCache + ?Sized> IntoCache for &T {
    fn to_cache(&self) -> Cache {
        (**self).to_cache()
    }
}

/// The cache a call uses when it names none.
pub fn global() -> Option<Cache> {
    crate::global::global()
}

/// The cache named by `cache = <expr>`, borrowed so that the expression may name a
/// parameter the body still uses.
pub fn named<C: IntoCache + ?Sized>(cache: &C) -> Option<Cache> {
    Some(cache.to_cache())
}

/// One call of a `#[redis_cached]` function: its cache, rendered key and options.
pub struct Call {
    function: &'static str,
    target: Option<(Cache, String)>,
    ttl: Option<Duration>,
    refresh: bool,
    cache_none: bool,
    near: Option<bool>,
}

impl Call {
    /// Renders the key at once (before the body can move the arguments), if there is a cache.
    pub fn new(
        cache: Option<Cache>,
        function: &'static str,
        render: impl FnOnce(&mut KeyBuilder),
    ) -> Self {
        let target = cache.map(|cache| {
            let mut key = cache.key_builder();
            render(&mut key);
            (cache, key.finish())
        });
        Call {
            function,
            target,
            ttl: None,
            refresh: false,
            cache_none: false,
            near: None,
        }
    }

    /// Use (or not) the cache's near tier, whatever its default.
    pub fn near(mut self, near: bool) -> Self {
        self.near = Some(near);
        self
    }

    /// A TTL in whole seconds, checked to be positive by the macro.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Some(Duration::from_secs(seconds));
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

/// Longest pause between two looks at a key another process is filling.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Cache-aside around `body`: look up, else run and store. Cache failures only cost time.
///
/// One lookup is one script call that also takes a fill lease when the key is absent. Then:
/// a value is a hit; our lease means we run the body and store conditionally; another
/// caller's lease means we join its flight (same process) or wait for its value (another
/// process), up to the lease's length, then run the body ourselves. A call from inside the
/// body of a fill of the same key runs its body at once: it would otherwise wait for itself.
pub async fn cached<S, M, R, F>(call: Call, body: F) -> R
where
    S: Shape<R>,
    M: NearMode<S::Stored>,
    F: Future<Output = R>,
{
    let function = call.function;
    let Some((cache, key)) = &call.target else {
        return body.await;
    };
    if cache.pending().contains(key) {
        // The key's invalidation has not reached the store: neither read nor write it.
        return degraded::<S, R, F>(&call, cache, key, body).await;
    }
    // The near tier's epoch for the key is taken before Redis is read: what is read is
    // kept locally only if no invalidation of the key came in meanwhile.
    let near = cache
        .near()
        .filter(|tier| tier.serves(call.near))
        .map(|tier| (tier, tier.epoch(key)));
    if let Some((tier, _)) = near
        && !call.refresh
        && let Some(output) = tier
            .get(key)
            .and_then(|held| M::value(&held, |bytes| decode(cache, bytes, function)))
            .and_then(S::output)
    {
        telemetry::outcome(function, Outcome::Hit);
        return output;
    }
    let lease = Lease::new();
    let want_ttl = near.is_some();
    let mut fetched = if call.refresh {
        cache.take_lease(key, &lease).await.map(|()| Fetch::Leased)
    } else {
        timed(function, "fetch", cache.fetch(key, &lease, want_ttl)).await
    };
    let mut poll = Duration::from_millis(1);
    // Set when another caller's lease is first seen: a hit needs no clock.
    let mut give_up = None;
    loop {
        match fetched {
            Ok(Fetch::Value(bytes, ttl)) => {
                if let Some(entry) = decode::<S::Stored>(cache, &bytes, function) {
                    let held = near
                        .zip(ttl)
                        .map(|(near, ttl)| (near, ttl, M::hold(&bytes, entry.as_ref())));
                    if let Some(output) = S::output(entry) {
                        if let Some(((tier, epoch), ttl, held)) = held {
                            tier.keep(key, held, bytes.len(), ttl, epoch);
                        }
                        telemetry::outcome(function, Outcome::Hit);
                        return output;
                    }
                }
                // Undecodable, oversized or not of this function's shape: overwrite it.
                fetched = cache.take_lease(key, &lease).await.map(|()| Fetch::Leased);
            }
            Ok(Fetch::Leased) => {
                return fill::<S, M, R, F>(&call, cache, key, &lease, near, body).await;
            }
            Ok(Fetch::Filling(other)) => {
                if flight::is_filling(key) {
                    return uncached(function, key, body).await;
                }
                let give_up = *give_up
                    .get_or_insert_with(|| Instant::now() + cache.fill_lease().unwrap_or_default());
                let left = || give_up.saturating_duration_since(Instant::now());
                // A flight of this process may register a moment after its lease is seen:
                // look again after the pause before asking the store again.
                let mut joined = cache.flights().join(key, &other, left()).await;
                if matches!(joined, Joined::NoFlight) {
                    tokio::time::sleep(poll.min(left())).await;
                    poll = (poll * 2).min(MAX_POLL);
                    joined = cache.flights().join(key, &other, left()).await;
                }
                match joined {
                    Joined::Value(bytes) => {
                        if let Some(output) = decode(cache, &bytes, function).and_then(S::output) {
                            telemetry::outcome(function, Outcome::Hit);
                            return output;
                        }
                        return uncached(function, key, body).await;
                    }
                    Joined::NoValue | Joined::TimedOut => {
                        return uncached(function, key, body).await;
                    }
                    Joined::NoFlight => {}
                }
                // Another process's lease, or a marker that outlived any lease's length (a
                // stray value of the lease's form): take the key over once the lease is up.
                fetched = if Instant::now() >= give_up {
                    cache.take_lease(key, &lease).await.map(|()| Fetch::Leased)
                } else {
                    timed(function, "fetch", cache.fetch(key, &lease, want_ttl)).await
                };
            }
            Err(error) => {
                telemetry::error(cache.log(), function, "fetch", &error);
                if !matches!(error, Error::Unavailable) {
                    // The lookup may still reach Redis and set our lease after we gave up
                    // on it; a release queued behind it on the connection undoes that.
                    cache.release_in_background(key, &lease);
                }
                return degraded::<S, R, F>(&call, cache, key, body).await;
            }
        }
    }
}

/// Runs the body under our lease, shares the result with this process's joiners, and
/// stores it if the lease still holds the key.
async fn fill<S, M, R, F>(
    call: &Call,
    cache: &Cache,
    key: &str,
    lease: &Lease,
    near: Option<(&NearTier, u64)>,
    body: F,
) -> R
where
    S: Shape<R>,
    M: NearMode<S::Stored>,
    F: Future<Output = R>,
{
    let function = call.function;
    let pilot = cache
        .fill_lease()
        .map(|_| cache.flights().depart(cache, key, lease));
    let output = run(function, key, body).await;
    let entry = S::stored(&output, call.cache_none);
    let encoded = entry.and_then(|entry| encode(cache, entry, function));
    if let Some(pilot) = pilot {
        pilot.land(encoded.clone());
    }
    let stored = match (&encoded, entry) {
        (Some(bytes), Some(entry)) => {
            let ttl = call.ttl.unwrap_or_else(|| cache.default_ttl());
            timed(function, "fill", cache.fill(key, lease, bytes, ttl))
                .await
                .map(|filled| match near {
                    _ if !filled => tracing::debug!(
                        function,
                        "fill lease lost (invalidated or expired); value not stored"
                    ),
                    Some((tier, epoch)) => {
                        tier.keep(key, M::hold(bytes, entry), bytes.len(), ttl, epoch);
                    }
                    None => {}
                })
        }
        _ => cache.release(key, lease).await,
    };
    if let Err(error) = stored {
        telemetry::error(cache.log(), function, "fill", &error);
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
async fn degraded<S, R, F>(call: &Call, cache: &Cache, key: &str, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let function = call.function;
    // Without leases there is no single-flight, degraded or not.
    let Some(wait) = cache.fill_lease() else {
        return uncached(function, key, body).await;
    };
    if flight::is_filling(key) {
        return uncached(function, key, body).await;
    }
    match cache.flights().board_degraded(key) {
        Boarding::Pilot(pilot) => {
            let output = run(function, key, body).await;
            let entry = S::stored(&output, call.cache_none);
            pilot.land(entry.and_then(|entry| encode(cache, entry, function)));
            telemetry::outcome(function, Outcome::Miss);
            output
        }
        Boarding::Passenger(passenger) => {
            if let Joined::Value(bytes) = passenger.wait(wait).await
                && let Some(output) = decode(cache, &bytes, function).and_then(S::output)
            {
                telemetry::outcome(function, Outcome::Miss);
                return output;
            }
            uncached(function, key, body).await
        }
    }
}

/// Runs the body without touching the cache.
async fn uncached<R, F: Future<Output = R>>(function: &'static str, key: &str, body: F) -> R {
    let output = run(function, key, body).await;
    telemetry::outcome(function, Outcome::Miss);
    output
}

/// Runs the body for `key`: calls of `key` from inside it run their bodies at once.
async fn run<R, F: Future<Output = R>>(function: &'static str, key: &str, body: F) -> R {
    let started = Instant::now();
    let output = flight::filling(key, body).await;
    telemetry::body_time(function, started.elapsed());
    output
}

async fn timed<T>(
    function: &'static str,
    operation: &'static str,
    op: impl Future<Output = T>,
) -> T {
    let started = Instant::now();
    let result = op.await;
    telemetry::cache_time(function, operation, started.elapsed());
    result
}

/// The bytes to store for `entry`, unless it does not encode (logged).
fn encode<T: Serialize>(
    cache: &Cache,
    entry: Entry<&T>,
    function: &'static str,
) -> Option<Arc<[u8]>> {
    cache
        .codec()
        .encode_entry(entry)
        .map_err(|error| telemetry::error(cache.log(), function, "encode", &error))
        .ok()
        .map(Arc::from)
}

/// A stored entry, unless it is oversized or does not decode (both logged).
fn decode<T: DeserializeOwned>(
    cache: &Cache,
    bytes: &[u8],
    function: &'static str,
) -> Option<Entry<T>> {
    if cache.oversized(bytes) {
        telemetry::error(
            cache.log(),
            function,
            "decode",
            &"stored value is over the size cap",
        );
        return None;
    }
    cache
        .codec()
        .decode_entry(bytes)
        .map_err(|error| telemetry::error(cache.log(), function, "decode", &error))
        .ok()
}

/// One call of an `#[invalidates]` function: its cache and the keys it makes stale.
pub struct Invalidation {
    function: &'static str,
    cache: Option<Cache>,
    keys: Vec<String>,
}

impl Invalidation {
    /// An invalidation with no keys yet.
    pub fn new(cache: Option<Cache>, function: &'static str, capacity: usize) -> Self {
        Invalidation {
            function,
            cache,
            keys: Vec::with_capacity(capacity),
        }
    }

    /// Renders one more key at once, if there is a cache.
    pub fn key(mut self, render: impl FnOnce(&mut KeyBuilder)) -> Self {
        if let Some(cache) = &self.cache {
            let mut key = cache.key_builder();
            render(&mut key);
            self.keys.push(key.finish());
        }
        self
    }
}

/// Runs `body`, then deletes the keys in one command whatever it returned. If the caller
/// is dropped before that (cancelled mid-write), the keys are deleted in the background.
pub async fn invalidate<R, F: Future<Output = R>>(mut invalidation: Invalidation, body: F) -> R {
    let output = body.await;
    if let Some(delete) = invalidation.take() {
        delete.await;
    }
    output
}

impl Invalidation {
    /// The deletion still owed, if any: taking it leaves nothing for `drop` to do.
    fn take(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let cache = self.cache.take()?;
        let keys = std::mem::take(&mut self.keys);
        let function = self.function;
        Some(async move {
            let count = keys.len();
            match timed(function, "delete", cache.delete(keys)).await {
                Ok(()) => telemetry::invalidation(function, count),
                Err(error) => telemetry::error(cache.log(), function, "delete", &error),
            }
        })
    }
}

impl Drop for Invalidation {
    fn drop(&mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current()
            && let Some(delete) = self.take()
        {
            runtime.spawn(delete);
        }
    }
}
