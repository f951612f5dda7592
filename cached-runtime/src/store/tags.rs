//! Versioned tags: invalidating a group of entries in one command, without finding them.
//!
//! Each tag is a small key holding a random 8-byte version. A lookup of a tagged function
//! reads its tags' versions alongside the entry (one round trip: the commands travel
//! together), creating a missing tag key with a fresh random version. A fill stores the
//! value inside an envelope that records the versions read *before the body ran*. A hit
//! is served only if the envelope's versions are the tags' current ones.
//!
//! Invalidating a tag deletes its key, so the next lookup creates a new version and every
//! entry stamped with an older one is a miss: O(1), no member sets, and the same `UNLINK`
//! path (slot grouping, pending set, transaction scopes, replicated `WAIT`) as data keys.
//! An evicted or expired tag key is an invalidation too; versions are random, never
//! counters, so a re-created tag never matches an old entry. A tag invalidated while a body
//! runs leaves that fill's entry stale on arrival.
//!
//! Envelope: `MARKER`, `T`, the number of tags (one byte), each version (8 bytes), then the
//! value's bytes.

use crate::entry::MARKER;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// The second byte of a tagged entry's envelope.
const KIND: u8 = b'T';

/// Bytes per tag version.
pub(crate) const VERSION_LEN: usize = 8;

/// The versions of a call's tags as read before its body ran (empty for untagged calls).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp(pub(crate) Vec<u8>);

impl Stamp {
    /// `value` in an envelope recording this stamp, or `value` itself when untagged.
    pub(crate) fn wrap(&self, value: &[u8]) -> Vec<u8> {
        let count = self.0.len() / VERSION_LEN;
        let mut out = Vec::with_capacity(3 + self.0.len() + value.len());
        out.extend_from_slice(&[MARKER, KIND, u8::try_from(count).unwrap_or(u8::MAX)]);
        out.extend_from_slice(&self.0);
        out.extend_from_slice(value);
        out
    }

    /// The value inside `stored` if its envelope records exactly this stamp; `None` when it
    /// is stale, of another tag set, or no envelope.
    pub(crate) fn unwrap<'a>(&self, stored: &'a [u8]) -> Option<&'a [u8]> {
        let count = u8::try_from(self.0.len() / VERSION_LEN).ok()?;
        let header_len = 3 + self.0.len();
        let header = stored.get(..header_len)?;
        (header[..3] == [MARKER, KIND, count] && header[3..] == self.0[..])
            .then(|| &stored[header_len..])
    }
}

/// The tag versions recorded in `stored`'s envelope (8 bytes each) and the value inside
/// it, whatever the tags; `None` when it is no envelope.
pub(crate) fn open(stored: &[u8]) -> Option<(&[u8], &[u8])> {
    let [MARKER, KIND, count, rest @ ..] = stored else {
        return None;
    };
    rest.split_at_checked(usize::from(*count) * VERSION_LEN)
}

/// The length of the envelope of an entry with `tags` tags (none for an untagged entry).
pub(crate) fn envelope_len(tags: usize) -> usize {
    match tags {
        0 => 0,
        tags => 3 + tags * VERSION_LEN,
    }
}

/// A fresh random version, for a tag key a lookup found absent (each `RandomState` is
/// keyed anew from the OS's randomness).
pub(crate) fn fresh_version() -> [u8; VERSION_LEN] {
    RandomState::new().build_hasher().finish().to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_hold_exactly_their_stamp() {
        let stamp = Stamp([fresh_version(), fresh_version()].concat());
        let wrapped = stamp.wrap(b"{\"a\":1}");
        assert_eq!(stamp.unwrap(&wrapped), Some(&b"{\"a\":1}"[..]));
        assert_eq!(
            Stamp([fresh_version(), fresh_version()].concat()).unwrap(&wrapped),
            None,
            "another version"
        );
        assert_eq!(
            Stamp(fresh_version().to_vec()).unwrap(&wrapped),
            None,
            "another tag set"
        );
        assert_eq!(stamp.unwrap(b"{\"a\":1}"), None, "no envelope");
        assert_ne!(fresh_version(), fresh_version(), "versions are random");
        assert_eq!(open(&wrapped), Some((&stamp.0[..], &b"{\"a\":1}"[..])));
        assert_eq!(open(b"{\"a\":1}"), None);
        assert_eq!(open(&wrapped[..10]), None, "cut short");
    }
}
