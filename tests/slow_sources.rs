//! Slow and failing sources do not multiply the load on them: a body slower than its fill
//! lease runs once however many callers wait for it (its lease is kept alive while it runs,
//! in every process), a body that fails hands its error to the callers that waited for it,
//! and a filler that dies is taken over by one waiter within one lease. On Redis and
//! `mem://`, in one process, across `Cache` instances and across OS processes.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Body runs per id: each test uses ids of its own.
static RUNS: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];
/// Bodies of an id running right now, and the most that ever ran at once.
static RUNNING: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];
static MOST_AT_ONCE: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

fn runs(id: u64) -> usize {
    RUNS[id as usize].load(Ordering::SeqCst)
}

/// Counts a body run of `id` for as long as the returned guard lives.
fn running(id: u64) -> impl Drop {
    struct Running(usize);
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING[self.0].fetch_sub(1, Ordering::SeqCst);
        }
    }
    let id = id as usize;
    RUNS[id].fetch_add(1, Ordering::SeqCst);
    let now = RUNNING[id].fetch_add(1, Ordering::SeqCst) + 1;
    MOST_AT_ONCE[id].fetch_max(now, Ordering::SeqCst);
    Running(id)
}

#[redis_cached(key = "slow:<id>", ttl = 60, cache = cache)]
async fn slow(cache: &Cache, id: u64, pause: Duration) -> u64 {
    let _running = running(id);
    tokio::time::sleep(pause).await;
    id * 10
}

/// An error the waiters can be handed: `Clone`.
#[derive(Clone, Debug, PartialEq)]
struct Down(&'static str);

#[redis_cached(key = "failing:<id>", ttl = 60, cache = cache)]
async fn failing(cache: &Cache, id: u64) -> Result<u64, Down> {
    let _running = running(id);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(Down("the database is down"))
}

/// An error that cannot be cloned, as `std::io::Error` or `sqlx::Error`.
#[derive(Debug)]
struct Opaque;

#[redis_cached(key = "opaque:<id>", ttl = 60, cache = cache)]
async fn failing_opaquely(cache: &Cache, id: u64) -> Result<u64, Opaque> {
    let _running = running(id);
    tokio::time::sleep(Duration::from_millis(20)).await;
    Err(Opaque)
}

async fn cache(url: &str, prefix: &str, lease: Duration) -> Cache {
    Cache::builder(url)
        .prefix(prefix)
        .fill_lease(lease)
        .build()
        .await
        .expect("the cache builds")
}

/// Runs `calls` concurrent calls of `call` over `caches` (round robin) and returns their
/// outputs.
async fn at_once<T, F>(caches: &[Cache], calls: usize, call: impl Fn(Cache) -> F) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..calls)
        .map(|index| tokio::spawn(call(caches[index % caches.len()].clone())))
        .collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.expect("no call panics"));
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_slower_than_its_lease_runs_once_for_fifty_callers() {
    for (id, url) in [(0, "mem://"), (1, harness::shared_url())] {
        let prefix = support::unique_prefix("slower_than_lease");
        let cache = cache(url, &prefix, Duration::from_millis(500)).await;
        let values = at_once(&[cache], 50, move |cache| async move {
            slow(&cache, id, Duration::from_millis(1800)).await
        })
        .await;
        assert!(values.iter().all(|&value| value == id * 10), "{url}");
        assert_eq!(runs(id), 1, "{url}: 50 callers, a body 3.6 leases long");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_caches_with_a_short_lease_run_a_slow_body_once_for_a_hundred_callers() {
    let prefix = support::unique_prefix("two_caches_slow");
    let lease = Duration::from_millis(500);
    let caches = [
        cache(harness::shared_url(), &prefix, lease).await,
        cache(harness::shared_url(), &prefix, lease).await,
    ];
    let values = at_once(&caches, 100, |cache| async move {
        slow(&cache, 2, Duration::from_millis(2000)).await
    })
    .await;
    assert!(values.iter().all(|&value| value == 20));
    assert_eq!(
        runs(2),
        1,
        "100 callers over two caches, a body 4 leases long"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_body_runs_once_and_its_error_reaches_two_hundred_callers() {
    for (id, url) in [(3, "mem://"), (4, harness::shared_url())] {
        let prefix = support::unique_prefix("failing");
        let cache = cache(url, &prefix, Duration::from_secs(5)).await;
        let outputs = at_once(&[cache], 200, move |cache| async move {
            failing(&cache, id).await
        })
        .await;
        assert!(
            outputs
                .iter()
                .all(|output| *output == Err(Down("the database is down"))),
            "{url}"
        );
        assert!(runs(id) <= 2, "{url}: {} runs for 200 callers", runs(id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_of_a_failing_body_whose_error_is_not_clone_retry_one_at_a_time() {
    for (id, url) in [(5, "mem://"), (6, harness::shared_url())] {
        let prefix = support::unique_prefix("failing_opaquely");
        let cache = cache(url, &prefix, Duration::from_secs(5)).await;
        let outputs = at_once(&[cache], 20, move |cache| async move {
            failing_opaquely(&cache, id).await.is_err()
        })
        .await;
        assert!(outputs.iter().all(|&failed| failed), "{url}");
        assert_eq!(
            MOST_AT_ONCE[id as usize].load(Ordering::SeqCst),
            1,
            "{url}: the source saw one call at a time"
        );
    }
}

#[redis_cached(key = "long:<id>", ttl = 60, cache = cache)]
async fn long(cache: &Cache, id: u64, pause: Duration) -> u64 {
    tokio::time::sleep(pause).await;
    id
}

/// What keeping leases alive costs: one script call per server every third of a lease,
/// however many fills run (printed: BENCHMARKS.md quotes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_fills_are_kept_alive_by_one_command_a_third_of_a_lease() {
    let server = harness::RedisServer::start();
    let lease = Duration::from_millis(600);
    let cache = cache(&server.url(), "", lease).await;
    // The scripts loaded, so that every later call is one EVALSHA.
    long(&cache, 0, lease).await;
    let scripts = |calls: std::collections::HashMap<String, u64>| {
        calls.get("evalsha").copied().unwrap_or(0) + calls.get("eval").copied().unwrap_or(0)
    };
    let before = scripts(server.command_calls().await);
    let pause = Duration::from_secs(3);
    let started = Instant::now();
    let values = at_once(&[cache], 1000, |cache| async move {
        let id = rand_id();
        (id, long(&cache, id, pause).await)
    })
    .await;
    let took = started.elapsed();
    assert!(values.iter().all(|(id, value)| id == value));
    // The 1,000 fills are 1,000 script calls (and so are the lookups before Redis 7.0, the
    // `FETCH` script); the rest kept their leases alive.
    let lookups = if harness::native_lookup(&mut server.connection().await).await {
        0
    } else {
        1000
    };
    let keepalive = scripts(server.command_calls().await) - before - 1000 - lookups;
    let ticks = (took.as_millis() / (lease / 3).as_millis()) as u64;
    println!(
        "keepalive: {keepalive} script calls in {took:?} for 1000 concurrent fills \
         ({:.1} per second, a lease of {lease:?})",
        keepalive as f64 / took.as_secs_f64()
    );
    assert!(keepalive <= ticks + 2, "{keepalive} calls, {ticks} periods");
    assert!(keepalive >= 1, "the leases were kept alive");
}

/// A key of its own for each call of the keepalive test.
fn rand_id() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(1000);
    NEXT.fetch_add(1, Ordering::SeqCst) as u64
}

/// An error that can hold `TimedOut`, and be handed to waiters (`Clone`).
#[derive(Clone, Debug, PartialEq)]
enum Slow {
    TimedOut,
}

impl From<redis_cached::TimedOut> for Slow {
    fn from(_: redis_cached::TimedOut) -> Self {
        Slow::TimedOut
    }
}

#[redis_cached(key = "hanging:<id>", ttl = 60, cache = cache, timeout = "300ms")]
async fn hanging(cache: &Cache, id: u64) -> Result<u64, Slow> {
    let _running = running(id);
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_past_its_timeout_is_dropped_and_its_waiters_released_at_once() {
    for (id, url) in [(10, "mem://"), (11, harness::shared_url())] {
        let prefix = support::unique_prefix("timeout");
        let cache = cache(url, &prefix, Duration::from_secs(5)).await;
        let outputs = at_once(std::slice::from_ref(&cache), 20, move |cache| async move {
            let started = Instant::now();
            (hanging(&cache, id).await, started.elapsed())
        })
        .await;
        for (output, took) in &outputs {
            assert_eq!(*output, Err(Slow::TimedOut), "{url}");
            // The limit, and the waiters released within 50 ms of it.
            assert!(
                *took < Duration::from_millis(300 + 50 + 100),
                "{url}: {took:?}"
            );
        }
        assert_eq!(runs(id), 1, "{url}: one body for 20 callers");
        assert_eq!(
            RUNNING[id as usize].load(Ordering::SeqCst),
            0,
            "{url}: the body was dropped"
        );
        // Nothing stored, the lease released: the next call runs the body at once.
        let started = Instant::now();
        assert_eq!(hanging(&cache, id).await, Err(Slow::TimedOut));
        assert!(
            started.elapsed() < Duration::from_millis(300 + 100),
            "{url}"
        );
        assert_eq!(runs(id), 2, "{url}");
    }
}

/// What `quote` returns, and how long its body takes: set by the soft-timeout test.
static QUOTE: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

#[redis_cached(key = "quote:<id>", ttl = 1, stale = "1m", soft_timeout = "200ms", cache = cache)]
async fn quote(cache: Cache, id: u64) -> u64 {
    let _running = running(id);
    let (value, pause) = (
        QUOTE[0].load(Ordering::SeqCst),
        QUOTE[1].load(Ordering::SeqCst),
    );
    tokio::time::sleep(Duration::from_millis(pause as u64)).await;
    value as u64
}

#[redis_cached(key = "rate:<id>", ttl = 1, stale_if_error = "1m", soft_timeout = "200ms", cache = cache)]
async fn rate(cache: Cache, id: u64) -> Result<u64, Down> {
    let _running = running(id);
    let (value, pause) = (
        QUOTE[0].load(Ordering::SeqCst),
        QUOTE[1].load(Ordering::SeqCst),
    );
    tokio::time::sleep(Duration::from_millis(pause as u64)).await;
    Ok(value as u64)
}

/// Calls `call` until it returns `want`, for at most `limit`.
async fn until<F: Future<Output = u64>>(limit: Duration, want: u64, call: impl Fn() -> F) {
    let deadline = Instant::now() + limit;
    while call().await != want {
        assert!(Instant::now() < deadline, "never saw {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_soft_timeout_the_stored_value_answers_and_the_body_stores_in_the_background() {
    for (id, url) in [(12, "mem://"), (13, harness::shared_url())] {
        let prefix = support::unique_prefix("soft_timeout");
        let cache = cache(url, &prefix, Duration::from_secs(5)).await;
        QUOTE[0].store(1, Ordering::SeqCst);
        QUOTE[1].store(0, Ordering::SeqCst);
        assert_eq!(quote(cache.clone(), id).await, 1);
        assert_eq!(rate(cache.clone(), id).await, Ok(1));
        // Both entries past their TTL; the source now answers 2, in a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        QUOTE[0].store(2, Ordering::SeqCst);
        QUOTE[1].store(1000, Ordering::SeqCst);
        for (name, call) in [
            (
                "stale",
                Box::pin(quote(cache.clone(), id)) as Pin<Box<dyn Future<Output = u64> + Send>>,
            ),
            (
                "stale_if_error",
                Box::pin(async { rate(cache.clone(), id).await.unwrap_or(0) }),
            ),
        ] {
            let started = Instant::now();
            let (value, outcome) = with_outcome(call).await;
            let took = started.elapsed();
            assert_eq!((value, outcome), (1, Some(Outcome::Stale)), "{url} {name}");
            assert!(took < Duration::from_millis(250), "{url} {name}: {took:?}");
        }
        // The bodies went on and stored the new values.
        until(Duration::from_secs(3), 2, || quote(cache.clone(), id)).await;
        until(Duration::from_secs(3), 2, || async {
            rate(cache.clone(), id).await.unwrap_or(0)
        })
        .await;
        assert_eq!(
            runs(id),
            4,
            "{url}: each body ran once more, in the background"
        );
    }
}

/// Run by the two-process tests: calls `slow(id)` `STAMPEDE_CALLS` times at once, starting
/// at `START_AT_MS`, and prints how often its body ran here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a child process of another test"]
async fn slow_source_worker() {
    let (Ok(url), Ok(prefix), Ok(start_at), Ok(calls), Ok(id), Ok(pause), Ok(lease)) = (
        std::env::var("SLOW_URL"),
        std::env::var("SLOW_PREFIX"),
        std::env::var("SLOW_START_AT_MS"),
        std::env::var("SLOW_CALLS"),
        std::env::var("SLOW_ID"),
        std::env::var("SLOW_PAUSE_MS"),
        std::env::var("SLOW_LEASE_MS"),
    ) else {
        return;
    };
    let number = |text: String| text.parse::<u64>().expect("a number");
    let (calls, id) = (number(calls), number(id));
    let pause = Duration::from_millis(number(pause));
    let cache = cache(&url, &prefix, Duration::from_millis(number(lease))).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    if let Some(wait) = u128::from(number(start_at)).checked_sub(now.as_millis()) {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let values = at_once(&[cache], calls as usize, move |cache| async move {
        slow(&cache, id, pause).await
    })
    .await;
    assert!(values.iter().all(|&value| value == id * 10));
    println!("RUNS={}", runs(id));
}

/// Starts a worker process calling `slow(id)` `calls` times at `start_at`.
fn worker(
    prefix: &str,
    start_at: Duration,
    calls: usize,
    id: u64,
    pause: Duration,
    lease: Duration,
) -> std::process::Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "slow_source_worker", "--ignored", "--nocapture"])
        .env("SLOW_URL", harness::shared_url())
        .env("SLOW_PREFIX", prefix)
        .env("SLOW_START_AT_MS", start_at.as_millis().to_string())
        .env("SLOW_CALLS", calls.to_string())
        .env("SLOW_ID", id.to_string())
        .env("SLOW_PAUSE_MS", pause.as_millis().to_string())
        .env("SLOW_LEASE_MS", lease.as_millis().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary runs")
}

/// The body runs a worker reported.
fn reported_runs(child: std::process::Child) -> usize {
    let output = child.wait_with_output().expect("the worker finishes");
    assert!(output.status.success(), "a worker failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("RUNS="))
        .expect("the worker reports its runs")
        .parse()
        .expect("a count")
}

fn in_ms(from_now: Duration) -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        + from_now
}

#[test]
fn a_twelve_second_body_with_a_five_second_lease_runs_once_for_a_hundred_callers_in_two_processes()
{
    let prefix = support::unique_prefix("twelve_seconds");
    let start_at = in_ms(Duration::from_millis(1500));
    let (pause, lease) = (Duration::from_secs(12), Duration::from_secs(5));
    let workers: Vec<_> = (0..2)
        .map(|_| worker(&prefix, start_at, 50, 7, pause, lease))
        .collect();
    let total: usize = workers.into_iter().map(reported_runs).sum();
    assert_eq!(total, 1, "100 callers over two processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_filler_is_taken_over_within_one_lease_and_every_waiter_returns() {
    let prefix = support::unique_prefix("killed_filler");
    let lease = Duration::from_millis(1000);
    // The filler: a body of ten minutes, in a process of its own.
    let mut filler = worker(
        &prefix,
        in_ms(Duration::ZERO),
        1,
        8,
        Duration::from_secs(600),
        lease,
    );
    let mut redis = harness::raw_connection().await;
    let key = format!("{prefix}slow:8");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis::cmd("EXISTS")
        .arg(&key)
        .query_async::<bool>(&mut redis)
        .await
        .expect("redis")
    {
        assert!(Instant::now() < deadline, "the filler never took the lease");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Its lease is kept alive past its length while it lives.
    let cache = cache(harness::shared_url(), &prefix, lease).await;
    let waiters = tokio::spawn(async move {
        at_once(&[cache], 20, |cache| async move {
            let started = Instant::now();
            let value = slow(&cache, 8, Duration::from_millis(200)).await;
            (value, started.elapsed())
        })
        .await
    });
    tokio::time::sleep(lease * 3).await;
    assert_eq!(runs(8), 0, "no waiter ran the body while the filler lived");
    filler.kill().expect("SIGKILL the filler");
    let _ = filler.wait();
    let killed = Instant::now();
    let outputs = waiters.await.expect("the waiters finish");
    assert!(outputs.iter().all(|&(value, _)| value == 80));
    assert_eq!(runs(8), 1, "one waiter took the key over");
    let after_kill = killed.elapsed();
    assert!(
        after_kill < lease + Duration::from_millis(200) + Duration::from_millis(500),
        "the waiters returned {after_kill:?} after the filler died, with a {lease:?} lease"
    );
}
