//! Entries that outlive their TTL (`stale`, `stale_if_error`, `refresh_ahead`) and TTLs chosen
//! at run time (`ttl = <expr>`, `ttl_from`): scenarios every topology runs.
//!
//! TTLs are a few hundred milliseconds (`ttl = <expr>` takes a `Duration`), windows whole
//! seconds; a scenario takes one to two seconds.

use crate::support::{bump, runs};
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The TTL of the scenarios' entries.
const TTL: Duration = Duration::from_millis(300);

/// A source of versioned values that can be made to fail, and to hold its reads.
#[derive(Default)]
pub struct Source {
    version: AtomicU64,
    failing: AtomicBool,
    runs: AtomicUsize,
    /// When set, each read waits for a permit after reading.
    gate: std::sync::Mutex<Option<Arc<Semaphore>>>,
}

impl Source {
    pub fn write(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn runs(&self) -> usize {
        runs(&self.runs)
    }

    /// From now on, each read waits for a permit of the returned semaphore.
    pub fn hold(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.gate.lock().expect("gate") = Some(gate.clone());
        gate
    }

    /// Lets the read held by `gate` go on, and holds no read from now on.
    pub fn release(&self, gate: &Semaphore) {
        *self.gate.lock().expect("gate") = None;
        gate.add_permits(1);
    }

    /// Waits until the body has run `runs` times (a refresh is held in it).
    pub async fn until_runs(&self, runs: usize) {
        while self.runs() < runs {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub async fn read(&self, id: u64) -> Result<String, String> {
        bump(&self.runs);
        let value = format!("item {id} v{}", self.version.load(Ordering::SeqCst));
        let gate = self.gate.lock().expect("gate").clone();
        if let Some(gate) = gate {
            gate.acquire().await.expect("open").forget();
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err("the source is down".into());
        }
        Ok(value)
    }
}

#[redis_cached(key = "swr:<id>", ttl = TTL, stale = "10s", cache = cache)]
pub async fn swr(cache: &Cache, source: &Source, id: u64) -> Result<String, String> {
    source.read(id).await
}

#[invalidates("swr:<id>", cache = cache)]
pub async fn write_swr(cache: &Cache, source: &Source, id: u64) {
    source.write();
}

#[redis_cached(key = "sie:<id>", ttl = TTL, stale_if_error = "10s", cache = cache)]
pub async fn sie(cache: &Cache, source: &Source, id: u64) -> Result<String, String> {
    source.read(id).await
}

/// Refreshed ahead of expiry: a body of 50 ms and beta 4 make early refreshes likely in the
/// last ~200 ms of an entry's life, and rare before.
#[redis_cached(key = "ahead:<id>", ttl = Duration::from_secs(1), refresh_ahead = 4.0, cache = cache)]
pub async fn ahead(cache: &Cache, source: &Source, id: u64) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    source.read(id).await
}

/// Entries past their TTL are served while one caller refreshes them: concurrent callers get
/// the old value at once, the one that claimed the refresh gets (and stores) the new one,
/// and the body runs once.
pub async fn stale_entries_are_served_while_one_caller_refreshes(cache: Cache, callers: usize) {
    let source = Arc::new(Source::default());
    assert_eq!(swr(&cache, &source, 1).await.as_deref(), Ok("item 1 v0"));
    source.write();
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    let gate = source.hold();
    let refresh = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { with_outcome(swr(&cache, &source, 1)).await }
    });
    // The refresh has claimed the entry and is held in its body.
    source.until_runs(2).await;
    let stale: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { with_outcome(swr(&cache, &source, 1)).await })
        })
        .collect();
    // All of them return while the refresh's body is still held.
    for call in stale {
        let (value, outcome) = call.await.expect("no call panics");
        assert_eq!(value.as_deref(), Ok("item 1 v0"));
        assert_eq!(outcome, Some(Outcome::Stale));
    }
    assert_eq!(source.runs(), 2, "only the claimant ran the body");
    source.release(&gate);
    let (value, outcome) = refresh.await.expect("the refresh");
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 1 v1"), Some(Outcome::Refresh))
    );
    let (value, outcome) = with_outcome(swr(&cache, &source, 1)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 1 v1"), Some(Outcome::Hit))
    );
    assert_eq!(source.runs(), 2);
}

/// An invalidation wins over the stale window: the entry is gone, the next call runs the
/// body and returns the new value.
pub async fn an_invalidated_entry_is_never_served_stale(cache: Cache) {
    let source = Source::default();
    assert_eq!(swr(&cache, &source, 2).await.as_deref(), Ok("item 2 v0"));
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    write_swr(&cache, &source, 2).await;
    let (value, outcome) = with_outcome(swr(&cache, &source, 2)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 2 v1"), Some(Outcome::Miss))
    );
}

/// A refresh that read the source before a write whose invalidation landed during the
/// refresh's body returns what it read, but does not store it: the invalidation deleted its
/// claim with the entry.
pub async fn a_refresh_racing_an_invalidation_does_not_store(cache: Cache) {
    let source = Arc::new(Source::default());
    assert_eq!(swr(&cache, &source, 3).await.as_deref(), Ok("item 3 v0"));
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    let gate = source.hold();
    let refresh = tokio::spawn({
        let (cache, source) = (cache.clone(), source.clone());
        async move { with_outcome(swr(&cache, &source, 3)).await }
    });
    source.until_runs(2).await;
    // The write and its invalidation, while the refresh holds what it read (v0).
    write_swr(&cache, &source, 3).await;
    source.release(&gate);
    let (value, outcome) = refresh.await.expect("the refresh");
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 3 v0"), Some(Outcome::Refresh))
    );
    let (value, outcome) = with_outcome(swr(&cache, &source, 3)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 3 v1"), Some(Outcome::Miss)),
        "the refresh's old value was stored after the invalidation"
    );
}

/// With `stale_if_error`, an `Err` of the body past the TTL is answered with the stored
/// value (outcome `Stale`); the `Err` is never stored, and once the source is back the next
/// call stores its value.
pub async fn stale_if_error_answers_a_failing_body(cache: Cache) {
    let source = Source::default();
    assert_eq!(sie(&cache, &source, 4).await.as_deref(), Ok("item 4 v0"));
    source.write();
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    source.fail(true);
    for _ in 0..2 {
        let (value, outcome) = with_outcome(sie(&cache, &source, 4)).await;
        assert_eq!(
            (value.as_deref(), outcome),
            (Ok("item 4 v0"), Some(Outcome::Stale))
        );
    }
    // A key never stored has nothing to answer with.
    assert_eq!(
        sie(&cache, &source, 5).await,
        Err("the source is down".to_owned())
    );
    source.fail(false);
    let (value, outcome) = with_outcome(sie(&cache, &source, 4)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 4 v1"), Some(Outcome::Miss))
    );
    let (value, outcome) = with_outcome(sie(&cache, &source, 4)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 4 v1"), Some(Outcome::Hit))
    );
}

/// As `swr`, with the claimed refresh run in a task of its own: the body owns its arguments.
#[redis_cached(key = "bg:<id>", ttl = TTL, stale = "10s", revalidate = "background", cache = cache)]
pub async fn bg(cache: Cache, source: Arc<Source>, id: u64) -> Result<String, String> {
    source.read(id).await
}

#[invalidates("bg:<id>", cache = cache)]
pub async fn write_bg(cache: &Cache, source: &Source, id: u64) {
    source.write();
}

/// Waits (at most 5 s) until a call of `bg` is a hit on `expected`.
async fn until_bg_hits(cache: &Cache, source: &Arc<Source>, id: u64, expected: &str) {
    for _ in 0..500 {
        let (value, outcome) = with_outcome(bg(cache.clone(), source.clone(), id)).await;
        if value.as_deref() == Ok(expected) && outcome == Some(Outcome::Hit) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no hit on {expected} within 5 s");
}

/// With `revalidate = "background"`, every caller of a stale entry, the one that claimed its
/// refresh included, returns the entry at once; the refresh runs once, in a task, and later
/// calls hit its value.
pub async fn background_revalidation_answers_every_caller_at_once(cache: Cache, callers: usize) {
    let source = Arc::new(Source::default());
    assert_eq!(
        bg(cache.clone(), source.clone(), 1).await.as_deref(),
        Ok("item 1 v0")
    );
    source.write();
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    let gate = source.hold();
    let calls: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { with_outcome(bg(cache, source, 1)).await })
        })
        .collect();
    // Every call returns while the refresh's body is held.
    for call in calls {
        let (value, outcome) = tokio::time::timeout(Duration::from_secs(2), call)
            .await
            .expect("a caller waited for the refresh")
            .expect("no call panics");
        assert_eq!(
            (value.as_deref(), outcome),
            (Ok("item 1 v0"), Some(Outcome::Stale))
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(source.runs(), 2, "one refresh for {callers} callers");
    source.release(&gate);
    until_bg_hits(&cache, &source, 1, "item 1 v1").await;
    assert_eq!(source.runs(), 2);
}

/// A background refresh that read the source before a write whose invalidation landed while
/// it ran does not store: the next call reads the source.
pub async fn a_background_refresh_racing_an_invalidation_does_not_store(cache: Cache) {
    let source = Arc::new(Source::default());
    assert_eq!(
        bg(cache.clone(), source.clone(), 2).await.as_deref(),
        Ok("item 2 v0")
    );
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    let gate = source.hold();
    let call = with_outcome(bg(cache.clone(), source.clone(), 2));
    let (value, outcome) = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("the caller waited for the refresh");
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 2 v0"), Some(Outcome::Stale))
    );
    source.until_runs(2).await;
    write_bg(&cache, &source, 2).await;
    source.release(&gate);
    // Let the refresh finish (and fail to store).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (value, outcome) = with_outcome(bg(cache.clone(), source.clone(), 2)).await;
    assert_eq!(
        (value.as_deref(), outcome),
        (Ok("item 2 v1"), Some(Outcome::Miss)),
        "the background refresh stored what it read before the invalidation"
    );
}

/// Calls that read an entry in its `stale_if_error` window run the body once between them:
/// one takes the key over, the others wait for its fill. With the source down, all get
/// the stored value.
pub async fn stale_if_error_calls_in_its_window_run_the_body_once(cache: Cache, callers: usize) {
    let source = Arc::new(Source::default());
    assert_eq!(sie(&cache, &source, 9).await.as_deref(), Ok("item 9 v0"));
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    source.fail(true);
    let gate = source.hold();
    let calls: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { sie(&cache, &source, 9).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.add_permits(callers);
    for call in calls {
        assert_eq!(
            call.await.expect("no call panics").as_deref(),
            Ok("item 9 v0")
        );
    }
    assert_eq!(
        source.runs(),
        2,
        "{callers} calls in the window ran the body more than once"
    );
}

/// With `refresh_ahead`, a key read steadily is refreshed before its TTL ends: after the
/// first fill no call is a miss, over more than twice the TTL.
pub async fn refresh_ahead_keeps_hot_keys_from_expiring(cache: Cache) {
    let source = Source::default();
    let mut outcomes = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2_500) {
        let (value, outcome) = with_outcome(ahead(&cache, &source, 6)).await;
        assert!(value.is_ok_and(|value| value.starts_with("item 6 v")));
        outcomes.push(outcome.expect("an outcome"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let count = |wanted: Outcome| outcomes.iter().filter(|&&o| o == wanted).count();
    assert_eq!(count(Outcome::Miss), 1, "{outcomes:?}");
    assert!(count(Outcome::Refresh) >= 2, "{outcomes:?}");
}

#[redis_cached(key = "ttl_expr:<id>", ttl = if hot { TTL } else { Duration::from_secs(60) }, cache = cache)]
pub async fn ttl_by_argument(cache: &Cache, source: &Source, id: u64, hot: bool) -> String {
    source.read(id).await.unwrap_or_default()
}

#[redis_cached(key = "ttl_negative:<id>", ttl = seconds - 10, cache = cache)]
pub async fn ttl_negative(cache: &Cache, source: &Source, id: u64, seconds: i64) -> String {
    source.read(id).await.unwrap_or_default()
}

/// A value whose TTL it chooses: `"volatile"` ones live `TTL`, `"uncacheable"` ones zero
/// (not stored), others a minute.
fn ttl_of(value: &str) -> Duration {
    if value.contains("uncacheable") {
        Duration::ZERO
    } else if value.contains("volatile") {
        TTL
    } else {
        Duration::from_secs(60)
    }
}

#[redis_cached(key = "ttl_from:<kind>", ttl_from = ttl_of, cache = cache)]
pub async fn ttl_by_value(cache: &Cache, source: &Source, kind: &str) -> String {
    bump(&source.runs);
    kind.to_owned()
}

/// `ttl = <expr>` over the arguments and `ttl_from` over the value choose each entry's TTL;
/// a TTL that is not positive stores nothing (the value is still returned).
pub async fn ttls_from_arguments_and_values(cache: Cache) {
    let source = Source::default();
    ttl_by_argument(&cache, &source, 7, true).await;
    ttl_by_argument(&cache, &source, 8, false).await;
    ttl_negative(&cache, &source, 9, 5).await;
    for kind in ["volatile", "stable", "uncacheable"] {
        ttl_by_value(&cache, &source, kind).await;
    }
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let outcome_of = |(_, outcome): (String, Option<Outcome>)| outcome;
    assert_eq!(
        outcome_of(with_outcome(ttl_by_argument(&cache, &source, 7, true)).await),
        Some(Outcome::Miss),
        "the hot key's TTL ended"
    );
    assert_eq!(
        outcome_of(with_outcome(ttl_by_argument(&cache, &source, 8, false)).await),
        Some(Outcome::Hit)
    );
    assert_eq!(
        outcome_of(with_outcome(ttl_negative(&cache, &source, 9, 5)).await),
        Some(Outcome::Miss),
        "a negative TTL stores nothing"
    );
    for (kind, expected) in [
        ("volatile", Outcome::Miss),
        ("stable", Outcome::Hit),
        ("uncacheable", Outcome::Miss),
    ] {
        let (value, outcome) = with_outcome(ttl_by_value(&cache, &source, kind)).await;
        assert_eq!((value.as_str(), outcome), (kind, Some(expected)));
    }
}
