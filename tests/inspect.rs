//! `redis_cached::axum::inspect()` (feature `axum`): the inspection page nested at
//! `/admin/cache` of a real axum server on a free port, over a redis-server of its own,
//! driven over HTTP (reqwest) and rendered by headless Chromium.
//!
//! Each test calls cached functions of its own: the statistics are per function and
//! process-wide, and the tests of this binary run in parallel.
//!
//! Chromium (Debian's `chromium`) must be installed: `scripts/test` installs it. The
//! screenshot lands in `target/test-artifacts/inspect.png`.
#![cfg(feature = "axum")]

mod harness;

use harness::RedisServer;
use redis_cached::KeyKind;
use redis_cached::{Cache, CacheBuilder, NearCache, invalidates, redis_cached};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

// ---- The application under test ---------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    roles: Vec<String>,
}

#[redis_cached(key = "inspect:counted:<id>", ttl = 60, cache = cache)]
async fn counted(cache: &Cache, id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    id * 2
}

#[redis_cached(key = "inspect:profile:<id>", ttl = 60, cache = cache)]
async fn profile(cache: &Cache, id: u64) -> Profile {
    Profile {
        id,
        name: format!("user {id}"),
        roles: vec!["admin".into(), "ops".into()],
    }
}

/// Runs only once `gate` lets it: its lease is in the key until then.
#[redis_cached(key = "inspect:slow:<id>", ttl = 60, cache = cache)]
async fn slow(cache: &Cache, gate: &Semaphore, id: u64) -> String {
    let _permit = gate.acquire().await;
    format!("slow {id}")
}

#[redis_cached(key = "inspect:fresh:<id>", ttl = 60, stale = 30, cache = cache)]
async fn fresh(cache: &Cache, id: u64) -> String {
    format!("fresh {id}")
}

/// Its jitter is shown beside its TTL.
#[redis_cached(key = "inspect:jittered:<id>", ttl = 60, jitter = "12.5%", cache = cache)]
async fn jittered(cache: &Cache, id: u64) -> u64 {
    id
}

/// A name with markup in it: the page must print it as text.
#[redis_cached(key = "inspect:team:<id>", ttl = 60, tags = ["inspect-teams"], cache = cache)]
async fn team(cache: &Cache, id: u64) -> String {
    format!("<b>Team {id}</b> & <script>alert(1)</script>")
}

/// Never called: listed (with its target) because it is registered.
#[allow(dead_code)]
#[invalidates("inspect:profile:<id>")]
async fn rename(id: u64) {}

/// Serves the page nested at `/admin/cache`, as an application would; returns the base URL
/// of the page, the cache and the server (stopped when dropped).
async fn serve() -> (String, Cache, RedisServer) {
    serve_with(|builder| builder).await
}

/// [`serve`], with a cache `configure` adds to.
async fn serve_with(
    configure: impl FnOnce(CacheBuilder) -> CacheBuilder,
) -> (String, Cache, RedisServer) {
    let server = RedisServer::start();
    let cache = configure(Cache::builder(&server.url()).prefix("app:"))
        .build()
        .await
        .expect("the test's redis-server answers");
    let router =
        axum::Router::new().nest("/admin/cache", redis_cached::axum::inspect(cache.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/admin/cache"), cache, server)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

/// GETs `url`: its status and its body as JSON.
async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// GETs `url`: its body as text (the page).
async fn get_text(url: &str) -> String {
    let response = client().get(url).send().await.expect("the server answers");
    response.text().await.expect("a page")
}

async fn key_json(base: &str, key: &str) -> Value {
    let url = reqwest::Url::parse_with_params(&format!("{base}/key.json"), [("key", key)])
        .expect("a URL");
    let (status, body) = get_json(url.as_str()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The cached function whose path ends with `::name`, from `functions.json`.
fn function<'a>(functions: &'a Value, name: &str) -> &'a Value {
    functions["cached"]
        .as_array()
        .expect("a list of cached functions")
        .iter()
        .find(|function| {
            function["path"]
                .as_str()
                .is_some_and(|path| path.ends_with(&format!("::{name}")))
        })
        .unwrap_or_else(|| panic!("{name} is listed: {functions}"))
}

fn now_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(now.as_millis()).expect("ms fit")
}

// ---- JSON ---------------------------------------------------------------------------------

#[tokio::test]
async fn functions_json_shows_the_counts_of_the_calls_made() {
    let (base, cache, _server) = serve().await;
    for id in [1, 1, 1, 2, 2, 3] {
        counted(&cache, id).await;
    }
    let (status, functions) = get_json(&format!("{base}/functions.json")).await;
    assert_eq!(status, 200);
    assert_eq!(functions["backend"], "redis");
    assert_eq!(functions["prefix"], "app:");
    assert!(functions["near_eviction_lag"].is_null(), "no near tier");
    let counted = function(&functions, "counted");
    assert_eq!(counted["key"], "inspect:counted:<id>");
    assert_eq!(counted["ttl_s"], 60);
    assert_eq!(counted["version"], 1);
    let stats = &counted["stats"];
    assert_eq!(stats["misses"], 3, "{stats}");
    assert_eq!(stats["hits"], 3, "{stats}");
    assert_eq!(stats["bypasses"], 0, "{stats}");
    assert_eq!(stats["hit_ratio"], 0.5, "{stats}");
    // The body sleeps 5 ms: p50 and p99 within a bucket's width of it (or longer, on a
    // loaded machine), never less.
    let p50 = stats["body_p50_ms"].as_f64().expect("a body time");
    let p99 = stats["body_p99_ms"].as_f64().expect("a body time");
    assert!(p50 >= 4.5 && p99 >= p50, "{stats}");

    let rename = functions["invalidating"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|function| {
            function["path"]
                .as_str()
                .is_some_and(|path| path.ends_with("::rename"))
        })
        .expect("rename is listed");
    assert_eq!(rename["keys"], serde_json::json!(["inspect:profile:<id>"]));
    let team = function(&functions, "team");
    assert_eq!(team["tags"], serde_json::json!(["inspect-teams"]));
    assert_eq!(function(&functions, "fresh")["stale_s"], 30);
}

/// The attribute's `jitter` is listed with the TTL (`null` for the cache's), on the page
/// and in `functions.json`.
#[tokio::test]
async fn the_jitter_is_shown_beside_the_ttl() {
    let (base, cache, _server) = serve().await;
    jittered(&cache, 1).await;
    let (status, functions) = get_json(&format!("{base}/functions.json")).await;
    assert_eq!(status, 200);
    assert_eq!(function(&functions, "jittered")["jitter"], 0.125);
    assert!(function(&functions, "counted")["jitter"].is_null());
    let page = get_text(&base).await;
    assert!(page.contains("60 s, jitter 12.5%"), "{page}");
}

/// With a near tier, the page and `functions.json` show its eviction lag once probes arrive.
#[tokio::test]
async fn the_near_tiers_eviction_lag_is_shown() {
    let probing = NearCache::new(1 << 20).probe_every(Duration::from_millis(50));
    let (base, cache, _server) = serve_with(|builder| builder.near_cache(probing)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.near_eviction_lag().is_none() {
        assert!(Instant::now() < deadline, "no probe arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, functions) = get_json(&format!("{base}/functions.json")).await;
    assert_eq!(status, 200);
    let lag = &functions["near_eviction_lag"];
    assert!(lag["count"].as_u64() > Some(0), "{lag}");
    assert!(lag["p50_ms"].as_f64() <= lag["p99_ms"].as_f64(), "{lag}");
    assert!(lag["p99_ms"].as_f64() <= lag["max_ms"].as_f64(), "{lag}");
    let page = get_text(&base).await;
    assert!(
        page.contains("<p id=\"near-lag\">Near cache eviction lag"),
        "the page does not show the lag"
    );
}

#[tokio::test]
async fn key_json_shows_a_stored_value_and_an_absent_key() {
    let (base, cache, server) = serve().await;
    let returned = profile(&cache, 7).await;

    let state = key_json(&base, "inspect:profile:7").await;
    assert_eq!(state["state"], "value", "{state}");
    assert_eq!(state["key"], "inspect:profile:7");
    assert_eq!(state["stored_key"], "app:inspect:profile:7");
    let ttl = state["ttl_ms"].as_u64().expect("a TTL");
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    let mut redis = server.connection().await;
    let stored_len: usize = redis::cmd("STRLEN")
        .arg("app:inspect:profile:7")
        .query_async(&mut redis)
        .await
        .expect("STRLEN");
    assert_eq!(state["size"], stored_len);
    assert_eq!(
        state["value"],
        serde_json::to_value(&returned).expect("JSON")
    );
    assert_eq!(state["entry"]["version"], 1);
    assert_eq!(state["entry"]["fresh_until_ms"], Value::Null);
    let paths = state["functions"].as_array().expect("a list");
    assert!(
        paths.len() == 1
            && paths[0]
                .as_str()
                .is_some_and(|path| path.ends_with("::profile")),
        "{state}"
    );
    assert!(
        state["invalidated_by"][0]
            .as_str()
            .is_some_and(|path| path.ends_with("::rename")),
        "{state}"
    );

    // A key typed with the prefix: absent, and the page says why.
    let page = get_text(&format!("{base}?key=app%3Ainspect%3Aprofile%3A7")).await;
    assert!(page.contains("give the key without it"), "{page}");
    let prefixed = key_json(&base, "app:inspect:profile:7").await;
    assert_eq!(prefixed["state"], "absent", "{prefixed}");
    assert!(
        prefixed["hint"]
            .as_str()
            .is_some_and(|hint| hint.contains("prefix `app:`")),
        "{prefixed}"
    );

    let absent = key_json(&base, "inspect:profile:8").await;
    assert_eq!(absent["state"], "absent", "{absent}");
    assert_eq!(absent["ttl_ms"], Value::Null);
    assert_eq!(absent["size"], 0);
    assert_eq!(absent["value"], Value::Null);

    let (status, error) = get_json(&format!("{base}/key.json")).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].is_string(), "{error}");
}

#[tokio::test]
async fn key_json_shows_the_lease_of_a_fill_in_flight() {
    let (base, cache, _server) = serve().await;
    let gate = Arc::new(Semaphore::new(0));
    let call = tokio::spawn({
        let (cache, gate) = (cache.clone(), gate.clone());
        async move { slow(&cache, &gate, 1).await }
    });
    // The call takes its lease, then waits at the gate.
    let started = Instant::now();
    let state = loop {
        let state = key_json(&base, "inspect:slow:1").await;
        if state["state"] != "absent" || started.elapsed() > Duration::from_secs(10) {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(state["state"], "lease", "{state}");
    let ttl = state["ttl_ms"].as_u64().expect("a lease expires");
    assert!(ttl > 0 && ttl <= 5_000, "{ttl}");
    assert_eq!(state["value"], Value::Null);

    gate.add_permits(1);
    assert_eq!(call.await.expect("the call returns"), "slow 1");
    let state = key_json(&base, "inspect:slow:1").await;
    assert_eq!(state["state"], "value", "{state}");
    assert_eq!(state["value"], "slow 1");
}

#[tokio::test]
async fn key_json_shows_until_when_an_entry_with_stale_is_fresh() {
    let (base, cache, _server) = serve().await;
    let before = now_ms();
    fresh(&cache, 1).await;
    let after = now_ms();

    let state = key_json(&base, "inspect:fresh:1").await;
    assert_eq!(state["state"], "value", "{state}");
    assert_eq!(state["value"], "fresh 1");
    let fresh_until = state["entry"]["fresh_until_ms"]
        .as_u64()
        .expect("a fresh-until");
    assert!(
        (before + 60_000..=after + 60_000).contains(&fresh_until),
        "{fresh_until} not 60 s after {before}..{after}"
    );
    assert_eq!(state["entry"]["claimed_until_ms"], Value::Null);
    // Kept past its TTL for the stale window.
    let ttl = state["ttl_ms"].as_u64().expect("a TTL");
    assert!((60_000..=90_000).contains(&ttl), "{ttl}");
}

// ---- Every topology ------------------------------------------------------------------------

/// `Cache::inspect_key` on `cache`: a value stored by `counted`'s template, a lease put by
/// hand, a key of another type, and an absent key.
async fn inspect_on(cache: &Cache, test: &str) {
    let key = format!("inspect:topology:{test}");
    let stored = topology(cache, test).await;
    let state = cache.inspect_key(&key).await.expect("the read succeeds");
    assert_eq!(state.state, KeyKind::Value, "{state:?}");
    assert_eq!(state.value, Some(Value::String(stored)));
    assert!(state.ttl_ms.is_some_and(|ttl| ttl <= 60_000), "{state:?}");
    assert!(state.size > 14, "{state:?}");
    let absent = cache
        .inspect_key(&format!("{key}:absent"))
        .await
        .expect("the read succeeds");
    assert_eq!((absent.state, absent.size), (KeyKind::Absent, 0));
}

#[redis_cached(key = "inspect:topology:<test>", ttl = 60, cache = cache)]
async fn topology(cache: &Cache, test: &str) -> String {
    format!("on {test}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_key_reads_on_a_cluster_a_sentinel_and_mem() {
    let cluster = harness::cluster::RedisCluster::start();
    let cache = Cache::builder(&cluster.url())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the cluster answers");
    // Keys in several slots: each read goes to the key's own primary.
    for test in ["cluster-a", "cluster-b", "cluster-c", "cluster-d"] {
        inspect_on(&cache, test).await;
    }
    drop(cluster);

    let sentinel = harness::sentinel::RedisSentinel::start();
    let cache = Cache::builder(&sentinel.url())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the sentinel's primary answers");
    inspect_on(&cache, "sentinel").await;
    drop(sentinel);

    let cache = Cache::connect("mem://").await.expect("mem://");
    inspect_on(&cache, "mem").await;
}

#[tokio::test]
async fn a_key_of_another_type_is_named_not_an_error() {
    let (_base, cache, server) = serve().await;
    let mut redis = server.connection().await;
    let () = redis::cmd("HSET")
        .arg("app:inspect:hash")
        .arg("field")
        .arg("value")
        .query_async(&mut redis)
        .await
        .map(|_: i64| ())
        .expect("HSET");
    let state = cache
        .inspect_key("inspect:hash")
        .await
        .expect("the read succeeds");
    assert_eq!(state.state, KeyKind::OtherType);
    assert_eq!(state.redis_type.as_deref(), Some("hash"));
    assert_eq!(state.ttl_ms, None, "no expiry");
}

// ---- The page, in headless Chromium -------------------------------------------------------

/// Chromium, or a failure saying how to get it: this test must not pass without it.
fn chromium() -> &'static str {
    let found = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "`chromium` is not installed (or not on PATH): run scripts/test, which installs it \
         (Debian: `apt-get install -y chromium`)"
    );
    "chromium"
}

/// A Chromium profile directory of its own, removed on drop.
struct ChromiumProfile(PathBuf);

impl Drop for ChromiumProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs headless Chromium on `url` with `args` (within a minute); returns its stdout.
async fn run_chromium(args: &[&str], url: &str) -> String {
    let profile = ChromiumProfile(std::env::temp_dir().join(format!(
        "redis-cached-chromium-{}-{}",
        std::process::id(),
        now_ms()
    )));
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-proxy-server",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("chromium finishes within a minute")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The width and height of a PNG, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_renders_in_headless_chromium() {
    let (base, cache, _server) = serve().await;
    team(&cache, 3).await;
    team(&cache, 3).await;

    let dom = run_chromium(&["--dump-dom"], &base).await;
    assert!(dom.contains("<h1>redis-cached</h1>"), "{dom}");
    // Every cached function of this binary, by path, with its template.
    for (name, part) in [
        ("counted", "id"),
        ("profile", "id"),
        ("slow", "id"),
        ("fresh", "id"),
        ("team", "id"),
        ("topology", "test"),
    ] {
        assert!(
            dom.contains(&format!("inspect::{name}</code>")),
            "{name}: {dom}"
        );
        assert!(
            dom.contains(&format!("inspect:{name}:&lt;{part}&gt;</code>")),
            "{name}'s template: {dom}"
        );
    }
    assert!(dom.contains("inspect::rename</code>"), "{dom}");
    assert!(
        dom.contains("href=\"/admin/cache/functions.json\""),
        "{dom}"
    );
    assert!(dom.contains("id=\"findings\""), "{dom}");

    // The form's submission, as the browser makes it.
    let inspected = format!("{base}?key=inspect%3Ateam%3A3");
    let dom = run_chromium(&["--dump-dom"], &inspected).await;
    assert!(dom.contains("id=\"state\"><b>value</b>"), "{dom}");
    assert!(dom.contains("app:inspect:team:3"), "{dom}");
    assert!(
        dom.contains("value=\"inspect:team:3\""),
        "the form keeps the key: {dom}"
    );
    // The value is printed as text: its markup is escaped, no element of it exists.
    assert!(
        dom.contains("&lt;b&gt;Team 3&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<script>"), "{dom}");
    assert!(dom.contains("tag versions"), "a tagged entry: {dom}");

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("the artifacts directory");
    let screenshot = artifacts.join("inspect.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
        ],
        &inspected,
    )
    .await;
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), (1280, 900));
    // A blank page compresses to a few hundred bytes; a rendered one, tables and text, to
    // tens of kilobytes.
    assert!(png.len() > 10_000, "a screenshot of {} bytes", png.len());
}
