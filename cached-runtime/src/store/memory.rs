//! `mem://`: an in-process store (moka) with per-entry TTLs, for apps and tests without Redis.
//! Every operation is atomic per key (moka's `and_compute_with`), so leases, fills and
//! invalidations behave as the Redis store's scripts do.

use super::tags::{VERSION_LEN, fresh_version};
use super::{Bytes, Fetch, Sweep};
use crate::expiry::{self, Expiring};
use crate::freshness;
use crate::key::is_tag_key;
use crate::store::lease::Lease;
use crate::tombstone::Tombstone;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache as Moka;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Slot {
    bytes: Arc<[u8]>,
    /// An instant rather than a TTL: rewriting an entry in place (a refresh claim) keeps it.
    expires: Instant,
}

impl Slot {
    fn new(bytes: &[u8], ttl: Duration) -> Slot {
        Slot {
            bytes: bytes.into(),
            expires: Instant::now() + ttl,
        }
    }
}

impl Slot {
    /// The header of the fresh-until envelope at byte `at`, if the slot holds one there.
    fn envelope(&self, at: usize) -> Option<freshness::Header> {
        self.bytes
            .get(at..)
            .and_then(freshness::open)
            .map(|(header, _)| header)
    }
}

impl Expiring for Slot {
    fn ttl(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
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

    /// Reads `key`; if it is absent or a tombstone and a lease is given, sets the lease on
    /// it, atomically (as the Redis store's `FETCH` script). A tombstone is absent, whose
    /// invalidation comes with the miss.
    pub(crate) fn fetch(&self, key: &str, lease: Option<(&Lease, Duration)>) -> Fetch {
        // Most lookups find a value: only an absent key needs the atomic compute.
        let read = match self.slots.get(key) {
            Some(slot) if !Tombstone::is_tombstone(&slot.bytes) => {
                return Fetch::from_read(Some(Bytes::Shared(slot.bytes)), None);
            }
            read => read,
        };
        let Some((lease, lease_ttl)) = lease else {
            let cause = read.and_then(|slot| Tombstone::decode(&slot.bytes));
            return Fetch::Ours(cause.map(Box::new));
        };
        let mut found = None;
        let mut cause = None;
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|slot| match slot {
                Some(slot) if !Tombstone::is_tombstone(&slot.value().bytes) => {
                    found = Some(Bytes::Shared(slot.into_value().bytes));
                    Op::Nop
                }
                slot => {
                    cause = slot.and_then(|slot| Tombstone::decode(&slot.value().bytes));
                    Op::Put(Slot::new(lease.as_bytes(), lease_ttl))
                }
            });
        match found {
            Some(found) => Fetch::from_read(Some(found), None),
            None => Fetch::Ours(cause.map(Box::new)),
        }
    }

    /// The bytes under `key` and how long they have left, for the inspection page.
    pub(crate) fn peek(&self, key: &str) -> Option<(Arc<[u8]>, Duration)> {
        self.slots
            .get(key)
            .map(|slot| (slot.bytes.clone(), slot.ttl()))
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

    /// As the Redis store's `EXTEND_LEASES` script: `lease` holds `key` for `ttl` more, if
    /// it still holds it.
    pub(crate) fn extend_lease(&self, key: &str, lease: &Lease, ttl: Duration) {
        self.fill(key, lease, lease.as_bytes(), ttl);
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
                        Op::Put(Slot::new(&slot.value().bytes, ttl.max(slot.value().ttl())))
                    }
                    None => Op::Nop,
                });
        }
    }

    /// As the Redis store's `CLAIM` script: writes `claim` into the envelope at byte `at` if
    /// it is fresh until `fresh_until` and unclaimed at `now`, keeping the entry's expiry.
    pub(crate) fn claim(
        &self,
        key: &str,
        at: usize,
        fresh_until: u64,
        now: u64,
        claim: &[u8],
    ) -> bool {
        let mut claimed = false;
        self.slots.entry_by_ref(key).and_compute_with(|slot| {
            let Some(slot) = slot else { return Op::Nop };
            let slot = slot.into_value();
            let claimable = slot.envelope(at).is_some_and(|header| {
                header.fresh_until == fresh_until && header.claimed_until <= now
            });
            if !claimable {
                return Op::Nop;
            }
            let mut bytes = slot.bytes.to_vec();
            let from = at + freshness::CLAIM_AT;
            bytes[from..from + claim.len()].copy_from_slice(claim);
            claimed = true;
            Op::Put(Slot {
                bytes: bytes.into(),
                expires: slot.expires,
            })
        });
        claimed
    }

    /// As the Redis store's `TAKE_OVER` script: puts `lease` on `key` if it still holds the
    /// envelope at byte `at`, fresh until `fresh_until`.
    pub(crate) fn take_over(
        &self,
        key: &str,
        at: usize,
        fresh_until: u64,
        (lease, lease_ttl): (&Lease, Duration),
    ) -> bool {
        let mut taken = false;
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|slot| match slot {
                Some(slot)
                    if slot
                        .value()
                        .envelope(at)
                        .is_some_and(|header| header.fresh_until == fresh_until) =>
                {
                    taken = true;
                    Op::Put(Slot::new(lease.as_bytes(), lease_ttl))
                }
                _ => Op::Nop,
            });
        taken
    }

    /// As the Redis store's `REPLACE_CLAIMED` script: stores `value` (removes the entry for
    /// `None`) if `lease`'s claim is still at byte `at`.
    pub(crate) fn replace_claimed(
        &self,
        key: &str,
        at: usize,
        lease: &Lease,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> bool {
        let mut replaced = false;
        self.slots
            .entry_by_ref(key)
            .and_compute_with(|slot| match slot {
                Some(slot)
                    if slot.value().bytes.get(at..at + lease.as_bytes().len())
                        == Some(lease.as_bytes()) =>
                {
                    replaced = true;
                    value.map_or(Op::Remove, |value| Op::Put(Slot::new(value, ttl)))
                }
                _ => Op::Nop,
            });
        replaced
    }

    /// Removes `keys`; with a `tombstone` (its bytes and lifetime), writes it over those
    /// that are no tag keys instead, as the Redis store does.
    pub(crate) fn delete(&self, keys: &[String], tombstone: Option<(&[u8], Duration)>) {
        for key in keys {
            let write = match tombstone {
                Some((tombstone, lifetime)) if !is_tag_key(key) => {
                    Op::Put(Slot::new(tombstone, lifetime))
                }
                _ => Op::Remove,
            };
            self.slots.entry_by_ref(key).and_compute_with(|_| write);
        }
    }

    /// Removes every entry `sweep` selects (the glob is Redis's business: `select` decides),
    /// each through `and_compute_with` like every other write; says how many were there.
    pub(crate) fn clear(&self, sweep: &Sweep<'_>) -> u64 {
        const BATCH: u64 = 1000;
        let keys: Vec<Arc<String>> = self
            .slots
            .iter()
            .filter(|(key, _)| (sweep.select)(key.as_bytes()))
            .map(|(key, _)| key)
            .collect();
        let (mut deleted, mut unreported) = (0, 0);
        for key in keys {
            let removed =
                self.slots
                    .entry_by_ref(key.as_str())
                    .and_compute_with(|slot| match slot {
                        Some(_) => Op::Remove,
                        None => Op::Nop,
                    });
            if matches!(removed, CompResult::Removed(_)) {
                deleted += 1;
                unreported += 1;
                if unreported == BATCH {
                    (sweep.progress)(std::mem::take(&mut unreported));
                }
            }
        }
        (sweep.progress)(unreported);
        deleted
    }
}
