//! How values are stored: serde_json by default (what `redis-cli GET` shows), or
//! MessagePack with the `msgpack` feature (smaller and faster, not human-readable).

use serde::{Serialize, de::DeserializeOwned};

/// The encoding of stored values, chosen per [`Cache`](crate::Cache) with
/// [`CacheBuilder::codec`](crate::CacheBuilder::codec).
///
/// ```
/// let builder = redis_cached::Cache::builder("mem://").codec(redis_cached::Codec::Json);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// serde_json: readable in `redis-cli`, the default.
    #[default]
    Json,
    /// MessagePack through rmp-serde, with field names (so structs may gain fields).
    #[cfg(feature = "msgpack")]
    #[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
    MessagePack,
}

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// A marker other than the ones a value may hold (a stray byte, or another version's).
    #[error("stored bytes are an unknown marker, not a value")]
    Marker,
    /// Written by another version of the function, or from another shape of its type: a
    /// miss, not an error.
    #[error("stored by another version of the function or another shape of its type")]
    OtherForm,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[cfg(feature = "msgpack")]
    #[error(transparent)]
    Encode(#[from] rmp_serde::encode::Error),
    #[cfg(feature = "msgpack")]
    #[error(transparent)]
    Decode(#[from] rmp_serde::decode::Error),
}

impl Codec {
    /// Encodes a value for storage.
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Json => Ok(serde_json::to_vec(value)?),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => Ok(rmp_serde::to_vec_named(value)?),
        }
    }

    /// Decodes a stored value of any type into its JSON form (MessagePack maps and arrays
    /// become JSON ones), for showing it; bytes from Redis are untrusted, so this only
    /// ever fails.
    pub(crate) fn to_json(self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        self.decode(bytes)
    }

    /// Decodes a stored value; bytes from Redis are untrusted, so this only ever fails.
    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Json => Ok(serde_json::from_slice(bytes)?),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => Ok(rmp_serde::from_slice(bytes)?),
        }
    }
}
