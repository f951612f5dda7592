//! Fill leases, in the style of memcache's: a caller that misses stores a lease marker under
//! the key itself before it runs the body, and stores its value only if its marker is still
//! there. An invalidation deletes the marker with the value, so a fill that read the source
//! before the write can no longer store what it read. Keeping the lease in the data key makes
//! it one key, one slot, and a plain `DEL` revokes it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The first byte of every lease marker. No codec output starts with it: it is not valid
/// UTF-8 (so no JSON) and MessagePack never uses it.
pub(crate) const MARKER: u8 = 0xC1;

/// One fill's lease marker: `MARKER` and a token unique across processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease(Box<[u8]>);

impl Lease {
    pub(crate) fn new() -> Lease {
        // A per-process random seed (from the OS, through RandomState) and a counter.
        static SEED: LazyLock<u64> = LazyLock::new(|| RandomState::new().build_hasher().finish());
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "{:016x}{:016x}",
            *SEED,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut marker = Vec::with_capacity(1 + token.len());
        marker.push(MARKER);
        marker.extend_from_slice(token.as_bytes());
        Lease(marker.into())
    }

    /// Whether stored bytes are a lease marker rather than a value.
    pub(crate) fn is_marker(bytes: &[u8]) -> bool {
        bytes.first() == Some(&MARKER)
    }

    pub(crate) fn from_marker(bytes: &[u8]) -> Lease {
        Lease(bytes.into())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}
