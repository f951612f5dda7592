//! `mem://`: an in-process store (moka) with per-entry TTLs, for apps and tests without Redis.

use crate::lease::Lease;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

impl Entry {
    fn new(bytes: &[u8], ttl: Duration) -> Entry {
        Entry {
            bytes: bytes.into(),
            ttl,
        }
    }
}

/// Values that carry their own time to live (here and in the near cache).
pub(crate) trait Expiring {
    fn ttl(&self) -> Duration;
}

impl Expiring for Entry {
    fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Expires each entry after its own TTL, counted again when it is overwritten.
pub(crate) struct OwnTtl;

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

/// Entries bounded by their total size in bytes.
#[derive(Clone)]
pub(crate) struct MemoryBackend {
    entries: Cache<String, Entry>,
}

impl MemoryBackend {
    pub(crate) fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.bytes.len()).unwrap_or(u32::MAX)
            })
            .expire_after(OwnTtl)
            .build();
        Self { entries }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.entries.get(key).map(|entry| entry.bytes)
    }

    pub(crate) fn fetch(&self, key: &str, lease: &Lease, lease_ttl: Duration) -> Option<Arc<[u8]>> {
        // Most lookups find a value: only an absent key needs the atomic compute.
        if let Some(entry) = self.entries.get(key) {
            return Some(entry.bytes);
        }
        let mut found = None;
        self.entries
            .entry_by_ref(key)
            .and_compute_with(|entry| match entry {
                Some(entry) => {
                    found = Some(entry.into_value().bytes);
                    Op::Nop
                }
                None => Op::Put(Entry::new(lease.as_bytes(), lease_ttl)),
            });
        found
    }

    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        self.entries.insert(key.to_owned(), Entry::new(value, ttl));
    }

    pub(crate) fn fill(&self, key: &str, lease: &Lease, value: &[u8], ttl: Duration) -> bool {
        let mut filled = false;
        self.entries
            .entry_by_ref(key)
            .and_compute_with(|entry| match entry {
                Some(entry) if *entry.value().bytes == *lease.as_bytes() => {
                    filled = true;
                    Op::Put(Entry::new(value, ttl))
                }
                _ => Op::Nop,
            });
        filled
    }

    pub(crate) fn release(&self, key: &str, lease: &Lease) {
        self.entries
            .entry_by_ref(key)
            .and_compute_with(|entry| match entry {
                Some(entry) if *entry.value().bytes == *lease.as_bytes() => Op::Remove,
                _ => Op::Nop,
            });
    }

    pub(crate) fn delete(&self, keys: &[String]) {
        for key in keys {
            self.entries.invalidate(key);
        }
    }
}
