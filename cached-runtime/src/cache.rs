//! The [`Cache`] handle and its [`CacheBuilder`].

use crate::Error;
use crate::backend::{Backend, MemoryBackend, RedisBackend, Stored};
use crate::key::{DEFAULT_MAX_KEY_LEN, KeyBuilder};
use std::fmt;
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
    max_key_len: usize,
    max_value_len: usize,
    redacted_url: String,
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
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: 16 * 1024 * 1024,
            memory_bytes: 256 * 1024 * 1024,
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
        self.inner.backend.ping().await
    }

    /// Deletes entries by their rendered keys (without the prefix, which is added), in
    /// one command. This is what `#[invalidates]` runs.
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
        self.delete(&keys).await
    }

    pub(crate) fn key_builder(&self) -> KeyBuilder {
        KeyBuilder::new(&self.inner.prefix, self.inner.max_key_len)
    }

    /// Reads an entry; values over the size cap count as absent.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Stored>, Error> {
        let value = self.inner.backend.get(key).await?;
        Ok(value.filter(|bytes| bytes.len() <= self.inner.max_value_len))
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        if value.len() > self.inner.max_value_len {
            return Err(Error::InvalidConfig(format!(
                "value of {} bytes is over the cap of {} bytes",
                value.len(),
                self.inner.max_value_len
            )));
        }
        self.inner.backend.set(key, value, ttl).await
    }

    pub(crate) async fn delete(&self, keys: &[String]) -> Result<(), Error> {
        self.inner.backend.delete(keys).await
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
    max_key_len: usize,
    max_value_len: usize,
    memory_bytes: u64,
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
        if self.default_ttl < Duration::from_secs(1) || self.timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "the default TTL must be at least one second and the timeout above zero".into(),
            ));
        }
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted_url.clone(),
            reason,
        };
        let scheme = self.url.split_once("://").map_or("", |(scheme, _)| scheme);
        let backend = match scheme {
            "mem" => Backend::Memory(MemoryBackend::new(self.memory_bytes)),
            "redis" | "rediss" | "redis+unix" | "unix" => {
                let client = redis::Client::open(self.url.as_str())
                    .map_err(|err| invalid(format!("not a valid Redis URL ({:?})", err.kind())))?;
                Backend::Redis(RedisBackend::open(client, self.timeout, self.lazy).await?)
            }
            _ => return Err(invalid(format!("unsupported URL scheme `{scheme}`"))),
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                backend,
                prefix: self.prefix,
                default_ttl: Duration::from_secs(self.default_ttl.as_secs()),
                max_key_len: self.max_key_len,
                max_value_len: self.max_value_len,
                redacted_url,
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

/// The URL with its password, if any, replaced by `***`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Unparsable: keep only what cannot hold a secret.
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => "…".to_owned(),
        },
    }
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
    }
}
