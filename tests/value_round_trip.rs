//! A hit returns exactly what the body returned: for every return shape (`T`, `Option<T>`,
//! `Result<T, E>`, `Result<Option<T>, E>`), with `cache_none` on and off, with both codecs,
//! on Redis and `mem://`, through the near tier (bytes and decoded values) and without it,
//! for values whose encoding collides with a stored `None` in a naive scheme (`()`, unit
//! structs, `Some(None)`, `Value::Null`) and for empty strings and vectors.

mod harness;
mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
#[cfg(feature = "msgpack")]
use redis_cached::codec::MessagePack;
use redis_cached::{Cache, CacheBuilder, NearCache, Outcome, redis_cached, with_outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// A unit struct: serde encodes it as `null`, like `()` and `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

/// Each case renders keys of its own.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// For each value type, one cached function per return shape (and `cache_none`), with the
/// near tier holding bytes and holding decoded values. Each function returns its argument.
#[rustfmt::skip] // rustfmt indents the multi-line attributes further on every run.
macro_rules! functions {
    ($module:ident, $t:ty) => {
        mod $module {
            use super::*;

            #[redis_cached(key = "whole:<id>", ttl = 60, cache = cache)]
            pub async fn whole(cache: &Cache, runs: &AtomicU64, id: u64, v: $t) -> $t {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(key = "ok:<id>", ttl = 60, cache = cache)]
            pub async fn ok(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Result<$t, String>,
            ) -> Result<$t, String> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(key = "some:<id>", ttl = 60, cache = cache)]
            pub async fn some(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Option<$t>,
            ) -> Option<$t> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(key = "some_none:<id>", ttl = 60, cache = cache, cache_none = true)]
            pub async fn some_none(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Option<$t>,
            ) -> Option<$t> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(key = "ok_some:<id>", ttl = 60, cache = cache)]
            pub async fn ok_some(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Result<Option<$t>, String>,
            ) -> Result<Option<$t>, String> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(key = "ok_some_none:<id>", ttl = 60, cache = cache, cache_none = true)]
            pub async fn ok_some_none(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Result<Option<$t>, String>,
            ) -> Result<Option<$t>, String> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(key = "d_whole:<id>", ttl = 60, cache = cache, near_cache = true)]
            pub async fn decoded_whole(cache: &Cache, runs: &AtomicU64, id: u64, v: $t) -> $t {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(
                key = "d_some_none:<id>",
                ttl = 60,
                cache = cache,
                cache_none = true,
                near_cache = true
            )]
            pub async fn decoded_some_none(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Option<$t>,
            ) -> Option<$t> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            #[redis_cached(
                key = "d_ok_some_none:<id>",
                ttl = 60,
                cache = cache,
                cache_none = true,
                near_cache = true
            )]
            pub async fn decoded_ok_some_none(
                cache: &Cache,
                runs: &AtomicU64,
                id: u64,
                v: Result<Option<$t>, String>,
            ) -> Result<Option<$t>, String> {
                runs.fetch_add(1, Ordering::SeqCst);
                v
            }

            /// Calls every function twice with `value` in each shape and checks that both
            /// calls return it, and that the second ran no body where the first stored.
            pub async fn check(cache: &Cache, value: $t) {
                let calls = Calls { cache, runs: AtomicU64::new(0) };
                let v = || value.clone();
                calls.twice("whole", true, v(), whole).await;
                calls.twice("decoded whole", true, v(), decoded_whole).await;
                for shaped in [Ok(v()), Err(String::new())] {
                    let stored = shaped.is_ok();
                    calls.twice("ok", stored, shaped, ok).await;
                }
                for shaped in [Some(v()), None] {
                    let stored = shaped.is_some();
                    calls.twice("some", stored, shaped.clone(), some).await;
                    calls.twice("some, cache_none", true, shaped.clone(), some_none).await;
                    calls.twice("decoded some, cache_none", true, shaped, decoded_some_none).await;
                }
                for shaped in [Ok(Some(v())), Ok(None), Err("no".to_owned())] {
                    let stored = matches!(shaped, Ok(Some(_)));
                    let stored_none = shaped.is_ok();
                    calls.twice("ok some", stored, shaped.clone(), ok_some).await;
                    let what = "ok some, cache_none";
                    calls.twice(what, stored_none, shaped.clone(), ok_some_none).await;
                    let what = "decoded ok some, cache_none";
                    calls.twice(what, stored_none, shaped, decoded_ok_some_none).await;
                }
            }
        }
    };
}

functions!(unit, ());
functions!(unit_struct, Unit);
/// An `Option` under another name: its functions store it whole (`-> MaybeString` keeps its
/// `None`), as the name says nothing of an `Option`; `Option<MaybeString>` has `Some(None)`.
type MaybeString = Option<String>;

functions!(option, MaybeString);
functions!(json, Value);
functions!(string, String);
functions!(bytes, Vec<u8>);

/// One `check`'s calls: its cache, and how many times their bodies ran (a count per
/// `check`: the tests run in parallel).
struct Calls<'a> {
    cache: &'a Cache,
    runs: AtomicU64,
}

impl Calls<'_> {
    /// Calls `call` twice with `value` under a key of its own: both return `value`; the
    /// second is a hit (no body run) if `stored`, else a miss.
    async fn twice<'s, V, Fut>(
        &'s self,
        what: &str,
        stored: bool,
        value: V,
        call: impl Fn(&'s Cache, &'s AtomicU64, u64, V) -> Fut,
    ) where
        V: Clone + PartialEq + std::fmt::Debug,
        Fut: Future<Output = V>,
    {
        let (cache, runs) = (self.cache, &self.runs);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let before = runs.load(Ordering::SeqCst);
        let (first, outcome) = with_outcome(call(cache, runs, id, value.clone())).await;
        assert_eq!(first, value, "{what}: the miss returned another value");
        assert_eq!(
            outcome,
            Some(Outcome::Miss),
            "{what}: the first call was no miss"
        );
        let (second, outcome) = with_outcome(call(cache, runs, id, value.clone())).await;
        assert_eq!(
            second, value,
            "{what}: the hit returned another value than the body did"
        );
        let expected = if stored { Outcome::Hit } else { Outcome::Miss };
        assert_eq!(outcome, Some(expected), "{what}: {value:?}");
        let ran = runs.load(Ordering::SeqCst) - before;
        assert_eq!(
            ran,
            if stored { 1 } else { 2 },
            "{what}: {value:?} ran {ran} times"
        );
    }
}

fn json_values() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,4}".prop_map(Value::String),
        Just(Value::Array(vec![])),
        Just(Value::Object(Default::default())),
        Just(serde_json::json!([null, {"a": null}])),
    ]
}

/// Runs every check over generated values of every type against `cache`.
fn check_all(cache: &Cache, runtime: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runtime.block_on(unit::check(cache, ()));
    runtime.block_on(unit_struct::check(cache, Unit));
    let strategies = (
        proptest::option::of(".{0,3}"),
        json_values(),
        ".{0,3}",
        proptest::collection::vec(any::<u8>(), 0..3),
    );
    runner
        .run(&strategies, |(maybe, json_value, text, vector)| {
            runtime.block_on(async {
                option::check(cache, maybe).await;
                json::check(cache, json_value).await;
                string::check(cache, text).await;
                bytes::check(cache, vector).await;
            });
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    // The edge values themselves, whatever was generated.
    runtime.block_on(async {
        option::check(cache, None).await;
        option::check(cache, Some(String::new())).await;
        json::check(cache, Value::Null).await;
        string::check(cache, String::new()).await;
        bytes::check(cache, Vec::new()).await;
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A codec and compression setting.
type Codec = fn(CacheBuilder) -> CacheBuilder;

async fn build(url: &str, codec: Codec, near: bool) -> Cache {
    let mut builder = codec(Cache::builder(url).prefix(support::unique_prefix("round_trip")));
    if near {
        builder = builder.near_cache(NearCache::new(1 << 20));
    }
    builder.build().await.expect("the cache builds")
}

/// JSON, MessagePack, and each compressing every value it can.
fn codecs() -> Vec<Codec> {
    vec![
        |builder| builder,
        |builder| builder.compress_above(0),
        #[cfg(feature = "msgpack")]
        |builder| builder.codec(MessagePack),
        #[cfg(feature = "msgpack")]
        |builder| builder.codec(MessagePack).compress_above(0),
    ]
}

#[test]
fn hits_equal_what_the_body_returned_on_mem() {
    let runtime = runtime();
    for codec in codecs() {
        let cache = runtime.block_on(build("mem://", codec, false));
        check_all(&cache, &runtime, 24);
    }
}

#[test]
fn hits_equal_what_the_body_returned_on_redis() {
    let runtime = runtime();
    for codec in codecs() {
        let cache = runtime.block_on(build(harness::shared_url(), codec, false));
        check_all(&cache, &runtime, 24);
    }
}

#[test]
fn hits_equal_what_the_body_returned_through_the_near_tier() {
    let runtime = runtime();
    // A server of its own, so that its command count shows when the tier serves.
    let server = harness::RedisServer::start();
    for codec in codecs() {
        let cache = runtime.block_on(build(&server.url(), codec, true));
        runtime.block_on(wait_until_near_tier_serves(&cache, &server));
        check_all(&cache, &runtime, 24);
    }
}

/// Waits until a second read is served without a command reaching Redis.
async fn wait_until_near_tier_serves(cache: &Cache, server: &harness::RedisServer) {
    #[redis_cached(key = "warm", ttl = 60, cache = cache)]
    async fn warm(cache: &Cache) -> u8 {
        1
    }
    // One connection for the counts, so that only the cache's own commands move them.
    let mut redis = server.connection().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        warm(cache).await;
        let before = commands(&mut redis).await;
        warm(cache).await;
        if commands(&mut redis).await == before {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the near tier never served a hit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Commands the server ran, what counting sends aside.
async fn commands(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    harness::command_calls_on(redis).await.values().sum()
}

/// A cached function whose return type a `macro_rules!` macro passes on as a `ty` fragment,
/// which reaches the attribute wrapped in an invisible group.
macro_rules! declared_with {
    ($name:ident, $ret:ty) => {
        #[redis_cached(key = "declared:<id>", ttl = 60, cache = cache)]
        async fn $name(cache: &Cache, runs: &AtomicU64, id: u64, v: $ret) -> $ret {
            runs.fetch_add(1, Ordering::SeqCst);
            v
        }
    };
}

declared_with!(declared_option, Option<u64>);
declared_with!(declared_result, Result<u64, String>);

/// The return type's shape is read through a macro's group: `None` and `Err` are returned,
/// not stored, as for the same type written out; `Some` and `Ok` are stored.
#[tokio::test]
async fn a_return_type_passed_through_a_macro_keeps_its_shape() {
    let cache = support::mem_cache().await;
    let runs = AtomicU64::new(0);
    for _ in 0..2 {
        assert_eq!(declared_option(&cache, &runs, 1, None).await, None);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "None is not stored");
    for _ in 0..2 {
        assert_eq!(
            declared_result(&cache, &runs, 2, Err("down".into())).await,
            Err("down".into())
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 4, "Err is not stored");
    assert_eq!(declared_option(&cache, &runs, 3, Some(3)).await, Some(3));
    assert_eq!(declared_option(&cache, &runs, 3, Some(4)).await, Some(3));
    assert_eq!(runs.load(Ordering::SeqCst), 5, "Some is stored");
}
