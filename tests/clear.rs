//! `Cache::clear` and `Cache::clear_function` against real servers: one server, a Cluster
//! (three primaries), Sentinel and `mem://`; what they delete and what they leave, a fill in
//! flight at clear time, clearing under load, and the cost of clearing 100,000 keys
//! (printed, `--nocapture`).

mod harness;
mod support;

use harness::RedisServer;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Error, Outcome, redis_cached, with_outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::keys_matching;

/// A source of truth: one version for all its data; bodies count their reads.
#[derive(Default)]
struct Source {
    version: AtomicU64,
    reads: AtomicUsize,
}

impl Source {
    fn read(&self) -> u64 {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.version.load(Ordering::SeqCst)
    }

    /// A write: the next version.
    fn write(&self) -> u64 {
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn current(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}

/// Tagged: a tag key per team under the prefix too.
#[redis_cached(key = "user:<id>", ttl = 600, tags = ["team:<team>"], cache = cache)]
async fn profile(cache: &Cache, source: &Source, team: u64, id: u64) -> String {
    format!("user {id} v{}", source.read())
}

/// A prefix-sibling of `profile`'s template: `user:<id>:posts`.
#[redis_cached(key = "user:<id>:posts", ttl = 600, cache = cache)]
async fn posts(cache: &Cache, source: &Source, id: u64) -> String {
    format!("posts of {id} v{}", source.read())
}

/// A body that runs long enough to clear while it runs.
#[redis_cached(key = "slow:<id>", ttl = 600, cache = cache)]
async fn slow(cache: &Cache, source: &Source, id: u64) -> u64 {
    let version = source.read();
    tokio::time::sleep(Duration::from_millis(800)).await;
    version + id
}

#[redis_cached(key = "load:<id>", ttl = 600, cache = cache)]
async fn loaded(cache: &Cache, source: &Source, id: u64) -> (u64, u64) {
    (id, source.read())
}

/// Keys with a string part: a long one is stored in its digest form.
#[redis_cached(key = "note:<name>:body", ttl = 600, cache = cache)]
async fn note(cache: &Cache, name: &str) -> String {
    format!("note {name}")
}

/// Cleared by one test only, which counts its cleared keys.
#[redis_cached(key = "counted:<id>", ttl = 600, cache = cache)]
async fn counted(cache: &Cache, id: u64) -> u64 {
    id
}

/// Two functions that only their module tells apart.
mod east {
    use redis_cached::{Cache, redis_cached};

    #[redis_cached(key = "east:<id>", ttl = 600, cache = cache)]
    pub async fn twin(cache: &Cache, id: u64) -> u64 {
        id
    }
}

mod west {
    use redis_cached::{Cache, redis_cached};

    #[redis_cached(key = "west:<id>", ttl = 600, cache = cache)]
    pub async fn twin(cache: &Cache, id: u64) -> u64 {
        id
    }
}

const TEAMS: u64 = 5;

/// `profile` and `posts` of each id: two entries an id, and `TEAMS` tag keys.
async fn fill(cache: &Cache, source: &Source, ids: std::ops::Range<u64>) {
    for id in ids {
        profile(cache, source, id % TEAMS, id).await;
        posts(cache, source, id).await;
    }
}

async fn profile_outcome(cache: &Cache, source: &Source, id: u64) -> Option<Outcome> {
    with_outcome(profile(cache, source, id % TEAMS, id)).await.1
}

async fn posts_outcome(cache: &Cache, source: &Source, id: u64) -> Option<Outcome> {
    with_outcome(posts(cache, source, id)).await.1
}

async fn connect(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the server answers")
}

async fn exists(redis: &mut MultiplexedConnection, key: &str) -> bool {
    let count: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(redis)
        .await
        .expect("EXISTS");
    count == 1
}

/// Every key under `prefix` on every primary of the shared cluster, by primary.
async fn cluster_keys(prefix: &str) -> BTreeMap<usize, Vec<String>> {
    let cluster = support::shared_cluster();
    let mut keys = BTreeMap::new();
    for primary in cluster.primaries() {
        let found = keys_matching(&mut cluster.connection(primary).await, prefix).await;
        keys.insert(primary, found);
    }
    keys
}

fn is_tag(key: &str) -> bool {
    key.contains(r"\@team:")
}

// ---------------------------------------------------------------------------------------
// One server.

/// Every key under the prefix goes (entries of both functions, tag versions), keys of
/// another prefix stay, even one that an unescaped pattern (`cache*[1]:*`) would match.
#[tokio::test]
async fn clear_deletes_every_key_under_its_prefix_and_no_other() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = Cache::builder(&url)
        .prefix("cache*[1]:")
        .build()
        .await
        .expect("connects");
    let other = Cache::builder(&url)
        .prefix("cachex1:")
        .build()
        .await
        .expect("connects");
    let source = Source::default();
    fill(&cache, &source, 0..40).await;
    fill(&other, &source, 0..20).await;
    let mut redis = server.connection().await;
    let () = redis::cmd("SET")
        .arg("unrelated")
        .arg("1")
        .query_async(&mut redis)
        .await
        .expect("SET");
    let before = keys_matching(&mut redis, "cache*[1]:").await;
    assert_eq!(before.len(), 40 * 2 + TEAMS as usize, "{before:?}");
    assert_eq!(
        before.iter().filter(|key| is_tag(key)).count(),
        TEAMS as usize
    );
    let others_before = keys_matching(&mut redis, "cachex1:").await;
    assert_eq!(others_before.len(), 20 * 2 + TEAMS as usize);

    let deleted = cache.clear().await.expect("cleared");

    assert_eq!(deleted, before.len() as u64);
    assert_eq!(
        keys_matching(&mut redis, "cache*[1]:").await,
        Vec::<String>::new()
    );
    for key in &before {
        assert!(!exists(&mut redis, key).await, "{key} survived the clear");
    }
    assert_eq!(keys_matching(&mut redis, "cachex1:").await, others_before);
    assert!(exists(&mut redis, "unrelated").await);
    // The next calls are misses here, hits on the other prefix.
    assert_eq!(
        profile_outcome(&cache, &source, 3).await,
        Some(Outcome::Miss)
    );
    assert_eq!(posts_outcome(&cache, &source, 3).await, Some(Outcome::Miss));
    assert_eq!(
        profile_outcome(&other, &source, 3).await,
        Some(Outcome::Hit)
    );
    // Nothing left to delete but what was just filled.
    assert_eq!(cache.clear().await.expect("cleared"), 3);
}

/// `clear_function` deletes its function's entries only: `user:<id>` leaves
/// `user:<id>:posts` and the shared tag keys, and the short name, the full path and a
/// longer suffix all name it.
#[tokio::test]
async fn clear_function_deletes_only_that_functions_entries() {
    let cache = support::redis_cache("clear_function").await;
    let prefix = cache.prefix().to_owned();
    let source = Source::default();
    fill(&cache, &source, 0..30).await;
    let mut redis = harness::raw_connection().await;
    assert_eq!(
        keys_matching(&mut redis, &prefix).await.len(),
        30 * 2 + TEAMS as usize
    );

    assert_eq!(cache.clear_function("profile").await.expect("cleared"), 30);

    let left = keys_matching(&mut redis, &prefix).await;
    let posts_keys: Vec<&String> = left.iter().filter(|key| key.ends_with(":posts")).collect();
    assert_eq!(posts_keys.len(), 30, "{left:?}");
    assert_eq!(
        left.iter().filter(|key| is_tag(key)).count(),
        TEAMS as usize
    );
    assert_eq!(left.len(), 30 + TEAMS as usize, "{left:?}");
    assert_eq!(
        profile_outcome(&cache, &source, 7).await,
        Some(Outcome::Miss)
    );
    assert_eq!(posts_outcome(&cache, &source, 7).await, Some(Outcome::Hit));

    // The full path, and a suffix of whole segments.
    assert_eq!(
        cache.clear_function("clear::posts").await.expect("cleared"),
        30
    );
    assert_eq!(
        cache
            .clear_function("clear::profile")
            .await
            .expect("cleared"),
        1
    );
    assert_eq!(cache.clear_function("posts").await.expect("cleared"), 0);
    let left = keys_matching(&mut redis, &prefix).await;
    assert!(left.iter().all(|key| is_tag(key)), "{left:?}");
    assert_eq!(posts_outcome(&cache, &source, 7).await, Some(Outcome::Miss));
}

#[tokio::test]
async fn a_name_that_ends_several_paths_is_refused_with_the_candidates() {
    let cache = support::mem_cache().await;
    east::twin(&cache, 1).await;
    west::twin(&cache, 1).await;
    let error = cache.clear_function("twin").await.expect_err("ambiguous");
    match &error {
        Error::AmbiguousFunction { name, candidates } => {
            assert_eq!(name, "twin");
            assert_eq!(candidates, &["clear::east::twin", "clear::west::twin"]);
        }
        other => panic!("not AmbiguousFunction: {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("clear::east::twin") && message.contains("clear::west::twin"),
        "{message}"
    );
    // Nothing was deleted; one more segment resolves it.
    assert_eq!(
        with_outcome(east::twin(&cache, 1)).await.1,
        Some(Outcome::Hit)
    );
    assert_eq!(
        cache.clear_function("east::twin").await.expect("cleared"),
        1
    );
    assert_eq!(
        with_outcome(east::twin(&cache, 1)).await.1,
        Some(Outcome::Miss)
    );
    assert_eq!(
        with_outcome(west::twin(&cache, 1)).await.1,
        Some(Outcome::Hit)
    );
}

#[tokio::test]
async fn an_unknown_name_is_refused_with_the_closest_functions() {
    let cache = support::mem_cache().await;
    for name in [
        "profil",
        "rofile",
        "clear::profiles",
        "nothing_like_it::at_all",
    ] {
        let error = cache.clear_function(name).await.expect_err("unknown");
        let Error::UnknownFunction {
            name: asked,
            closest,
        } = &error
        else {
            panic!("not UnknownFunction: {error:?}");
        };
        assert_eq!(asked, name);
        assert!(closest.len() <= 3, "{closest:?}");
        // Only names close to it are suggested.
        assert_eq!(
            closest.is_empty(),
            name == "nothing_like_it::at_all",
            "{closest:?}"
        );
        if name != "nothing_like_it::at_all" {
            assert_eq!(closest[0], "clear::profile", "{name}: {closest:?}");
            assert!(error.to_string().contains("clear::profile"), "{error}");
        }
        assert!(error.to_string().contains(name), "{error}");
    }
}

/// A fill whose body runs when the clear starts does not store: its lease was in the key,
/// and the clear deleted it. The next call is a miss and reads the source again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_in_flight_when_the_clear_starts_does_not_store() {
    let cache = support::redis_cache("in_flight").await;
    let key = format!("{}slow:1", cache.prefix());
    let source = Arc::new(Source::default());
    let filling = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { slow(&cache, &source, 1).await }
    });
    let mut redis = harness::raw_connection().await;
    let started = Instant::now();
    // The lease is taken before the body runs: wait for both.
    while source.reads.load(Ordering::SeqCst) == 0 || !exists(&mut redis, &key).await {
        assert!(started.elapsed() < Duration::from_secs(5), "no fill began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    source.write();

    assert_eq!(cache.clear().await.expect("cleared"), 1, "the lease");

    // The body had read version 0; its caller gets it, the cache does not.
    assert_eq!(filling.await.expect("the call ends"), 1);
    assert!(
        !exists(&mut redis, &key).await,
        "the fill stored after the clear"
    );
    let (value, outcome) = with_outcome(slow(&cache, &source, 1)).await;
    assert_eq!((value, outcome), (2, Some(Outcome::Miss)));
}

/// A key longer than `max_key_len` is stored as its literal head, `\#` and a digest: the
/// template's exact pattern would miss it, `clear_function` does not.
#[tokio::test]
async fn clear_function_deletes_keys_in_their_digest_form() {
    let cache = support::shared_builder("digest")
        .max_key_len(80)
        .build()
        .await
        .expect("the shared redis-server answers");
    let prefix = cache.prefix().to_owned();
    let long = "n".repeat(100);
    note(&cache, &long).await;
    note(&cache, "short").await;
    let mut redis = harness::raw_connection().await;
    let keys = keys_matching(&mut redis, &prefix).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().any(|key| key.contains(r"\#")),
        "no digest form: {keys:?}"
    );
    assert!(keys.iter().any(|key| key.ends_with(":body")), "{keys:?}");

    assert_eq!(cache.clear_function("note").await.expect("cleared"), 2);

    assert_eq!(
        keys_matching(&mut redis, &prefix).await,
        Vec::<String>::new()
    );
    assert_eq!(
        with_outcome(note(&cache, &long)).await.1,
        Some(Outcome::Miss)
    );
}

/// While Redis is unreachable, `clear` says so, however many calls went through their
/// bodies meanwhile (the breaker open or not); once it answers, `clear` works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_returns_the_error_while_redis_is_unreachable() {
    let mut server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix("down:")
        .build()
        .await
        .expect("connects");
    let source = Source::default();
    fill(&cache, &source, 0..10).await;
    server.kill();
    for _ in 0..2 {
        let error = cache.clear().await.expect_err("Redis is down");
        assert!(
            matches!(error, Error::Redis(_) | Error::Timeout(_)),
            "{error:?}"
        );
        assert!(cache.clear_function("profile").await.is_err());
        // Calls run their bodies and open the breaker.
        for id in 0..5 {
            profile(&cache, &source, id % TEAMS, id).await;
        }
    }
    server.restart();
    let started = Instant::now();
    let deleted = loop {
        match cache.clear().await {
            Ok(deleted) => break deleted,
            Err(error) => {
                assert!(started.elapsed() < Duration::from_secs(10), "{error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The server restarted empty or from its snapshot: whatever it holds goes.
    let mut redis = server.connection().await;
    assert!(keys_matching(&mut redis, "down:").await.is_empty());
    eprintln!("cleared {deleted} keys after the restart");
}

/// Each clear counts its keys in `redis_cached_cleared_keys_total`, labelled `*` or with
/// the function's path.
#[tokio::test]
async fn cleared_keys_are_counted_by_function() {
    let handle = prometheus();
    // Built after the recorder is installed: the build describes the metrics.
    let cache = support::mem_cache().await;
    for id in 0..7 {
        counted(&cache, id).await;
    }
    let count = |function: &str| {
        let line = format!("redis_cached_cleared_keys_total{{function=\"{function}\"}} ");
        handle
            .render()
            .lines()
            .find_map(|row| row.strip_prefix(&line).map(str::to_owned))
            .map_or(0, |value| value.parse::<u64>().expect("a count"))
    };
    let all = count("*");
    assert_eq!(cache.clear_function("counted").await.expect("cleared"), 7);
    assert_eq!(count("clear::counted"), 7);
    counted(&cache, 1).await;
    assert_eq!(cache.clear().await.expect("cleared"), 1);
    // Other tests clear at the same time.
    assert!(count("*") > all);
    assert!(
        handle
            .render()
            .contains("# HELP redis_cached_cleared_keys_total"),
        "not described"
    );
}

/// The process-wide Prometheus recorder of this binary, installed once.
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this binary")
    })
}

/// While Redis is down, calls on one key share one body run (a degraded flight). A clear
/// fails then, but this process forgets those flights all the same: a call that starts
/// after it runs a body of its own, which reads the source as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_clear_does_not_join_a_degraded_flight_that_began_before() {
    let mut server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix("degraded:")
        .build()
        .await
        .expect("connects");
    server.kill();
    let source = Arc::new(Source::default());
    let before = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { slow(&cache, &source, 1).await }
    });
    let started = Instant::now();
    while source.reads.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the body never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    source.write();
    assert!(cache.clear().await.is_err(), "Redis is down");

    let (value, outcome) = with_outcome(slow(&cache, &source, 1)).await;
    assert_eq!(
        (value, outcome),
        (2, Some(Outcome::Bypass)),
        "joined the old flight"
    );
    assert_eq!(before.await.expect("the first call ends"), 1);
}

// ---------------------------------------------------------------------------------------
// Other topologies.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_deletes_keys_on_every_primary_of_a_cluster() {
    let cache = support::cluster_cache("clear_cluster").await;
    let prefix = cache.prefix().to_owned();
    let source = Source::default();
    fill(&cache, &source, 0..300).await;
    let before = cluster_keys(&prefix).await;
    assert_eq!(before.len(), 3, "three primaries");
    assert!(before.values().all(|keys| keys.len() > 50), "{before:?}");
    let total: usize = before.values().map(Vec::len).sum();
    assert_eq!(total, 300 * 2 + TEAMS as usize);

    assert_eq!(cache.clear().await.expect("cleared"), total as u64);

    let after = cluster_keys(&prefix).await;
    assert!(after.values().all(Vec::is_empty), "{after:?}");
    let keys: Vec<String> = before.into_values().flatten().collect();
    let existing = support::shared_cluster().existing(&keys).await;
    assert!(!existing.contains(&true));
    assert_eq!(
        profile_outcome(&cache, &source, 12).await,
        Some(Outcome::Miss)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_function_on_a_cluster_deletes_that_functions_entries_on_every_primary() {
    let cache = support::cluster_cache("clear_function_cluster").await;
    let prefix = cache.prefix().to_owned();
    let source = Source::default();
    fill(&cache, &source, 0..300).await;

    assert_eq!(cache.clear_function("profile").await.expect("cleared"), 300);

    let after = cluster_keys(&prefix).await;
    for keys in after.values() {
        assert!(
            keys.iter()
                .all(|key| key.ends_with(":posts") || is_tag(key)),
            "{keys:?}"
        );
        assert!(keys.iter().filter(|key| key.ends_with(":posts")).count() > 50);
    }
    let total: usize = after.values().map(Vec::len).sum();
    assert_eq!(total, 300 + TEAMS as usize);
    assert_eq!(
        profile_outcome(&cache, &source, 12).await,
        Some(Outcome::Miss)
    );
    assert_eq!(posts_outcome(&cache, &source, 12).await, Some(Outcome::Hit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_on_sentinel_deletes_the_primarys_keys() {
    let sentinel = support::shared_sentinel();
    let cache = support::sentinel_cache("clear_sentinel").await;
    let prefix = cache.prefix().to_owned();
    let source = Source::default();
    fill(&cache, &source, 0..20).await;
    let mut primary = connect(&sentinel.primary().url()).await;
    assert_eq!(
        keys_matching(&mut primary, &prefix).await.len(),
        20 * 2 + TEAMS as usize
    );

    assert_eq!(cache.clear_function("posts").await.expect("cleared"), 20);
    assert_eq!(cache.clear().await.expect("cleared"), 20 + TEAMS);

    assert!(keys_matching(&mut primary, &prefix).await.is_empty());
    assert_eq!(
        profile_outcome(&cache, &source, 4).await,
        Some(Outcome::Miss)
    );
}

#[tokio::test]
async fn clear_and_clear_function_on_mem() {
    let cache = support::mem_cache().await;
    let source = Source::default();
    fill(&cache, &source, 0..20).await;
    assert_eq!(cache.clear_function("posts").await.expect("cleared"), 20);
    assert_eq!(posts_outcome(&cache, &source, 4).await, Some(Outcome::Miss));
    assert_eq!(
        profile_outcome(&cache, &source, 4).await,
        Some(Outcome::Hit)
    );
    // 20 profiles, the tags, and the posts entry just filled.
    assert_eq!(cache.clear().await.expect("cleared"), 20 + TEAMS + 1);
    assert_eq!(
        profile_outcome(&cache, &source, 4).await,
        Some(Outcome::Miss)
    );
    assert_eq!(posts_outcome(&cache, &source, 4).await, Some(Outcome::Miss));
    assert_eq!(cache.clear().await.expect("cleared"), 2 + 1);
}

// ---------------------------------------------------------------------------------------
// Under load.

/// 4 callers a key over 1,000 keys call in a loop; the source changes (without an
/// invalidation) and the cache is cleared while they call. Every call that starts after
/// `clear` returned gets the current version (until 1,000 such calls were checked, however
/// long a loaded machine takes), and so does one more read of each key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clear_under_load_every_read_is_current() {
    const KEYS: u64 = 1_000;
    const CALLERS: u64 = 4;
    let cache = support::shared_builder("clear_load")
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the shared redis-server answers");
    let source = Arc::new(Source::default());
    for id in 0..KEYS {
        loaded(&cache, &source, id).await;
    }
    let cleared = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (checked, stale) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut callers = Vec::new();
    for id in 0..KEYS {
        for _ in 0..CALLERS {
            let (cache, source) = (cache.clone(), source.clone());
            let (cleared, stop) = (cleared.clone(), stop.clone());
            let (checked, stale) = (checked.clone(), stale.clone());
            callers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let after_clear = cleared.load(Ordering::SeqCst);
                    let (_, version) = loaded(&cache, &source, id).await;
                    if after_clear {
                        checked.fetch_add(1, Ordering::Relaxed);
                        if version != source.current() {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let version = source.write();
    let started = Instant::now();
    let deleted = cache.clear().await.expect("cleared");
    let took = started.elapsed();
    cleared.store(true, Ordering::SeqCst);
    support::eventually(
        Duration::from_secs(60),
        "the callers called after the clear",
        || {
            let checked = checked.clone();
            async move { checked.load(Ordering::Relaxed) >= KEYS }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.await.expect("a caller ends");
    }
    eprintln!(
        "clear under load: {deleted} keys in {took:?}; {} calls checked after it",
        checked.load(Ordering::Relaxed)
    );
    assert!(deleted >= 1, "the entries existed");
    assert_eq!(
        stale.load(Ordering::Relaxed),
        0,
        "calls after the clear got old versions"
    );
    let mut old = BTreeSet::new();
    for id in 0..KEYS {
        if loaded(&cache, &source, id).await.1 != version {
            old.insert(id);
        }
    }
    assert!(
        old.is_empty(),
        "keys read an old version after the clear: {old:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Cost.

const BULK: usize = 100_000;

/// `BULK` keys under `prefix`, 100 bytes each, written on `redis` in pipelines small
/// enough to answer within the connection's response timeout on a loaded machine.
async fn write_bulk(redis: &mut MultiplexedConnection, keys: &[String]) {
    let value = "x".repeat(100);
    for chunk in keys.chunks(1_000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("SET")
                .arg(key)
                .arg(&value)
                .arg("EX")
                .arg(600)
                .ignore();
        }
        let () = pipe.query_async(redis).await.expect("SET");
    }
}

fn bulk_keys(prefix: &str) -> Vec<String> {
    (0..BULK).map(|n| format!("{prefix}bulk:{n}")).collect()
}

fn report(topology: &str, deleted: u64, took: Duration) {
    eprintln!(
        "clear of {deleted} keys on {topology}: {took:?}, {:.0} keys/s",
        deleted as f64 / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_clear_of_100k_keys_on_one_server() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix("bulk:")
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("connects");
    let mut redis = server.connection().await;
    write_bulk(&mut redis, &bulk_keys("bulk:")).await;
    let started = Instant::now();
    let deleted = cache.clear().await.expect("cleared");
    report("one server", deleted, started.elapsed());
    assert_eq!(deleted, BULK as u64);
    let left: u64 = redis::cmd("DBSIZE")
        .query_async(&mut redis)
        .await
        .expect("DBSIZE");
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_clear_of_100k_keys_on_a_cluster() {
    let cluster = support::shared_cluster();
    let cache = support::cluster_builder("bulk")
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the cluster answers");
    let keys = bulk_keys(cache.prefix());
    let owners = cluster.slot_owners();
    let mut by_owner: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (key, slot) in keys.iter().zip(cluster.slots(&keys)) {
        by_owner
            .entry(owners[usize::from(slot)])
            .or_default()
            .push(key.clone());
    }
    for (owner, keys) in &by_owner {
        write_bulk(&mut cluster.connection(*owner).await, keys).await;
    }
    let started = Instant::now();
    let deleted = cache.clear().await.expect("cleared");
    report("a cluster of three primaries", deleted, started.elapsed());
    assert_eq!(deleted, BULK as u64);
    assert!(
        cluster_keys(cache.prefix())
            .await
            .values()
            .all(Vec::is_empty)
    );
}
