//! How values are stored: serde_json bytes, exactly what `redis-cli GET` shows.

use serde::{Serialize, de::DeserializeOwned};

/// Encodes a value for storage.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(value)
}

/// Decodes a stored value; bytes from Redis are untrusted, so this only ever fails.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(bytes)
}
