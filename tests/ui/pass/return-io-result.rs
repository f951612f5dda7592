//! `io::Result<T>`: a `Result` alias with one type argument still stores the `Ok` value.
#![deny(warnings)]

use redis_cached::redis_cached;
use std::io;

#[redis_cached(key = "file:<name>", ttl = "5m")]
async fn read(name: String) -> io::Result<Vec<u8>> {
    if name.is_empty() {
        return Err(io::Error::other("empty name"));
    }
    Ok(name.into_bytes())
}

#[redis_cached(key = "len:<name>")]
async fn len(name: &str) -> std::io::Result<usize> {
    Ok(name.len())
}

fn main() {
    let _ = read(String::new());
    let _ = len("x");
}
