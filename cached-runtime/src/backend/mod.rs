//! Where entries live: Redis, or process memory for `mem://`. Both implement the same few
//! atomic operations, so fills, leases and invalidations behave alike on both.

mod memory;
mod redis;

pub(crate) use self::memory::MemoryBackend;
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
    /// A value.
    Value(Stored),
    /// Nothing: the caller's lease now holds the key, so the caller fills it.
    Leased,
    /// Another caller's lease: that caller is filling the key.
    Filling(Lease),
}

impl Fetch {
    /// Sorts what a lookup returned: nothing (the lease was set), a marker, or a value.
    fn from_read(read: Option<Stored>) -> Fetch {
        match read {
            None => Fetch::Leased,
            Some(bytes) if Lease::is_marker(&bytes) => Fetch::Filling(Lease::from_marker(&bytes)),
            Some(bytes) => Fetch::Value(bytes),
        }
    }
}

impl Backend {
    /// Reads `key`; if it is absent and a lease is given, sets the lease on it, atomically.
    pub(crate) async fn fetch(
        &self,
        key: &str,
        lease: Option<(&Lease, Duration)>,
    ) -> Result<Fetch, Error> {
        let read = match (self, lease) {
            (Backend::Redis(redis), Some((lease, ttl))) => {
                redis.fetch(key, lease, ttl).await?.map(Stored::Owned)
            }
            (Backend::Redis(redis), None) => redis.get(key).await?.map(Stored::Owned),
            (Backend::Memory(memory), Some((lease, ttl))) => {
                memory.fetch(key, lease, ttl).map(Stored::Shared)
            }
            (Backend::Memory(memory), None) => memory.get(key).map(Stored::Shared),
        };
        Ok(Fetch::from_read(read))
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
