//! Where entries live: Redis, or process memory for `mem://`. Both keep the same semantics,
//! TTL included.

mod memory;
mod redis;

pub(crate) use self::memory::MemoryBackend;
pub(crate) use self::redis::RedisBackend;

use crate::Error;
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

impl Backend {
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Stored>, Error> {
        match self {
            Backend::Redis(redis) => Ok(redis.get(key).await?.map(Stored::Owned)),
            Backend::Memory(memory) => Ok(memory.get(key).map(Stored::Shared)),
        }
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        match self {
            Backend::Redis(redis) => redis.set(key, value, ttl).await,
            Backend::Memory(memory) => {
                memory.set(key, value, ttl);
                Ok(())
            }
        }
    }

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
