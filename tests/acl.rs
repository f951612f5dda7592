//! Redis ACL users: a user name and password from the URL authenticate, wrong ones fail
//! `build()`, and the password never shows in errors, `Debug` output or the log, whether the
//! server refuses the credentials, dies mid-test, or the user may not touch the keys.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, invalidates, redis_cached};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Logs, assert_miss_then_hit, checked_square, forget, get_text as raw_get, runs};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// alice's password.
const PASSWORD: &str = "s3cret-p4ss";
/// A wrong guess at it, which must not show either.
const WRONG: &str = "wr0ng-gu3ss";
/// bob's password, full of URL syntax; URLs carry it percent-encoded.
const ODD_PASSWORD: &str = "p@ss:w0rd/%?#x";
const ODD_PASSWORD_ENCODED: &str = "p%40ss%3Aw0rd%2F%25%3F%23x";
/// carol's password; carol may only touch keys under `other:`.
const CAROL_PASSWORD: &str = "car0l-pw-99";
/// An argument rendered into keys, which the log must not show either.
const PRIVATE_ARG: &str = "private-arg-7f3a";

const TIMEOUT: Duration = Duration::from_millis(200);

/// Every secret a test uses, in every form a URL holds it.
const SECRETS: [&str; 5] = [
    PASSWORD,
    WRONG,
    ODD_PASSWORD,
    ODD_PASSWORD_ENCODED,
    CAROL_PASSWORD,
];

/// The log tests capture their thread's log, but `tracing` caches per call site whether
/// anyone listens: a call site another test reaches first, while a log test sets up its
/// subscriber, may stay muted for it. So the log tests run alone: they take this gate
/// exclusively, every other test shares it.
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the password {secret:?}: {text}"
        );
    }
}

const ACL_ARGS: [&str; 24] = [
    "--user",
    "alice",
    "on",
    ">s3cret-p4ss",
    "~*",
    "&*",
    "+@all",
    "--user",
    "bob",
    "on",
    ">p@ss:w0rd/%?#x",
    "~*",
    "&*",
    "+@all",
    "--user",
    "carol",
    "on",
    ">car0l-pw-99",
    "~other:*",
    "&*",
    "+@all",
    "--user",
    "default",
    "off",
];

/// A server whose users are alice, bob and carol, with the default user off.
fn acl_server(extra: &[&str]) -> harness::RedisServer {
    let mut args: Vec<&str> = ACL_ARGS.to_vec();
    args.extend(extra);
    harness::RedisServer::start_with(&args)
}

fn url(server: &harness::RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{}", server.port())
}

fn alice(server: &harness::RedisServer) -> String {
    url(server, "alice", PASSWORD)
}

/// A connection as alice, to look at what the cache wrote.
async fn raw_alice(server: &harness::RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(alice(server))
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("alice logs in")
}

#[redis_cached(key = "profile:<name>", ttl = 60, cache = cache)]
async fn profile(cache: &Cache, name: &str) -> String {
    format!("profile of {}", name.len())
}

#[invalidates("profile:<name>", cache = cache)]
async fn forget_profile(cache: &Cache, name: &str) -> usize {
    name.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_users_with_their_passwords_cache() {
    let _shared = GATE.read().await;
    let server = acl_server(&[]);
    let mut raw = raw_alice(&server).await;
    let urls = [
        ("alice:", alice(&server)),
        ("bob:", url(&server, "bob", ODD_PASSWORD_ENCODED)),
    ];
    for (prefix, url) in &urls {
        let cache = Cache::builder(url)
            .prefix(*prefix)
            .timeout(TIMEOUT)
            .build()
            .await
            .expect("the user logs in");
        cache.ping().await.expect("ping as the user");
        let counter = AtomicUsize::new(0);
        assert_miss_then_hit(|| checked_square(&cache, &counter, 6)).await;
        assert_eq!(runs(&counter), 1, "{prefix} the body ran once");
        let key = format!("{prefix}square:6");
        assert_eq!(raw_get(&mut raw, &key).await.as_deref(), Some("36"));
        assert_eq!(forget(&cache, 6).await, "forgotten");
        assert_eq!(raw_get(&mut raw, &key).await, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_fail_build_and_the_error_hides_the_password() {
    let _shared = GATE.read().await;
    let server = acl_server(&[]);
    let refused = [
        url(&server, "alice", WRONG),
        url(&server, "mallory", PASSWORD),
        url(
            &server,
            "bob",
            ODD_PASSWORD_ENCODED.replace("x", "y").as_str(),
        ),
        url(&server, "bob", &format!("{ODD_PASSWORD_ENCODED}{WRONG}")),
        // Right password, a user name only: the default user is off.
        format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port()),
    ];
    for url in &refused {
        let err = Cache::builder(url)
            .timeout(TIMEOUT)
            .build()
            .await
            .expect_err("the server refuses these credentials");
        assert_no_secret("the error message", &err.to_string());
        assert_no_secret("the error's Debug", &format!("{err:?}"));
        assert!(
            err.to_string().to_lowercase().contains("authentication"),
            "refused for the credentials, not for something else: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_nothing_is_cached_and_calls_still_work() {
    let _shared = GATE.read().await;
    // The default user is off: a URL without a user logs in as nobody.
    let server = acl_server(&[]);
    let cache = Cache::builder(&server.url())
        .prefix("anon:")
        .timeout(TIMEOUT)
        .lazy(true)
        .build()
        .await
        .expect("a lazy cache builds without connecting");
    let counter = AtomicUsize::new(0);
    for round in 1..=3 {
        assert_eq!(
            checked_square(&cache, &counter, 2).await,
            Some(Outcome::Bypass)
        );
        assert_eq!(runs(&counter), round);
    }
    assert_eq!(forget(&cache, 2).await, "forgotten");
    let mut raw = raw_alice(&server).await;
    assert_eq!(raw_get(&mut raw, "anon:square:2").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_denied_the_keys_never_fails_a_call() {
    let _shared = GATE.read().await;
    // carol may only touch `other:*`: every cache operation is refused with NOPERM.
    let server = acl_server(&[]);
    let cache = Cache::builder(&url(&server, "carol", CAROL_PASSWORD))
        .prefix("app:")
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("carol logs in");
    let counter = AtomicUsize::new(0);
    for round in 1..=5 {
        assert_eq!(
            checked_square(&cache, &counter, 4).await,
            Some(Outcome::Bypass)
        );
        assert_eq!(runs(&counter), round, "nothing could be stored");
    }
    assert_eq!(forget(&cache, 4).await, "forgotten");
    assert!(
        !cache.is_degraded(),
        "refusals are error replies, not connection failures"
    );
    let mut raw = raw_alice(&server).await;
    assert_eq!(raw_get(&mut raw, "app:square:4").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_output_never_shows_the_password() {
    let _shared = GATE.read().await;
    let server = acl_server(&[]);
    let mut urls = vec![
        alice(&server),
        url(&server, "alice", WRONG),
        url(&server, "bob", ODD_PASSWORD_ENCODED),
        url(&server, "carol", CAROL_PASSWORD),
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port()),
    ];
    if cfg!(feature = "tls") {
        urls.push(format!(
            "rediss://alice:{PASSWORD}@127.0.0.1:{}",
            server.port()
        ));
    }
    for url in &urls {
        let builder = Cache::builder(url)
            .prefix("dbg:")
            .timeout(TIMEOUT)
            .lazy(true);
        let debug = format!("{builder:?}");
        assert_no_secret("the builder's Debug", &debug);
        assert!(debug.contains("***"), "{debug}");
        assert_no_secret("the builder's pretty Debug", &format!("{builder:#?}"));
        let cache = builder.build().await.expect("a lazy cache builds");
        let debug = format!("{cache:?}");
        assert_no_secret("the cache's Debug", &debug);
        assert!(debug.contains("***"), "{debug}");
        assert_no_secret("the cache's pretty Debug", &format!("{cache:#?}"));
    }
    // A cache that really logged in.
    let cache = Cache::builder(&url(&server, "bob", ODD_PASSWORD_ENCODED))
        .build()
        .await
        .expect("bob logs in");
    assert_no_secret("the cache's Debug", &format!("{cache:?}"));
}

/// Cached and invalidating calls on `cache`, each checked to return the right value.
async fn exercise(cache: &Cache, counter: &AtomicUsize) {
    for id in [1, 2, 1] {
        checked_square(cache, counter, id).await;
    }
    assert_eq!(forget(cache, 1).await, "forgotten");
    assert_eq!(profile(cache, PRIVATE_ARG).await, "profile of 16");
    assert_eq!(forget_profile(cache, PRIVATE_ARG).await, 16);
    let _ = cache.invalidate(&["square:2"]).await;
    let _ = cache.ping().await;
}

/// Every log line (all levels, redis-rs's `log` records included) of calls against a server
/// that dies, a lazy cache with a wrong password and a user denied the keys: non-empty,
/// and no password or argument value in it.
#[test]
fn the_log_never_shows_the_password() {
    let _alone = GATE.blocking_write();
    let logs = Logs::default();
    let subscriber = logs.subscriber(LevelFilter::TRACE);
    // The thread's default (also forwarding `log` records); on a current-thread runtime
    // every task runs on this thread, so every line is captured.
    let guard = subscriber.set_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        // (a) The right password, then the server is killed mid-test.
        let mut server = acl_server(&[]);
        let cache = Cache::builder(&url(&server, "bob", ODD_PASSWORD_ENCODED))
            .timeout(TIMEOUT)
            .build()
            .await
            .expect("bob logs in");
        let counter = AtomicUsize::new(0);
        exercise(&cache, &counter).await;
        assert_miss_then_hit(|| checked_square(&cache, &counter, 3)).await;
        server.kill();
        exercise(&cache, &counter).await;
        // Let deferred invalidations retry (and log) a few times.
        tokio::time::sleep(Duration::from_millis(300)).await;

        // (b) A lazy cache with a wrong password.
        let server = acl_server(&[]);
        for url in [url(&server, "alice", WRONG), url(&server, "bob", PASSWORD)] {
            let cache = Cache::builder(&url)
                .timeout(TIMEOUT)
                .lazy(true)
                .build()
                .await
                .expect("a lazy cache builds");
            exercise(&cache, &counter).await;
        }

        // (c) The right password, but the keys are out of bounds.
        let cache = Cache::builder(&url(&server, "carol", CAROL_PASSWORD))
            .timeout(TIMEOUT)
            .build()
            .await
            .expect("carol logs in");
        exercise(&cache, &counter).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    drop(runtime);
    drop(guard);

    let text = logs.text();
    assert!(
        text.contains("cache operation failed"),
        "the failed lookups were logged:\n{text}"
    );
    assert!(
        text.contains("cache invalidation failed"),
        "the failed invalidations were logged:\n{text}"
    );
    assert!(
        text.contains("NoPerm"),
        "carol's refusals were logged:\n{text}"
    );
    assert!(
        text.contains("square"),
        "log lines name the function:\n{text}"
    );
    assert_no_secret("the log", &text);
    assert!(
        !text.contains(PRIVATE_ARG),
        "the log shows an argument's value:\n{text}"
    );
}

/// What a lazy cache with a wrong password reports, to the caller and in the log: the
/// server answered, so this is neither a timeout nor an outage.
#[test]
fn a_lazy_cache_reports_refused_credentials_as_such() {
    let _alone = GATE.blocking_write();
    let logs = Logs::default();
    let subscriber = logs.subscriber(LevelFilter::INFO);
    let guard = subscriber.set_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (ping, degraded) = runtime.block_on(async {
        let server = acl_server(&[]);
        let cache = Cache::builder(&url(&server, "alice", WRONG))
            .timeout(TIMEOUT)
            .lazy(true)
            .build()
            .await
            .expect("a lazy cache builds");
        let ping = cache.ping().await;
        let counter = AtomicUsize::new(0);
        for _ in 0..3 {
            checked_square(&cache, &counter, 1).await;
        }
        (ping, cache.is_degraded())
    });
    drop(runtime);
    drop(guard);
    let text = logs.text();
    let mut problems = Vec::new();
    match ping {
        Ok(()) => problems.push("ping succeeded".to_owned()),
        Err(err) if !err.to_string().to_lowercase().contains("authentication") => {
            problems.push(format!("ping failed with {err:?}"));
        }
        Err(_) => {}
    }
    if !text.to_lowercase().contains("authentication") {
        problems.push(format!("the log does not name the cause:\n{text}"));
    }
    if degraded {
        problems.push("the breaker opened".to_owned());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A temp directory for a unix socket, removed on drop.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> SocketDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redis-cached-acl-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temp directory");
        SocketDir(dir)
    }

    fn socket(&self) -> String {
        self.0
            .join("redis.sock")
            .to_str()
            .expect("a UTF-8 temp path")
            .to_owned()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_users_over_a_unix_socket_cache() {
    let _shared = GATE.read().await;
    let dir = SocketDir::new();
    let socket = dir.socket();
    let server = acl_server(&["--unixsocket", &socket]);
    // The harness waits for the TCP port; redis-server opens the socket just after it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "redis-server opened no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = format!("redis+unix://{socket}?user=alice&pass={PASSWORD}");
    let cache = Cache::builder(&url)
        .prefix("unix:")
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("alice logs in over the socket");
    let counter = AtomicUsize::new(0);
    assert_miss_then_hit(|| checked_square(&cache, &counter, 9)).await;
    assert_eq!(runs(&counter), 1);
    let mut raw = raw_alice(&server).await;
    assert_eq!(
        raw_get(&mut raw, "unix:square:9").await.as_deref(),
        Some("81")
    );

    let wrong = format!("redis+unix://{socket}?user=alice&pass={WRONG}");
    let err = Cache::builder(&wrong)
        .timeout(TIMEOUT)
        .build()
        .await
        .expect_err("a wrong password over the socket");
    assert_no_secret("the error", &format!("{err} {err:?}"));
    drop(server);
}

/// redis-rs reads the credentials of `redis+unix://` and `unix://` URLs from the query
/// (`?user=..&pass=..`), which the redaction does not look at.
#[tokio::test(flavor = "multi_thread")]
async fn unix_socket_url_passwords_are_redacted() {
    let _shared = GATE.read().await;
    let dir = SocketDir::new();
    let socket = dir.socket();
    let mut shown = Vec::new();
    for scheme in ["redis+unix", "unix"] {
        let url = format!("{scheme}://{socket}?user=alice&pass={PASSWORD}");
        let builder = Cache::builder(&url).timeout(TIMEOUT).lazy(true);
        shown.push(format!("the builder's Debug: {builder:?}"));
        let cache = builder.build().await.expect("a lazy cache builds");
        shown.push(format!("the cache's Debug: {cache:?}"));
        // A URL redis-rs rejects (bad db number): the error names the URL.
        let err = Cache::builder(&format!("{url}&db=first"))
            .build()
            .await
            .expect_err("not a valid database number");
        shown.push(format!("the error: {err}"));
        shown.push(format!("the error's Debug: {err:?}"));
    }
    shown.retain(|text| text.contains(PASSWORD));
    assert!(
        shown.is_empty(),
        "the password shows in:\n{}",
        shown.join("\n")
    );
}
