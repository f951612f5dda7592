//! How many commands a cached call sends to Redis, counted on the server.
//!
//! Each test starts its own `redis-server`, so no other test's traffic is counted, and
//! watches it with `MONITOR`, which lists every command a client sent, in the order the
//! server ran them. Commands a Lua script runs appear there too, tagged `lua` instead of a
//! client address, and are not round trips: they are left out. A sentinel `ECHO` from a
//! control connection marks the end of each measured window, so a window holds exactly the
//! commands sent before it closed. `INFO commandstats` cross-checks the `EVALSHA` and
//! `UNLINK` counts.
//!
//! The first call of each script on a fresh server costs a `NOSCRIPT` reply and a
//! `SCRIPT LOAD`, and the cache's connection is set up on first use: a warm-up runs every
//! path once before anything is measured.

mod harness;

use harness::RedisServer;
use redis_cached::{Cache, invalidates, redis_cached};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

/// `runs` counts the body's runs for one test (tests run concurrently).
#[redis_cached(key = "profile:<id>", ttl = 60, cache = cache)]
async fn profile(cache: &Cache, runs: &AtomicUsize, id: u64) -> Profile {
    runs.fetch_add(1, Ordering::SeqCst);
    Profile {
        id,
        name: format!("user {id}"),
    }
}

#[invalidates("profile:<id>", "profiles:all", "team:<team>:members", cache = cache)]
async fn rename(cache: &Cache, id: u64, team: &str) {
    let _ = (id, team);
}

/// One command as `MONITOR` showed it.
#[derive(Debug)]
struct Seen {
    /// `127.0.0.1:PORT`, or `lua` for a command run by a script.
    client: String,
    /// Lower-cased command name.
    name: String,
}

/// A `MONITOR` connection and a control connection that closes measurement windows.
struct Recorder {
    monitor: BufReader<TcpStream>,
    control: redis::aio::MultiplexedConnection,
    control_addr: String,
    sentinels: u64,
}

impl Recorder {
    async fn start(server: &RedisServer) -> Recorder {
        let mut control = server.connection().await;
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut control)
            .await
            .unwrap();
        let control_addr = field(&info, "addr")
            .expect("CLIENT INFO has addr=")
            .to_owned();

        let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut monitor = BufReader::new(stream);
        let mut ok = String::new();
        monitor.read_line(&mut ok).await.unwrap();
        assert_eq!(ok.trim_end(), "+OK", "MONITOR refused");

        let mut recorder = Recorder {
            monitor,
            control,
            control_addr,
            sentinels: 0,
        };
        recorder.window().await;
        recorder
    }

    /// The commands clients other than the control connection sent since the last window
    /// closed (script-internal commands excluded), and closes this one.
    async fn window(&mut self) -> Vec<String> {
        self.sentinels += 1;
        let sentinel = format!("round-trips-sentinel-{}", self.sentinels);
        let _: String = redis::cmd("ECHO")
            .arg(&sentinel)
            .query_async(&mut self.control)
            .await
            .unwrap();
        let mut sent = Vec::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.monitor.read_line(&mut line))
                    .await
                    .expect("MONITOR shows the sentinel within 10 s")
                    .unwrap();
            assert!(read > 0, "the MONITOR connection closed");
            let seen = parse(&line).unwrap_or_else(|| panic!("unexpected MONITOR line {line:?}"));
            if seen.client == self.control_addr {
                if line.contains(&sentinel) {
                    return sent;
                }
            } else if seen.client != "lua" {
                sent.push(seen.name);
            }
        }
    }

    /// `INFO commandstats` as command name -> calls, on the control connection.
    async fn command_calls(&mut self) -> HashMap<String, u64> {
        harness::command_calls_on(&mut self.control).await
    }

    /// Runs `op` in a window of its own: the commands it sent, checked against the
    /// server's own count of `EVALSHA` and `UNLINK` calls.
    async fn measure(&mut self, op: impl Future<Output = ()>) -> Vec<String> {
        let before = self.command_calls().await;
        self.window().await;
        op.await;
        let sent = self.window().await;
        let after = self.command_calls().await;
        for name in ["evalsha", "unlink"] {
            let delta =
                after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
            let seen = sent.iter().filter(|sent| *sent == name).count() as u64;
            assert_eq!(
                delta, seen,
                "INFO commandstats and MONITOR disagree on {name}: {sent:?}"
            );
        }
        sent
    }
}

/// `value` of `name=value` in a `CLIENT INFO` line.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// `+1700000000.123456 [0 127.0.0.1:5000] "GET" "key"` (or `[0 lua]`, or
/// `[0 unix:/path]`).
fn parse(line: &str) -> Option<Seen> {
    let rest = line.strip_prefix('+')?;
    let (_, rest) = rest.split_once(" [")?;
    let (source, rest) = rest.split_once("] ")?;
    let (_db, client) = source.split_once(' ')?;
    let name = rest.trim_start().strip_prefix('"')?.split('"').next()?;
    Some(Seen {
        client: client.to_owned(),
        name: name.to_ascii_lowercase(),
    })
}

/// Warms every path up (script loads, the connection's hello), then measures a miss, a
/// hit and a three-key invalidation; returns their commands.
async fn measure_paths(cache: &Cache, recorder: &mut Recorder) -> [Vec<String>; 3] {
    // Warm-up on other keys: a miss (FETCH and FILL scripts loaded), a hit, an invalidation.
    let runs = AtomicUsize::new(0);
    profile(cache, &runs, 1).await;
    profile(cache, &runs, 1).await;
    rename(cache, 1, "a").await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "warm-up: one miss, one hit");

    let miss = recorder
        .measure(async {
            assert_eq!(profile(cache, &runs, 42).await.id, 42);
        })
        .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "a miss runs the body");

    let hit = recorder
        .measure(async {
            assert_eq!(profile(cache, &runs, 42).await.name, "user 42");
        })
        .await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "a hit does not run the body"
    );

    let invalidation = recorder
        .measure(async {
            rename(cache, 42, "blue").await;
        })
        .await;
    [miss, hit, invalidation]
}

#[tokio::test]
async fn with_fill_leases_a_hit_is_one_round_trip_and_a_miss_two() {
    let server = RedisServer::start();
    let mut recorder = Recorder::start(&server).await;
    let cache = Cache::builder(&server.url()).build().await.unwrap();

    let [miss, hit, invalidation] = measure_paths(&cache, &mut recorder).await;

    // The lookup is one native `SET .. NX GET` from Redis 7.0 on (and on every Valkey);
    // before 7.0, where `SET` cannot combine `NX` and `GET`, it is the `FETCH` script.
    let lookup = harness::lookup_command(&mut server.connection().await).await;
    assert_eq!(
        hit,
        [lookup],
        "a hit is one lookup (which takes a lease on a miss)"
    );
    assert!(
        miss.len() <= 2,
        "a miss is at most two round trips: {miss:?}"
    );
    assert_eq!(
        miss,
        [lookup, "evalsha"],
        "a miss is the lookup, then the FILL script"
    );
    assert_eq!(invalidation, ["unlink"], "three keys, one UNLINK");
}

/// With tombstones the lookup is the `FETCH` script, still one round trip: a hit is one
/// `EVALSHA`, a miss two (lookup, fill), and so is the miss that replaces a tombstone. The
/// invalidation writes its three tombstones in one pipeline.
#[tokio::test]
async fn with_tombstones_a_hit_is_one_script_call_and_a_miss_after_an_invalidation_two() {
    let server = RedisServer::start();
    let mut recorder = Recorder::start(&server).await;
    let cache = Cache::builder(&server.url())
        .tombstones(Duration::from_secs(60))
        .build()
        .await
        .unwrap();

    let [miss, hit, invalidation] = measure_paths(&cache, &mut recorder).await;

    assert_eq!(hit, ["evalsha"]);
    assert_eq!(miss, ["evalsha", "evalsha"]);
    assert_eq!(
        invalidation,
        ["set", "set", "set"],
        "one pipeline of three SETs"
    );
    let runs = AtomicUsize::new(0);
    let tombstoned = recorder
        .measure(async {
            assert_eq!(profile(&cache, &runs, 42).await.id, 42);
        })
        .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a miss");
    assert_eq!(tombstoned, ["evalsha", "evalsha"]);
}

#[tokio::test]
async fn without_fill_leases_a_hit_is_one_get_and_a_miss_get_then_set() {
    let server = RedisServer::start();
    let mut recorder = Recorder::start(&server).await;
    let cache = Cache::builder(&server.url())
        .without_fill_leases()
        .build()
        .await
        .unwrap();

    let [miss, hit, invalidation] = measure_paths(&cache, &mut recorder).await;

    assert_eq!(hit, ["get"]);
    assert_eq!(miss, ["get", "set"]);
    assert_eq!(invalidation, ["unlink"]);
}

#[tokio::test]
async fn an_invalidation_deletes_all_three_keys_with_one_unlink() {
    let server = RedisServer::start();
    let mut recorder = Recorder::start(&server).await;
    let cache = Cache::builder(&server.url()).build().await.unwrap();
    rename(&cache, 0, "warm-up").await;

    let mut raw = server.connection().await;
    let keys = ["profile:7", "profiles:all", "team:red:members"];
    for key in keys {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("x")
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    // The three SETs close in this window, not the measured one.
    recorder.window().await;

    let sent = recorder
        .measure(async {
            rename(&cache, 7, "red").await;
        })
        .await;
    assert_eq!(sent, ["unlink"]);
    let left: u64 = redis::cmd("EXISTS")
        .arg(&keys)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(left, 0, "all three keys are gone");
}

/// In a `memo` scope, the second call of a key sends nothing, after a hit as after a miss;
/// after an invalidation in the scope it looks the key up again. Mutation: no memo lookup
/// (`Request::recall` returning `None`): a second lookup in each window.
#[tokio::test]
async fn in_a_memo_scope_a_repeated_call_makes_no_round_trip() {
    let server = RedisServer::start();
    let mut recorder = Recorder::start(&server).await;
    let cache = Cache::builder(&server.url()).build().await.unwrap();
    let [_, hit, _] = measure_paths(&cache, &mut recorder).await;
    let lookup = hit[0].clone();
    let runs = AtomicUsize::new(0);
    profile(&cache, &runs, 44).await;

    let hits = recorder
        .measure(redis_cached::memo(async {
            let first = profile(&cache, &runs, 44).await;
            assert_eq!(profile(&cache, &runs, 44).await, first);
        }))
        .await;
    assert_eq!(hits, [lookup.as_str()], "one lookup for two calls");

    let misses = recorder
        .measure(redis_cached::memo(async {
            profile(&cache, &runs, 43).await;
            profile(&cache, &runs, 43).await;
            rename(&cache, 43, "blue").await;
            profile(&cache, &runs, 43).await;
        }))
        .await;
    assert_eq!(
        misses,
        [
            lookup.as_str(),
            "evalsha",
            "unlink",
            lookup.as_str(),
            "evalsha"
        ],
        "a miss, a memo hit, the invalidation, a miss"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
