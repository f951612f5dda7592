//! `codec::MessagePack`: values are stored as MessagePack, read back, and a process using
//! another codec treats them as misses rather than failing.
#![cfg(feature = "msgpack")]

mod harness;
mod support;

use redis_cached::codec::MessagePack;
use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
    tags: Vec<String>,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "employee:<id>", ttl = 60, cache = cache)]
async fn employee(cache: &Cache, id: u64) -> Employee {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Employee {
        id,
        name: "Ada".into(),
        tags: vec!["a:b".into()],
    }
}

#[tokio::test]
async fn messagepack_values_round_trip_and_other_codecs_miss() {
    let prefix = support::unique_prefix("msgpack");
    let msgpack = Cache::builder(harness::shared_url())
        .prefix(prefix.clone())
        .codec(MessagePack)
        .build()
        .await
        .expect("redis answers");
    let expected = employee(&msgpack, 7).await;
    assert_eq!(employee(&msgpack, 7).await, expected);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);

    let mut redis = harness::raw_connection().await;
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(format!("{prefix}employee:7"))
        .query_async(&mut redis)
        .await
        .expect("GET");
    let stored = support::untrailed(&stored);
    let decoded: Employee = rmp_serde::from_slice(stored).expect("MessagePack");
    assert_eq!(decoded, expected);
    assert!(serde_json::from_slice::<Employee>(stored).is_err());

    // A JSON process sharing the key reads it as a miss and overwrites it.
    let json = Cache::builder(harness::shared_url())
        .prefix(prefix)
        .build()
        .await
        .expect("redis answers");
    assert_eq!(employee(&json, 7).await, expected);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}
