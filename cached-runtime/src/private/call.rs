//! One call of a `#[redis_cached]` function: the [`Call`] value generated code builds (its
//! cache, rendered key and options, and what follows from them: TTLs, tags, the stored
//! form), the [`Context`] every step of the read algorithm (`cached.rs`, `refresh.rs`) works
//! in, and the helpers the single and batch forms share: run the body, encode, decode.

use crate::IntoTtl;
use crate::cache::{Cache, Inner};
use crate::codec::CodecError;
use crate::entry::{Entry, Form};
use crate::flight::{self, Pilot};
use crate::freshness::{self, Windows};
use crate::key::KeyBuilder;
use crate::private::stored::ValueCodec;
use crate::spans;
use crate::store::Tags;
use crate::store::lease::{Lease, Leases};
use crate::store::tags::Stamp;
use crate::telemetry::{self, Op};
use crate::tombstone::Tombstone;
use crate::ttl::{self, Jitter};
use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// One call of a `#[redis_cached]` function: its cache, rendered key and options.
pub struct Call {
    pub(crate) function: &'static str,
    pub(crate) target: Option<(Cache, String)>,
    /// Rendered tag keys (see `store/tags.rs`).
    tags: Vec<String>,
    ttl: Option<Duration>,
    /// `ttl = <expr>` gave a TTL that is not positive: nothing is stored.
    ttl_refused: bool,
    /// `jitter = "N%"`: overrides the cache's.
    jitter: Option<Jitter>,
    /// `stale`, `stale_if_error`, `refresh_ahead`.
    pub(crate) windows: Windows,
    pub(crate) refresh: bool,
    pub(crate) cache_none: bool,
    pub(crate) near: Option<bool>,
    /// `timeout`: the longest the body runs, and so the longest this call waits for another
    /// caller's fill.
    pub(crate) timeout: Option<Duration>,
    /// `revalidate = "background"`: a refresh the call claims runs in a task of its own, and
    /// the call is served the entry at once.
    pub(crate) refresh_in_background: bool,
    /// `soft_timeout`: while a stored value may be served, a body that runs longer is left
    /// running in a task of its own and the call is served the stored value.
    pub(crate) soft_timeout: Option<Duration>,
    /// With a boxed body (`cached_revalidating`): where a body left running is handed over,
    /// for `cached_revalidating` to finish in a task of its own.
    continuation: Option<Box<Mutex<Option<Continuation>>>>,
    /// The function's `version`: entries of other versions are misses.
    pub(crate) version: u32,
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
            jitter: None,
            windows: Windows::default(),
            refresh: false,
            cache_none: false,
            near: None,
            timeout: None,
            refresh_in_background: false,
            soft_timeout: None,
            continuation: None,
            version: 1,
        }
    }

    /// The function's `version` (checked positive by the macro).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
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

    /// Each stored TTL shortened by a random share of up to `fraction` of it (checked in
    /// `[0, 1)` by the macro).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Jitter::new(fraction);
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

    /// Refreshes this call claims run in a task of its own (`revalidate = "background"`).
    pub fn revalidate_background(mut self) -> Self {
        self.refresh_in_background = true;
        self
    }

    /// While a stored value may be served, a body running longer than `millis` is left
    /// running in a task of its own (`soft_timeout`).
    pub fn soft_timeout(mut self, millis: u64) -> Self {
        self.soft_timeout = Some(Duration::from_millis(millis));
        self
    }

    /// The body runs at most `millis` (the generated code drops it then): waits for another
    /// caller's fill end then too.
    pub fn timeout(mut self, millis: u64) -> Self {
        self.timeout = Some(Duration::from_millis(millis));
        self
    }
}

impl Call {
    /// The body is boxed: a body left running can be handed over (see [`Call::hand_over`]).
    pub(crate) fn may_continue(&mut self) {
        self.continuation = Some(Box::default());
    }

    /// Whether a body left running can be handed over.
    pub(crate) fn can_hand_over(&self) -> bool {
        self.continuation.is_some()
    }

    /// Hands over the work a body left running owes, for `cached_revalidating` to finish in
    /// a task of its own once the call returned.
    pub(crate) fn hand_over(&self, continuation: Continuation) {
        if let Some(slot) = &self.continuation {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(continuation);
        }
    }

    /// The work handed over, if any.
    pub(crate) fn take_continuation(&self) -> Option<Continuation> {
        let slot = self.continuation.as_ref()?;
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The call's tags, with how long a tag key it creates lives.
    fn tags(&self, default_ttl: Duration, leases: Leases) -> Tags<'_> {
        Tags {
            keys: &self.tags,
            ttl: self.ttl.unwrap_or(default_ttl) + self.kept_past_ttl(leases) + leases.ttl(),
        }
    }

    /// Whether the call carries tags.
    pub(crate) fn tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// The TTL to store `entry` with: `ttl_from`'s, the call's or the cache's default, with
    /// the call's jitter or else the cache's drawn (the fresh TTL: windows past it keep their
    /// lengths); `None` (logged at debug level: a TTL of zero is how a value says "do not
    /// cache me") when it is not positive.
    fn entry_ttl<T>(
        &self,
        codec: ValueCodec<T>,
        entry: Entry<&T>,
        cache: &Inner,
    ) -> Option<Duration> {
        let ttl = match codec.ttl_of(entry) {
            Some(from_value) => from_value,
            None if self.ttl_refused => None,
            None => Some(self.ttl.unwrap_or(cache.default_ttl)),
        };
        let ttl = ttl.map(|ttl| self.jitter.unwrap_or(cache.ttl_jitter).apply(ttl));
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
    pub(crate) fn kept_past_ttl(&self, leases: Leases) -> Duration {
        let extra = self.windows.extra();
        if self.windows.beta > 0.0 {
            extra.max(leases.ttl())
        } else {
            extra
        }
    }

    /// The bytes to store for `encoded` and how long the store keeps them: with `stale`,
    /// `stale_if_error` or `refresh_ahead`, in an envelope fresh for `ttl` (computed in
    /// `took`), kept [`kept_past_ttl`](Self::kept_past_ttl) longer.
    fn stored_form<'a>(
        &self,
        encoded: &'a [u8],
        (ttl, leases): (Duration, Leases),
        took: Duration,
    ) -> (Cow<'a, [u8]>, Duration) {
        if !self.windows.any() {
            return (Cow::Borrowed(encoded), ttl);
        }
        let fresh_until = freshness::now().saturating_add(freshness::millis(ttl));
        let wrapped = freshness::wrap(encoded, fresh_until, took);
        (Cow::Owned(wrapped), ttl + self.kept_past_ttl(leases))
    }
}

/// What a body left running owes once it returns.
pub(crate) enum Continuation {
    /// A refresh the call claimed: stored if the claim is still in the entry.
    Refresh(Refresh),
    /// A fill under the call's lease (`soft_timeout` in `stale_if_error`'s window): stored if
    /// the lease still holds the key; on an `Err`, the fallback put back.
    Fill {
        lease: Lease,
        stamp: Stamp,
        fallback: Fallback,
    },
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

/// A refresh a call claimed and left to run in the background.
pub(crate) struct Refresh {
    /// The claim written into the entry: the refresh stores only while it is still there.
    pub(crate) claim: Lease,
    /// The tag versions read with the entry.
    pub(crate) stamp: Stamp,
    /// Keeps this process's other callers from claiming the same refresh meanwhile.
    pub(crate) _refreshing: Pilot,
}

/// What every step of one call with a cache reads: the call, its cache's parts, its key, how
/// its values are encoded and its tags.
pub(crate) struct Context<'a, T> {
    pub(crate) call: &'a Call,
    pub(crate) function: &'static str,
    pub(crate) cache: &'a Inner,
    pub(crate) key: &'a str,
    pub(crate) codec: ValueCodec<T>,
    pub(crate) tags: Tags<'a>,
}

impl<'a, T> Context<'a, T> {
    /// The context of `call`, unless it has no cache.
    pub(crate) fn new(call: &'a Call, codec: ValueCodec<T>) -> Option<Self> {
        let (handle, key) = call.target.as_ref()?;
        let cache: &Inner = &handle.inner;
        Some(Context {
            call,
            function: call.function,
            cache,
            key,
            codec,
            tags: call.tags(cache.default_ttl, cache.store.leases()),
        })
    }

    /// The bytes to store for `entry`, unless it does not encode (logged).
    pub(crate) fn encode(&self, entry: Entry<&T>) -> Option<Arc<[u8]>> {
        let form = form(self.codec, self.cache, self.call.version);
        encode(self.codec, self.cache, (entry, form), self.function)
    }

    /// A stored entry, unless it is oversized, does not decode (both logged) or was written
    /// by another version of the function or from another shape of its type.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Option<Entry<T>> {
        let form = form(self.codec, self.cache, self.call.version);
        decode(self.codec, self.cache, (bytes, form), self.function)
    }

    /// Whether `bytes` were stored by a later version of the function: left in place.
    pub(crate) fn written_by_later(&self, bytes: &[u8]) -> bool {
        crate::entry::written_by_later(bytes, self.call.version)
    }

    /// The TTL to store `entry` with; `None` when it is not positive (not stored).
    pub(crate) fn entry_ttl(&self, entry: Entry<&T>) -> Option<Duration> {
        self.call.entry_ttl(self.codec, entry, self.cache)
    }

    /// The bytes to store for `encoded` (computed in `took`) with a TTL of `ttl`, and how
    /// long the store keeps them (see [`Call::stored_form`]).
    pub(crate) fn stored_form<'b>(
        &self,
        encoded: &'b [u8],
        ttl: Duration,
        took: Duration,
    ) -> (Cow<'b, [u8]>, Duration) {
        self.call
            .stored_form(encoded, (ttl, self.cache.store.leases()), took)
    }

    /// The longest this call waits for another caller's fill: with a `timeout`, that and a
    /// lease (a live filler's body ends by its timeout, and its store within the lease after);
    /// else the cache's `max_wait`.
    pub(crate) fn max_wait(&self) -> Duration {
        match self.call.timeout {
            Some(timeout) => timeout + self.cache.store.leases().ttl(),
            None => self.cache.max_wait,
        }
    }

    /// Runs the body (see [`run`]), for at most the call's `soft_timeout` when it has one and
    /// the body can be handed over: `None` when it was left running.
    pub(crate) async fn run_soft<R, F: Future<Output = R>>(
        &self,
        body: F,
    ) -> Option<(R, Duration)> {
        let ran = run(self.function, self.key, body);
        match self.call.soft_timeout.filter(|_| self.call.can_hand_over()) {
            Some(soft) => tokio::time::timeout(soft, ran).await.ok(),
            None => Some(ran.await),
        }
    }

    /// Logs (rationed) a failed operation of this call.
    pub(crate) fn error(&self, op: Op, error: &dyn std::fmt::Display) {
        telemetry::error(&self.cache.log, self.function, op, error);
    }
}

/// Runs the body for `key` (calls of `key` from inside it run their bodies at once), and
/// says how long it took: recorded here, and what a freshness envelope keeps as XFetch's delta.
pub(crate) async fn run<R, F: Future<Output = R>>(
    function: &'static str,
    key: &str,
    body: F,
) -> (R, Duration) {
    let started = Instant::now();
    let output = flight::filling(key, body.instrument(spans::body(function))).await;
    let took = started.elapsed();
    telemetry::body_time(function, took);
    (output, took)
}

/// The bytes to store for `entry`, unless it does not encode (logged).
/// What a function of `version` writes into its entries, and reads from them.
pub(crate) fn form<T>(codec: ValueCodec<T>, cache: &Inner, version: u32) -> Form {
    let shape = if cache.fingerprints { codec.shape() } else { 0 };
    Form { version, shape }
}

pub(crate) fn encode<T>(
    codec: ValueCodec<T>,
    cache: &Inner,
    (entry, form): (Entry<&T>, Form),
    function: &'static str,
) -> Option<Arc<[u8]>> {
    codec
        .encode(&cache.codec, entry, form)
        .map_err(|error| telemetry::error(&cache.log, function, Op::Encode, &error))
        .ok()
        .map(Arc::from)
}

/// A stored entry, unless it is oversized or does not decode (both logged).
pub(crate) fn decode<T>(
    codec: ValueCodec<T>,
    cache: &Inner,
    (bytes, form): (&[u8], Form),
    function: &'static str,
) -> Option<Entry<T>> {
    if cache.store.oversized(bytes) {
        let error = "stored value is over the size cap";
        telemetry::error(&cache.log, function, Op::Decode, &error);
        return None;
    }
    match codec.decode(&cache.codec, bytes, form) {
        Ok(entry) => Some(entry),
        // A deploy under way, or a type that changed: a miss, not a failure.
        Err(CodecError::OtherForm) => None,
        // An invalidation's tombstone, read where tombstones are off (another process has
        // them on) or by a plain `GET`: absent, not a failure.
        Err(_) if Tombstone::is_tombstone(bytes) => None,
        Err(error) => {
            telemetry::error(&cache.log, function, Op::Decode, &error);
            None
        }
    }
}
