//! The cache-aside algorithm of a batch function, `#[redis_cached(batch = ids)]`:
//!
//! ```text
//! render one key per distinct id
//! any key's invalidation pending?            -> body for every id, nothing stored
//! look every key up (one round trip per server, per slot on a cluster), taking our
//! lease on each absent key
//!   error (or breaker open)                  -> body for every id, nothing stored
//!   value that decodes                       -> hit
//!   value that does not decode (not a marker)-> take our lease over it: a miss we fill
//!   absent (our lease set)                   -> a miss we fill
//!   another caller's lease, or any other marker (a tagged entry, a stored `None`)
//!                                            -> a miss we do not store
//! all hits                                   -> the map, the body not run
//! else the body, once, with the missing ids (the generated code rebinds the parameter)
//!   Err                                      -> our leases released, the Err returned
//!   Ok(map)                                  -> each returned id we hold a lease for is
//!                                               stored under it (an id invalidated since
//!                                               is not); leases of ids it did not return
//!                                               are released; the hits are added to the map
//! ```
//!
//! The generated code calls [`batch_lookup`], then runs the body itself (so that the
//! parameter can be rebound to the missing ids), then [`batch_fill`].

use crate::Outcome;
use crate::cache::Cache;
use crate::entry::{Entry, MARKER, is_compressed, written_by_later};
use crate::flight;
use crate::freshness;
use crate::key::KeyBuilder;
use crate::private::call::{decode, encode, form};
use crate::private::shape::{OkOf, Whole};
use crate::private::stored::ValueCodec;
use crate::spans;
use crate::store::Fetch;
use crate::store::lease::Lease;
use crate::telemetry::{self, Op};
use crate::ttl::Jitter;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::time::{Duration, Instant};
use tracing::{Instrument, Span};

/// How the return type of a batch function holds its values: `HashMap<K, V>`, or the `Ok`
/// of a `Result<HashMap<K, V>, E>`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a batch function must return `HashMap<K, V>` or `Result<HashMap<K, V>, E>`, not `{R}`",
    label = "the map of the ids found to their values",
    note = "`K` is the element type of the batch parameter (`&[K]` or `Vec<K>`)"
)]
pub trait BatchShape<R> {
    /// The id type: the element of the batch parameter and the map's key.
    type Id: Hash + Eq + Clone;
    /// The value stored under each id's key.
    type Value;

    /// The value the output holds for `id`; `None` for an id it does not hold, or an `Err`.
    fn value<'a>(output: &'a R, id: &Self::Id) -> Option<&'a Self::Value>
    where
        Self::Value: 'a;

    /// Adds the values read from the cache to an `Ok` output.
    fn add_hits(output: &mut R, hits: Vec<(Self::Id, Self::Value)>);

    /// The output made of values read from the cache only.
    fn from_hits(hits: Vec<(Self::Id, Self::Value)>) -> R;
}

impl<K, V, H> BatchShape<HashMap<K, V, H>> for Whole
where
    K: Hash + Eq + Clone,
    H: BuildHasher + Default,
{
    type Id = K;
    type Value = V;

    fn value<'a>(output: &'a HashMap<K, V, H>, id: &K) -> Option<&'a V>
    where
        V: 'a,
    {
        output.get(id)
    }

    fn add_hits(output: &mut HashMap<K, V, H>, hits: Vec<(K, V)>) {
        output.extend(hits);
    }

    fn from_hits(hits: Vec<(K, V)>) -> HashMap<K, V, H> {
        hits.into_iter().collect()
    }
}

impl<K, V, H, E> BatchShape<Result<HashMap<K, V, H>, E>> for OkOf
where
    K: Hash + Eq + Clone,
    H: BuildHasher + Default,
{
    type Id = K;
    type Value = V;

    fn value<'a>(output: &'a Result<HashMap<K, V, H>, E>, id: &K) -> Option<&'a V>
    where
        V: 'a,
    {
        output.as_ref().ok()?.get(id)
    }

    fn add_hits(output: &mut Result<HashMap<K, V, H>, E>, hits: Vec<(K, V)>) {
        if let Ok(map) = output {
            map.extend(hits);
        }
    }

    fn from_hits(hits: Vec<(K, V)>) -> Result<HashMap<K, V, H>, E> {
        Ok(hits.into_iter().collect())
    }
}

/// One call of a batch function: its cache, and its distinct ids with their keys.
pub struct Batch<K> {
    function: &'static str,
    cache: Option<Cache>,
    /// Distinct by key, in the order of the input; every id, unrendered, without a cache.
    ids: Vec<K>,
    /// One per id; empty without a cache.
    keys: Vec<String>,
    ttl: Option<Duration>,
    /// `jitter = "N%"`: overrides the cache's.
    jitter: Option<Jitter>,
    version: u32,
}

impl<K: Clone> Batch<K> {
    /// Renders each id's key at once (before the body can move the arguments), if there is
    /// a cache. Ids whose keys are equal are looked up, and given to the body, once.
    pub fn new(
        cache: Option<Cache>,
        function: &'static str,
        ids: &[K],
        render: impl Fn(&mut KeyBuilder, &K),
    ) -> Self {
        let (ids, keys) = match &cache {
            None => (ids.to_vec(), Vec::new()),
            Some(cache) => {
                let keys: Vec<String> = ids
                    .iter()
                    .map(|id| cache.inner.keys.render(|key| render(key, id)))
                    .collect();
                let mut seen = HashSet::with_capacity(keys.len());
                let first: Vec<bool> = keys.iter().map(|key| seen.insert(key.as_str())).collect();
                drop(seen);
                ids.iter()
                    .zip(keys)
                    .zip(first)
                    .filter(|(_, first)| *first)
                    .map(|((id, key), _)| (id.clone(), key))
                    .unzip()
            }
        };
        Batch {
            function,
            cache,
            ids,
            keys,
            ttl: None,
            jitter: None,
            version: 1,
        }
    }

    /// A TTL in whole seconds, checked to be positive by the macro.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Some(crate::ttl::seconds(seconds));
        self
    }

    /// Each stored TTL shortened by a random share of up to `fraction` of it (checked in
    /// `[0, 1)` by the macro), drawn per id.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Jitter::new(fraction);
        self
    }

    /// The function's `version` (checked positive by the macro).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }
}

/// What the lookup of a batch gave the generated code. Made and moved once per call: boxing
/// the larger variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Looked<R, K, V> {
    /// Every id was a hit: the output, the body not run.
    Done(R),
    /// Run the body with these ids, then [`batch_fill`].
    Run(Filling<K, V>, Vec<K>),
}

/// What a batch's fill needs from its lookup: the hits, and the keys it holds leases on.
pub struct Filling<K, V> {
    function: &'static str,
    /// `None`: the body's values are not stored (no cache, the store failed, or a pending
    /// invalidation).
    cache: Option<Cache>,
    lease: Lease,
    /// The TTL and the jitter the values are stored with: the function's, else the cache's.
    ttl: (Duration, Jitter),
    version: u32,
    hits: Vec<(K, V)>,
    /// The missing ids we hold a lease on, with their keys.
    leased: Vec<(K, String)>,
    /// How many ids the body is given.
    missing: usize,
    /// The batch's span (disabled if not taken), open from the lookup to the end of the fill.
    span: Span,
}

impl<K, V> Filling<K, V> {
    /// Nothing read, nothing to store: the body runs for every id.
    fn uncached(function: &'static str, missing: usize, span: Span) -> Self {
        Filling {
            function,
            cache: None,
            lease: Lease::new(),
            // Never stored with: there is no cache.
            ttl: (Duration::ZERO, Jitter::default()),
            version: 1,
            hits: Vec::new(),
            leased: Vec::new(),
            missing,
            span,
        }
    }
}

/// Looks every id of `batch` up: [`Looked::Done`] when all are hits, else the ids to run
/// the body with (see the module's docs). Records one outcome per hit.
pub fn batch_lookup<S, R>(
    batch: Batch<S::Id>,
    codec: ValueCodec<S::Value>,
) -> impl Future<Output = Looked<R, S::Id, S::Value>>
where
    S: BatchShape<R>,
{
    let cache = batch.cache.as_ref().map(|cache| &cache.inner.spans);
    let span = spans::batch(batch.function, cache, batch.ids.len());
    lookup::<S, R>(batch, codec, span.clone()).instrument(span)
}

/// [`batch_lookup`], in the batch's span (which a [`Filling`] keeps open for the fill).
async fn lookup<S, R>(
    batch: Batch<S::Id>,
    codec: ValueCodec<S::Value>,
    span: Span,
) -> Looked<R, S::Id, S::Value>
where
    S: BatchShape<R>,
{
    // Batches neither use nor feed the request's memo, and give no validator.
    crate::request::unknown();
    let Batch {
        function,
        cache,
        ids,
        keys,
        ttl,
        jitter,
        version,
    } = batch;
    let Some(handle) = cache else {
        return Looked::Run(Filling::uncached(function, ids.len(), span), ids);
    };
    if ids.is_empty() {
        return Looked::Done(S::from_hits(Vec::new()));
    }
    let cache = &*handle.inner;
    let store = &cache.store;
    // As a single call: a key whose invalidation has not reached the store is neither read
    // nor written.
    if keys.iter().any(|key| cache.pending.contains(key)) {
        return Looked::Run(Filling::uncached(function, ids.len(), span), ids);
    }
    let lease = Lease::new();
    let found = match telemetry::timed(function, Op::Fetch, store.fetch_many(&keys, &lease)).await {
        Ok((found, failure)) => {
            // Some requests failed: their ids are misses, not stored.
            if let Some(error) = failure {
                telemetry::error(&cache.log, function, Op::Fetch, &error);
            }
            found
        }
        Err(error) => {
            telemetry::error(&cache.log, function, Op::Fetch, &error);
            return Looked::Run(Filling::uncached(function, ids.len(), span), ids);
        }
    };
    let now = freshness::now();
    let form = form(codec, cache, version);
    let mut hits = Vec::new();
    let mut missing = Vec::new();
    let mut leased = Vec::new();
    let mut take_over = Vec::new();
    for ((id, key), found) in ids.into_iter().zip(keys).zip(found) {
        match found {
            // A marker, or an entry in an envelope: only a fresh value in a freshness
            // envelope (stored by a single function with `stale`, ..) is served; the rest
            // are misses, not stored over.
            Some(Fetch::Hit(bytes, _))
                if bytes.first() == Some(&MARKER) && !is_compressed(&bytes) =>
            {
                match freshness::fresh_value(&bytes, now)
                    .and_then(|value| decode(codec, cache, (value, form), function))
                {
                    Some(Entry::Value(value)) => hits.push((id, value)),
                    _ => missing.push(id),
                }
            }
            Some(Fetch::Hit(bytes, _)) => match decode(codec, cache, (&bytes, form), function) {
                Some(Entry::Value(value)) => hits.push((id, value)),
                // A later version's, during a rolling deploy: left in place.
                None if written_by_later(&bytes, version) => missing.push(id),
                // Undecodable or oversized: overwritten, as a single call does.
                Some(Entry::Absent) | None => take_over.push((id, key)),
            },
            Some(Fetch::Ours(cause)) => {
                telemetry::invalidation_to_miss(function, cause.as_deref());
                leased.push((id, key));
            }
            // Another caller is filling the key: the body is asked for it, but what it
            // returns is not stored (the lease is not ours).
            Some(Fetch::Theirs(_) | Fetch::Absent) | None => missing.push(id),
        }
    }
    // While writes are paused, the leases' write would wait for the timeout: the body is
    // asked for these ids, and nothing is stored.
    if store.writes_paused() {
        missing.extend(take_over.drain(..).map(|(id, _)| id));
    }
    if !take_over.is_empty() {
        let keys: Vec<String> = take_over.iter().map(|(_, key)| key.clone()).collect();
        match store.take_leases(&keys, &lease).await {
            Ok(()) => leased.extend(take_over),
            Err(error) => {
                telemetry::error(&cache.log, function, Op::Fetch, &error);
                missing.extend(take_over.into_iter().map(|(id, _)| id));
            }
        }
    }
    telemetry::outcomes(function, Outcome::Hit, hits.len() as u64);
    if missing.is_empty() && leased.is_empty() {
        spans::batch_counts(hits.len(), 0);
        return Looked::Done(S::from_hits(hits));
    }
    missing.extend(leased.iter().map(|(id, _)| id.clone()));
    let filling = Filling {
        function,
        ttl: (
            ttl.unwrap_or(handle.inner.default_ttl),
            jitter.unwrap_or(handle.inner.ttl_jitter),
        ),
        cache: Some(handle),
        lease,
        version,
        hits,
        leased,
        missing: missing.len(),
        span,
    };
    Looked::Run(filling, missing)
}

/// Runs the body (already given the missing ids), codec what it returned under our leases,
/// releases the leases of ids it did not return (all of them on an `Err`), and adds the
/// hits. Records one outcome per id given to the body.
pub fn batch_fill<S, R, F>(
    filling: Filling<S::Id, S::Value>,
    codec: ValueCodec<S::Value>,
    body: Pin<&mut F>,
) -> impl Future<Output = R>
where
    S: BatchShape<R>,
    F: Future<Output = R>,
{
    let span = filling.span.clone();
    fill::<S, R, F>(filling, codec, body).instrument(span)
}

/// [`batch_fill`], in the batch's span.
async fn fill<S, R, F>(
    filling: Filling<S::Id, S::Value>,
    codec: ValueCodec<S::Value>,
    body: Pin<&mut F>,
) -> R
where
    S: BatchShape<R>,
    F: Future<Output = R>,
{
    let Filling {
        function,
        cache,
        lease,
        ttl: (ttl, jitter),
        version,
        hits,
        leased,
        missing,
        span: _,
    } = filling;
    let started = Instant::now();
    // A single call of a leased id from inside the body runs its body at once, as inside a
    // single fill: it would otherwise wait for this batch's lease.
    let keys = leased.iter().map(|(_, key)| key.as_str());
    let body = body.instrument(spans::body(function));
    let mut output = flight::filling_all(keys, body).await;
    telemetry::body_time(function, started.elapsed());
    let Some(handle) = cache else {
        telemetry::outcomes(function, Outcome::Bypass, missing as u64);
        spans::batch_counts(0, missing);
        return output;
    };
    let cache = &*handle.inner;
    let store = &cache.store;
    // Ids the body did not return (all of them after an `Err`), and values that do not
    // encode, are released rather than stored.
    let mut encoded = Vec::new();
    let mut release = Vec::new();
    let form = form(codec, cache, version);
    for (id, key) in &leased {
        match S::value(&output, id)
            .and_then(|value| encode(codec, cache, (Entry::Value(value), form), function))
        {
            Some(bytes) => encoded.push((key.as_str(), bytes)),
            None => release.push(key.clone()),
        }
    }
    // One TTL drawn per entry: the ids of one batch do not expire together.
    let entries: Vec<(&str, &[u8], Duration)> = encoded
        .iter()
        .map(|(key, bytes)| (*key, &bytes[..], jitter.apply(ttl)))
        .collect();
    let fill = telemetry::timed(function, Op::Fill, store.fill_many(&entries, &lease));
    let (filled, released) = tokio::join!(fill, store.release_many(&release, &lease));
    match filled {
        Ok(stored) if stored < entries.len() => tracing::debug!(
            function,
            lost = entries.len() - stored,
            "fill leases lost (invalidated or expired); those values not stored"
        ),
        Ok(_) => {}
        Err(error) => telemetry::error(&cache.log, function, Op::Fill, &error),
    }
    if let Err(error) = released {
        telemetry::error(&cache.log, function, Op::Fill, &error);
    }
    telemetry::outcomes(function, Outcome::Miss, missing as u64);
    spans::batch_counts(hits.len(), missing);
    S::add_hits(&mut output, hits);
    output
}
