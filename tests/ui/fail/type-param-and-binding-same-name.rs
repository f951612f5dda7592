#![allow(non_snake_case)]

use redis_cached::redis_cached;

#[redis_cached(key = "count:<T>", ttl = 60)]
async fn count_rows<T>(T: u64) -> u64 {
    T
}

fn main() {}
