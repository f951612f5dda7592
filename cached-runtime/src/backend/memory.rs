//! `mem://`: an in-process store (moka) with per-entry TTLs, for apps and tests without Redis.

use moka::Expiry;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

struct EntryTtl;

impl Expiry<String, Entry> for EntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
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
            .expire_after(EntryTtl)
            .build();
        Self { entries }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.entries.get(key).map(|entry| entry.bytes)
    }

    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let entry = Entry {
            bytes: value.into(),
            ttl,
        };
        self.entries.insert(key.to_owned(), entry);
    }

    pub(crate) fn delete(&self, keys: &[String]) {
        for key in keys {
            self.entries.invalidate(key);
        }
    }
}
