//! The [`Cache`] handle: the public API, and invalidation (store delete, near-tier eviction,
//! deferral on failure). Construction (`connect`, `builder`) is in `builder.rs`; the
//! cache-aside algorithm that generated code runs is in `private/call.rs`.

use crate::codec::Codec;
use crate::error::Error;
use crate::flight::Flights;
use crate::key::KeyBuilder;
use crate::near::NearTier;
use crate::pending::Pending;
use crate::store::Store;
use crate::task::Completing;
use crate::telemetry::LogLimit;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A handle to one cache: a store (Redis, or `mem://`), a key prefix and the defaults cached
/// calls use.
///
/// Cloning is cheap (one `Arc`); every clone shares the same connection, near tier,
/// single-flight board and pending invalidations.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use std::time::Duration;
///
/// let cache = redis_cached::Cache::builder("mem://")
///     .prefix("myapp:")
///     .default_ttl(Duration::from_secs(600))
///     .build()
///     .await?;
/// assert_eq!(cache.prefix(), "myapp:");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

/// What a cache is made of; the cache-aside algorithm reads these fields directly.
pub(crate) struct Inner {
    /// Every Redis or memory operation, the breaker, the lease length, the size cap.
    pub(crate) store: Store,
    /// The in-process first tier, if configured (Redis only).
    pub(crate) near: Option<Arc<NearTier>>,
    /// This process's fills in progress (single-flight).
    pub(crate) flights: Flights,
    /// Invalidations not yet applied to the store.
    pub(crate) pending: Arc<Pending>,
    pub(crate) keys: Keys,
    pub(crate) codec: Codec,
    /// The TTL of functions that name none; whole seconds.
    pub(crate) default_ttl: Duration,
    /// Rations failure log lines per function.
    pub(crate) log: LogLimit,
    /// The URL with any password redacted, for `Debug`.
    redacted_url: String,
}

/// How keys are rendered: the prefix, and the length above which a digest stands in.
pub(crate) struct Keys {
    pub(crate) prefix: String,
    pub(crate) max_len: usize,
}

impl Keys {
    /// The key `render` writes, after the prefix (its digest form if too long).
    pub(crate) fn render(&self, render: impl FnOnce(&mut KeyBuilder)) -> String {
        let mut key = KeyBuilder::new(&self.prefix, self.max_len);
        render(&mut key);
        key.finish()
    }

    /// The key of the tag `render` writes: the prefix, `\@`, then the tag. No entry's key
    /// contains `\@` (templates have no `\`, and key parts escape it), so tags and entries
    /// never share a key.
    pub(crate) fn render_tag(&self, render: impl FnOnce(&mut KeyBuilder)) -> String {
        self.render(|key| {
            key.literal(TAG_MARK);
            render(key);
        })
    }
}

/// What separates a tag key's prefix from its tag.
const TAG_MARK: &str = "\\@";

impl Cache {
    pub(crate) fn new(
        store: Store,
        near: Option<Arc<NearTier>>,
        keys: Keys,
        codec: Codec,
        default_ttl: Duration,
        redacted_url: String,
    ) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                store,
                near,
                flights: Flights::default(),
                pending: Arc::default(),
                keys,
                codec,
                default_ttl,
                log: LogLimit::default(),
                redacted_url,
            }),
        }
    }

    /// The prefix put in front of every key.
    pub fn prefix(&self) -> &str {
        &self.inner.keys.prefix
    }

    /// The TTL of entries whose function names none.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// `"redis"` (one server), `"redis-cluster"`, `"redis-sentinel"` or `"memory"`.
    pub fn backend_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    /// Checks that the backend answers within the timeout (for health checks).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] or [`Error::Timeout`] when it does not.
    pub async fn ping(&self) -> Result<(), Error> {
        self.inner.store.ping().await
    }

    /// Whether recent operations failed to reach the backend, so that cached calls skip it
    /// for now (they run their bodies); it is probed again shortly.
    pub fn is_degraded(&self) -> bool {
        self.inner.store.is_degraded()
    }

    /// Deletes entries by their rendered keys (without the prefix, which is added; values
    /// escaped as templates escape them, see [`write_escaped`](crate::write_escaped); a hash
    /// tag as stored, `{tenant:7}`, not `#{tenant:7}`), in one
    /// command (on a Redis Cluster, one per hash slot, sent at once), as `#[invalidates]`
    /// does. Inside a [`transaction`](crate::transaction) scope, the keys are held until
    /// its commit. Keys whose server cannot be reached are remembered, treated as misses by this
    /// process, and deleted in the background once it answers again; the error is returned
    /// all the same. A call dropped before it finished (a cancelled request) goes on in a
    /// task of its own, so a started invalidation is not lost with its caller (unless
    /// dropped outside a Tokio runtime: that is logged at error level).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] while the breaker is open, [`Error::Redis`] or
    /// [`Error::Timeout`] when the `UNLINK` fails, [`Error::NotReplicated`] when fewer
    /// replicas than asked for confirmed it (see
    /// [`CacheBuilder::replicated_invalidation`](crate::CacheBuilder::replicated_invalidation)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.invalidate(&["user:42", "users:all"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, keys: &[&str]) -> Result<(), Error> {
        let keys = keys
            .iter()
            .map(|key| self.inner.keys.render(|builder| builder.literal(key)))
            .collect();
        self.delete_completing(keys).await
    }

    /// Invalidates every entry carrying one of `tags` (rendered tags, as a function's
    /// `tags = [...]` renders them: `department:7`; a value that needs escaping is written
    /// escaped, see [`write_escaped`](crate::write_escaped)), in one command per tag's server,
    /// however many entries carry them. Works like [`Cache::invalidate`]: held inside a
    /// [`transaction`](crate::transaction), and deferred (the tag's entries are misses in this
    /// process) when the store cannot be reached.
    ///
    /// Each tag is a small key holding a random version; an entry records its tags'
    /// versions, read before its body ran, and is served only while they are current.
    /// Invalidating a tag deletes its key, so every entry stamped with the old version is a
    /// miss from then on, including one whose body was running meanwhile.
    ///
    /// # Errors
    ///
    /// As [`Cache::invalidate`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.invalidate_tags(&["department:7"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<(), Error> {
        let keys = tags
            .iter()
            .map(|tag| self.inner.keys.render_tag(|builder| builder.literal(tag)))
            .collect();
        self.delete_completing(keys).await
    }

    /// [`Cache::delete`], finished in a task of its own if the caller is dropped meanwhile.
    async fn delete_completing(&self, keys: Vec<String>) -> Result<(), Error> {
        let cache = self.clone();
        Completing::new(async move { cache.delete(keys).await }).await
    }

    /// Deletes `keys` from the store, then evicts them from the near tier, so this process
    /// reads its own writes at once; on failure defers them (see [`Cache::invalidate`]).
    pub(crate) async fn delete(&self, keys: Vec<String>) -> Result<(), Error> {
        if crate::transaction::hold(self, &keys) {
            return Ok(());
        }
        let inner = &self.inner;
        // Calls that start from now on must not join a degraded flight that began earlier.
        inner.flights.forget(&keys);
        let result = inner.store.delete(&keys).await;
        if let Some(near) = &inner.near {
            near.evict(&keys);
        }
        result.map_err(|undeleted| {
            inner.pending.defer(&inner.store, undeleted.keys);
            undeleted.error
        })
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("url", &self.inner.redacted_url)
            .field("prefix", &self.inner.keys.prefix)
            .field("default_ttl", &self.inner.default_ttl)
            .field("codec", &self.inner.codec)
            .field("near_cache", &self.inner.near.is_some())
            .field("lease_ttl", &self.inner.store.lease_ttl())
            .finish_non_exhaustive()
    }
}
