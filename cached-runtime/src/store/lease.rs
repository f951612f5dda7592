//! Fill leases, in the style of memcache's: a caller that misses stores a lease marker under
//! the key itself before it runs the body, and stores its value only if its marker is still
//! there. An invalidation deletes the marker with the value (or overwrites it with a
//! tombstone, see `tombstone.rs`), so a fill that read the source before the write can no
//! longer store what it read. Keeping the lease in the data key makes it one key, one slot,
//! and a plain `DEL` revokes it.

use crate::entry::MARKER;
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Whether a cache takes fill leases, and how long one holds its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leases {
    /// A miss stores with a plain `SET .. EX`: no single-flight, no fencing of fills.
    Off,
    /// A miss holds its key this long while it runs the body.
    On(Duration),
}

impl Leases {
    /// How long a lease holds its key; zero when leases are off (nothing waits for one).
    pub(crate) fn ttl(self) -> Duration {
        match self {
            Leases::On(ttl) => ttl,
            Leases::Off => Duration::ZERO,
        }
    }

    pub(crate) fn on(self) -> bool {
        matches!(self, Leases::On(_))
    }

    /// `lease` with its length, for the operations that set it; `None` when leases are off.
    pub(crate) fn of(self, lease: &Lease) -> Option<(&Lease, Duration)> {
        match self {
            Leases::On(ttl) => Some((lease, ttl)),
            Leases::Off => None,
        }
    }
}

/// The second byte of a lease marker (see `entry.rs` for the marker scheme).
const KIND: u8 = b'L';

const LEN: usize = 18;

/// One fill's lease marker: `MARKER`, `L`, then a token unique across processes (a random
/// per-process seed and a counter, 8 bytes each). A caller's own lease lives on the stack:
/// every lookup carries one, hits included.
#[derive(Clone, Debug)]
pub(crate) enum Lease {
    Own([u8; LEN]),
    /// Another caller's marker, as read from the store.
    Seen(Box<[u8]>),
}

impl Lease {
    pub(crate) fn new() -> Lease {
        // From the OS, through RandomState.
        static SEED: LazyLock<u64> = LazyLock::new(|| RandomState::new().build_hasher().finish());
        let mut marker = [0; LEN];
        marker[0] = MARKER;
        marker[1] = KIND;
        marker[2..10].copy_from_slice(&SEED.to_be_bytes());
        marker[10..].copy_from_slice(&next_counter().to_be_bytes());
        Lease::Own(marker)
    }

    /// Whether stored bytes are a lease marker rather than a value (or another marker).
    pub(crate) fn is_marker(bytes: &[u8]) -> bool {
        bytes.len() == LEN && bytes[..2] == [MARKER, KIND]
    }

    pub(crate) fn from_marker(bytes: &[u8]) -> Lease {
        Lease::Seen(bytes.into())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Lease::Own(marker) => marker,
            Lease::Seen(marker) => marker,
        }
    }
}

/// A counter value no other lease of this process has: each thread takes a block of them at
/// a time, so that concurrent calls on every core do not contend for one atomic.
fn next_counter() -> u64 {
    const BLOCK: u64 = 1024;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// The next value of this thread's block, and the block's end.
        static BLOCK_LEFT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    BLOCK_LEFT
        .try_with(|left| {
            let (next, end) = left.get();
            if next < end {
                left.set((next + 1, end));
                return next;
            }
            let start = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
            left.set((start + 1, start + BLOCK));
            start
        })
        // A thread being torn down takes one value alone.
        .unwrap_or_else(|_| NEXT.fetch_add(1, Ordering::Relaxed))
}

impl PartialEq for Lease {
    fn eq(&self, other: &Lease) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Lease {}
