//! What generated code calls. Not public API: names and signatures change without notice.

pub use crate::key::KeyBuilder;
pub use crate::shape::{OkOf, OkSomeOf, Shape, SomeOf, Whole};

use crate::{Cache, Outcome, codec, telemetry};
use std::future::Future;
use std::time::{Duration, Instant};

/// What `cache = <expr>` may evaluate to.
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must be a `redis_cached::Cache` or a reference to one, not `{Self}`"
)]
pub trait IntoCache {
    /// The cache, cloned if borrowed (a clone is one `Arc` increment).
    fn into_cache(self) -> Cache;
}

impl IntoCache for Cache {
    fn into_cache(self) -> Cache {
        self
    }
}

impl IntoCache for &Cache {
    fn into_cache(self) -> Cache {
        self.clone()
    }
}

/// The cache a call uses when it names none.
pub fn global() -> Option<Cache> {
    crate::global::global()
}

/// The cache named by `cache = <expr>`.
pub fn named(cache: impl IntoCache) -> Option<Cache> {
    Some(cache.into_cache())
}

/// One call of a `#[redis_cached]` function: its cache, rendered key and options.
pub struct Call {
    function: &'static str,
    target: Option<(Cache, String)>,
    ttl: Option<Duration>,
    refresh: bool,
    cache_none: bool,
}

impl Call {
    /// Renders the key at once (before the body can move the arguments), if there is a cache.
    pub fn new(
        cache: Option<Cache>,
        function: &'static str,
        render: impl FnOnce(&mut KeyBuilder),
    ) -> Self {
        let target = cache.map(|cache| {
            let mut key = cache.key_builder();
            render(&mut key);
            (cache, key.finish())
        });
        Call {
            function,
            target,
            ttl: None,
            refresh: false,
            cache_none: false,
        }
    }

    /// A TTL in whole seconds, checked to be positive by the macro.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Some(Duration::from_secs(seconds));
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
}

/// Cache-aside around `body`: look up, else run and store. Cache failures only cost time.
pub async fn cached<S, R, F>(call: Call, body: F) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let function = call.function;
    let Some((cache, key)) = call.target else {
        return body.await;
    };
    if !call.refresh {
        if let Some(stored) = lookup::<S::Stored>(&cache, &key, function).await {
            telemetry::outcome(function, Outcome::Hit);
            return S::output(stored);
        }
    }
    let started = Instant::now();
    let output = body.await;
    telemetry::body_time(function, started.elapsed());
    if let Some(stored) = S::stored(&output, call.cache_none) {
        let ttl = call.ttl.unwrap_or_else(|| cache.default_ttl());
        store(&cache, &key, stored, ttl, function).await;
    }
    let outcome = if call.refresh {
        Outcome::Refresh
    } else {
        Outcome::Miss
    };
    telemetry::outcome(function, outcome);
    output
}

/// The decoded entry; absent, undecodable and unreachable all read as `None`.
async fn lookup<T: serde::de::DeserializeOwned>(
    cache: &Cache,
    key: &str,
    function: &'static str,
) -> Option<T> {
    let started = Instant::now();
    let read = cache.get(key).await;
    telemetry::cache_time(function, "get", started.elapsed());
    match read {
        Ok(Some(bytes)) => match codec::decode(&bytes) {
            Ok(value) => Some(value),
            Err(err) => {
                telemetry::error(function, "decode", &err);
                None
            }
        },
        Ok(None) => None,
        Err(err) => {
            telemetry::error(function, "get", &err);
            None
        }
    }
}

async fn store<T: serde::Serialize>(
    cache: &Cache,
    key: &str,
    value: &T,
    ttl: Duration,
    function: &'static str,
) {
    let bytes = match codec::encode(value) {
        Ok(bytes) => bytes,
        Err(err) => return telemetry::error(function, "encode", &err),
    };
    let started = Instant::now();
    let written = cache.set(key, &bytes, ttl).await;
    telemetry::cache_time(function, "set", started.elapsed());
    if let Err(err) = written {
        telemetry::error(function, "set", &err);
    }
}

/// One call of an `#[invalidates]` function: its cache and the keys it makes stale.
pub struct Invalidation {
    function: &'static str,
    cache: Option<Cache>,
    keys: Vec<String>,
}

impl Invalidation {
    /// An invalidation with no keys yet.
    pub fn new(cache: Option<Cache>, function: &'static str, capacity: usize) -> Self {
        Invalidation {
            function,
            cache,
            keys: Vec::with_capacity(capacity),
        }
    }

    /// Renders one more key at once, if there is a cache.
    pub fn key(mut self, render: impl FnOnce(&mut KeyBuilder)) -> Self {
        if let Some(cache) = &self.cache {
            let mut key = cache.key_builder();
            render(&mut key);
            self.keys.push(key.finish());
        }
        self
    }
}

/// Runs `body`, then deletes the keys in one command whatever it returned.
pub async fn invalidate<R, F: Future<Output = R>>(invalidation: Invalidation, body: F) -> R {
    let output = body.await;
    let Invalidation {
        function,
        cache,
        keys,
    } = invalidation;
    if let Some(cache) = cache {
        let started = Instant::now();
        let deleted = cache.delete(&keys).await;
        telemetry::cache_time(function, "delete", started.elapsed());
        match deleted {
            Ok(()) => telemetry::invalidation(function, keys.len()),
            Err(err) => telemetry::error(function, "delete", &err),
        }
    }
    output
}
