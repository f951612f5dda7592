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

use crate::expiry::{self, Expiring};
use crate::task::{Backoff, spawn_detached};
use redis::aio::{AsyncPushSender, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};
use std::any::Any;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
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
}

impl NearCache {
    /// A near cache holding up to `max_bytes` of keys and values, used by every function
    /// of the cache (see [`opt_in`](Self::opt_in)), with a 10 s maximum local lifetime.
    pub fn new(max_bytes: u64) -> NearCache {
        NearCache {
            max_bytes,
            max_lifetime: Duration::from_secs(10),
            every_function: true,
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
}

impl NearTier {
    /// The tier, with a task that keeps a tracking connection to each of `nodes` (RESP3
    /// clients; the set may change) up for as long as the tier lives.
    pub(crate) fn start(
        settings: NearCache,
        nodes: watch::Receiver<Vec<Client>>,
        prefix: String,
        timeout: Duration,
    ) -> Arc<NearTier> {
        let tier = Arc::new(NearTier {
            entries: expiry::bounded(settings.max_bytes),
            settings,
            epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            live: AtomicBool::new(false),
            disconnected: Notify::new(),
        });
        spawn_detached(track(Arc::downgrade(&tier), nodes, prefix, timeout));
        tier
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
                    let keys: Vec<String> = keys
                        .iter()
                        .filter_map(|key| match key {
                            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
                            _ => None,
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
