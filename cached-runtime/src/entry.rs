//! The bytes under a key: a codec's output for a stored value, or a marker.
//!
//! Markers start with [`MARKER`], a byte no codec output starts with (it is not valid UTF-8,
//! so no JSON, and MessagePack never uses it), then a byte that says which marker it is:
//! `L` and a 16-byte token for a fill lease (see `lease.rs`), `N` alone for a stored `None`
//! (`cache_none`), `Z` for a compressed value (see `compress.rs`). So a stored `None` is told
//! apart from `Some(v)` whatever `v` encodes to: `Some(())`, `Some(None)` and
//! `Some(Value::Null)` all encode as JSON `null`. A custom codec's output that starts with
//! `MARKER` is not stored (an encode error, logged): the scripts could take it for a lease
//! or a tombstone.
//!
//! Every entry ends with a trailer that says what wrote it ([`Form`] and the codec's
//! [`Tag`]): `MARKER`, the codec (`S` JSON, `M` MessagePack, `C` a custom codec, whose
//! name's 4-byte hash comes just before the trailer), the function's version (4 bytes) and
//! its stored type's shape fingerprint (8 bytes, see `fingerprint.rs`), little-endian. A
//! trailer rather than a header: the value still starts as its codec wrote it (`redis-cli
//! GET` shows the JSON first), and the markers and envelopes that start with `MARKER` are
//! told apart as before.

use crate::codec::{CodecError, Coder, Tag};
use crate::compress;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::borrow::Cow;

/// The first byte of every marker.
pub(crate) const MARKER: u8 = 0xC1;

/// A stored `None`.
const ABSENT: [u8; 2] = [MARKER, b'N'];

/// The trailer's length in bytes (without a custom codec's id).
pub(crate) const TRAILER_LEN: usize = 14;

/// A custom codec's id, before the trailer.
const ID_LEN: usize = 4;

/// What wrote an entry: the function's `version` and its stored type's shape fingerprint
/// (0: not fingerprinted, which any shape reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Form {
    pub(crate) version: u32,
    pub(crate) shape: u64,
}

/// An entry's trailer, with a custom codec's id in front: what an entry ends with.
struct Trailer {
    bytes: [u8; ID_LEN + TRAILER_LEN],
    /// Where it starts in `bytes`.
    from: usize,
}

impl Trailer {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.from..]
    }
}

impl Tag {
    fn byte(self) -> u8 {
        match self {
            Tag::Json => b'S',
            Tag::MessagePack => b'M',
            Tag::Custom(_) => b'C',
        }
    }
}

impl Form {
    #[inline]
    fn trailer(self, tag: Tag) -> Trailer {
        let mut bytes = [0; ID_LEN + TRAILER_LEN];
        let from = match tag {
            Tag::Custom(id) => {
                bytes[..ID_LEN].copy_from_slice(&id.to_le_bytes());
                0
            }
            _ => ID_LEN,
        };
        let trailer = &mut bytes[ID_LEN..];
        trailer[..2].copy_from_slice(&[MARKER, tag.byte()]);
        trailer[2..6].copy_from_slice(&self.version.to_le_bytes());
        trailer[6..].copy_from_slice(&self.shape.to_le_bytes());
        Trailer { bytes, from }
    }

    /// The form and codec in `bytes`' trailer, and the bytes before it.
    fn read(bytes: &[u8]) -> Option<(Form, Tag, &[u8])> {
        let (value, trailer) = bytes.split_at_checked(bytes.len().checked_sub(TRAILER_LEN)?)?;
        let (kind, rest) = trailer.split_at(2);
        let (version, shape) = rest.split_at(4);
        let form = Form {
            version: u32::from_le_bytes(version.try_into().ok()?),
            shape: u64::from_le_bytes(shape.try_into().ok()?),
        };
        let (tag, value) = match kind {
            [MARKER, b'S'] => (Tag::Json, value),
            [MARKER, b'M'] => (Tag::MessagePack, value),
            [MARKER, b'C'] => {
                let (value, id) = value.split_at_checked(value.len().checked_sub(ID_LEN)?)?;
                (Tag::Custom(u32::from_le_bytes(id.try_into().ok()?)), value)
            }
            _ => return None,
        };
        Some((form, tag, value))
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
    /// A codec's output, decompressed if it was stored compressed.
    Value(Cow<'a, [u8]>),
    /// A stored `None`.
    Absent,
    /// Another marker: nothing this version writes, or a compressed value that does not
    /// decompress.
    Marker,
}

/// The form an entry was written in, which codec wrote it and what it holds, for any
/// function (a lookup checks the form against its own in [`Coder::decode_entry`]); `None`
/// without a trailer. A compressed value is decompressed up to `max_len` bytes.
pub(crate) fn open(bytes: &[u8], max_len: usize) -> Option<(Form, Tag, Stored<'_>)> {
    let (form, tag, bytes) = Form::read(bytes)?;
    let stored = match bytes {
        [MARKER, b'N'] => Stored::Absent,
        [MARKER, compress::KIND, rest @ ..] => match compress::decompress(rest, max_len) {
            Ok(value) => Stored::Value(Cow::Owned(value)),
            Err(_) => Stored::Marker,
        },
        [MARKER, ..] => Stored::Marker,
        value => Stored::Value(Cow::Borrowed(value)),
    };
    Some((form, tag, stored))
}

/// Whether `bytes` were stored by a later version of the function than `version`: during a
/// rolling deploy, a process of the older version leaves them in place.
pub(crate) fn written_by_later(bytes: &[u8], version: u32) -> bool {
    Form::read(bytes).is_some_and(|(stored, _, _)| stored.version > version)
}

/// Whether an entry's bytes (out of any envelope) hold a compressed value: they start with
/// `MARKER` as envelopes do, and are not one.
pub(crate) fn is_compressed(bytes: &[u8]) -> bool {
    bytes.starts_with(&[MARKER, compress::KIND])
}

/// Whether `coder` reads a value (out of its trailer) that the codec of `tag` wrote.
pub(crate) fn reads(coder: &Coder, tag: Tag, value: &[u8]) -> bool {
    match (coder.tag(), tag) {
        // Before entries recorded their codec, MessagePack wrote `S` as JSON does: those
        // still read, unless JSON wrote them (compressed, which only this version does, or
        // valid JSON; a MessagePack value that is also JSON is one byte `0`..`9`, a miss
        // once).
        (Tag::MessagePack, Tag::Json) => {
            !is_compressed(value) && serde_json::from_slice::<IgnoredAny>(value).is_err()
        }
        (own, tag) => own == tag,
    }
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

impl Coder {
    /// The bytes to store for `entry`, written in `form`: compressed when the codec's output
    /// is longer than the cache's threshold and compressing makes it shorter.
    pub(crate) fn encode_entry<T: Serialize + ?Sized>(
        &self,
        entry: Entry<&T>,
        form: Form,
    ) -> Result<Vec<u8>, CodecError> {
        let mut bytes = match entry {
            Entry::Value(value) => {
                let encoded = self.encode(value)?;
                if encoded.first() == Some(&MARKER) {
                    return Err(CodecError::Marker);
                }
                match self.compress_above {
                    Some(above) if encoded.len() > above => {
                        compress::compress([MARKER, compress::KIND], &encoded).unwrap_or(encoded)
                    }
                    _ => encoded,
                }
            }
            Entry::Absent => ABSENT.to_vec(),
        };
        bytes.extend_from_slice(form.trailer(self.tag()).as_bytes());
        Ok(bytes)
    }

    /// The entry stored as `bytes`, if written in `form` by this codec; bytes from Redis are
    /// untrusted, so this only ever fails.
    pub(crate) fn decode_entry<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        form: Form,
    ) -> Result<Entry<T>, CodecError> {
        // The usual case first: the entry is of this very form (one 14-byte comparison).
        let bytes = match bytes.strip_suffix(form.trailer(self.tag()).as_bytes()) {
            Some(value) => value,
            None => {
                let Some((stored, tag, value)) = Form::read(bytes) else {
                    return Err(CodecError::Marker);
                };
                if !form.reads(stored) || !reads(self, tag, value) {
                    return Err(CodecError::OtherForm);
                }
                value
            }
        };
        // One call of the codec's decode, whichever form the value is in.
        let decompressed;
        let value = match bytes {
            [MARKER, b'N'] => return Ok(Entry::Absent),
            [MARKER, compress::KIND, rest @ ..] => {
                decompressed = compress::decompress(rest, self.max_len)?;
                &decompressed[..]
            }
            [MARKER, ..] => return Err(CodecError::Marker),
            value => value,
        };
        self.decode(value).map(Entry::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Codec, Json};

    fn json() -> Coder {
        Coder::of(Json)
    }

    const FORM: Form = Form {
        version: 1,
        shape: 7,
    };

    #[test]
    fn absent_and_null_like_values_are_distinct() {
        let codec = json();
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
        let trailed = |bytes: &[u8]| [bytes, FORM.trailer(Tag::Json).as_bytes()].concat();
        assert!(
            json()
                .decode_entry::<()>(&trailed(&[MARKER]), FORM)
                .is_err()
        );
        assert!(
            json()
                .decode_entry::<()>(&trailed(&[MARKER, b'N', 0]), FORM)
                .is_err()
        );
        assert!(
            json()
                .decode_entry::<()>(&trailed(&[MARKER, b'L', 1, 2]), FORM)
                .is_err()
        );
        // Without a trailer: written before versions, or by hand.
        assert!(json().decode_entry::<()>(b"null", FORM).is_err());
    }

    #[test]
    fn entries_open_without_a_form_to_check() {
        let codec = json();
        let bytes = codec.encode_entry(Entry::Value(&5u8), FORM).unwrap();
        assert_eq!(
            open(&bytes, usize::MAX),
            Some((FORM, Tag::Json, Stored::Value(Cow::Borrowed(b"5"))))
        );
        let absent = codec.encode_entry::<u8>(Entry::Absent, FORM).unwrap();
        assert_eq!(
            open(&absent, usize::MAX),
            Some((FORM, Tag::Json, Stored::Absent))
        );
        assert_eq!(open(b"5", usize::MAX), None);
    }

    #[test]
    fn entries_of_another_version_or_shape_do_not_decode() {
        let codec = json();
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

    #[test]
    fn entries_of_another_codec_do_not_decode() {
        let (a, b) = (
            Coder::of(crate::codec::Named("a")),
            Coder::of(crate::codec::Named("b")),
        );
        let bytes = a.encode_entry(Entry::Value(&5u8), FORM).unwrap();
        assert_eq!(a.decode_entry::<u8>(&bytes, FORM).unwrap(), Entry::Value(5));
        assert!(matches!(
            b.decode_entry::<u8>(&bytes, FORM),
            Err(CodecError::OtherForm)
        ));
        assert!(matches!(
            json().decode_entry::<u8>(&bytes, FORM),
            Err(CodecError::OtherForm)
        ));
        let json_bytes = json().encode_entry(Entry::Value(&5u8), FORM).unwrap();
        assert!(matches!(
            a.decode_entry::<u8>(&json_bytes, FORM),
            Err(CodecError::OtherForm)
        ));
        // The version is read past a custom codec's id.
        assert!(written_by_later(&bytes, 0));
        assert!(!written_by_later(&bytes, 1));
        assert_eq!(
            open(&bytes, usize::MAX),
            Some((
                FORM,
                Tag::Custom(0xe40c_292c),
                Stored::Value(Cow::Borrowed(b"5"))
            ))
        );
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn message_pack_reads_its_entries_of_before_codecs_were_recorded_not_json_ones() {
        let msgpack = Coder::of(crate::codec::MessagePack);
        // JSON's `5` is MessagePack's 53.
        let json_bytes = json().encode_entry(Entry::Value(&5u8), FORM).unwrap();
        assert!(msgpack.decode_entry::<u8>(&json_bytes, FORM).is_err());
        let ours = msgpack.encode_entry(Entry::Value(&53u8), FORM).unwrap();
        assert!(json().decode_entry::<u8>(&ours, FORM).is_err());
        let before = [
            &rmp_serde::to_vec(&300u16).unwrap()[..],
            FORM.trailer(Tag::Json).as_bytes(),
        ]
        .concat();
        assert_eq!(
            msgpack.decode_entry::<u16>(&before, FORM).unwrap(),
            Entry::Value(300)
        );
    }

    #[test]
    fn compressed_values_decode_whatever_the_threshold() {
        let value = "abc".repeat(100);
        let mut compressing = json();
        compressing.compress_above = Some(64);
        let bytes = compressing
            .encode_entry(Entry::Value(&value), FORM)
            .unwrap();
        assert!(is_compressed(&bytes));
        assert!(bytes.len() < value.len() / 4, "{}", bytes.len());
        assert_eq!(
            json().decode_entry::<String>(&bytes, FORM).unwrap(),
            Entry::Value(value.clone())
        );
        assert_eq!(
            open(&bytes, usize::MAX).map(|(_, _, stored)| stored),
            Some(Stored::Value(Cow::Owned(
                serde_json::to_vec(&value).unwrap()
            )))
        );
        // Under the threshold, and a stored `None`: plain.
        let short = compressing
            .encode_entry(Entry::Value(&"abc"), FORM)
            .unwrap();
        assert_eq!(&short[..5], b"\"abc\"");
        let absent = compressing.encode_entry::<u8>(Entry::Absent, FORM).unwrap();
        assert_eq!(&absent[..2], ABSENT);
        // Past the size cap: not decompressed.
        let mut capped = json();
        capped.max_len = 300;
        assert!(capped.decode_entry::<String>(&bytes, FORM).is_err());
        assert_eq!(
            open(&bytes, 300).map(|(_, _, stored)| stored),
            Some(Stored::Marker)
        );
    }

    #[test]
    fn output_that_starts_like_a_marker_is_not_stored() {
        struct LeaseLike;
        impl Codec for LeaseLike {
            fn name(&self) -> &str {
                "lease-like"
            }
            fn encode(
                &self,
                _: crate::codec::Value<'_>,
            ) -> Result<Vec<u8>, crate::codec::BoxError> {
                Ok(vec![MARKER, b'L', 0, 0])
            }
            fn decode(
                &self,
                _: &[u8],
                _: crate::codec::Decoder<'_>,
            ) -> Result<(), crate::codec::BoxError> {
                Err("never stored".into())
            }
        }
        let codec = Coder::of(LeaseLike);
        assert!(matches!(
            codec.encode_entry(Entry::Value(&1u8), FORM),
            Err(CodecError::Marker)
        ));
    }
}
