//! Per-entry expiry for the two moka tiers (the `mem://` store and the near cache): each
//! entry carries its own TTL, and both are bounded by their total size in bytes.

use moka::Expiry;
use moka::sync::Cache as Moka;
use std::time::{Duration, Instant};

/// Values that carry their own time to live.
pub(crate) trait Expiring {
    fn ttl(&self) -> Duration;

    /// The bytes the entry stands for, for the size bound.
    fn weight(&self) -> usize;
}

/// Expires each entry after its own TTL, counted again when it is overwritten.
struct OwnTtl;

impl<V: Expiring> Expiry<String, V> for OwnTtl {
    fn expire_after_create(&self, _: &String, entry: &V, _: Instant) -> Option<Duration> {
        Some(entry.ttl())
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &V,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl())
    }
}

/// A moka cache holding at most `max_bytes` of keys and entries, each expiring after its TTL.
pub(crate) fn bounded<V>(max_bytes: u64) -> Moka<String, V>
where
    V: Expiring + Clone + Send + Sync + 'static,
{
    Moka::builder()
        .max_capacity(max_bytes)
        .weigher(|key: &String, entry: &V| {
            u32::try_from(key.len().saturating_add(entry.weight())).unwrap_or(u32::MAX)
        })
        .expire_after(OwnTtl)
        .build()
}
