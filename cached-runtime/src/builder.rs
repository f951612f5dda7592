//! [`CacheBuilder`]: the settings of a [`Cache`] and their checks; `build` opens the store
//! (`store/open.rs`), starts the near tier and makes the handle.

use crate::Error;
use crate::cache::Cache;
use crate::codec::{Codec, Coder, Json};
use crate::key::{DEFAULT_MAX_KEY_LEN, Keys};
use crate::near::{NearCache, NearTier};
#[cfg(feature = "tls")]
use crate::store::connection;
use crate::store::lease::Leases;
use crate::store::{self, Settings};
use crate::ttl::Jitter;
use crate::url;
use std::fmt;
use std::time::Duration;

/// Construction lives here, beside the builder, so that the handle's module needs neither.
impl Cache {
    /// Connects with the default settings: no prefix, a one-hour default TTL and a
    /// 250 ms timeout on each operation.
    ///
    /// Accepts `redis://`, `rediss://` (with the `tls` feature), `redis+unix://`, `unix://`,
    /// `redis+cluster://` and `redis+sentinel://` (and their `rediss+` forms), and `mem://`.
    /// User name and password come from the URL. See [`CacheBuilder`] for each form.
    ///
    /// # Errors
    ///
    /// As [`CacheBuilder::build`]: an invalid URL, or Redis not answering.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Cache, Error> {
        Cache::builder(url).build().await
    }

    /// Starts configuring a cache for `url`; see [`CacheBuilder`] for the settings.
    pub fn builder(url: &str) -> CacheBuilder {
        CacheBuilder::new(url)
    }
}

/// Configures a [`Cache`]; made by [`Cache::builder`].
///
/// The URL names the store:
///
/// | URL | store |
/// |---|---|
/// | `redis://[user:password@]host[:port][/db]` | one Redis server (`rediss://`: TLS) |
/// | `redis+unix:///path/to.sock`, `unix:///path/to.sock` | one Redis server on a Unix socket |
/// | `redis+cluster://[user:password@]host:port[,host:port...]` | a Redis Cluster, from seed nodes (`rediss+cluster://`: TLS) |
/// | `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]` | the primary that Redis Sentinel names `service`, followed across failovers (`rediss+sentinel://`: TLS); credentials are the data nodes', the sentinels' own come as `?sentinel_username=..&sentinel_password=..` |
/// | `mem://` | an in-process store, for tests and single-process use |
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
    ttl_jitter: f64,
    timeout: Duration,
    lazy: bool,
    leases: Leases,
    max_wait: Duration,
    max_key_len: usize,
    max_value_len: usize,
    memory_bytes: u64,
    codec: Coder,
    compress_above: Option<usize>,
    fingerprints: bool,
    span_raw_keys: bool,
    near: Option<NearCache>,
    replicated: Option<(usize, Duration)>,
    tombstones: Option<Duration>,
    replay_window: Duration,
    #[cfg(feature = "tls")]
    root_certificate: Option<Vec<u8>>,
}

impl CacheBuilder {
    pub(crate) fn new(url: &str) -> CacheBuilder {
        CacheBuilder {
            url: url.to_owned(),
            prefix: String::new(),
            default_ttl: Duration::from_secs(3600),
            ttl_jitter: 0.0,
            timeout: Duration::from_millis(250),
            lazy: false,
            leases: Leases::On(Duration::from_secs(5)),
            max_wait: Duration::from_secs(30),
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: 16 * 1024 * 1024,
            memory_bytes: 256 * 1024 * 1024,
            codec: Coder::of(Json),
            compress_above: None,
            fingerprints: true,
            span_raw_keys: false,
            near: None,
            replicated: None,
            tombstones: None,
            replay_window: Duration::from_secs(60),
            #[cfg(feature = "tls")]
            root_certificate: None,
        }
    }

    /// A namespace put in front of every key (default: none, so `user:<id>` is stored as
    /// `user:42`). It may not contain `\`, `{` or `}` (braces would choose every key's
    /// Redis Cluster hash slot; templates choose one with `#{...}`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The TTL for functions that give none (default: one hour). Whole seconds; at least one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Shortens each stored entry's TTL by a random share of up to `fraction` of it
    /// (default: 0, none), for every function of the cache that does not set its own
    /// `jitter = "N%"`: each TTL is drawn uniformly from `[(1 - fraction) * ttl, ttl]`, never
    /// longer than asked, so that entries written in one burst (a deploy's cold start, a
    /// batch) do not all expire, and miss, in the same instant.
    ///
    /// It applies to every TTL an entry is stored with (`ttl`, `ttl = <expression>`,
    /// `ttl_from`, the [default](Self::default_ttl)), of single and batch functions. With
    /// `stale`, `stale_if_error` or `refresh_ahead`, it is the fresh TTL that is drawn; the
    /// windows past it keep their lengths, and XFetch draws its early refresh against the
    /// drawn expiry. Leases and tag keys are not jittered.
    ///
    /// [`build`](Self::build) refuses a `fraction` outside `[0, 1)` with
    /// [`Error::InvalidConfig`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// use std::time::Duration;
    ///
    /// // TTLs of one hour are stored as 54 to 60 minutes.
    /// let cache = redis_cached::Cache::builder("mem://")
    ///     .default_ttl(Duration::from_secs(3600))
    ///     .ttl_jitter(0.1)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = fraction;
        self
    }

    /// The bound on each Redis operation, connecting included (default: 250 ms). A call
    /// whose cache operation runs out of time goes on without the cache.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect on first use instead of in [`build`](Self::build), so that an application
    /// can start while Redis is down (default: off, `build` fails when Redis does not answer).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// How long a caller that misses holds the key while it runs the body (default: 5 s):
    /// while the body runs, the lease is extended every third of this, so this is how soon
    /// a filler that died is taken over. Concurrent callers wait for its value instead of
    /// running the body too, up to [`max_wait`](Self::max_wait).
    pub fn fill_lease(mut self, lease: Duration) -> Self {
        self.leases = Leases::On(lease);
        self
    }

    /// Turns fill leases off (default: on): a miss then stores with a plain `SET .. EX`, as
    /// hand-written cache-aside does. Without leases there is no single-flight, and a fill
    /// that read the source before an invalidation can store its stale value afterwards.
    /// For comparisons and benchmarks.
    pub fn without_fill_leases(mut self) -> Self {
        self.leases = Leases::Off;
        self
    }

    /// The longest a call waits for another caller's fill of the same key (default: 30 s).
    ///
    /// A filler's lease is kept alive while its body runs, in whatever process, so waiters
    /// wait for a slow body instead of running it again; a filler whose process dies lets
    /// its lease lapse within one [`fill_lease`](Self::fill_lease), and one waiter takes the
    /// key over. A fill still running after `max_wait` is taken over the same way: one
    /// waiter runs the body under a new lease (the old filler's value is then not stored),
    /// and the others wait for it.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Rendered keys longer than this are stored under a digest (default: 1024 bytes).
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.max_key_len = bytes;
        self
    }

    /// Stored entries larger than this many bytes (the encoded value, its 14-byte trailer and
    /// any envelope) are neither stored nor read back (default: 16 MiB).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// For `mem://`: the total size of the entries kept (default: 256 MiB).
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// How values are encoded (default: [`Json`]): [`MessagePack`](crate::codec::MessagePack)
    /// with the `msgpack` feature, or any [`Codec`] of your own. Every entry records its
    /// codec, so a process with another codec reads it as a miss (and refills it in its own),
    /// never as another value: switching codecs costs one miss per key.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").codec(redis_cached::codec::Json);
    /// ```
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = Coder::of(codec);
        self
    }

    /// Stores values whose encoded form is longer than `bytes` compressed with LZ4
    /// (default: off). The entry says it is compressed, so compressed and plain entries
    /// coexist: entries written before still read, and so do compressed ones after this is
    /// turned off again. A value that compression would not shrink is stored plain. A
    /// compressed entry that does not decompress, or would decompress past
    /// [`max_value_len`](Self::max_value_len), is a miss. A hit decompresses before it
    /// decodes (7 to 22 % more than the decode alone on lists and documents), a miss
    /// compresses; the `redis_cached::guide::codecs` page has the measurements behind LZ4
    /// and the threshold.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("mem://").compress_above(1024);
    /// ```
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.compress_above = Some(bytes);
        self
    }

    /// Stops fingerprinting stored types (default: on).
    ///
    /// By default every entry carries an 8-byte fingerprint of its stored type's shape (field
    /// names and types, enum variants, as serde reads them), and an entry written from
    /// another shape is a miss: a deploy that adds, renames or retypes a field never decodes
    /// an old entry into a wrong value (see the guide, `redis_cached::guide::deploys`).
    /// Without it, entries are written unfingerprinted and read whatever shape wrote them, as
    /// long as they decode; the function's `version` is still checked. For keys shared with
    /// writers whose types are traced differently (another language, a type with a
    /// hand-written `Deserialize` of its own), when a function's `version` is managed by hand.
    pub fn without_shape_fingerprints(mut self) -> Self {
        self.fingerprints = false;
        self
    }

    /// Puts the rendered key in the `cache.key` attribute of the tracing spans of cached
    /// calls and invalidations (default: off, the function's key template, as `user:<id>`).
    ///
    /// Keys hold argument values, which can be personal data (an e-mail address, a user id):
    /// turn this on only where traces may hold them. See the guide's traces page
    /// (`redis_cached::guide::tracing`) for the spans and their attributes.
    ///
    /// ```
    /// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379").span_raw_keys(true);
    /// ```
    pub fn span_raw_keys(mut self, raw: bool) -> Self {
        self.span_raw_keys = raw;
        self
    }

    /// Adds an in-process first tier in front of Redis (default: none), kept coherent
    /// across processes by Redis's client-side caching invalidations (`CLIENT TRACKING`).
    /// A hit on it costs no round trip. Ignored for `mem://`, which is in-process already.
    pub fn near_cache(mut self, near: NearCache) -> Self {
        self.near = Some(near);
        self
    }

    /// Makes every invalidation wait until `replicas` replicas have applied it, up to
    /// `timeout` (default: off). Redis replicates asynchronously: without this, an
    /// invalidation that the primary acknowledged is lost if the primary fails before a
    /// replica received it, and the promoted replica serves the old entry.
    ///
    /// Each `UNLINK` is followed by `WAIT replicas timeout` on a connection of its own (so
    /// that lookups do not queue behind it). When fewer replicas confirm, the invalidation
    /// returns [`Error::NotReplicated`], its keys stay invalidated in this process (misses,
    /// never stored) and are deleted again in the background until enough replicas confirm.
    /// Strictly: a replica that is paused, cut off or down may be the one a failover
    /// promotes, so it is waited for; a primary with fewer replicas than asked for (after a
    /// failover, until the old primary rejoins as a replica) keeps its invalidated keys
    /// misses in this process until it has them. An invalidation takes up to `timeout`
    /// longer while a replica is slow or gone.
    pub fn replicated_invalidation(mut self, replicas: usize, timeout: Duration) -> Self {
        self.replicated = Some((replicas, timeout));
        self
    }

    /// How long each invalidation is remembered, to be applied again after a failover or a
    /// restart (default: 60 s; [`Duration::ZERO`] turns this off).
    ///
    /// Redis acknowledges a deletion before its replicas have it, and a server restarted
    /// from its snapshot (RDB, or an append-only file synced every second) comes back
    /// without the deletions made since. Either way the old entries would be served again
    /// as hits until their TTL. The cache reads its primaries' run ids every second, at once
    /// when Sentinel announces a switch or a Cluster's slots move, and within 50 ms of a
    /// server answering again after failed operations; when they change, it deletes again
    /// every key it invalidated within `window` (and the keys of its
    /// `#[cache_put]` calls), on whichever server holds them now.
    /// Deleting is idempotent: a key filled meanwhile costs one miss. Callers waiting for
    /// another process's fill lease stop waiting at the change, since that fill may have gone
    /// to the old primary.
    ///
    /// What remains: the moment between a failover (or restart) and this process seeing it
    /// (Sentinel: its announcement, about a second; a Cluster: up to a second; a restart:
    /// up to a second, or 50 ms when operations failed meanwhile), during which the old
    /// entries can be served; invalidations older than `window` (a snapshot older than that
    /// brings back what was invalidated before: a cache that needs none of its data after a
    /// restart is best run without persistence, `save ""` and `appendonly no`); and the
    /// invalidations of processes that stopped meanwhile. At most 100,000 keys are kept (a
    /// warning is logged when more were invalidated within the window). For no window at
    /// all, add [`replicated_invalidation`](Self::replicated_invalidation), which also covers
    /// failovers, but not restarts.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = redis_cached::Cache::builder("redis://127.0.0.1:6379")
    ///     .replay_window(Duration::from_secs(300));
    /// ```
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// Makes invalidations leave a tombstone that lives `lifetime` in each key they make
    /// stale, instead of deleting it (default: off), so that the miss that follows knows its
    /// cause: which function invalidated the key, when, and (with the `opentelemetry`
    /// feature) in which trace. The miss's span records that cause and links to the
    /// invalidation's trace (see the guide, `redis_cached::guide::tracing`); the miss records
    /// the time from the invalidation to it in
    /// `redis_cached_invalidation_to_miss_seconds`, and [`Cache::inspect_key`] shows a
    /// tombstone as [`KeyKind::Tombstone`](crate::KeyKind::Tombstone). Every reader treats a
    /// tombstone as absent; tag keys are still deleted.
    ///
    /// What it costs: each lookup is a Lua script (`EVALSHA`, still one round trip) instead
    /// of the native `SET .. NX GET`, which costs Redis a little more CPU per hit; and each
    /// invalidated key holds a tombstone (15 bytes, the invalidating function's path and
    /// the trace) for `lifetime` unless a miss replaces it first. A minute (60 s) is enough
    /// to link most misses to their write. Processes without tombstones that share the keys
    /// read a tombstone as a value that does not decode, and overwrite it (a miss). See the
    /// guide, `redis_cached::guide::operations`.
    ///
    /// [`build`](Self::build) refuses a `lifetime` under one second.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = redis_cached::Cache::builder("mem://")
    ///     .tombstones(Duration::from_secs(60))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tombstones(mut self, lifetime: Duration) -> Self {
        self.tombstones = Some(lifetime);
        self
    }

    /// For `rediss://` and `rediss+cluster://`: trust this CA certificate (PEM) instead of
    /// the system's roots.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Connects (unless [`lazy`](Self::lazy)) and returns the cache.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a URL that does not parse or whose scheme this build does
    /// not support, [`Error::InvalidConfig`] for a setting out of range, and, unless lazy,
    /// [`Error::Connect`] naming the address when Redis does not answer or refuses the
    /// connection.
    pub async fn build(self) -> Result<Cache, Error> {
        crate::telemetry::describe_metrics();
        crate::registry::log_check_once();
        if self.prefix.contains(['\\', '{', '}']) {
            return Err(Error::InvalidConfig(
                "the key prefix may not contain `\\` (the escape character of keys), `{` or `}` \
                 (on a Redis Cluster a brace would put every key in one hash slot; a template \
                 chooses a slot on purpose with `#{...}`)"
                    .into(),
            ));
        }
        let short_lease =
            matches!(self.leases, Leases::On(lease) if lease < Duration::from_millis(1));
        if self
            .tombstones
            .is_some_and(|lifetime| lifetime < Duration::from_secs(1))
        {
            return Err(Error::InvalidConfig(
                "a tombstone must live at least one second (60 s is a good lifetime): a \
                 shorter one is gone before most misses could read it"
                    .into(),
            ));
        }
        let Some(ttl_jitter) = Jitter::new(self.ttl_jitter) else {
            return Err(Error::InvalidConfig(format!(
                "the TTL jitter is a fraction of the TTL from 0 (none) to below 1, as in \
                 `ttl_jitter(0.1)` for up to 10% shorter; got {}",
                self.ttl_jitter
            )));
        };
        if self.default_ttl < Duration::from_secs(1) || self.timeout.is_zero() || short_lease {
            return Err(Error::InvalidConfig(
                "the default TTL must be at least one second, the timeout and lease above zero"
                    .into(),
            ));
        }
        #[cfg(feature = "tls")]
        let certificates = self.root_certificate.clone().map(connection::trusting);
        #[cfg(not(feature = "tls"))]
        let certificates = None;
        let settings = Settings {
            url: self.url.clone(),
            timeout: self.timeout,
            lazy: self.lazy,
            leases: self.leases,
            max_value_len: self.max_value_len,
            memory_bytes: self.memory_bytes,
            replicated: self.replicated,
            certificates,
            tombstones: self.tombstones,
            replay_window: self.replay_window,
        };
        let (store, nodes) = store::open(&settings).await?;
        let near = self.near.zip(nodes).map(|(near, nodes)| {
            let probes = (self.prefix.clone(), store.downgrade());
            NearTier::start(near, nodes, probes, self.timeout)
        });
        let mut codec = self.codec;
        codec.compress_above = self.compress_above;
        codec.max_len = self.max_value_len;
        let keys = Keys {
            prefix: self.prefix,
            max_len: self.max_key_len,
        };
        // Whole seconds: Redis's `EX`.
        let default_ttl = Duration::from_secs(self.default_ttl.as_secs());
        let redacted_url = url::redact(&self.url);
        let durations = ((default_ttl, ttl_jitter), self.max_wait);
        let cache = Cache::new(
            store,
            near,
            keys,
            (codec, self.fingerprints),
            durations,
            (redacted_url, self.span_raw_keys),
        );
        // Recent invalidations applied again after a failover or restart.
        crate::replay::follow(&cache.inner);
        Ok(cache)
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field does not compile until it is shown here.
        let CacheBuilder {
            url,
            prefix,
            default_ttl,
            ttl_jitter,
            timeout,
            lazy,
            leases,
            max_wait,
            max_key_len,
            max_value_len,
            memory_bytes,
            codec,
            compress_above,
            fingerprints,
            span_raw_keys,
            near,
            replicated,
            tombstones,
            replay_window,
            #[cfg(feature = "tls")]
            root_certificate,
        } = self;
        let mut debug = f.debug_struct("CacheBuilder");
        debug
            .field("url", &url::redact(url))
            .field("prefix", prefix)
            .field("default_ttl", default_ttl)
            .field("ttl_jitter", ttl_jitter)
            .field("timeout", timeout)
            .field("lazy", lazy)
            .field("fill_lease", leases)
            .field("max_wait", max_wait)
            .field("max_key_len", max_key_len)
            .field("max_value_len", max_value_len)
            .field("memory_capacity", memory_bytes)
            .field("codec", codec)
            .field("compress_above", compress_above)
            .field("shape_fingerprints", fingerprints)
            .field("span_raw_keys", span_raw_keys)
            .field("near_cache", near)
            .field("replicated_invalidation", replicated)
            .field("tombstones", tombstones)
            .field("replay_window", replay_window);
        #[cfg(feature = "tls")]
        debug.field(
            "tls_root_certificate",
            &root_certificate
                .as_ref()
                .map(|pem| format!("{} bytes", pem.len())),
        );
        debug.finish()
    }
}
