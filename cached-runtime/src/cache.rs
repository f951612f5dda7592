//! The [`Cache`] handle: its parts and read-only accessors. Construction (`connect`,
//! `builder`) is in `builder.rs`, invalidation in `invalidate.rs`, and the cache-aside
//! algorithm that generated code runs in `private/cached.rs`.

use crate::codec::Coder;
use crate::error::Error;
use crate::flight::Flights;
use crate::key::Keys;
use crate::near::{LagStats, NearTier};
use crate::pending::Pending;
use crate::spans;
use crate::store::Store;
use crate::telemetry::LogLimit;
use crate::ttl::Jitter;
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
    pub(crate) codec: Coder,
    /// Whether entries carry their stored type's shape fingerprint (see `fingerprint.rs`).
    pub(crate) fingerprints: bool,
    /// The TTL of functions that name none; whole seconds.
    pub(crate) default_ttl: Duration,
    /// The TTL jitter of functions that set none.
    pub(crate) ttl_jitter: Jitter,
    /// The longest a call waits for another caller's fill before one waiter takes it over.
    pub(crate) max_wait: Duration,
    /// Rations failure log lines per function.
    pub(crate) log: LogLimit,
    /// The URL with any password redacted, for `Debug`.
    redacted_url: String,
    /// What its tracing spans say about it.
    pub(crate) spans: spans::Settings,
}

impl Cache {
    pub(crate) fn new(
        store: Store,
        near: Option<Arc<NearTier>>,
        keys: Keys,
        (codec, fingerprints): (Coder, bool),
        ((default_ttl, ttl_jitter), max_wait): ((Duration, Jitter), Duration),
        (redacted_url, span_raw_keys): (String, bool),
    ) -> Cache {
        let spans = spans::Settings::new(&redacted_url, store.kind() != "memory", span_raw_keys);
        Cache {
            inner: Arc::new(Inner {
                store,
                near,
                flights: Flights::default(),
                pending: Arc::default(),
                keys,
                codec,
                fingerprints,
                default_ttl,
                ttl_jitter,
                max_wait,
                log: LogLimit::default(),
                redacted_url,
                spans,
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

    /// The near tier's eviction lag as this process measured it (see [`LagStats`]): `None`
    /// without a near tier, or before the first probe arrived (one every
    /// [`NearCache::probe_every`](crate::NearCache::probe_every), 10 s by default).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// assert_eq!(cache.near_eviction_lag(), None); // no near tier on `mem://`
    /// # Ok(()) }
    /// ```
    pub fn near_eviction_lag(&self) -> Option<LagStats> {
        self.inner.near.as_ref().and_then(|near| near.lag())
    }

    /// Whether recent operations failed to reach the backend, so that cached calls skip it
    /// for now (they run their bodies); it is probed again shortly.
    pub fn is_degraded(&self) -> bool {
        self.inner.store.is_degraded()
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
            .field("leases", &self.inner.store.leases())
            .finish_non_exhaustive()
    }
}
