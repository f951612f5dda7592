//! Where entries live: Redis, or process memory for `mem://`. Both implement the same few
//! atomic operations, so fills, leases and invalidations behave alike on both.

mod memory;
mod redis;

pub(crate) use self::memory::{Expiring, MemoryBackend, OwnTtl};
pub(crate) use self::redis::RedisBackend;

use crate::Error;
use crate::lease::Lease;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// The store behind a [`Cache`](crate::Cache).
#[derive(Clone)]
pub(crate) enum Backend {
    Redis(RedisBackend),
    Memory(MemoryBackend),
}

/// Bytes read from a backend, borrowed from wherever they already are.
pub(crate) enum Stored {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Deref for Stored {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Stored::Owned(bytes) => bytes,
            Stored::Shared(bytes) => bytes,
        }
    }
}

/// What a lookup found.
pub(crate) enum Fetch {
    /// A value, with its remaining time to live when that was asked for.
    Value(Stored, Option<Duration>),
    /// Nothing: the caller's lease now holds the key, so the caller fills it.
    Leased,
    /// Another caller's lease: that caller is filling the key.
    Filling(Lease),
}

impl Fetch {
    /// Sorts what a lookup returned: nothing (the lease was set), a marker, or a value.
    fn from_read(read: Option<Stored>, ttl: Option<Duration>) -> Fetch {
        match read {
            None => Fetch::Leased,
            Some(bytes) if Lease::is_marker(&bytes) => Fetch::Filling(Lease::from_marker(&bytes)),
            Some(bytes) => Fetch::Value(bytes, ttl),
        }
    }
}

impl Backend {
    /// Reads `key`; if it is absent and a lease is given, sets the lease on it, atomically.
    /// With `want_ttl` (Redis only), a value comes with its remaining time to live.
    pub(crate) async fn fetch(
        &self,
        key: &str,
        lease: Option<(&Lease, Duration)>,
        want_ttl: bool,
    ) -> Result<Fetch, Error> {
        let looked_up = match (self, lease) {
            (Backend::Redis(redis), Some((lease, lease_ttl))) if want_ttl => redis
                .fetch_with_ttl(key, lease, lease_ttl)
                .await
                .map(|read| match read {
                    Some((bytes, millis)) => {
                        let ttl = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
                        (Some(Stored::Owned(bytes)), Some(ttl))
                    }
                    None => (None, None),
                }),
            (Backend::Redis(redis), Some((lease, lease_ttl))) => redis
                .fetch(key, lease, lease_ttl)
                .await
                .map(|read| (read.map(Stored::Owned), None)),
            (Backend::Redis(redis), None) => Ok((redis.get(key).await?.map(Stored::Owned), None)),
            (Backend::Memory(memory), Some((lease, lease_ttl))) => Ok((
                memory.fetch(key, lease, lease_ttl).map(Stored::Shared),
                None,
            )),
            (Backend::Memory(memory), None) => Ok((memory.get(key).map(Stored::Shared), None)),
        };
        let (read, ttl) = match (self, looked_up) {
            // Redis refuses the lease's write but still serves reads: a plain GET keeps hits
            // hits (a miss then runs its body without a lease, and its store is refused).
            (Backend::Redis(redis), Err(error)) if error.is_refused_write() => {
                (redis.get(key).await?.map(Stored::Owned), None)
            }
            (_, looked_up) => looked_up?,
        };
        Ok(Fetch::from_read(read, ttl))
    }

    /// Sets `value` under `key` for `ttl`, unconditionally.
    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        match self {
            Backend::Redis(redis) => redis.set(key, value, ttl).await,
            Backend::Memory(memory) => {
                memory.set(key, value, ttl);
                Ok(())
            }
        }
    }

    /// Sets `value` under `key` for `ttl` if `lease` still holds it; says whether it did.
    pub(crate) async fn fill(
        &self,
        key: &str,
        lease: &Lease,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        match self {
            Backend::Redis(redis) => redis.fill(key, lease, value, ttl).await,
            Backend::Memory(memory) => Ok(memory.fill(key, lease, value, ttl)),
        }
    }

    /// Deletes `key` if `lease` still holds it.
    pub(crate) async fn release(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        match self {
            Backend::Redis(redis) => redis.release(key, lease).await,
            Backend::Memory(memory) => {
                memory.release(key, lease);
                Ok(())
            }
        }
    }

    /// Deletes every key, values and leases alike, in one command.
    pub(crate) async fn delete(&self, keys: &[String]) -> Result<(), Error> {
        match self {
            Backend::Redis(redis) => redis.delete(keys).await,
            Backend::Memory(memory) => {
                memory.delete(keys);
                Ok(())
            }
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        match self {
            Backend::Redis(redis) => redis.ping().await,
            Backend::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        }
    }
}
