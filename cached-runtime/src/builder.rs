//! [`CacheBuilder`]: the settings of a [`Cache`], the URL schemes and what each opens (TLS
//! roots, the RESP3 client of the near tier), and URL redaction for errors, logs and `Debug`.

use crate::Error;
use crate::cache::{Cache, Keys};
use crate::codec::Codec;
use crate::key::DEFAULT_MAX_KEY_LEN;
use crate::near::{NearCache, NearTier};
use crate::store::{RedisStore, Store};
use std::fmt;
use std::time::Duration;

/// Construction lives here, beside the builder, so that the handle's module needs neither.
impl Cache {
    /// Connects with the default settings: no prefix, a one-hour default TTL and a
    /// 250 ms timeout on each operation.
    ///
    /// Accepts `redis://`, `rediss://` (with the `tls` feature), `redis+unix://`, `unix://`
    /// and `mem://`. User name and password come from the URL.
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
    pub(crate) fn new(url: &str) -> CacheBuilder {
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

    /// A namespace put in front of every key (default: none, so `user:<id>` is stored as
    /// `user:42`). It may not contain `\`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The TTL for functions that give none (default: one hour). Whole seconds; at least one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
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

    /// How long a caller that misses holds the key while it runs the body (default: 5 s).
    /// Concurrent callers wait for its value instead of running the body too, up to this
    /// long; a value whose body outlasts the lease is returned but not stored.
    pub fn fill_lease(mut self, lease: Duration) -> Self {
        self.fill_lease = Some(lease);
        self
    }

    /// Turns fill leases off (default: on): a miss then stores with a plain `SET .. EX`, as
    /// hand-written cache-aside does. Without leases there is no single-flight, and a fill
    /// that read the source before an invalidation can store its stale value afterwards.
    /// For comparisons and benchmarks.
    pub fn without_fill_leases(mut self) -> Self {
        self.fill_lease = None;
        self
    }

    /// Rendered keys longer than this are stored under a digest (default: 1024 bytes).
    pub fn max_key_len(mut self, bytes: usize) -> Self {
        self.max_key_len = bytes;
        self
    }

    /// Values larger than this are neither stored nor read back (default: 16 MiB).
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// For `mem://`: the total size of the entries kept (default: 256 MiB).
    pub fn memory_capacity(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// How values are encoded (default: [`Codec::Json`]). Every process sharing keys must
    /// use the same codec: a value that does not decode is treated as a miss.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Adds an in-process first tier in front of Redis (default: none), kept coherent
    /// across processes by Redis's client-side caching invalidations (`CLIENT TRACKING`).
    /// A hit on it costs no round trip. Ignored for `mem://`, which is in-process already.
    pub fn near_cache(mut self, near: NearCache) -> Self {
        self.near = Some(near);
        self
    }

    /// For `rediss://`: trust this CA certificate (PEM) instead of the system's roots.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
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
        let scheme = scheme(&self.url).map_err(invalid)?;
        let (store, near) = match scheme {
            "mem" => {
                let store = Store::memory(self.memory_bytes, self.fill_lease, self.max_value_len);
                (store, None)
            }
            "rediss" if !cfg!(feature = "tls") => {
                return Err(invalid(
                    "`rediss://` (TLS) needs the `tls` feature of redis-cached".into(),
                ));
            }
            "redis" | "rediss" | "redis+unix" | "unix" => {
                let client = self
                    .client()
                    .map_err(|err| invalid(format!("not a valid Redis URL ({:?})", err.kind())))?;
                let near = self.near.clone().map(|near| {
                    NearTier::start(near, resp3(&client), self.prefix.clone(), self.timeout)
                });
                let redis =
                    RedisStore::open(client, &redacted_url, self.timeout, self.lazy).await?;
                let store = Store::redis(
                    redis,
                    redacted_url.clone(),
                    self.fill_lease,
                    self.max_value_len,
                );
                (store, near)
            }
            _ => {
                return Err(invalid(format!(
                    "unsupported URL scheme `{scheme}`: use {SCHEMES}"
                )));
            }
        };
        let keys = Keys {
            prefix: self.prefix,
            max_len: self.max_key_len,
        };
        // Whole seconds: Redis's `EX`.
        let default_ttl = Duration::from_secs(self.default_ttl.as_secs());
        Ok(Cache::new(
            store,
            near,
            keys,
            self.codec,
            default_ttl,
            redacted_url,
        ))
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field does not compile until it is shown here.
        let CacheBuilder {
            url,
            prefix,
            default_ttl,
            timeout,
            lazy,
            fill_lease,
            max_key_len,
            max_value_len,
            memory_bytes,
            codec,
            near,
            #[cfg(feature = "tls")]
            root_certificate,
        } = self;
        let mut debug = f.debug_struct("CacheBuilder");
        debug
            .field("url", &redact(url))
            .field("prefix", prefix)
            .field("default_ttl", default_ttl)
            .field("timeout", timeout)
            .field("lazy", lazy)
            .field("fill_lease", fill_lease)
            .field("max_key_len", max_key_len)
            .field("max_value_len", max_value_len)
            .field("memory_capacity", memory_bytes)
            .field("codec", codec)
            .field("near_cache", near);
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

/// The URL schemes this build opens, for error messages.
const SCHEMES: &str = if cfg!(feature = "tls") {
    "`redis://`, `rediss://`, `redis+unix://`, `unix://` or `mem://`"
} else {
    "`redis://`, `redis+unix://`, `unix://` or `mem://` (`rediss://` with the `tls` feature)"
};

/// The scheme of `url`, or what is wrong with it.
fn scheme(url: &str) -> Result<&str, String> {
    if let Some((scheme, _)) = url.split_once("://") {
        return Ok(scheme);
    }
    let example = "as in `redis://127.0.0.1:6379`";
    match url.split_once(':') {
        Some(("mem", _)) => Err("`mem:` must be followed by `//`: write `mem://`".into()),
        Some((scheme @ ("redis" | "rediss" | "redis+unix" | "unix"), _)) => Err(format!(
            "`{scheme}:` must be followed by `//` and the address, {example}"
        )),
        _ => Err(format!(
            "not a URL: expected a scheme and an address, {example}, or `mem://`"
        )),
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
