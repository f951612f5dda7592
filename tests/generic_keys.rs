//! Generic functions whose key names the type parameter (`<T>`) or const parameter (`<N>`):
//! one entry per instantiation, under a key that holds the type's name or the const's value.

mod harness;
mod support;

use redis_cached::{Cache, invalidates, redis_cached, write_escaped};
use std::any::type_name;
use std::sync::atomic::AtomicUsize;
use support::{bump, mem_cache, runs};

trait Table {
    const ROWS: u64;
}

struct Users;
struct Orders;

impl Table for Users {
    const ROWS: u64 = 10;
}

impl Table for Orders {
    const ROWS: u64 = 20;
}

#[redis_cached(key = "count:<T>:<id>", ttl = 60, cache = cache)]
async fn count_rows<T: Table>(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    bump(runs);
    T::ROWS + id
}

#[invalidates("count:<T>:<id>", cache = cache)]
async fn clear<T: Table>(cache: &Cache, id: u64) {
    let _ = id;
}

#[redis_cached(key = "first:<N>:<id>", ttl = 60, cache = cache)]
async fn first<const N: usize>(cache: &Cache, runs: &AtomicUsize, id: u64) -> Vec<u64> {
    bump(runs);
    vec![id; N]
}

/// `count:<T>:1` as `count_rows::<T>` renders it.
fn count_key<T>() -> String {
    let mut key = String::from("count:");
    write_escaped(type_name::<T>(), &mut key);
    key.push_str(":1");
    key
}

#[tokio::test]
async fn each_type_gets_its_own_entry() {
    let cache = mem_cache().await;
    let counter = AtomicUsize::new(0);
    assert_eq!(count_rows::<Users>(&cache, &counter, 1).await, 11);
    assert_eq!(count_rows::<Orders>(&cache, &counter, 1).await, 21);
    assert_eq!(runs(&counter), 2, "one body run per type");
    assert_eq!(count_rows::<Users>(&cache, &counter, 1).await, 11);
    assert_eq!(count_rows::<Orders>(&cache, &counter, 1).await, 21);
    assert_eq!(runs(&counter), 2, "both from the cache");
}

#[tokio::test]
async fn the_key_holds_the_type_name() {
    let cache = mem_cache().await;
    let counter = AtomicUsize::new(0);
    count_rows::<Users>(&cache, &counter, 1).await;
    count_rows::<Orders>(&cache, &counter, 1).await;
    let key = count_key::<Users>();
    assert!(key.contains("Users"), "{key}");
    assert!(!key.contains("Orders"), "{key}");
    // Deleting the key rendered by hand makes the next call of that type alone a miss.
    cache.invalidate(&[&key]).await.expect("mem:// deletes");
    assert_eq!(count_rows::<Orders>(&cache, &counter, 1).await, 21);
    assert_eq!(runs(&counter), 2);
    assert_eq!(count_rows::<Users>(&cache, &counter, 1).await, 11);
    assert_eq!(runs(&counter), 3, "the Users entry was the deleted key");
}

#[tokio::test]
async fn a_generic_invalidation_deletes_its_own_type_only() {
    let cache = mem_cache().await;
    let counter = AtomicUsize::new(0);
    count_rows::<Users>(&cache, &counter, 1).await;
    count_rows::<Orders>(&cache, &counter, 1).await;
    clear::<Orders>(&cache, 1).await;
    count_rows::<Users>(&cache, &counter, 1).await;
    assert_eq!(runs(&counter), 2, "Users is still cached");
    count_rows::<Orders>(&cache, &counter, 1).await;
    assert_eq!(runs(&counter), 3, "Orders was invalidated");
}

#[tokio::test]
async fn const_parameters_render_their_value() {
    let cache = mem_cache().await;
    let counter = AtomicUsize::new(0);
    assert_eq!(first::<2>(&cache, &counter, 7).await, vec![7, 7]);
    assert_eq!(first::<3>(&cache, &counter, 7).await, vec![7, 7, 7]);
    assert_eq!(runs(&counter), 2, "one body run per value of N");
    cache
        .invalidate(&["first:3:7"])
        .await
        .expect("mem:// deletes");
    assert_eq!(first::<2>(&cache, &counter, 7).await, vec![7, 7]);
    assert_eq!(runs(&counter), 2);
    assert_eq!(first::<3>(&cache, &counter, 7).await, vec![7, 7, 7]);
    assert_eq!(runs(&counter), 3, "`first:3:7` was the key of N = 3");
}
