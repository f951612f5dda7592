//! The bytes under a key: a codec's output for a stored value, or a marker.
//!
//! Markers start with [`MARKER`], a byte no codec output starts with (it is not valid UTF-8,
//! so no JSON, and MessagePack never uses it), then a byte that says which marker it is:
//! `L` and a 16-byte token for a fill lease (see `lease.rs`), `N` alone for a stored `None`
//! (`cache_none`). So a stored `None` is told apart from `Some(v)` whatever `v` encodes to:
//! `Some(())`, `Some(None)` and `Some(Value::Null)` all encode as JSON `null`.

use crate::codec::{Codec, CodecError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first byte of every marker.
pub(crate) const MARKER: u8 = 0xC1;

/// A stored `None`.
const ABSENT: [u8; 2] = [MARKER, b'N'];

/// What a key holds for a function: a value, or the `None` of a function returning
/// `Option<T>` or `Result<Option<T>, E>` that stores its `None`s.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<T> {
    /// `Some(value)`, or the value of a function that returns no `Option`.
    Value(T),
    /// `None`.
    Absent,
}

impl<T> Entry<T> {
    /// Borrows the value.
    pub fn as_ref(&self) -> Entry<&T> {
        match self {
            Entry::Value(value) => Entry::Value(value),
            Entry::Absent => Entry::Absent,
        }
    }
}

impl Codec {
    /// The bytes to store for `entry`.
    pub(crate) fn encode_entry<T: Serialize + ?Sized>(
        self,
        entry: Entry<&T>,
    ) -> Result<Vec<u8>, CodecError> {
        match entry {
            Entry::Value(value) => self.encode(value),
            Entry::Absent => Ok(ABSENT.to_vec()),
        }
    }

    /// The entry stored as `bytes`; bytes from Redis are untrusted, so this only ever fails.
    pub(crate) fn decode_entry<T: DeserializeOwned>(
        self,
        bytes: &[u8],
    ) -> Result<Entry<T>, CodecError> {
        match bytes {
            [MARKER, b'N'] => Ok(Entry::Absent),
            [MARKER, ..] => Err(CodecError::Marker),
            _ => self.decode(bytes).map(Entry::Value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_null_like_values_are_distinct() {
        let codec = Codec::Json;
        let null = codec.encode_entry(Entry::Value(&())).unwrap();
        let absent = codec.encode_entry::<()>(Entry::Absent).unwrap();
        assert_ne!(null, absent);
        assert_eq!(codec.decode_entry::<()>(&null).unwrap(), Entry::Value(()));
        assert_eq!(codec.decode_entry::<()>(&absent).unwrap(), Entry::Absent);
        let none: Option<u8> = None;
        let bytes = codec.encode_entry(Entry::Value(&none)).unwrap();
        assert_eq!(codec.decode_entry(&bytes).unwrap(), Entry::Value(none));
    }

    #[test]
    fn other_markers_do_not_decode() {
        assert!(Codec::Json.decode_entry::<()>(&[MARKER]).is_err());
        assert!(Codec::Json.decode_entry::<()>(&[MARKER, b'N', 0]).is_err());
        assert!(
            Codec::Json
                .decode_entry::<()>(&[MARKER, b'L', 1, 2])
                .is_err()
        );
    }
}
