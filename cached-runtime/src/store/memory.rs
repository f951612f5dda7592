//! `mem://`: an in-process store (moka) with per-entry TTLs, for apps and tests without Redis.
//! Every operation is atomic per key (moka's `and_compute_with`), so leases, fills and
//! invalidations behave as the Redis store's scripts do.

use super::tags::{VERSION_LEN, fresh_version};
use super::{Bytes, Fetch};
use crate::expiry::{self, Expiring};
use crate::store::lease::Lease;
use moka::ops::compute::Op;
use moka::sync::Cache as Moka;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct Slot {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

impl Slot {
    fn new(bytes: &[u8], ttl: Duration) -> Slot {
        Slot {
            bytes: bytes.into(),
            ttl,
        }
    }
}

impl Expiring for Slot {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn weight(&self) -> usize {
        self.bytes.len()
    }
}

/// Entries bounded by their total size in bytes.
#[derive(Clone)]
pub(crate) struct MemoryStore {
    slots: Moka<String, Slot>,
}

impl MemoryStore {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            slots: expiry::bounded(max_bytes),
        }
    }

    /// Reads `key`; if it is absent and a lease is given, sets the lease on it, atomically.
    pub(crate) fn fetch(&self, key: &str, lease: Option<(&Lease, Duration)>) -> Fetch {
        // Most lookups find a value: only an absent key needs the atomic compute.
        if let Some(slot) = self.slots.get(key) {
            return Fetch::from_read(Some(Bytes::Shared(slot.bytes)), None);
        }
        let Some((lease, lease_ttl)) = lease else {
            return Fetch::from_read(None, None);
        };
        let mut found = None;
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|slot| match slot {
                Some(slot) => {
                    found = Some(Bytes::Shared(slot.into_value().bytes));
                    Op::Nop
                }
                None => Op::Put(Slot::new(lease.as_bytes(), lease_ttl)),
            });
        Fetch::from_read(found, None)
    }

    // Every write goes through `and_compute_with`, which serialises operations on a key:
    // a plain `insert` or `invalidate` could interleave with a fill's check of its lease
    // and let it store after a deletion.
    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|_| Op::Put(Slot::new(value, ttl)));
    }

    pub(crate) fn fill(&self, key: &str, lease: &Lease, value: &[u8], ttl: Duration) -> bool {
        let mut filled = false;
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|slot| match slot {
                Some(slot) if *slot.value().bytes == *lease.as_bytes() => {
                    filled = true;
                    Op::Put(Slot::new(value, ttl))
                }
                _ => Op::Nop,
            });
        filled
    }

    pub(crate) fn release(&self, key: &str, lease: &Lease) {
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|slot| match slot {
                Some(slot) if *slot.value().bytes == *lease.as_bytes() => Op::Remove,
                _ => Op::Nop,
            });
    }

    /// As the Redis store's `READ_TAGS`: each tag's version, created when absent.
    pub(crate) fn read_tags(&self, tags: &[String], ttl: Duration) -> Vec<u8> {
        let mut versions = Vec::with_capacity(tags.len() * VERSION_LEN);
        for tag in tags {
            let slot = self
                .slots
                .entry_by_ref(tag)
                .or_insert_with(|| Slot::new(&fresh_version(), ttl));
            versions.extend_from_slice(&slot.into_value().bytes);
        }
        versions
    }

    /// As the Redis store's `EXTEND_TAGS`: existing tags live at least `ttl` more.
    pub(crate) fn extend_tags(&self, tags: &[String], ttl: Duration) {
        for tag in tags {
            self.slots
                .entry_by_ref(tag)
                .and_compute_with(|slot| match slot {
                    // moka measures a TTL from the last write: rewriting restarts it.
                    Some(slot) => {
                        Op::Put(Slot::new(&slot.value().bytes, ttl.max(slot.value().ttl)))
                    }
                    None => Op::Nop,
                });
        }
    }

    pub(crate) fn delete(&self, keys: &[String]) {
        for key in keys {
            self.slots
                .entry_by_ref(key)
                .and_compute_with(|_| Op::<Slot>::Remove);
        }
    }
}
