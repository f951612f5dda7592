//! Generic parameters, and a generic return type. A type or const parameter that no
//! rendered argument mentions is named in the key (`<T>`, `<N>`): otherwise
//! `decoded::<String>(1)` and `decoded::<u64>(1)` would share an entry.
#![deny(warnings)]

use redis_cached::{KeyPart, redis_cached};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[redis_cached(key = "generic:<id>")]
async fn by_key<T: KeyPart + Sync>(id: T) -> u64 {
    let _ = id;
    1
}

#[redis_cached(key = "generic-where:<id>", ttl = 60)]
async fn by_key_where<T>(id: T) -> Result<u64, String>
where
    T: KeyPart + Send,
{
    drop(id);
    Ok(1)
}

#[redis_cached(key = "decoded:<T>:<id>")]
async fn decoded<T: Serialize + DeserializeOwned + Default>(id: u64) -> T {
    let _ = id;
    T::default()
}

#[redis_cached(key = "decoded-option:<T>:<id>", cache_none = true)]
async fn decoded_option<T>(id: u64) -> Option<T>
where
    T: Serialize + DeserializeOwned,
{
    let _ = id;
    None
}

#[redis_cached(key = "const:<N>:<id>")]
async fn with_const<const N: usize>(id: u64) -> Vec<u64> {
    vec![id; N]
}

fn main() {
    let _ = by_key(1u64);
    let _ = by_key("str");
    let _ = by_key_where(String::from("a"));
    let _ = decoded::<String>(1);
    let _ = decoded_option::<Vec<u8>>(1);
    let _ = with_const::<3>(1);
}
