//! A codec of your own: values stored as postcard, a compact binary serde format (fields by
//! position, integers as varints). Copy it, and add `postcard = { version = "1", features =
//! ["alloc"] }` to your dependencies.
//!
//! postcard is not self-describing: a struct that gains or loses a field no longer decodes
//! its old bytes (a miss, refilled; the shape fingerprint in every entry already makes those
//! misses), and the inspection page cannot show its values as JSON (it shows their size).
//!
//! `cargo run --example postcard_codec` (against `mem://`, or the URL in `REDIS_URL`).

use redis_cached::codec::{BoxError, Codec, Decoder, Value};
use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};

/// Values as postcard.
pub struct Postcard;

impl Codec for Postcard {
    /// Stored in every entry: a cache with another codec reads these entries as misses.
    fn name(&self) -> &str {
        "postcard"
    }

    fn encode(&self, value: Value<'_>) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_allocvec(&value)?)
    }

    fn decode(&self, bytes: &[u8], into: Decoder<'_>) -> Result<(), BoxError> {
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        into.deserialize(&mut deserializer)?;
        // Trailing bytes are not a value of this type.
        if !deserializer.finalize()?.is_empty() {
            return Err("trailing bytes after the value".into());
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
    department: String,
}

#[redis_cached(key = "employee:<id>", ttl = 60, cache = cache)]
async fn employee(cache: &Cache, id: u64) -> Employee {
    Employee {
        id,
        name: "Ada Lovelace".into(),
        department: "Engineering".into(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), redis_cached::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "mem://".into());
    let cache = Cache::builder(&url)
        .prefix("postcard-example:")
        .codec(Postcard)
        .build()
        .await?;
    let first = employee(&cache, 42).await; // a miss: stored as postcard
    let again = employee(&cache, 42).await; // a hit: decoded from postcard
    assert_eq!(first, again);
    println!("{again:?}");
    Ok(())
}
