//! How values are stored: a [`Codec`] turns them into bytes and back. [`Json`] by default
//! (what `redis-cli GET` shows), [`MessagePack`] with the `msgpack` feature (smaller and
//! faster, not human-readable), or a codec of your own. The `redis_cached::guide::codecs`
//! page explains how to choose and write one, and what stays compatible across deploys.
//!
//! ```
//! let builder = redis_cached::Cache::builder("mem://").codec(redis_cached::codec::Json);
//! ```

// A codec is object-safe (values reach it type-erased, through `erased-serde`), so a cache
// holds one of any type. The built-in ones are recognised when the cache is built and kept on
// a monomorphic path (`Coder`): their hits call serde_json or rmp-serde directly, as before
// codecs were pluggable.

use serde::{Serialize, Serializer, de::DeserializeOwned};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What a codec's own errors are: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An encoding of stored values, chosen per [`Cache`](crate::Cache) with
/// [`CacheBuilder::codec`](crate::CacheBuilder::codec): [`Json`] (the default),
/// [`MessagePack`] (feature `msgpack`), or one of your own.
///
/// Values reach a codec type-erased: [`encode`](Codec::encode) gets a [`Value`], which
/// implements `serde::Serialize`, and [`decode`](Codec::decode) hands a
/// `serde::Deserializer` of its format to a [`Decoder`]. Every entry records which codec wrote
/// it (the [`name`](Codec::name)'s hash), so a cache never decodes another codec's bytes: they
/// are a miss, refilled in its own.
///
/// Errors are not failures of the call: a value that does not encode is returned and not
/// stored, one that does not decode (bytes from Redis are untrusted) is a miss; both are
/// logged.
///
/// # Example
///
/// A codec over `serde_json`'s pretty printer (`examples/postcard_codec.rs` has a compact
/// binary one):
///
/// ```
/// use redis_cached::codec::{BoxError, Codec, Decoder, Value};
///
/// struct PrettyJson;
///
/// impl Codec for PrettyJson {
///     fn name(&self) -> &str {
///         "pretty-json"
///     }
///
///     fn encode(&self, value: Value<'_>) -> Result<Vec<u8>, BoxError> {
///         Ok(serde_json::to_vec_pretty(&value)?)
///     }
///
///     fn decode(&self, bytes: &[u8], into: Decoder<'_>) -> Result<(), BoxError> {
///         into.deserialize(&mut serde_json::Deserializer::from_slice(bytes))
///     }
/// }
///
/// let builder = redis_cached::Cache::builder("mem://").codec(PrettyJson);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The codec's name, stored (as a 4-byte hash) in every entry it writes: a cache whose
    /// codec has another name reads those entries as misses. Change it when the bytes change
    /// (e.g. `"postcard-2"`), keep it across deploys otherwise.
    fn name(&self) -> &str;

    /// The bytes for `value`. They must not start with the byte `0xC1`, which marks the
    /// cache's own entries (fill leases, tombstones, envelopes): such a value is not stored.
    /// JSON never starts with it (it is not UTF-8) nor MessagePack (which never uses it);
    /// a positional format such as postcard does when the first field is a `u8` of 193, and
    /// such values are then not cached (prefix a version byte if that matters).
    ///
    /// # Errors
    ///
    /// Any error of the format: the value is returned to the caller and not stored.
    fn encode(&self, value: Value<'_>) -> Result<Vec<u8>, BoxError>;

    /// Decodes `bytes` by handing a `serde::Deserializer` over them to
    /// [`into.deserialize`](Decoder::deserialize).
    ///
    /// # Errors
    ///
    /// Any error of the format or of the value's `Deserialize`: the call is a miss.
    fn decode(&self, bytes: &[u8], into: Decoder<'_>) -> Result<(), BoxError>;
}

/// A value to encode, type-erased: it implements `serde::Serialize`, so any serde format
/// writes it (see [`Codec`]).
pub struct Value<'a>(&'a dyn erased_serde::Serialize);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        erased_serde::serialize(self.0, serializer)
    }
}

/// Where a [`Codec::decode`] puts the value: the type the function stores, type-erased.
pub struct Decoder<'a>(&'a mut dyn FnMut(Erased<'_, '_>) -> Result<(), erased_serde::Error>);

/// A format's deserializer, type-erased.
type Erased<'a, 'de> = &'a mut dyn erased_serde::Deserializer<'de>;

impl Decoder<'_> {
    /// Deserializes the stored value from `deserializer`.
    ///
    /// # Errors
    ///
    /// The deserializer's error, or the value's `Deserialize` error.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<(), BoxError> {
        let mut erased = <dyn erased_serde::Deserializer<'de>>::erase(deserializer);
        Ok((self.0)(&mut erased)?)
    }
}

/// serde_json: readable in `redis-cli`, the default.
///
/// ```
/// let builder = redis_cached::Cache::builder("mem://").codec(redis_cached::codec::Json);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json;

impl Codec for Json {
    fn name(&self) -> &str {
        "json"
    }

    fn encode(&self, value: Value<'_>) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(&value)?)
    }

    fn decode(&self, bytes: &[u8], into: Decoder<'_>) -> Result<(), BoxError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        into.deserialize(&mut deserializer)?;
        Ok(deserializer.end()?)
    }
}

/// MessagePack through rmp-serde, with field names (so structs may gain fields): about half
/// the bytes of JSON and faster to decode, not human-readable.
///
/// ```
/// let builder =
///     redis_cached::Cache::builder("mem://").codec(redis_cached::codec::MessagePack);
/// ```
#[cfg(feature = "msgpack")]
#[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessagePack;

#[cfg(feature = "msgpack")]
impl Codec for MessagePack {
    fn name(&self) -> &str {
        "msgpack"
    }

    fn encode(&self, value: Value<'_>) -> Result<Vec<u8>, BoxError> {
        Ok(rmp_serde::to_vec_named(&value)?)
    }

    fn decode(&self, bytes: &[u8], into: Decoder<'_>) -> Result<(), BoxError> {
        into.deserialize(&mut rmp_serde::Deserializer::from_read_ref(bytes))
    }
}

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// A marker other than the ones a value may hold (a stray byte, or another version's);
    /// or a custom codec's output that starts like a marker, not stored.
    #[error("the bytes are an unknown marker, not a value (or a codec's output starts with 0xC1)")]
    Marker,
    /// Written by another version of the function, from another shape of its type, or by
    /// another codec: a miss, not an error.
    #[error("stored by another version of the function, shape of its type or codec")]
    OtherForm,
    /// A compressed value that does not decompress, or would be larger than the cap.
    #[error("compressed value does not decompress within the size cap")]
    Compressed,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[cfg(feature = "msgpack")]
    #[error(transparent)]
    Encode(#[from] rmp_serde::encode::Error),
    #[cfg(feature = "msgpack")]
    #[error(transparent)]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("{0}")]
    Custom(BoxError),
}

/// Which codec wrote an entry, as its trailer records it (see `entry.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// `S`: JSON, and MessagePack before codecs were recorded.
    Json,
    /// `M`: MessagePack.
    MessagePack,
    /// `C` and the hash of the codec's name.
    Custom(u32),
}

/// A cache's codec as the hot path holds it (the built-ins without dynamic dispatch), and
/// its compression.
#[derive(Clone, Debug)]
pub(crate) struct Coder {
    kind: Kind,
    /// Values whose encoded form is longer than this many bytes are stored compressed.
    pub(crate) compress_above: Option<usize>,
    /// The longest a compressed value may decompress to: the cache's size cap.
    pub(crate) max_len: usize,
}

#[derive(Clone)]
enum Kind {
    Json,
    #[cfg(feature = "msgpack")]
    MessagePack,
    Custom(Arc<dyn Codec>, u32),
}

impl Coder {
    /// The built-in behind `codec`, or `codec` itself; without compression.
    pub(crate) fn of<C: Codec>(codec: C) -> Coder {
        let any: &dyn Any = &codec;
        let kind = if any.is::<Json>() {
            Kind::Json
        } else {
            #[cfg(feature = "msgpack")]
            if any.is::<MessagePack>() {
                return Coder::with(Kind::MessagePack);
            }
            let id = fnv1a(codec.name().as_bytes());
            Kind::Custom(Arc::new(codec), id)
        };
        Coder::with(kind)
    }

    fn with(kind: Kind) -> Coder {
        Coder {
            kind,
            compress_above: None,
            max_len: usize::MAX,
        }
    }

    /// What this codec's entries record.
    #[inline]
    pub(crate) fn tag(&self) -> Tag {
        match self.kind {
            Kind::Json => Tag::Json,
            #[cfg(feature = "msgpack")]
            Kind::MessagePack => Tag::MessagePack,
            Kind::Custom(_, id) => Tag::Custom(id),
        }
    }

    /// Encodes a value for storage.
    pub(crate) fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        match &self.kind {
            Kind::Json => Ok(serde_json::to_vec(value)?),
            #[cfg(feature = "msgpack")]
            Kind::MessagePack => Ok(rmp_serde::to_vec_named(value)?),
            Kind::Custom(codec, _) => codec
                .encode(Value(&Unsized(value)))
                .map_err(CodecError::Custom),
        }
    }

    /// Decodes a stored value of any type into its JSON form (MessagePack maps and arrays
    /// become JSON ones), for showing it; bytes from Redis are untrusted, so this only
    /// ever fails. A custom codec whose format is not self-describing fails here.
    pub(crate) fn to_json(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        self.decode(bytes)
    }

    /// Decodes a stored value; bytes from Redis are untrusted, so this only ever fails.
    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match &self.kind {
            Kind::Json => Ok(serde_json::from_slice(bytes)?),
            #[cfg(feature = "msgpack")]
            Kind::MessagePack => Ok(rmp_serde::from_slice(bytes)?),
            Kind::Custom(codec, _) => decode_custom(&**codec, bytes),
        }
    }
}

/// Decodes through a custom codec: `T` out of the type-erased deserializer it is handed.
fn decode_custom<T: DeserializeOwned>(codec: &dyn Codec, bytes: &[u8]) -> Result<T, CodecError> {
    let mut value = None;
    let mut put = |deserializer: Erased<'_, '_>| {
        value = Some(erased_serde::deserialize::<T>(deserializer)?);
        Ok(())
    };
    codec
        .decode(bytes, Decoder(&mut put))
        .map_err(CodecError::Custom)?;
    value.ok_or_else(|| CodecError::Custom("the codec decoded no value".into()))
}

/// `erased_serde::Serialize` for an unsized `T` (a `str`, a slice): through a reference.
struct Unsized<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Unsized<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Json => f.write_str("Json"),
            #[cfg(feature = "msgpack")]
            Kind::MessagePack => f.write_str("MessagePack"),
            Kind::Custom(codec, _) => write!(f, "Custom({:?})", codec.name()),
        }
    }
}

/// FNV-1a, 32 bits: a codec name's id, the same in every process and release.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// For tests: a codec of its own name writing JSON's bytes, so that only the codec recorded
/// in an entry tells its entries from JSON's.
#[cfg(test)]
pub(crate) struct Named(pub(crate) &'static str);

#[cfg(test)]
impl Codec for Named {
    fn name(&self) -> &str {
        self.0
    }

    fn encode(&self, value: Value<'_>) -> Result<Vec<u8>, BoxError> {
        Json.encode(value)
    }

    fn decode(&self, bytes: &[u8], into: Decoder<'_>) -> Result<(), BoxError> {
        Json.decode(bytes, into)
    }
}
