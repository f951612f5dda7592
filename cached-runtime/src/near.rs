//! The near cache: an optional in-process first tier in front of Redis.
//!
//! It stays coherent through Redis's server-assisted client-side caching: a dedicated RESP3
//! connection to each node that holds entries (one server; the current Sentinel primary;
//! every node of a Cluster, replicas included, so that a promoted replica is tracked
//! already) runs `CLIENT TRACKING ON BCAST` for the cache's prefix, and every `invalidate`
//! push (a key was written, deleted or expired, by any client) evicts that key here. Unless
//! every one of those connections is up, and whenever the set of nodes changes (a failover,
//! a node added or removed), the tier is flushed and bypassed, since invalidations could be
//! missed; an entry never outlives the Redis entry it copies, nor the tier's maximum lifetime.
//!
//! The tier also measures its own staleness window, the eviction lag: every
//! [`probe_every`](NearCache::probe_every) (10 s by default, give or take a tenth) each
//! process writes a probe key under the prefix whose name carries its wall-clock time, and
//! deletes it in the same script, which makes one push. Every process with a tier (the writer
//! included) records how long ago that was when the push reaches it (see [`LagStats`]).

use crate::expiry::{self, Expiring};
use crate::stats::Times;
use crate::store::WeakStore;
use crate::task::{Backoff, spawn_detached};
use redis::aio::{AsyncPushSender, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};
use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// Settings of the near cache, for [`CacheBuilder::near_cache`](crate::CacheBuilder::near_cache).
///
/// ```
/// use std::time::Duration;
///
/// let near = redis_cached::NearCache::new(64 << 20).max_lifetime(Duration::from_secs(5));
/// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379").near_cache(near);
/// ```
#[derive(Clone, Debug)]
pub struct NearCache {
    pub(crate) max_bytes: u64,
    pub(crate) max_lifetime: Duration,
    pub(crate) every_function: bool,
    pub(crate) probe_every: Duration,
}

impl NearCache {
    /// A near cache holding up to `max_bytes` of keys and values, used by every function
    /// of the cache (see [`opt_in`](Self::opt_in)), with a 10 s maximum local lifetime and
    /// an eviction-lag probe every 10 s (see [`probe_every`](Self::probe_every)).
    pub fn new(max_bytes: u64) -> NearCache {
        NearCache {
            max_bytes,
            max_lifetime: Duration::from_secs(10),
            every_function: true,
            probe_every: PROBE_EVERY,
        }
    }

    /// The longest an entry is served locally, a safety net behind tracking (default 10 s).
    pub fn max_lifetime(mut self, lifetime: Duration) -> NearCache {
        self.max_lifetime = lifetime;
        self
    }

    /// Only functions marked `#[redis_cached(near_cache = true, ..)]` use the near cache
    /// (default: every function does, unless marked `near_cache = false`).
    pub fn opt_in(mut self) -> NearCache {
        self.every_function = false;
        self
    }

    /// How often this process writes the probe that measures the eviction lag (default
    /// 10 s; each pause is drawn within a tenth of it either way, so that processes started
    /// together do not write together). `Duration::ZERO` writes none: the process still
    /// records the lag of other processes' probes.
    ///
    /// A probe is one script on the server (`SET` then `UNLINK` of a key under the prefix
    /// named `<prefix>\~near-probe:<writer>:<unix microseconds>`, which no template nor
    /// key part can render), through the cache's timeout and circuit breaker, skipped while
    /// the tier is bypassed. On a Cluster the key's name picks its slot, so successive probes
    /// travel through each primary in turn. See [`Cache::near_eviction_lag`](crate::Cache::near_eviction_lag).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let near = redis_cached::NearCache::new(64 << 20).probe_every(Duration::from_secs(30));
    /// # let _ = near;
    /// ```
    pub fn probe_every(mut self, every: Duration) -> NearCache {
        self.probe_every = every;
        self
    }
}

/// The default of [`NearCache::probe_every`].
const PROBE_EVERY: Duration = Duration::from_secs(10);

/// What follows the prefix in a probe key's name. No rendered key has it there: templates
/// hold no `\`, and key parts write one only in the escapes `\\`, `\:`, `\(`, `\)` (tags
/// use `\@`, digests `\#`).
const PROBE_MARK: &str = "\\~near-probe:";

/// Writers whose last probe time a tier remembers (to count each probe once); past this, it
/// forgets them all (processes come and go).
const MAX_WRITERS: usize = 4096;

/// The eviction lag of a near tier as this process measured it: how long after a key was
/// written in Redis this process evicted its copy, read off the probes (see
/// [`NearCache::probe_every`]) of every process with a near tier on the same prefix, this one
/// included. From [`Cache::near_eviction_lag`](crate::Cache::near_eviction_lag).
///
/// Each sample is the receiving host's wall clock at the eviction minus the writer's at the
/// write, clamped at zero: it includes the writer's round trip, the push's way back, and the
/// offset between the two hosts' clocks (none for the process's own probes). Quantiles are
/// read off a histogram of logarithmic buckets, within about 6% of the true value, at
/// microsecond resolution at best; so is `max`.
///
/// ```
/// # async fn example(cache: redis_cached::Cache) {
/// if let Some(lag) = cache.near_eviction_lag() {
///     println!("{} probes: p50 {:?}, p99 {:?}, max {:?}", lag.count, lag.p50, lag.p99, lag.max);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LagStats {
    /// Probes counted since the process started.
    pub count: u64,
    /// The median lag.
    pub p50: Duration,
    /// The 99th percentile of the lag.
    pub p99: Duration,
    /// The largest lag.
    pub max: Duration,
}

/// What the tier holds for a key: the stored bytes (decoded on each hit), or, for functions
/// marked `near_cache = true`, the decoded value itself (cloned on each hit).
#[derive(Clone)]
#[doc(hidden)]
pub enum NearValue {
    /// The stored bytes.
    Bytes(Arc<[u8]>),
    /// The decoded entry (an `Entry<T>`).
    Decoded(Arc<dyn Any + Send + Sync>),
}

#[derive(Clone)]
struct NearEntry {
    value: NearValue,
    /// The stored size, for the tier's bound.
    weight: u32,
    ttl: Duration,
    /// The key's stripe epoch when its value was read: served only while it is current.
    epoch: u64,
}

impl Expiring for NearEntry {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn weight(&self) -> usize {
        self.weight as usize
    }
}

/// Invalidations bump the epoch of their key's stripe; an entry read from Redis is kept
/// only if its stripe's epoch did not move meanwhile.
const STRIPES: usize = 1024;

/// The near tier of one cache: entries by key, and what keeps them coherent.
pub(crate) struct NearTier {
    entries: moka::sync::Cache<String, NearEntry>,
    settings: NearCache,
    /// Per stripe of keys, a counter bumped by each invalidation (see `keep`).
    epochs: Box<[AtomicU64]>,
    hasher: RandomState,
    /// Whether tracking is established: entries are served and kept only then.
    live: AtomicBool,
    /// Signalled by a push that the tracking connection dropped.
    disconnected: Notify,
    /// `<prefix>\~near-probe:`: the start of every probe key's name.
    probe_head: String,
    /// This tier's name in its probe keys.
    writer: String,
    /// Per writer, the time in its last probe counted: a later push of the same probe (a
    /// replica's, or a second push of one write) is not counted again.
    probes_seen: Mutex<HashMap<String, u64>>,
    /// The eviction lags measured.
    lag: Times,
}

impl NearTier {
    /// The tier, with a task that keeps a tracking connection to each of `nodes` (RESP3
    /// clients; the set may change) up for as long as the tier lives, and one that writes
    /// its probes through `store`.
    pub(crate) fn start(
        settings: NearCache,
        nodes: watch::Receiver<Vec<Client>>,
        (prefix, store): (String, WeakStore),
        timeout: Duration,
    ) -> Arc<NearTier> {
        let hasher = RandomState::new();
        let tier = Arc::new(NearTier {
            entries: expiry::bounded(settings.max_bytes),
            epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            live: AtomicBool::new(false),
            disconnected: Notify::new(),
            probe_head: format!("{prefix}{PROBE_MARK}"),
            writer: format!("{}.{:08x}", std::process::id(), hasher.hash_one(0) as u32),
            probes_seen: Mutex::default(),
            lag: Times::new(),
            hasher,
            settings,
        });
        if !tier.settings.probe_every.is_zero() {
            spawn_detached(probe(Arc::downgrade(&tier), store));
        }
        spawn_detached(track(Arc::downgrade(&tier), nodes, prefix, timeout));
        tier
    }

    /// The eviction lags measured so far; `None` before the first.
    pub(crate) fn lag(&self) -> Option<LagStats> {
        Some(LagStats {
            count: self.lag.count(),
            p50: self.lag.quantile(0.50)?,
            p99: self.lag.quantile(0.99)?,
            max: self.lag.quantile(1.0)?,
        })
    }

    /// Records the lag of the probe named `<probe_head><name>`, unless it was counted.
    fn probe_arrived(&self, name: &str) {
        let Some((writer, written)) = name.rsplit_once(':') else {
            return;
        };
        let Ok(written) = written.parse::<u64>() else {
            return;
        };
        {
            let mut seen = self
                .probes_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= MAX_WRITERS && !seen.contains_key(writer) {
                seen.clear();
            }
            match seen.get_mut(writer) {
                Some(last) if *last >= written => return,
                Some(last) => *last = written,
                None => {
                    seen.insert(writer.to_owned(), written);
                }
            }
        }
        // Clamped at zero: the writer's clock may be ahead of ours.
        let lag = Duration::from_micros(unix_micros().saturating_sub(written));
        self.lag.record(lag);
        metrics::histogram!("redis_cached_near_eviction_lag_seconds").record(lag);
    }

    /// Whether a function uses the tier: its own `near_cache = ...`, else the default.
    pub(crate) fn serves(&self, function_choice: Option<bool>) -> bool {
        function_choice.unwrap_or(self.settings.every_function)
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        &self.epochs[self.hasher.hash_one(key) as usize % STRIPES]
    }

    /// Take before reading Redis; hand to [`keep`](Self::keep) with what was read.
    pub(crate) fn epoch(&self, key: &str) -> u64 {
        self.stripe(key).load(Ordering::Acquire)
    }

    /// The value held for `key`, unless an invalidation of its stripe came in since it was
    /// read (the eviction that follows may not have happened yet).
    pub(crate) fn get(&self, key: &str) -> Option<NearValue> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entry = self.entries.get(key)?;
        (self.epoch(key) == entry.epoch).then_some(entry.value)
    }

    /// Keeps a value read from (or written to) Redis, `stored_len` bytes there, for at most
    /// `ttl`, unless an invalidation of its key came in since `epoch` was taken.
    pub(crate) fn keep(
        &self,
        key: &str,
        value: NearValue,
        stored_len: usize,
        ttl: Duration,
        epoch: u64,
    ) {
        if !self.live.load(Ordering::Acquire) || self.epoch(key) != epoch {
            return;
        }
        let entry = NearEntry {
            value,
            weight: u32::try_from(stored_len).unwrap_or(u32::MAX),
            ttl: ttl.min(self.settings.max_lifetime),
            epoch,
        };
        self.entries.insert(key.to_owned(), entry);
        // An invalidation that bumped the epoch after the check may have evicted before the
        // insert: `get` will not serve the entry (its epoch is old); drop it now.
        if self.epoch(key) != epoch {
            self.entries.invalidate(key);
        }
    }

    /// Evicts `keys` (an invalidation from Redis, or from this process).
    pub(crate) fn evict<K: AsRef<str>>(&self, keys: &[K]) {
        for key in keys {
            let key = key.as_ref();
            self.stripe(key).fetch_add(1, Ordering::AcqRel);
            self.entries.invalidate(key);
        }
    }

    /// Evicts everything (a flush from Redis, a lost connection, a clear).
    pub(crate) fn flush(&self) {
        for epoch in self.epochs.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.entries.invalidate_all();
    }

    fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    let keys: Vec<&str> = keys
                        .iter()
                        .filter_map(|key| match key {
                            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                            _ => None,
                        })
                        // A probe holds no entry: evicting it would only bump its stripe's
                        // epoch, and so drop the entries that share it.
                        .filter(|key| match key.strip_prefix(self.probe_head.as_str()) {
                            Some(probe) => {
                                self.probe_arrived(probe);
                                false
                            }
                            None => true,
                        })
                        .collect();
                    self.evict(&keys);
                }
                // A null invalidation: Redis flushed everything.
                _ => self.flush(),
            },
            PushKind::Disconnection => {
                self.live.store(false, Ordering::Release);
                self.flush();
                self.disconnected.notify_one();
            }
            _ => {}
        }
    }
}

/// Pushes go to the tier as they arrive, without a queue.
struct ToTier(Weak<NearTier>);

impl AsyncPushSender for ToTier {
    fn send(&self, push: PushInfo) -> Result<(), redis::aio::SendError> {
        match self.0.upgrade() {
            Some(tier) => {
                tier.on_push(push);
                Ok(())
            }
            None => Err(redis::aio::SendError),
        }
    }
}

/// Keeps a tracking connection to every node up while the tier lives: connect to all, turn
/// tracking on, serve until one disconnects or the set of nodes changes, then flush and
/// start again.
async fn track(
    tier: Weak<NearTier>,
    mut nodes: watch::Receiver<Vec<Client>>,
    prefix: String,
    timeout: Duration,
) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        let clients = nodes.borrow_and_update().clone();
        if clients.is_empty() {
            // No topology read yet (a cluster): nothing to track, nothing served.
            tokio::select! {
                () = changed(&mut nodes) => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if tier.strong_count() == 0 {
                return;
            }
            continue;
        }
        let connected = connect_all(&tier, &clients, &prefix, timeout).await;
        let Some(strong) = tier.upgrade() else { return };
        match connected {
            Ok(_connections) => {
                backoff.reset();
                strong.flush();
                strong.live.store(true, Ordering::Release);
                // Serve until a connection drops or the nodes change, checking now and then
                // whether the tier is still wanted; the connections stay open while
                // `_connections` lives.
                loop {
                    let dropped = strong.disconnected.notified();
                    tokio::select! {
                        () = dropped => break,
                        () = changed(&mut nodes) => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    if Arc::strong_count(&strong) == 1 {
                        return;
                    }
                }
                strong.live.store(false, Ordering::Release);
                strong.flush();
            }
            Err(error) => {
                tracing::warn!(%error, "near cache: tracking connection failed; serving from Redis only");
                strong.live.store(false, Ordering::Release);
                strong.flush();
            }
        }
        drop(strong);
        tokio::select! {
            () = tokio::time::sleep(backoff.next()) => {}
            () = changed(&mut nodes) => {}
        }
    }
}

/// Writes the tier's probes while it lives: each pause within a tenth of `probe_every`
/// either way, and none while the tier is bypassed (its pushes would not arrive).
async fn probe(tier: Weak<NearTier>, store: WeakStore) {
    let jitter = RandomState::new();
    for round in 0_u64.. {
        let Some(every) = tier.upgrade().map(|tier| tier.settings.probe_every) else {
            return;
        };
        // 0.9 to 1.1 times the period.
        let spread = (jitter.hash_one(round) % 2001) as f64 / 10_000.0;
        tokio::time::sleep(every.mul_f64(0.9 + spread)).await;
        let key = match tier.upgrade() {
            Some(tier) if tier.live.load(Ordering::Acquire) => {
                format!("{}{}:{}", tier.probe_head, tier.writer, unix_micros())
            }
            Some(_) => continue,
            None => return,
        };
        let Some(store) = store.upgrade() else { return };
        if let Err(error) = store.probe(&key).await {
            tracing::debug!(%error, "near cache: the eviction-lag probe failed");
        }
    }
}

/// The wall clock, in microseconds since the Unix epoch (0 before it).
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Resolves when the set of nodes changes; never, once nobody can change it.
async fn changed(nodes: &mut watch::Receiver<Vec<Client>>) {
    if nodes.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One tracking connection per node; an error unless all are up.
async fn connect_all(
    tier: &Weak<NearTier>,
    clients: &[Client],
    prefix: &str,
    timeout: Duration,
) -> Result<Vec<MultiplexedConnection>, redis::RedisError> {
    let connections = clients
        .iter()
        .map(|client| connect(tier, client, prefix, timeout));
    futures_util::future::join_all(connections)
        .await
        .into_iter()
        .collect()
}

async fn connect(
    tier: &Weak<NearTier>,
    client: &Client,
    prefix: &str,
    timeout: Duration,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(ToTier(tier.clone()));
    let mut connection = resp3(client)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    if !prefix.is_empty() {
        tracking.arg("PREFIX").arg(prefix);
    }
    tracking.query_async::<()>(&mut connection).await?;
    Ok(connection)
}

/// The same server and credentials over RESP3, which carries tracking invalidations.
fn resp3(client: &Client) -> redis::RedisResult<Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings))
}
