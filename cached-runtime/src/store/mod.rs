//! Where entries live, and the policy around every store operation.
//!
//! [`Store`] owns the connection(s), the circuit breaker, the fill leases and the value-size
//! cap; its operations take a lease only when [`Leases`] are on. `open.rs` opens a store from
//! a URL's scheme. Below the store, one type per kind performs the operations atomically
//! (`redis.rs`: Redis, whose `connection.rs` is one server (`single.rs`), a Cluster
//! (`cluster.rs`) or a Sentinel-managed primary (`sentinel.rs`); `memory.rs`: `mem://`).

mod batch;
pub(crate) mod breaker;
pub(crate) mod cluster;
pub(crate) mod connection;
mod guard;
mod identity;
mod journal;
pub(crate) mod lease;
mod memory;
mod open;
mod redis;
pub(crate) mod sentinel;
mod single;
pub(crate) mod tags;

use self::breaker::{BreakerRef, Breakers};
use self::guard::Guarded;
use self::identity::Signals;
use self::journal::Journal;
use self::lease::{Lease, Leases};
use self::memory::MemoryStore;
pub(crate) use self::open::{Settings, open};
use self::redis::RedisStore;
use self::tags::Stamp;
use crate::Error;
use crate::freshness;
use crate::task::spawn_detached;
use crate::tombstone::Tombstone;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Bytes read from a store, borrowed from wherever they already are.
pub(crate) enum Bytes {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Bytes {
    /// The last `len` bytes (all of them if fewer), in place when owned.
    fn tail(self, len: usize) -> Bytes {
        match self {
            Bytes::Owned(mut bytes) => {
                bytes.drain(..bytes.len().saturating_sub(len));
                Bytes::Owned(bytes)
            }
            Bytes::Shared(bytes) => Bytes::Owned(bytes[bytes.len().saturating_sub(len)..].to_vec()),
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(bytes) => bytes,
            Bytes::Shared(bytes) => bytes,
        }
    }
}

/// What a lookup found.
pub(crate) enum Fetch {
    /// A value, with its remaining time to live when that was asked for.
    Hit(Bytes, Option<Duration>),
    /// Nothing: the caller's lease now holds the key, so the caller fills it. With the
    /// tombstone the lease replaced, if there was one: the invalidation that caused this
    /// miss (boxed: a hit's `Fetch` stays its size).
    Ours(Option<Box<Tombstone>>),
    /// Another caller's lease: that caller is filling the key.
    Theirs(Lease),
    /// Nothing, and no lease taken: Redis holds writes (`CLIENT PAUSE .. WRITE`), so the
    /// caller runs its body and stores nothing.
    Absent,
}

impl Fetch {
    /// Sorts what a lookup read: nothing (the lease was set), a lease marker, or a value.
    fn from_read(read: Option<Bytes>, ttl: Option<Duration>) -> Fetch {
        match read {
            None => Fetch::Ours(None),
            Some(bytes) if Lease::is_marker(&bytes) => Fetch::Theirs(Lease::from_marker(&bytes)),
            Some(bytes) => Fetch::Hit(bytes, ttl),
        }
    }
}

/// `fetched`, with our own marker as ours: the lookup was applied, its reply lost and the
/// command retried (the cluster client retries after a dropped connection).
fn ours_if_own(fetched: Fetch, lease: &Lease) -> Fetch {
    match fetched {
        Fetch::Theirs(seen) if seen == *lease => Fetch::Ours(None),
        fetched => fetched,
    }
}

/// What a key holds, as the inspection page reads it.
pub(crate) enum Peeked {
    Absent,
    /// A string's bytes, and its remaining time to live (`None`: no expiry).
    Bytes(Bytes, Option<Duration>),
    /// A key of another Redis type (`hash`, `list`, ...), which no cached function writes.
    Other(String, Option<Duration>),
}

/// The tag keys of a call, and how long a tag key it creates lives (the function's TTL and
/// the lease: longer than any entry filled after the read).
#[derive(Clone, Copy)]
pub(crate) struct Tags<'a> {
    pub(crate) keys: &'a [String],
    pub(crate) ttl: Duration,
}

/// Redis (one server, a Cluster or a Sentinel-managed primary) or `mem://`.
enum Backend {
    Redis(RedisStore),
    Memory(MemoryStore),
}

/// A cache's store. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub(crate) struct Store(Arc<Inner>);

/// A store that a background task holds without keeping it alive.
pub(crate) struct WeakStore(Weak<Inner>);

impl WeakStore {
    pub(crate) fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(Store)
    }
}

/// What [`Store::clear`] deletes: the keys a `SCAN .. MATCH glob` returns (on Redis; every
/// key on `mem://`) for which `select` holds. `progress` hears each batch's count.
pub(crate) struct Sweep<'a> {
    pub(crate) glob: &'a str,
    pub(crate) select: &'a (dyn Fn(&[u8]) -> bool + Sync),
    pub(crate) progress: &'a (dyn Fn(u64) + Sync),
}

/// Keys an invalidation could not delete, and why.
pub(crate) struct Undeleted {
    pub(crate) error: Error,
    pub(crate) keys: Vec<String>,
}

struct Inner {
    backend: Backend,
    /// Skip the backend (or, on a cluster, one primary) for a while after consecutive
    /// connection failures.
    breakers: Arc<Breakers>,
    /// Off: no fill leases, and no single-flight.
    leases: Leases,
    /// Values larger than this are neither stored nor read back.
    max_value_len: usize,
    /// With tombstones: how long one lives (see `tombstone.rs`).
    tombstones: Option<Duration>,
    /// The recent invalidations, applied again in each new generation.
    journal: Journal,
    /// Each new generation of the servers beneath, for the replay task (see `identity.rs`).
    generation: watch::Sender<u64>,
    /// Failed operations and closed connections, for the reader of run ids.
    signals: Arc<Signals>,
    /// Leases this process gave up, by key, and when (see [`Store::release_detached`]).
    given_up: Mutex<HashMap<String, (Lease, Instant)>>,
}

impl Store {
    /// A store on Redis, with its breakers (see [`RedisStore::breakers`]).
    fn redis(
        redis: RedisStore,
        (breakers, signals): (Arc<Breakers>, Arc<Signals>),
        settings: &Settings,
    ) -> Store {
        Store::new(Backend::Redis(redis), (breakers, signals), settings)
    }

    /// A `mem://` store of at most `settings.memory_bytes`.
    fn memory(settings: &Settings) -> Store {
        let backend = Backend::Memory(MemoryStore::new(settings.memory_bytes));
        let breakers = Arc::new(Breakers::single("mem://".into()));
        Store::new(backend, (breakers, Arc::default()), settings)
    }

    fn new(
        backend: Backend,
        (breakers, signals): (Arc<Breakers>, Arc<Signals>),
        settings: &Settings,
    ) -> Store {
        // `mem://` has no servers to change.
        let window = match &backend {
            Backend::Memory(_) => Duration::ZERO,
            Backend::Redis(_) => settings.replay_window,
        };
        Store(Arc::new(Inner {
            backend,
            breakers,
            leases: settings.leases,
            max_value_len: settings.max_value_len,
            tombstones: settings.tombstones,
            journal: Journal::new(window),
            generation: watch::Sender::new(0),
            signals,
            given_up: Mutex::default(),
        }))
    }

    /// The current generation of the servers beneath: it changes after a failover or a
    /// restart (see `identity.rs`).
    pub(crate) fn generation(&self) -> u64 {
        self.0.signals.generation()
    }

    /// Each new generation, for the task that applies the recent invalidations again.
    pub(crate) fn generations(&self) -> watch::Receiver<u64> {
        self.0.generation.subscribe()
    }

    /// Whether the servers changed less than `span` ago.
    pub(crate) fn changed_within(&self, span: Duration) -> bool {
        self.0.signals.changed_within(span)
    }

    fn next_generation(&self) {
        let generation = self.0.signals.next_generation();
        self.0.generation.send_replace(generation);
    }

    fn signals(&self) -> Arc<Signals> {
        self.0.signals.clone()
    }

    /// The recent invalidations were applied again in `generation`: lookups may read again
    /// unless a newer one came meanwhile.
    pub(crate) fn replayed(&self, generation: u64) {
        self.0.signals.replayed(generation);
    }

    /// Lookups read nothing while the servers are suspect (see `identity.rs`).
    fn suspect(&self) -> Result<(), Error> {
        match self.0.signals.is_suspect() {
            true => Err(Error::Unavailable),
            false => Ok(()),
        }
    }

    /// The run ids of the primaries (none on `mem://`).
    async fn run_ids(&self) -> Result<std::collections::BTreeSet<String>, Error> {
        match &self.0.backend {
            Backend::Redis(redis) => redis.run_ids().await,
            Backend::Memory(_) => Ok(Default::default()),
        }
    }

    /// Remembers that `by` overwrote or deleted `keys`, to do it again after a failover
    /// or a restart.
    pub(crate) fn remember(&self, keys: &[String], by: &'static str) {
        self.0.journal.record(keys, by);
    }

    /// The keys invalidated within the replay window, by invalidating function.
    pub(crate) fn recently_invalidated(&self) -> HashMap<&'static str, Vec<String>> {
        self.0.journal.recent()
    }

    fn has_recent_invalidations(&self) -> bool {
        !self.0.journal.is_empty()
    }

    /// For background tasks, which must not keep a dropped cache's store alive.
    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.0))
    }

    /// `"redis"`, `"redis-cluster"`, `"redis-sentinel"` or `"memory"`.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.0.backend {
            Backend::Redis(redis) => redis.kind(),
            Backend::Memory(_) => "memory",
        }
    }

    /// Whether Redis holds writes (`CLIENT PAUSE .. WRITE`), or seems to: lookups read, and
    /// a lease taken over now would wait for the timeout, so callers run their bodies and
    /// store nothing instead.
    pub(crate) fn writes_paused(&self) -> bool {
        match &self.0.backend {
            Backend::Redis(redis) => redis.writes_paused(),
            Backend::Memory(_) => false,
        }
    }

    /// The hash slot of `key` on a cluster; `None` elsewhere.
    fn slot(&self, key: &str) -> Option<u16> {
        match &self.0.backend {
            Backend::Redis(redis) if redis.is_cluster() => Some(cluster::slot(key)),
            _ => None,
        }
    }

    /// The breaker guarding the server of `slot` (`None`: the only server).
    fn breaker(&self, slot: Option<u16>) -> BreakerRef<'_> {
        self.0.breakers.for_slot(slot)
    }

    /// Whether fill leases are on, and how long one holds its key.
    pub(crate) fn leases(&self) -> Leases {
        self.0.leases
    }

    /// Whether stored bytes are too large to be read back.
    pub(crate) fn oversized(&self, bytes: &[u8]) -> bool {
        bytes.len() > self.0.max_value_len
    }

    /// Whether a breaker is open: recent operations failed to reach the backend (on a
    /// cluster: one of its primaries).
    pub(crate) fn is_degraded(&self) -> bool {
        self.0.breakers.any_open()
    }

    /// Resolves the next time the backend (or one primary) answers again after an outage.
    pub(crate) async fn reachable_again(&self) {
        self.0.breakers.closed().await;
    }

    /// Runs one operation on the server of `slot` unless its breaker is open, and tells
    /// the breaker how it went.
    fn guarded<T, F: Future<Output = Result<T, Error>>>(
        &self,
        slot: Option<u16>,
        op: F,
    ) -> Guarded<'_, F> {
        Guarded::new(self, slot, op)
    }

    /// Runs one operation on the server of `slot` past its breaker, and tells the breaker
    /// how it went.
    async fn unguarded<T>(
        &self,
        slot: Option<u16>,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let result = op.await;
        self.record(slot, &result);
        result
    }

    /// Tells the breaker of `slot`'s server how an operation went, and the run-id reader
    /// of a failure that may mean the servers changed.
    fn record<T>(&self, slot: Option<u16>, result: &Result<T, Error>) {
        self.breaker(slot).record(result);
        if let Err(error) = result {
            self.0.signals.failed(error);
        }
    }

    /// Checks that the backend answers within the timeout (on a cluster: every primary).
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        match &self.0.backend {
            Backend::Redis(redis) => self.unguarded(None, redis.ping()).await,
            Backend::Memory(_) => Ok(()),
        }
    }

    /// Reads what `key` holds and its remaining time to live, changing nothing: one atomic
    /// read on every backend. Past the breaker, as [`ping`](Self::ping): an operator looking
    /// at a key wants the answer (or the error) now.
    pub(crate) async fn peek(&self, key: &str) -> Result<Peeked, Error> {
        match &self.0.backend {
            Backend::Redis(redis) => self.unguarded(self.slot(key), redis.peek(key)).await,
            Backend::Memory(memory) => Ok(match memory.peek(key) {
                Some((bytes, ttl)) => Peeked::Bytes(Bytes::Shared(bytes), Some(ttl)),
                None => Peeked::Absent,
            }),
        }
    }

    /// Looks `key` up, taking `lease` on it if it is absent or a tombstone (when leases are
    /// on; the tombstone comes back with [`Fetch::Ours`]). A value over
    /// the size cap is returned as is: the caller treats it like one that does not decode.
    /// With `want_ttl` (Redis), a value comes with its remaining time to live.
    ///
    /// With tags, their versions are read in the same round trip and returned: a value is a
    /// hit only if stamped with them (it comes out of its envelope); a stale one is replaced
    /// by the caller's lease.
    pub(crate) async fn fetch(
        &self,
        key: &str,
        lease: &Lease,
        want_ttl: bool,
        tags: Tags<'_>,
    ) -> Result<(Fetch, Stamp), Error> {
        if tags.keys.is_empty() {
            return Ok((self.lookup(key, lease, want_ttl).await?, Stamp::default()));
        }
        // Boxed: an untagged lookup's future need not be the size of a tagged one's.
        Box::pin(self.fetch_tagged(key, lease, want_ttl, tags)).await
    }

    async fn fetch_tagged(
        &self,
        key: &str,
        lease: &Lease,
        want_ttl: bool,
        tags: Tags<'_>,
    ) -> Result<(Fetch, Stamp), Error> {
        let (fetched, stamp) = match (&self.0.backend, self.0.leases.of(lease)) {
            // One pipeline on one server, see `RedisStore::pipelines_tags`.
            (Backend::Redis(redis), Some(leased)) if redis.pipelines_tags(want_ttl) => {
                self.suspect()?;
                // Boxed: this future moved whole into `guarded`'s and into this one cost a
                // tagged hit more than the allocation (350 instructions).
                let both = Box::pin(redis.fetch_with_tags(key, leased, tags.keys, tags.ttl));
                let (fetched, versions) = self.guarded(self.slot(key), both).await?;
                (ours_if_own(fetched, lease), Stamp(versions))
            }
            // Boxed: the pipelined lookup's future need not be the size of this one.
            _ => Box::pin(self.fetch_apart(key, lease, want_ttl, tags)).await?,
        };
        let fetched = match fetched {
            Fetch::Hit(bytes, ttl) => match stamp.unwrap(&bytes).map(<[u8]>::len) {
                Some(len) => Fetch::Hit(bytes.tail(len), ttl),
                // Stale (a tag was invalidated since it was stored), or stored untagged.
                None => {
                    Box::pin(self.put_lease(key, lease)).await?;
                    Fetch::Ours(None)
                }
            },
            fetched => fetched,
        };
        Ok((fetched, stamp))
    }

    /// The lookup of [`fetch_tagged`](Self::fetch_tagged) and its tags' versions, sent apart
    /// (at once).
    async fn fetch_apart(
        &self,
        key: &str,
        lease: &Lease,
        want_ttl: bool,
        tags: Tags<'_>,
    ) -> Result<(Fetch, Stamp), Error> {
        let (fetched, stamp) =
            tokio::join!(self.lookup(key, lease, want_ttl), self.read_tags(tags));
        let stamp = stamp?;
        Ok((fetched?, stamp))
    }

    async fn lookup(&self, key: &str, lease: &Lease, want_ttl: bool) -> Result<Fetch, Error> {
        self.suspect()?;
        // Leases off: a plain read.
        let leased = self.0.leases.of(lease);
        let fetched = match &self.0.backend {
            Backend::Redis(redis) => {
                self.guarded(self.slot(key), redis.fetch(key, leased, want_ttl))
                    .await
            }
            Backend::Memory(memory) => {
                self.guarded(self.slot(key), async { Ok(memory.fetch(key, leased)) })
                    .await
            }
        };
        Ok(ours_if_own(fetched?, lease))
    }

    /// The current versions of `tags`, creating missing tag keys.
    async fn read_tags(&self, tags: Tags<'_>) -> Result<Stamp, Error> {
        let slot = tags.keys.first().and_then(|tag| self.slot(tag));
        let versions = match &self.0.backend {
            Backend::Redis(redis) => {
                self.guarded(slot, redis.read_tags(tags.keys, tags.ttl))
                    .await?
            }
            Backend::Memory(memory) => memory.read_tags(tags.keys, tags.ttl),
        };
        Ok(Stamp(versions))
    }

    /// Puts `lease` on `key` whatever it holds (to refresh or overwrite an entry), and reads
    /// the versions of `tags` for the fill that follows.
    pub(crate) async fn take_lease(
        &self,
        key: &str,
        lease: &Lease,
        tags: Tags<'_>,
    ) -> Result<Stamp, Error> {
        if tags.keys.is_empty() {
            return self.put_lease(key, lease).await.map(|()| Stamp::default());
        }
        let (taken, stamp) = tokio::join!(self.put_lease(key, lease), self.read_tags(tags));
        taken?;
        stamp
    }

    /// Puts `lease` on `key` if `waited_for` (another caller's lease) still holds it, and
    /// reads the versions of `tags` for the fill that follows; `None` when another lease or
    /// a value holds the key by now. With leases off, always ours.
    pub(crate) async fn replace_lease(
        &self,
        key: &str,
        waited_for: &Lease,
        lease: &Lease,
        tags: Tags<'_>,
    ) -> Result<Option<Stamp>, Error> {
        let Leases::On(ttl) = self.0.leases else {
            return Ok(Some(Stamp::default()));
        };
        // A fill whose value is our lease marker.
        let replace = async {
            match &self.0.backend {
                Backend::Redis(redis) => {
                    let replace = redis.fill(key, waited_for, lease.as_bytes(), ttl);
                    self.guarded(self.slot(key), replace).await
                }
                Backend::Memory(memory) => Ok(memory.fill(key, waited_for, lease.as_bytes(), ttl)),
            }
        };
        if !replace.await? {
            return Ok(None);
        }
        if tags.keys.is_empty() {
            return Ok(Some(Stamp::default()));
        }
        self.read_tags(tags).await.map(Some)
    }

    async fn put_lease(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        match self.0.leases {
            Leases::On(ttl) => {
                self.guarded(self.slot(key), self.set(key, lease.as_bytes(), ttl))
                    .await
            }
            Leases::Off => Ok(()),
        }
    }

    /// Stores `value` if `lease` still holds `key` (unconditionally when leases are off);
    /// says whether it did. A value over the size cap is not stored, and the lease released.
    /// A tagged value is stored in an envelope recording `stamp`, and its tag keys are made
    /// to outlive it.
    pub(crate) async fn fill(
        &self,
        key: &str,
        lease: &Lease,
        value: &[u8],
        ttl: Duration,
        tags: Tags<'_>,
        stamp: &Stamp,
    ) -> Result<bool, Error> {
        if self.oversized(value) {
            self.release(key, lease).await?;
            return Ok(false);
        }
        if tags.keys.is_empty() {
            return self.fill_value(key, lease, value, ttl).await;
        }
        let wrapped = stamp.wrap(value);
        let (filled, _) = tokio::join!(
            self.fill_value(key, lease, &wrapped, ttl),
            self.extend_tags(tags.keys, ttl)
        );
        filled
    }

    async fn fill_value(
        &self,
        key: &str,
        lease: &Lease,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        if !self.0.leases.on() {
            return self
                .guarded(self.slot(key), self.set(key, value, ttl))
                .await
                .map(|()| true);
        }
        let filled = match &self.0.backend {
            Backend::Redis(redis) => {
                self.guarded(self.slot(key), redis.fill(key, lease, value, ttl))
                    .await
            }
            Backend::Memory(memory) => {
                self.guarded(self.slot(key), async {
                    Ok(memory.fill(key, lease, value, ttl))
                })
                .await
            }
        };
        if filled.is_err() {
            // A refused fill (a TTL out of range, an error reply) leaves our lease: the next
            // caller would wait for it.
            self.release_detached(key, lease);
        }
        filled
    }

    /// Claims the refresh of the entry under `key` that was read fresh until `fresh_until`
    /// (see `freshness.rs`), for `lease`'s holder until `until` (ms since the epoch); says
    /// whether the claim is ours. `false` too when the entry changed or went since it was
    /// read, or another caller's claim is current at `now`.
    pub(crate) async fn claim(
        &self,
        key: &str,
        tags: Tags<'_>,
        (fresh_until, now, until): (u64, u64, u64),
        lease: &Lease,
    ) -> Result<bool, Error> {
        let at = tags::envelope_len(tags.keys.len());
        let claim = freshness::claim(until, lease);
        match &self.0.backend {
            Backend::Redis(redis) => {
                self.guarded(
                    self.slot(key),
                    redis.claim(key, at, fresh_until, now, &claim),
                )
                .await
            }
            Backend::Memory(memory) => Ok(memory.claim(key, at, fresh_until, now, &claim)),
        }
    }

    /// Puts `lease` on `key` if it still holds the envelope read fresh until `fresh_until`
    /// (see `freshness.rs`): of the callers that read an entry past its windows, one takes
    /// it over and fills it, the others find its lease and wait for it. Says whether the
    /// lease is ours (always, when leases are off).
    pub(crate) async fn take_over(
        &self,
        key: &str,
        tags: Tags<'_>,
        fresh_until: u64,
        lease: &Lease,
    ) -> Result<bool, Error> {
        let Leases::On(lease_ttl) = self.0.leases else {
            return Ok(true);
        };
        let at = tags::envelope_len(tags.keys.len());
        match &self.0.backend {
            Backend::Redis(redis) => {
                self.guarded(
                    self.slot(key),
                    redis.take_over(key, at, fresh_until, lease, lease_ttl),
                )
                .await
            }
            Backend::Memory(memory) => {
                Ok(memory.take_over(key, at, fresh_until, (lease, lease_ttl)))
            }
        }
    }

    /// Stores a refresh's `value` (for `None`, deletes the entry) if `lease`'s claim is
    /// still in the entry under `key`: an invalidation since the claim deleted it. A tagged
    /// value is wrapped as [`Store::fill`] does. Says whether it stored.
    pub(crate) async fn fill_claimed(
        &self,
        key: &str,
        lease: &Lease,
        value: Option<&[u8]>,
        ttl: Duration,
        (tags, stamp): (Tags<'_>, &Stamp),
    ) -> Result<bool, Error> {
        let value = value.filter(|value| !self.oversized(value));
        let at = tags::envelope_len(tags.keys.len()) + freshness::CLAIMANT_AT;
        let wrapped = value.map(|value| match tags.keys {
            [] => value.to_vec(),
            _ => stamp.wrap(value),
        });
        let value = wrapped.as_deref();
        let replace = async {
            match &self.0.backend {
                Backend::Redis(redis) => {
                    self.guarded(
                        self.slot(key),
                        redis.replace_claimed(key, at, lease, value, ttl),
                    )
                    .await
                }
                Backend::Memory(memory) => Ok(memory.replace_claimed(key, at, lease, value, ttl)),
            }
        };
        if value.is_none() || tags.keys.is_empty() {
            return replace.await;
        }
        tokio::join!(replace, self.extend_tags(tags.keys, ttl)).0
    }

    /// Best effort: a tag key that expires early only costs misses.
    async fn extend_tags(&self, tags: &[String], ttl: Duration) {
        let slot = tags.first().and_then(|tag| self.slot(tag));
        match &self.0.backend {
            Backend::Redis(redis) => {
                let _ = self.guarded(slot, redis.extend_tags(tags, ttl)).await;
            }
            Backend::Memory(memory) => memory.extend_tags(tags, ttl),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        match &self.0.backend {
            Backend::Redis(redis) => redis.set(key, value, ttl).await,
            Backend::Memory(memory) => {
                memory.set(key, value, ttl);
                Ok(())
            }
        }
    }

    /// Writes and deletes `key` in one step, behind its breaker: the near tier's
    /// eviction-lag probe (Redis only; the tier exists on no other backend).
    pub(crate) async fn probe(&self, key: &str) -> Result<(), Error> {
        match &self.0.backend {
            Backend::Redis(redis) => self.guarded(self.slot(key), redis.probe(key)).await,
            Backend::Memory(_) => Ok(()),
        }
    }

    /// Gives up `lease` on `key`, so that the next caller need not wait for it to expire.
    pub(crate) async fn release(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        if !self.0.leases.on() {
            return Ok(());
        }
        self.guarded(self.slot(key), self.release_unguarded(key, lease))
            .await
    }

    async fn release_unguarded(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        match &self.0.backend {
            Backend::Redis(redis) => redis.release(key, lease).await,
            Backend::Memory(memory) => {
                memory.release(key, lease);
                Ok(())
            }
        }
    }

    /// Releases `lease` from a task of its own, past the breaker: for callers that cannot
    /// wait (a dropped pilot, a lookup that timed out).
    ///
    /// The lease is also remembered as given up for one lease's length: a command still on
    /// its way (a lookup that timed out, retransmitted, or sent before a reconnect) may set
    /// it after this release, and a caller that then finds it takes the key over at once
    /// instead of waiting for it to lapse ([`Store::given_up`]).
    pub(crate) fn release_detached(&self, key: &str, lease: &Lease) {
        let Leases::On(ttl) = self.0.leases else {
            return;
        };
        {
            let mut given_up = self
                .0
                .given_up
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            given_up.retain(|_, (_, at)| at.elapsed() < ttl);
            given_up.insert(key.to_owned(), (lease.clone(), Instant::now()));
        }
        let (store, key, lease) = (self.clone(), key.to_owned(), lease.clone());
        spawn_detached(async move {
            let _ = store.release_unguarded(&key, &lease).await;
        });
    }

    /// Whether `lease` on `key` is one this process gave up within the last lease's length
    /// (see [`Store::release_detached`]): nobody fills under it.
    pub(crate) fn given_up(&self, key: &str, lease: &Lease) -> bool {
        let ttl = self.0.leases.ttl();
        self.0
            .given_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|(held, at)| held == lease && at.elapsed() < ttl)
    }

    /// Deletes every key, values and leases alike: one command per server (on a cluster,
    /// one per hash slot, all sent at once). With tombstones, a key that is no tag key is
    /// overwritten with a tombstone naming `by` (the invalidating function's path) instead;
    /// tag keys are deleted all the same. Says which keys could not be deleted, and why.
    /// Each key is remembered for the replay window (see `journal.rs`).
    pub(crate) async fn delete(&self, keys: &[String], by: &'static str) -> Result<(), Undeleted> {
        self.remember(keys, by);
        self.delete_groups(keys, by, true).await
    }

    /// Deletes past the breakers: the deferred-invalidation task is its own probe.
    pub(crate) async fn delete_unguarded(
        &self,
        keys: &[String],
        by: &str,
    ) -> Result<(), Undeleted> {
        self.delete_groups(keys, by, false).await
    }

    async fn delete_groups(
        &self,
        keys: &[String],
        by: &str,
        guarded: bool,
    ) -> Result<(), Undeleted> {
        if keys.is_empty() {
            return Ok(());
        }
        // One tombstone for the whole invalidation, made before any group is written.
        let tombstone = self
            .0
            .tombstones
            .map(|lifetime| (Tombstone::now(by).encode(), lifetime));
        let tombstone = tombstone
            .as_ref()
            .map(|(bytes, lifetime)| (&bytes[..], *lifetime));
        let mut groups: HashMap<Option<u16>, Vec<String>> = HashMap::new();
        for key in keys {
            groups.entry(self.slot(key)).or_default().push(key.clone());
        }
        let deletions = groups.into_iter().map(|(slot, group)| async move {
            let delete = self.delete_keys(&group, tombstone);
            let result = if guarded {
                self.guarded(slot, delete).await
            } else {
                self.unguarded(slot, delete).await
            };
            (group, result)
        });
        let mut undeleted: Option<Undeleted> = None;
        for (group, result) in join_all(deletions).await {
            if let Err(error) = result {
                match &mut undeleted {
                    Some(undeleted) => undeleted.keys.extend(group),
                    None => {
                        undeleted = Some(Undeleted { error, keys: group });
                    }
                }
            }
        }
        undeleted.map_or(Ok(()), Err)
    }

    /// Deletes `keys` (of one group), or writes `tombstone` (its bytes, and how long it
    /// lives) over those that are no tag keys.
    async fn delete_keys(
        &self,
        keys: &[String],
        tombstone: Option<(&[u8], Duration)>,
    ) -> Result<(), Error> {
        match &self.0.backend {
            Backend::Redis(redis) => redis.delete(keys, tombstone).await,
            Backend::Memory(memory) => {
                memory.delete(keys, tombstone);
                Ok(())
            }
        }
    }

    /// Deletes the keys `sweep` selects, batch by batch (see `redis/clear.rs`), past the
    /// breakers: a clear is asked for by an operator, who should hear why it failed rather
    /// than that it was skipped. Returns how many keys were deleted.
    pub(crate) async fn clear(&self, sweep: &Sweep<'_>) -> Result<u64, Error> {
        match &self.0.backend {
            Backend::Redis(redis) => self.unguarded(None, redis.clear(sweep)).await,
            Backend::Memory(memory) => Ok(memory.clear(sweep)),
        }
    }
}
