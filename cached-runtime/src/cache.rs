//! The [`Cache`] handle and its [`CacheBuilder`].

use crate::Error;
use crate::backend::{Backend, Fetch, MemoryBackend, RedisBackend};
use crate::breaker::Breaker;
use crate::codec::Codec;
use crate::flight::Flights;
use crate::key::{DEFAULT_MAX_KEY_LEN, KeyBuilder};
use crate::lease::Lease;
use crate::near::{NearCache, NearTier};
use crate::pending::Pending;
use crate::telemetry::LogLimit;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A handle to one cache: a backend, a key prefix and the defaults cached calls use.
///
/// Cloning is cheap (one `Arc`); every clone shares the same connection.
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
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    default_ttl: Duration,
    /// `None`: fill leases (and with them single-flight) are off.
    fill_lease: Option<Duration>,
    max_key_len: usize,
    max_value_len: usize,
    codec: Codec,
    redacted_url: String,
    breaker: Breaker,
    flights: Flights,
    pending: Pending,
    near: Option<Arc<NearTier>>,
    log: LogLimit,
}

impl Cache {
    /// Connects with the default settings: no prefix, a one-hour default TTL and a
    /// 250 ms timeout on each operation.
    ///
    /// Accepts `redis://`, `rediss://` (with the `tls` feature), `redis+unix://`, `unix://`
    /// and `mem://`. User name and password come from the URL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Cache, Error> {
        Cache::builder(url).build().await
    }

    /// Starts configuring a cache for `url`.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379");
    /// ```
    pub fn builder(url: &str) -> CacheBuilder {
        CacheBuilder {
            url: url.to_owned(),
            prefix: String::new(),
            default_ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(250),
            lazy: false,
            fill_lease: Some(Duration::from_secs(5)),
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: 16 * 1024 * 1024,
            memory_bytes: 256 * 1024 * 1024,
            codec: Codec::Json,
            near: None,
            #[cfg(feature = "tls")]
            root_certificate: None,
        }
    }

    /// The prefix put in front of every key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// assert_eq!(cache.prefix(), "");
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The TTL of entries whose function names none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// assert_eq!(cache.default_ttl().as_secs(), 3600);
    /// # Ok(()) }
    /// ```
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// `"redis"` or `"memory"`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// assert_eq!(cache.backend_kind(), "memory");
    /// # Ok(()) }
    /// ```
    pub fn backend_kind(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// Checks that the backend answers within the timeout (for health checks).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.ping().await?;
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<(), Error> {
        let result = self.inner.backend.ping().await;
        self.inner.breaker.record(&result);
        result
    }

    /// Whether recent operations failed to reach the backend, so that cached calls skip it
    /// for now (they run their bodies); it is probed again shortly.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// assert!(!cache.is_degraded());
    /// # Ok(()) }
    /// ```
    pub fn is_degraded(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// Deletes entries by their rendered keys (without the prefix, which is added), in one
    /// command, as `#[invalidates]` does. When the backend cannot be reached, the keys are
    /// remembered, treated as misses by this process, and deleted in the background once it
    /// answers again; the error is returned all the same.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.invalidate(&["user:42", "users:all"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, keys: &[&str]) -> Result<(), Error> {
        let keys: Vec<String> = keys
            .iter()
            .map(|key| {
                let mut builder = self.key_builder();
                builder.literal(key);
                builder.finish()
            })
            .collect();
        self.delete(keys).await
    }

    pub(crate) fn key_builder(&self) -> KeyBuilder {
        KeyBuilder::new(&self.inner.prefix, self.inner.max_key_len)
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    pub(crate) fn pending(&self) -> &Pending {
        &self.inner.pending
    }

    pub(crate) fn codec(&self) -> Codec {
        self.inner.codec
    }

    pub(crate) fn log(&self) -> &LogLimit {
        &self.inner.log
    }

    pub(crate) fn near(&self) -> Option<&NearTier> {
        self.inner.near.as_deref()
    }

    /// How long a filler's lease lasts, or `None` when leases are off.
    pub(crate) fn fill_lease(&self) -> Option<Duration> {
        self.inner.fill_lease
    }

    /// Runs one backend operation unless the breaker is open, and tells the breaker how it went.
    async fn guarded<T>(&self, op: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        if !self.inner.breaker.allow() {
            return Err(Error::Unavailable);
        }
        let result = op.await;
        self.inner.breaker.record(&result);
        result
    }

    /// Looks `key` up, taking `lease` on it if it is absent (when leases are on). A value over
    /// the size cap is returned as is: the caller treats it like one that does not decode.
    /// With `want_ttl`, a value from Redis comes with its remaining time to live.
    pub(crate) async fn fetch(
        &self,
        key: &str,
        lease: &Lease,
        want_ttl: bool,
    ) -> Result<Fetch, Error> {
        let lease = self.inner.fill_lease.map(|ttl| (lease, ttl));
        self.guarded(self.inner.backend.fetch(key, lease, want_ttl))
            .await
    }

    /// Whether stored bytes are too large to be read back.
    pub(crate) fn oversized(&self, bytes: &[u8]) -> bool {
        bytes.len() > self.inner.max_value_len
    }

    /// Puts `lease` on `key` whatever it holds (to refresh or overwrite an entry).
    pub(crate) async fn take_lease(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        match self.inner.fill_lease {
            Some(ttl) => {
                self.guarded(self.inner.backend.set(key, lease.as_bytes(), ttl))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Stores `value` if `lease` still holds `key` (unconditionally when leases are off).
    pub(crate) async fn fill(
        &self,
        key: &str,
        lease: &Lease,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        if self.oversized(value) {
            self.release(key, lease).await?;
            return Ok(false);
        }
        match self.inner.fill_lease {
            Some(_) => {
                self.guarded(self.inner.backend.fill(key, lease, value, ttl))
                    .await
            }
            None => {
                self.guarded(self.inner.backend.set(key, value, ttl))
                    .await?;
                Ok(true)
            }
        }
    }

    /// Gives up `lease` on `key`, so that the next caller need not wait for it to expire.
    pub(crate) async fn release(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        match self.inner.fill_lease {
            Some(_) => self.guarded(self.inner.backend.release(key, lease)).await,
            None => Ok(()),
        }
    }

    /// Releases `lease` from a task of its own, past the breaker: for callers that cannot
    /// wait (a dropped pilot, a lookup that timed out).
    pub(crate) fn release_in_background(&self, key: &str, lease: &Lease) {
        if self.inner.fill_lease.is_none() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, key, lease) = (self.clone(), key.to_owned(), lease.clone());
            runtime.spawn(async move { cache.inner.backend.release(&key, &lease).await });
        }
    }

    /// Deletes `keys`, then evicts them from the near tier, so this process reads its own
    /// writes at once; on failure defers them (see [`Cache::invalidate`]).
    pub(crate) async fn delete(&self, keys: Vec<String>) -> Result<(), Error> {
        // Calls that start from now on must not join a degraded flight that began earlier.
        self.inner.flights.forget(&keys);
        let result = self.guarded(self.inner.backend.delete(&keys)).await;
        if let Some(near) = self.near() {
            near.evict(&keys);
        }
        if result.is_err() {
            self.inner.pending.defer(self, keys);
        }
        result
    }

    /// Resolves the next time the store answers again after an outage.
    pub(crate) async fn reachable_again(&self) {
        self.inner.breaker.closed().await;
    }

    /// Deletes `keys` now, past the breaker: the deferred-invalidation task is its own probe.
    pub(crate) async fn delete_now(&self, keys: &[String]) -> Result<(), Error> {
        let result = self.inner.backend.delete(keys).await;
        self.inner.breaker.record(&result);
        result
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("url", &self.inner.redacted_url)
            .field("prefix", &self.inner.prefix)
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Cache`]; made by [`Cache::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use std::time::Duration;
///
/// let cache = redis_cached::Cache::builder("mem://")
///     .prefix("shop:")
///     .default_ttl(Duration::from_secs(300))
///     .timeout(Duration::from_millis(100))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `.build().await`"]
pub struct CacheBuilder {
    url: String,
    prefix: String,
    default_ttl: Duration,
    timeout: Duration,
    lazy: bool,
    fill_lease: Option<Duration>,
    max_key_len: usize,
    max_value_len: usize,
    memory_bytes: u64,
    codec: Codec,
    near: Option<NearCache>,
    #[cfg(feature = "tls")]
    root_certificate: Option<Vec<u8>>,
}

impl CacheBuilder {
    /// A namespace put in front of every key (default: none, so `user:<id>` is stored as
    /// `user:42`). It may not contain `\`.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").prefix("myapp:");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The TTL for functions that give none (default: one hour). Whole seconds; at least one.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://")
    ///     .default_ttl(std::time::Duration::from_secs(60));
    /// ```
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The bound on each Redis operation, connecting included (default: 250 ms). A call
    /// whose cache operation runs out of time goes on without the cache.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379")
    ///     .timeout(std::time::Duration::from_millis(50));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect on first use instead of in [`build`](Self::build), so that an application
    /// can start while Redis is down (default: off, `build` fails when Redis does not answer).
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379").lazy(true);
    /// ```
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// How long a caller that misses holds the key while it runs the body (default: 5 s).
    /// Concurrent callers wait for its value instead of running the body too, up to this
    /// long; a value whose body outlasts the lease is returned but not stored.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://")
    ///     .fill_lease(std::time::Duration::from_secs(10));
    /// ```
    pub fn fill_lease(mut self, lease: Duration) -> Self {
        self.fill_lease = Some(lease);
        self
    }

    /// Turns fill leases off (default: on): a miss then stores with a plain `SET .. EX`, as
    /// hand-written cache-aside does. Without leases there is no single-flight, and a fill
    /// that read the source before an invalidation can store its stale value afterwards.
    /// For comparisons and benchmarks.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").without_fill_leases();
    /// ```
    pub fn without_fill_leases(mut self) -> Self {
        self.fill_lease = None;
        self
    }

    /// Rendered keys longer than this are stored under a digest (default: 1024 bytes).
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").max_key_len(256);
    /// ```
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.max_key_len = bytes;
        self
    }

    /// Values larger than this are neither stored nor read back (default: 16 MiB).
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").max_value_len(1 << 20);
    /// ```
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// For `mem://`: the total size of the entries kept (default: 256 MiB).
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").memory_capacity(64 << 20);
    /// ```
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// How values are encoded (default: [`Codec::Json`]). Every process sharing keys must
    /// use the same codec: a value that does not decode is treated as a miss.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").codec(redis_cached::Codec::Json);
    /// ```
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Adds an in-process first tier in front of Redis (default: none), kept coherent
    /// across processes by Redis's client-side caching invalidations (`CLIENT TRACKING`).
    /// A hit on it costs no round trip. Ignored for `mem://`, which is in-process already.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379")
    ///     .near_cache(redis_cached::NearCache::new(64 << 20));
    /// ```
    pub fn near_cache(mut self, near: NearCache) -> Self {
        self.near = Some(near);
        self
    }

    /// For `rediss://`: trust this CA certificate (PEM) instead of the system's roots.
    ///
    /// ```
    /// # fn pem() -> Vec<u8> { Vec::new() }
    /// let builder = redis_cached::Cache::builder("rediss://cache.internal:6380")
    ///     .tls_root_certificate(pem());
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    fn client(&self) -> redis::RedisResult<redis::Client> {
        #[cfg(feature = "tls")]
        if self.url.starts_with("rediss://") {
            // rustls needs a process-wide crypto provider; keep one that is already installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
            if let Some(root_cert) = &self.root_certificate {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert.clone()),
                };
                return redis::Client::build_with_tls(self.url.as_str(), certificates);
            }
        }
        redis::Client::open(self.url.as_str())
    }

    /// Opens the backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::builder("mem://").build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<Cache, Error> {
        let redacted_url = redact(&self.url);
        if self.prefix.contains('\\') {
            return Err(Error::InvalidConfig(
                "the key prefix may not contain `\\`".into(),
            ));
        }
        if self.default_ttl < Duration::from_secs(1)
            || self.timeout.is_zero()
            || self
                .fill_lease
                .is_some_and(|lease| lease < Duration::from_millis(1))
        {
            return Err(Error::InvalidConfig(
                "the default TTL must be at least one second, the timeout and lease above zero"
                    .into(),
            ));
        }
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted_url.clone(),
            reason,
        };
        let scheme = self.url.split_once("://").map_or("", |(scheme, _)| scheme);
        let (backend, near) = match scheme {
            "mem" => (Backend::Memory(MemoryBackend::new(self.memory_bytes)), None),
            "redis" | "rediss" | "redis+unix" | "unix" => {
                let client = self
                    .client()
                    .map_err(|err| invalid(format!("not a valid Redis URL ({:?})", err.kind())))?;
                let near = self.near.clone().map(|near| {
                    NearTier::start(near, resp3(&client), self.prefix.clone(), self.timeout)
                });
                let backend = RedisBackend::open(client, self.timeout, self.lazy).await?;
                (Backend::Redis(backend), near)
            }
            _ => return Err(invalid(format!("unsupported URL scheme `{scheme}`"))),
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                backend,
                prefix: self.prefix,
                default_ttl: Duration::from_secs(self.default_ttl.as_secs()),
                fill_lease: self.fill_lease,
                max_key_len: self.max_key_len,
                max_value_len: self.max_value_len,
                codec: self.codec,
                breaker: Breaker::new(redacted_url.clone()),
                redacted_url,
                flights: Flights::default(),
                pending: Pending::default(),
                log: LogLimit::default(),
                near,
            }),
        })
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("default_ttl", &self.default_ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The same server and credentials over RESP3, which carries tracking invalidations.
fn resp3(client: &redis::Client) -> redis::Client {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    match redis::Client::open(info.clone().set_redis_settings(settings)) {
        Ok(client) => client,
        // Opening from a parsed connection info does not fail; keep the original if it did.
        Err(_) => client.clone(),
    }
}

/// The URL with its password, if any, replaced by `***`: the user-info password, and the
/// `pass` / `password` query parameters that socket URLs carry.
fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Unparsable: keep only what cannot hold a secret.
        return match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => "…".to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let is_secret = |name: &str| matches!(name, "pass" | "password");
    if parsed.query_pairs().any(|(name, _)| is_secret(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret(&name) {
                    "***".into()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert!(!redact("redis://:hunter2@ho st").contains("hunter2"));
        let socket = redact("redis+unix:///tmp/r.sock?user=alice&pass=hunter2&db=1");
        assert!(!socket.contains("hunter2"), "{socket}");
        assert!(socket.contains("db=1"), "{socket}");
    }
}
