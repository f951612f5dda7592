//! Pluggable codecs and compression against a real redis-server: a custom codec's values
//! round-trip; a cache with another codec reads them as misses, never as another value; and
//! values over `compress_above` are stored compressed, read whether compression is on or off,
//! in stale windows and from the near tier.
#![cfg(feature = "msgpack")]

mod harness;
mod support;

/// The example codec, as users copy it.
#[allow(dead_code)]
#[path = "../examples/postcard_codec.rs"]
mod postcard_codec;

use harness::RedisServer;
use postcard_codec::Postcard;
use redis_cached::codec::{Codec, MessagePack};
use redis_cached::{Cache, CacheBuilder, NearCache, Outcome, redis_cached, with_outcome};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The trailer's codec byte and the function's version, as entries end.
const VERSION: u32 = 3;

static NUMBER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "number:<id>", ttl = 60, version = 3, cache = cache)]
async fn number(cache: &Cache, id: u64) -> u64 {
    NUMBER_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// A value that compresses well: a department's list of employees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
    email: String,
    department: String,
    title: String,
}

fn department(size: u64) -> Vec<Employee> {
    (0..size)
        .map(|id| Employee {
            id,
            name: format!("Employee {id}"),
            email: format!("employee.{id}@example.com"),
            department: "Engineering".into(),
            title: "Staff Engineer".into(),
        })
        .collect()
}

#[redis_cached(key = "department:<size>", ttl = 60, cache = cache)]
async fn employees(cache: &Cache, size: u64) -> Vec<Employee> {
    department(size)
}

/// Whether the source of `stale_employees` is down.
static DOWN: AtomicBool = AtomicBool::new(false);

#[redis_cached(key = "stale-department:<size>", ttl = 1, stale_if_error = 60, cache = cache)]
async fn stale_employees(cache: &Cache, size: u64) -> Result<Vec<Employee>, String> {
    if DOWN.load(Ordering::SeqCst) {
        return Err("the source is down".into());
    }
    Ok(department(size))
}

fn builder(prefix: &str) -> CacheBuilder {
    Cache::builder(harness::shared_url()).prefix(prefix)
}

async fn build(builder: CacheBuilder) -> Cache {
    builder
        .build()
        .await
        .expect("the shared redis-server answers")
}

/// What `id`'s entry ends with: the codec's byte, then the version and shape (any).
fn trailer_codec(stored: &[u8]) -> u8 {
    let trailer = &stored[stored.len() - support::TRAILER_LEN..];
    assert_eq!(trailer[0], 0xC1, "{stored:?}");
    assert_eq!(trailer[2..6], VERSION.to_le_bytes());
    trailer[1]
}

#[tokio::test]
async fn a_custom_codec_stores_and_reads_back() {
    let prefix = support::unique_prefix("custom_codec");
    let cache = build(builder(&prefix).codec(Postcard)).await;
    assert_eq!(
        with_outcome(number(&cache, 300)).await,
        (300, Some(Outcome::Miss))
    );
    assert_eq!(
        with_outcome(number(&cache, 300)).await,
        (300, Some(Outcome::Hit))
    );

    let stored = support::raw_get(&format!("{prefix}number:300"))
        .await
        .expect("stored");
    assert_eq!(trailer_codec(&stored), b'C');
    // postcard's varint of 300, then the FNV-1a hash of "postcard" before the trailer.
    let value = &stored[..stored.len() - support::TRAILER_LEN];
    let (value, id) = value.split_at(value.len() - 4);
    assert_eq!(value, postcard::to_allocvec(&300u64).expect("encodes"));
    assert_eq!(id, fnv1a(Postcard.name()).to_le_bytes());
}

/// What entries record of a custom codec: its name's FNV-1a hash.
fn fnv1a(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Each pair writes a number whose bytes the other codec would decode as another number:
/// JSON's `5` is MessagePack's 53 and postcard's 53, so without the codec recorded in the
/// entry a switch of codecs would serve the wrong value.
#[tokio::test]
async fn a_value_of_another_codec_is_a_miss_not_another_value() {
    /// A second version of the postcard codec: a new name.
    struct Postcard2;
    impl Codec for Postcard2 {
        fn name(&self) -> &str {
            "postcard-2"
        }
        fn encode(
            &self,
            value: redis_cached::codec::Value<'_>,
        ) -> Result<Vec<u8>, redis_cached::codec::BoxError> {
            Postcard.encode(value)
        }
        fn decode(
            &self,
            bytes: &[u8],
            into: redis_cached::codec::Decoder<'_>,
        ) -> Result<(), redis_cached::codec::BoxError> {
            Postcard.decode(bytes, into)
        }
    }

    type Choose = fn(CacheBuilder) -> CacheBuilder;
    let json: Choose = |builder| builder;
    let msgpack: Choose = |builder| builder.codec(MessagePack);
    let postcard: Choose = |builder| builder.codec(Postcard);
    let postcard2: Choose = |builder| builder.codec(Postcard2);
    let cases = [
        ("json", json, "msgpack", msgpack, 5),
        ("msgpack", msgpack, "json", json, 53),
        ("postcard", postcard, "json", json, 53),
        ("postcard", postcard, "postcard-2", postcard2, 7),
    ];
    for (writer_name, writer, reader_name, reader, id) in cases {
        let prefix = support::unique_prefix("other_codec");
        let writer = build(writer(builder(&prefix))).await;
        let reader = build(reader(builder(&prefix))).await;
        assert_eq!(
            with_outcome(number(&writer, id)).await,
            (id, Some(Outcome::Miss))
        );
        let runs = NUMBER_RUNS.load(Ordering::SeqCst);
        assert_eq!(
            with_outcome(number(&reader, id)).await,
            (id, Some(Outcome::Miss)),
            "{writer_name} wrote, {reader_name} read"
        );
        assert!(NUMBER_RUNS.load(Ordering::SeqCst) > runs);
    }
}

/// Entries MessagePack wrote before entries recorded their codec (JSON's `S` byte) still
/// read: the codec is unchanged.
#[tokio::test]
async fn messagepack_entries_written_before_codecs_were_recorded_still_read() {
    let prefix = support::unique_prefix("msgpack_before");
    let key = format!("{prefix}number:300");
    let mut stored = rmp_serde::to_vec(&300u64).expect("encodes");
    stored.extend_from_slice(&[0xC1, b'S']);
    stored.extend_from_slice(&VERSION.to_le_bytes());
    stored.extend_from_slice(&0u64.to_le_bytes()); // not fingerprinted: any shape reads it
    support::raw_set(&key, &stored).await;
    let msgpack = build(builder(&prefix).codec(MessagePack)).await;
    assert_eq!(
        with_outcome(number(&msgpack, 300)).await,
        (300, Some(Outcome::Hit))
    );
}

#[tokio::test]
async fn values_over_the_threshold_are_stored_compressed_and_read_either_way() {
    let prefix = support::unique_prefix("compressed");
    let plain = build(builder(&prefix)).await;
    let compressing = build(builder(&prefix).compress_above(256)).await;
    let large = department(40);
    let json_len = serde_json::to_vec(&large).expect("encodes").len();

    assert_eq!(employees(&compressing, 40).await, large);
    let stored = support::raw_get(&format!("{prefix}department:40"))
        .await
        .expect("stored");
    assert!(stored.starts_with(b"\xC1Z4"), "{:?}", &stored[..8]);
    assert!(
        stored.len() < json_len / 3,
        "{} bytes stored for {json_len} of JSON",
        stored.len()
    );
    assert_eq!(trailer_codec_any(&stored), b'S');
    // Under the threshold: as the codec wrote it.
    assert_eq!(employees(&compressing, 1).await, department(1));
    let small = support::raw_get_text(&format!("{prefix}department:1")).await;
    assert_eq!(
        small.as_deref(),
        Some(&*serde_json::to_string(&department(1)).expect("encodes"))
    );

    // A compressed entry reads in a cache without compression, a plain one in a cache with.
    let hit = |cache: &Cache, size| {
        let cache = cache.clone();
        async move { with_outcome(employees(&cache, size)).await }
    };
    assert_eq!(hit(&plain, 40).await, (large.clone(), Some(Outcome::Hit)));
    plain.clear().await.expect("the prefix is cleared");
    assert_eq!(employees(&plain, 40).await, large);
    let stored = support::raw_get(&format!("{prefix}department:40")).await;
    assert!(stored.is_some_and(|stored| stored.starts_with(b"[{")));
    assert_eq!(hit(&compressing, 40).await, (large, Some(Outcome::Hit)));
}

/// The codec byte of an entry of any version.
fn trailer_codec_any(stored: &[u8]) -> u8 {
    stored[stored.len() - support::TRAILER_LEN + 1]
}

#[tokio::test]
async fn compressed_values_are_served_stale() {
    let prefix = support::unique_prefix("compressed_stale");
    let cache = build(builder(&prefix).compress_above(256)).await;
    let large = Ok(department(40));
    assert_eq!(
        with_outcome(stale_employees(&cache, 40)).await,
        (large.clone(), Some(Outcome::Miss))
    );
    let stored = support::raw_get(&format!("{prefix}stale-department:40"))
        .await
        .expect("stored");
    // The freshness envelope (56 bytes) wraps the compressed entry.
    assert!(stored.starts_with(b"\xC1F"));
    assert!(stored[56..].starts_with(b"\xC1Z4"), "{:?}", &stored[..64]);
    assert_eq!(
        with_outcome(stale_employees(&cache, 40)).await,
        (large.clone(), Some(Outcome::Hit))
    );
    // Past its TTL, with the source down: the compressed value, stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    DOWN.store(true, Ordering::SeqCst);
    assert_eq!(stale_employees(&cache, 40).await, large);
}

#[tokio::test]
async fn compressed_values_are_served_from_the_near_tier() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .near_cache(NearCache::new(1 << 20))
        .compress_above(256)
        .build()
        .await
        .expect("redis answers");
    let large = department(40);
    let commands = || async {
        let calls = server.command_calls().await;
        ["get", "set", "evalsha", "eval", "pttl"]
            .iter()
            .map(|name| calls.get(*name).copied().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(employees(&cache, 40).await, large);
    let stored = support::get(&mut server.connection().await, "department:40").await;
    assert!(stored.is_some_and(|stored| stored.starts_with(b"\xC1Z4")));
    // Once the tracking connection is up, a read is kept locally and served without Redis.
    support::eventually(Duration::from_secs(5), "a near hit", || async {
        assert_eq!(employees(&cache, 40).await, large);
        let before = commands().await;
        let served = with_outcome(employees(&cache, 40)).await;
        commands().await == before && served == (large.clone(), Some(Outcome::Hit))
    })
    .await;
}

/// Ids the body of `departments` was asked for.
static BATCH_IDS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "batch-department:<sizes>", ttl = 60, batch = sizes, cache = cache)]
async fn departments(cache: &Cache, sizes: &[u64]) -> HashMap<u64, Vec<Employee>> {
    BATCH_IDS.fetch_add(sizes.len(), Ordering::SeqCst);
    sizes.iter().map(|&size| (size, department(size))).collect()
}

/// A batch lookup tells a compressed entry (which starts with the marker byte) from an
/// envelope: it is a hit.
#[tokio::test]
async fn a_batch_function_reads_compressed_entries_as_hits() {
    let prefix = support::unique_prefix("compressed_batch");
    let cache = build(builder(&prefix).compress_above(256)).await;
    let expected: HashMap<u64, Vec<Employee>> = [1, 40].map(|size| (size, department(size))).into();
    assert_eq!(departments(&cache, &[1, 40]).await, expected);
    let stored = support::raw_get(&format!("{prefix}batch-department:40")).await;
    assert!(stored.is_some_and(|stored| stored.starts_with(b"\xC1Z4")));
    assert_eq!(BATCH_IDS.load(Ordering::SeqCst), 2);
    assert_eq!(departments(&cache, &[1, 40]).await, expected);
    assert_eq!(BATCH_IDS.load(Ordering::SeqCst), 2, "both ids were hits");
}
