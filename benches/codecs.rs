//! Codecs and compression side by side, on the same values, in one run (BENCHMARKS.md,
//! "Codecs and compression"): no Redis, so only what a codec or a compressor costs.
//!
//! `cargo bench --bench codecs` prints three markdown tables, each time the median of 15
//! blocks of calls:
//! - codecs: bytes stored and encode + decode time of JSON, MessagePack (with field names)
//!   and postcard (the example custom codec), with ratios against JSON;
//! - compression: bytes and decompress + decode time of the JSON form of the example
//!   server's payloads and a 20 KiB document, plain, LZ4 (`lz4_flex`) and zstd (levels 1
//!   and 3);
//! - a `mem://` hit (lookup, decompress, decode) for each codec and with `compress_above`:
//!   what the library adds, the type-erased path of a custom codec included.
//!
//! `cargo test --benches` runs each measurement a few times only.

#[allow(dead_code)]
#[path = "../examples/postcard_codec.rs"]
mod postcard_codec;
#[path = "common/product.rs"]
mod product;

use postcard_codec::Postcard;
use product::{Product, product};
use redis_cached::codec::MessagePack;
use redis_cached::{Cache, CacheBuilder, redis_cached};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The example server's employee (examples/server/model.rs), as its API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: i64,
    name: String,
    email: String,
    department: String,
    title: String,
}

fn employee(id: i64) -> Employee {
    const NAMES: [&str; 5] = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Edsger Dijkstra",
        "Barbara Liskov",
    ];
    let name = NAMES[usize::try_from(id).unwrap_or(0) % NAMES.len()];
    Employee {
        id,
        name: name.into(),
        email: format!("{}.{id}@example.com", name.to_lowercase().replace(' ', ".")),
        department: "Engineering".into(),
        title: "Staff Engineer".into(),
    }
}

/// A department's list, as `GET /departments/{name}/employees` caches it.
fn department() -> Vec<Employee> {
    (1..=20).map(employee).collect()
}

/// A ~20 KiB JSON-like document: an article with sections, figures and metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Document {
    id: u64,
    title: String,
    authors: Vec<String>,
    sections: Vec<Section>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Section {
    heading: String,
    paragraphs: Vec<String>,
    figures: Vec<Figure>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Figure {
    url: String,
    caption: String,
    width: u32,
    height: u32,
    views: u64,
}

fn document() -> Document {
    const WORDS: [&str; 48] = [
        "cache",
        "latency",
        "replica",
        "eviction",
        "invalidation",
        "throughput",
        "lease",
        "cluster",
        "shard",
        "timeout",
        "payload",
        "codec",
        "stale",
        "refresh",
        "window",
        "the",
        "a",
        "of",
        "to",
        "and",
        "in",
        "is",
        "for",
        "on",
        "with",
        "when",
        "every",
        "request",
        "server",
        "client",
        "write",
        "read",
        "key",
        "value",
        "miss",
        "hit",
        "process",
        "deploy",
        "version",
        "failure",
        "retry",
        "budget",
        "p99",
        "memory",
        "network",
        "round",
        "trip",
        "bound",
    ];
    // A linear congruential generator: the same text on every run, without repeats a
    // compressor would find at once.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap_or(0) % bound
    };
    let mut sentence = |length: usize| {
        (0..length)
            .map(|_| match next(10) {
                0 => format!("{}", next(100_000)),
                _ => WORDS[next(WORDS.len())].to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    Document {
        id: 1,
        title: "Caching async functions in Redis without stampedes".into(),
        authors: vec!["Ada Lovelace".into(), "Grace Hopper".into()],
        sections: (1..=14u32)
            .map(|s| Section {
                heading: format!("{s}. {}", sentence(4)),
                paragraphs: (0..3).map(|_| format!("{}.", sentence(40))).collect(),
                figures: (1..=3u32)
                    .map(|f| Figure {
                        url: format!("https://cdn.example.com/articles/4242/figures/{s}-{f}.png"),
                        caption: sentence(8),
                        width: 1200,
                        height: 800 + f,
                        views: u64::from(s * 1000 + f),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The median time per call of `f`, over 15 blocks of calls after a warm-up.
fn time<R>(mut f: impl FnMut() -> R) -> Duration {
    let blocks = if measuring() { 15 } else { 2 };
    // Enough calls per block for about 20 ms.
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < Duration::from_millis(if measuring() { 20 } else { 1 }) {
        black_box(f());
        calls += 1;
    }
    let mut times: Vec<Duration> = (0..blocks)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                black_box(f());
            }
            started.elapsed() / calls
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn nanos(time: Duration) -> String {
    let ns = time.as_secs_f64() * 1e9;
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn ratio(value: f64, base: f64) -> String {
    format!("{:.2}", value / base)
}

/// Encodes and decodes `value` in each codec, through the same calls the library makes.
fn codecs<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let json = serde_json::to_vec(value).expect("encodes");
    let msgpack = rmp_serde::to_vec_named(value).expect("encodes");
    let postcard = postcard::to_allocvec(value).expect("encodes");
    assert_eq!(&serde_json::from_slice::<T>(&json).expect("decodes"), value);
    assert_eq!(
        &rmp_serde::from_slice::<T>(&msgpack).expect("decodes"),
        value
    );
    assert_eq!(
        &postcard::from_bytes::<T>(&postcard).expect("decodes"),
        value
    );
    let round_trip = |encode: &dyn Fn() -> Vec<u8>, decode: &dyn Fn(&[u8]) -> T| {
        let encode_time = time(encode);
        let bytes = encode();
        (bytes.len(), encode_time, time(|| decode(&bytes)))
    };
    let rows = [
        (
            "JSON",
            round_trip(&|| serde_json::to_vec(value).expect("encodes"), &|bytes| {
                serde_json::from_slice(bytes).expect("decodes")
            }),
            14,
        ),
        (
            "MessagePack",
            round_trip(
                &|| rmp_serde::to_vec_named(value).expect("encodes"),
                &|bytes| rmp_serde::from_slice(bytes).expect("decodes"),
            ),
            14,
        ),
        (
            "postcard",
            round_trip(
                &|| postcard::to_allocvec(value).expect("encodes"),
                &|bytes| postcard::from_bytes(bytes).expect("decodes"),
            ),
            18,
        ),
    ];
    let (json_len, json_encode, json_decode) = rows[0].1;
    for (codec, (len, encode, decode), trailer) in rows {
        println!(
            "| {name} | {codec} | {} ({}) | {} ({}) | {} ({}) |",
            len + trailer,
            ratio((len + trailer) as f64, (json_len + 14) as f64),
            nanos(encode),
            ratio(encode.as_secs_f64(), json_encode.as_secs_f64()),
            nanos(decode),
            ratio(decode.as_secs_f64(), json_decode.as_secs_f64()),
        );
    }
}

/// The JSON form of `value` plain, in LZ4 and in zstd: bytes, compression and
/// decompression + decode times.
fn compression<T: Serialize + DeserializeOwned>(name: &str, value: &T) {
    let json = serde_json::to_vec(value).expect("encodes");
    let decode = |bytes: &[u8]| serde_json::from_slice::<T>(bytes).expect("decodes");
    let plain = time(|| decode(&json));
    println!(
        "| {name} | plain | {} | - | {} (1.00) |",
        json.len() + 14,
        nanos(plain)
    );
    let lz4 = lz4_flex::block::compress(&json);
    let lz4_compress = time(|| lz4_flex::block::compress(&json));
    let lz4_hit = time(|| decode(&lz4_flex::block::decompress(&lz4, json.len()).expect("lz4")));
    println!(
        "| {name} | LZ4 | {} | {} | {} ({}) |",
        lz4.len() + 14 + 7,
        nanos(lz4_compress),
        nanos(lz4_hit),
        ratio(lz4_hit.as_secs_f64(), plain.as_secs_f64())
    );
    // Contexts made once and reused, as a library would keep them per thread.
    let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
    for level in [1, 3] {
        let mut compressor = zstd::bulk::Compressor::new(level).expect("zstd");
        let zstd = compressor.compress(&json).expect("zstd");
        let compress = time(|| compressor.compress(&json).expect("zstd"));
        let hit = time(|| decode(&decompressor.decompress(&zstd, json.len()).expect("zstd")));
        println!(
            "| {name} | zstd {level} | {} | {} | {} ({}) |",
            zstd.len() + 14 + 7,
            nanos(compress),
            nanos(hit),
            ratio(hit.as_secs_f64(), plain.as_secs_f64())
        );
    }
}

#[redis_cached(key = "count:<id>", ttl = 3600, cache = cache)]
async fn get_count(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "product:<id>", ttl = 3600, cache = cache)]
async fn get_product(cache: &Cache, id: u64) -> Product {
    product(id)
}

#[redis_cached(key = "document:<id>", ttl = 3600, cache = cache)]
async fn get_document(cache: &Cache, id: u64) -> Document {
    Document { id, ..document() }
}

/// A `mem://` hit of each value, for each codec and with compression.
fn mem_hits(runtime: &tokio::runtime::Runtime) {
    type Choose = fn(CacheBuilder) -> CacheBuilder;
    let caches: [(&str, Choose); 4] = [
        ("JSON", |builder| builder),
        ("MessagePack", |builder| builder.codec(MessagePack)),
        ("postcard (custom)", |builder| builder.codec(Postcard)),
        ("JSON, `compress_above(1024)`", |builder| {
            builder.compress_above(1024)
        }),
    ];
    for (name, choose) in caches {
        let cache = runtime
            .block_on(choose(Cache::builder("mem://")).build())
            .expect("mem:// opens");
        // Each filled first: then every call is a hit.
        runtime.block_on(get_count(&cache, 1));
        let u64_hit = time(|| runtime.block_on(get_count(&cache, black_box(1))));
        runtime.block_on(get_product(&cache, 1));
        let product_hit = time(|| runtime.block_on(get_product(&cache, black_box(1))));
        runtime.block_on(get_document(&cache, 1));
        let document_hit = time(|| runtime.block_on(get_document(&cache, black_box(1))));
        println!(
            "| {name} | {} | {} | {} |",
            nanos(u64_hit),
            nanos(product_hit),
            nanos(document_hit)
        );
    }
}

fn main() {
    let department = department();
    let document = document();
    println!("\n| value | codec | bytes stored (vs JSON) | encode (vs JSON) | decode (vs JSON) |");
    println!("|---|---|--:|--:|--:|");
    codecs("`u64`", &1_234_567u64);
    codecs("product (~1 KiB)", &product(42));
    codecs("document (~20 KiB)", &document);

    println!(
        "\n| value (JSON) | stored as | bytes stored | compress | decompress + decode (vs plain) |"
    );
    println!("|---|---|--:|--:|--:|");
    compression("employee", &employee(42));
    compression("department list (20 employees)", &department);
    compression("document (~20 KiB)", &document);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!("\n| `mem://` hit | `u64` | product | document |");
    println!("|---|--:|--:|--:|");
    mem_hits(&runtime);
}
