//! The bytes under a key: a codec's output for a stored value, or a marker.
//!
//! Markers start with [`MARKER`], a byte no codec output starts with (it is not valid UTF-8,
//! so no JSON, and MessagePack never uses it), then a byte that says which marker it is:
//! `L` and a 16-byte token for a fill lease (see `lease.rs`), `N` alone for a stored `None`
//! (`cache_none`). So a stored `None` is told apart from `Some(v)` whatever `v` encodes to:
//! `Some(())`, `Some(None)` and `Some(Value::Null)` all encode as JSON `null`.
//!
//! Every entry ends with a trailer that says what wrote it ([`Form`]): `MARKER`, `S`, the
//! function's version (4 bytes) and its stored type's shape fingerprint (8 bytes, see
//! `fingerprint.rs`), little-endian. A trailer rather than a header: the value still starts
//! as its codec wrote it (`redis-cli GET` shows the JSON first), and the markers and
//! envelopes that start with `MARKER` are told apart as before.

use crate::codec::{Codec, CodecError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first byte of every marker.
pub(crate) const MARKER: u8 = 0xC1;

/// A stored `None`.
const ABSENT: [u8; 2] = [MARKER, b'N'];

/// The second byte of the trailer.
const FORM: u8 = b'S';

/// The trailer's length in bytes.
pub(crate) const TRAILER_LEN: usize = 14;

/// What wrote an entry: the function's `version` and its stored type's shape fingerprint
/// (0: not fingerprinted, which any shape reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Form {
    pub(crate) version: u32,
    pub(crate) shape: u64,
}

impl Form {
    fn trailer(self) -> [u8; TRAILER_LEN] {
        let mut trailer = [0; TRAILER_LEN];
        trailer[..2].copy_from_slice(&[MARKER, FORM]);
        trailer[2..6].copy_from_slice(&self.version.to_le_bytes());
        trailer[6..].copy_from_slice(&self.shape.to_le_bytes());
        trailer
    }

    /// The form in `bytes`' trailer, and the bytes before it.
    fn read(bytes: &[u8]) -> Option<(Form, &[u8])> {
        let (value, trailer) = bytes.split_at_checked(bytes.len().checked_sub(TRAILER_LEN)?)?;
        let (kind, rest) = trailer.split_at(2);
        let (version, shape) = rest.split_at(4);
        (kind == [MARKER, FORM]).then(|| {
            let form = Form {
                version: u32::from_le_bytes(version.try_into().unwrap_or_default()),
                shape: u64::from_le_bytes(shape.try_into().unwrap_or_default()),
            };
            (form, value)
        })
    }

    /// Whether an entry written in the `stored` form is one of this form.
    fn reads(self, stored: Form) -> bool {
        self.version == stored.version
            && (self.shape == stored.shape || self.shape == 0 || stored.shape == 0)
    }
}

/// What an entry's bytes (out of any envelope) hold, as the inspection page reads them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// A codec's output.
    Value(&'a [u8]),
    /// A stored `None`.
    Absent,
    /// Another marker: nothing this version writes.
    Marker,
}

/// The form an entry was written in and what it holds, for any function (a lookup checks
/// the form against its own in [`Codec::decode_entry`]); `None` without a trailer.
pub(crate) fn open(bytes: &[u8]) -> Option<(Form, Stored<'_>)> {
    let (form, bytes) = Form::read(bytes)?;
    let stored = match bytes {
        [MARKER, b'N'] => Stored::Absent,
        [MARKER, ..] => Stored::Marker,
        value => Stored::Value(value),
    };
    Some((form, stored))
}

/// Whether `bytes` were stored by a later version of the function than `version`: during a
/// rolling deploy, a process of the older version leaves them in place.
pub(crate) fn written_by_later(bytes: &[u8], version: u32) -> bool {
    Form::read(bytes).is_some_and(|(stored, _)| stored.version > version)
}

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
    /// The bytes to store for `entry`, written in `form`.
    pub(crate) fn encode_entry<T: Serialize + ?Sized>(
        self,
        entry: Entry<&T>,
        form: Form,
    ) -> Result<Vec<u8>, CodecError> {
        let mut bytes = match entry {
            Entry::Value(value) => self.encode(value)?,
            Entry::Absent => ABSENT.to_vec(),
        };
        bytes.extend_from_slice(&form.trailer());
        Ok(bytes)
    }

    /// The entry stored as `bytes`, if written in `form`; bytes from Redis are untrusted, so
    /// this only ever fails.
    pub(crate) fn decode_entry<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        form: Form,
    ) -> Result<Entry<T>, CodecError> {
        // The usual case first: the entry is of this very form (one 14-byte comparison).
        let bytes = match bytes.strip_suffix(&form.trailer()) {
            Some(value) => value,
            None => {
                let Some((stored, value)) = Form::read(bytes) else {
                    return Err(CodecError::Marker);
                };
                if !form.reads(stored) {
                    return Err(CodecError::OtherForm);
                }
                value
            }
        };
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

    const FORM: Form = Form {
        version: 1,
        shape: 7,
    };

    #[test]
    fn absent_and_null_like_values_are_distinct() {
        let codec = Codec::Json;
        let null = codec.encode_entry(Entry::Value(&()), FORM).unwrap();
        let absent = codec.encode_entry::<()>(Entry::Absent, FORM).unwrap();
        assert_ne!(null, absent);
        assert_eq!(
            codec.decode_entry::<()>(&null, FORM).unwrap(),
            Entry::Value(())
        );
        assert_eq!(
            codec.decode_entry::<()>(&absent, FORM).unwrap(),
            Entry::Absent
        );
        let none: Option<u8> = None;
        let bytes = codec.encode_entry(Entry::Value(&none), FORM).unwrap();
        assert_eq!(
            codec.decode_entry(&bytes, FORM).unwrap(),
            Entry::Value(none)
        );
    }

    #[test]
    fn other_markers_do_not_decode() {
        let trailed = |bytes: &[u8]| [bytes, &FORM.trailer()].concat();
        assert!(
            Codec::Json
                .decode_entry::<()>(&trailed(&[MARKER]), FORM)
                .is_err()
        );
        assert!(
            Codec::Json
                .decode_entry::<()>(&trailed(&[MARKER, b'N', 0]), FORM)
                .is_err()
        );
        assert!(
            Codec::Json
                .decode_entry::<()>(&trailed(&[MARKER, b'L', 1, 2]), FORM)
                .is_err()
        );
        // Without a trailer: written before versions, or by hand.
        assert!(Codec::Json.decode_entry::<()>(b"null", FORM).is_err());
    }

    #[test]
    fn entries_open_without_a_form_to_check() {
        let codec = Codec::Json;
        let bytes = codec.encode_entry(Entry::Value(&5u8), FORM).unwrap();
        assert_eq!(open(&bytes), Some((FORM, Stored::Value(b"5"))));
        let absent = codec.encode_entry::<u8>(Entry::Absent, FORM).unwrap();
        assert_eq!(open(&absent), Some((FORM, Stored::Absent)));
        assert_eq!(open(b"5"), None);
    }

    #[test]
    fn entries_of_another_version_or_shape_do_not_decode() {
        let codec = Codec::Json;
        let bytes = codec.encode_entry(Entry::Value(&5u8), FORM).unwrap();
        assert_eq!(&bytes[..1], b"5");
        let other = |version, shape| codec.decode_entry::<u8>(&bytes, Form { version, shape });
        assert!(other(2, 7).is_err());
        assert!(other(1, 8).is_err());
        // Not fingerprinted: any shape reads it, and it reads any shape.
        assert_eq!(other(1, 0).unwrap(), Entry::Value(5));
        assert!(written_by_later(&bytes, 0));
        assert!(!written_by_later(&bytes, 1));
    }
}
