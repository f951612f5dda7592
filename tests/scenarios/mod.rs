//! Behaviour every backend must show, written once against a `Cache`, and the one list of
//! it, [`scenario_tests!`]: run by `caching.rs`, `invalidation.rs` and `keys.rs` on a
//! single redis-server, by `memory.rs` on `mem://`, by `cluster.rs` on a Redis Cluster and
//! by `sentinel.rs` behind Sentinel (`tags.rs` runs the tag scenarios on a single server).
//!
//! Every scenario observes the cache only through the public API: how often a body runs,
//! what a call returns and what `with_outcome` reports. Redis-specific checks (key text,
//! TTL in Redis) live in the test files. The stale-set checker (`stale_set`) is shared too,
//! but not listed: it needs a source apart from the cache and runs longer.
#![allow(dead_code)]

pub mod failover;
pub mod freshness;
pub mod stale_set;
pub mod tags;

use crate::support::{bump, runs};
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// Declares one `#[tokio::test]` per scenario of this module, each on a cache of its own:
/// the one list every topology runs.
///
/// `$builder` is a `fn(&str) -> CacheBuilder`: a test's name to a builder with a prefix of
/// its own. `all` declares every group; a single node runs them from several files:
///
/// ```ignore
/// scenarios::scenario_tests!(all, support::cluster_builder);
/// scenarios::scenario_tests!(invalidation, support::shared_builder);
/// ```
///
/// In the groups, each test is `name => scenario, extra arguments;`, the scenario called
/// with the built cache first; `[..]` before the name is what `#[tokio::test(..)]` is given.
#[allow(unused_macros)] // by `stale_set.rs`, which runs none of them
macro_rules! scenario_tests {
    (all, $builder:path) => {
        $crate::scenarios::scenario_tests!(caching, $builder);
        $crate::scenarios::scenario_tests!(invalidation, $builder);
        $crate::scenarios::scenario_tests!(keys, $builder);
        $crate::scenarios::scenario_tests!(tags, $builder);
        $crate::scenarios::scenario_tests!(freshness, $builder);
    };
    (caching, $builder:path) => {
        $crate::scenarios::scenario_tests!(@tests $builder;
            body_runs_once_for_repeated_calls => body_runs_once;
            err_is_not_stored => err_not_stored;
            none_is_not_stored => none_not_stored;
            cache_none_stores_none => cache_none_stores;
            result_option_stores_only_ok_some_unless_cache_none => result_option;
            refresh_recomputes_and_overwrites => refresh_recomputes;
            with_outcome_reports_miss_hit_refresh => outcomes;
            [flavor = "multi_thread", worker_threads = 4]
            concurrent_cold_calls_run_the_body_once => stampede, 1000;
            [flavor = "multi_thread"] entries_expire_after_their_ttl => ttl_expiry;
        );
        $crate::scenarios::scenario_tests!(@tests
            |test| $builder(test).default_ttl(::std::time::Duration::from_secs(1));
            [flavor = "multi_thread"] default_ttl_applies_when_ttl_is_omitted => default_ttl_expiry;
        );
    };
    (invalidation, $builder:path) => {
        $crate::scenarios::scenario_tests!(@tests $builder;
            invalidates_deletes_and_the_next_call_recomputes => invalidation_recomputes;
            invalidates_deletes_even_when_the_body_fails => invalidation_after_err;
            invalidates_renders_keys_like_redis_cached => invalidation_renders_like_cached;
        );
    };
    (tags, $builder:path) => {
        $crate::scenarios::scenario_tests!(@tests $builder;
            a_tag_invalidates_every_entry_carrying_it
                => tags::a_tag_invalidates_every_entry_carrying_it;
            [flavor = "multi_thread", worker_threads = 2]
            a_tag_invalidated_during_the_body_leaves_its_entry_stale
                => tags::a_tag_invalidated_during_the_body_leaves_its_entry_stale;
        );
    };
    (freshness, $builder:path) => {
        $crate::scenarios::scenario_tests!(@tests $builder;
            [flavor = "multi_thread", worker_threads = 2]
            stale_entries_are_served_at_once_while_one_caller_refreshes
                => freshness::stale_entries_are_served_while_one_caller_refreshes, 1000;
            an_invalidated_entry_is_never_served_stale
                => freshness::an_invalidated_entry_is_never_served_stale;
            [flavor = "multi_thread", worker_threads = 2]
            a_refresh_racing_an_invalidation_does_not_store
                => freshness::a_refresh_racing_an_invalidation_does_not_store;
            stale_if_error_answers_a_failing_body_with_the_stored_value
                => freshness::stale_if_error_answers_a_failing_body;
            [flavor = "multi_thread", worker_threads = 2]
            background_revalidation_answers_every_caller_at_once
                => freshness::background_revalidation_answers_every_caller_at_once, 1000;
            [flavor = "multi_thread", worker_threads = 2]
            a_background_refresh_racing_an_invalidation_does_not_store
                => freshness::a_background_refresh_racing_an_invalidation_does_not_store;
            [flavor = "multi_thread", worker_threads = 2]
            stale_if_error_calls_in_its_window_run_the_body_once
                => freshness::stale_if_error_calls_in_its_window_run_the_body_once, 50;
            refresh_ahead_keeps_hot_keys_from_expiring
                => freshness::refresh_ahead_keeps_hot_keys_from_expiring;
            ttls_from_arguments_and_values => freshness::ttls_from_arguments_and_values;
        );
    };
    (keys, $builder:path) => {
        $crate::scenarios::scenario_tests!(@tests $builder;
            colliding_strings_get_different_entries => colliding_strings;
        );
    };
    // Each test once: its name is also its cache's prefix.
    (@tests $builder:expr;
        $($([$($runtime:tt)*])? $name:ident => $($scenario:ident)::+ $(, $arg:expr)*;)*
    ) => {
        $(
            #[tokio::test$(($($runtime)*))?]
            async fn $name() {
                let cache = ($builder)(stringify!($name))
                    .build()
                    .await
                    .expect("the scenario's cache builds");
                $crate::scenarios::$($scenario)::+(cache $(, $arg)*).await;
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use scenario_tests;

// ---------------------------------------------------------------------------------------
// Concurrent cold calls on one key run the body once (single-flight and the fill lease).

#[redis_cached(key = "stampede:<id>", ttl = 60, cache = cache)]
async fn slow_read(cache: &Cache, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    // Slow enough that every concurrent call arrives while the first one fills.
    tokio::time::sleep(Duration::from_millis(300)).await;
    id * 10
}

/// `calls` concurrent cold calls on one key: every call gets the value, the body runs once.
pub async fn stampede(cache: Cache, calls: usize) {
    let counter = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let (cache, counter) = (cache.clone(), counter.clone());
            tokio::spawn(async move { slow_read(&cache, &counter, 1).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("no call panics"), 10);
    }
    assert_eq!(
        runs(&counter),
        1,
        "{calls} concurrent cold calls ran the body more than once"
    );
    assert_eq!(
        with_outcome(slow_read(&cache, &counter, 1)).await,
        (10, Some(Outcome::Hit))
    );
}

// ---------------------------------------------------------------------------------------
// The body runs once for repeated calls.

#[redis_cached(key = "once:<id>", ttl = 60, cache = cache)]
async fn times_ten(cache: &Cache, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id * 10
}

pub async fn body_runs_once(cache: Cache) {
    let counter = AtomicUsize::new(0);
    for _ in 0..3 {
        assert_eq!(times_ten(&cache, &counter, 1).await, 10);
    }
    assert_eq!(
        runs(&counter),
        1,
        "repeated calls with one argument run the body once"
    );
    assert_eq!(times_ten(&cache, &counter, 2).await, 20);
    assert_eq!(times_ten(&cache, &counter, 2).await, 20);
    assert_eq!(runs(&counter), 2, "another argument is another entry");
    assert_eq!(times_ten(&cache, &counter, 1).await, 10);
    assert_eq!(runs(&counter), 2, "the first entry is still there");
}

// ---------------------------------------------------------------------------------------
// `Err` is not stored.

#[redis_cached(key = "fallible:<id>", ttl = 60, cache = cache)]
async fn fallible(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
    fail: bool,
) -> Result<u64, String> {
    let run = bump(counter);
    if fail {
        Err(format!("failure {run}"))
    } else {
        Ok(id + 1000)
    }
}

#[redis_cached(key = "fallible_io:<id>", ttl = 60, cache = cache)]
async fn fallible_io(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
    fail: bool,
) -> std::io::Result<u64> {
    bump(counter);
    if fail {
        Err(std::io::Error::other("down"))
    } else {
        Ok(id + 2000)
    }
}

pub async fn err_not_stored(cache: Cache) {
    let counter = AtomicUsize::new(0);
    assert_eq!(
        fallible(&cache, &counter, 1, true).await,
        Err("failure 1".into())
    );
    assert_eq!(
        fallible(&cache, &counter, 1, true).await,
        Err("failure 2".into()),
        "an Err is never served from the cache"
    );
    assert_eq!(fallible(&cache, &counter, 1, false).await, Ok(1001));
    assert_eq!(runs(&counter), 3);
    // `fail` is not in the key: a stored Ok answers whatever it says.
    assert_eq!(fallible(&cache, &counter, 1, true).await, Ok(1001));
    assert_eq!(runs(&counter), 3, "the Ok value was stored");

    // The same through a path to `Result` (`std::io::Result<T>`).
    let counter = AtomicUsize::new(0);
    assert!(fallible_io(&cache, &counter, 1, true).await.is_err());
    assert!(fallible_io(&cache, &counter, 1, true).await.is_err());
    assert_eq!(
        runs(&counter),
        2,
        "an io::Error is never served from the cache"
    );
    assert_eq!(fallible_io(&cache, &counter, 1, false).await.unwrap(), 2001);
    assert_eq!(fallible_io(&cache, &counter, 1, true).await.unwrap(), 2001);
    assert_eq!(runs(&counter), 3);
}

// ---------------------------------------------------------------------------------------
// `None` is stored only with `cache_none = true`.

#[redis_cached(key = "maybe:<id>", ttl = 60, cache = cache)]
async fn maybe(cache: &Cache, counter: &AtomicUsize, id: u64, present: bool) -> Option<u64> {
    bump(counter);
    present.then_some(id)
}

#[redis_cached(key = "maybe_none:<id>", ttl = 60, cache = cache, cache_none = true)]
async fn maybe_cache_none(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
    present: bool,
) -> Option<u64> {
    bump(counter);
    present.then_some(id)
}

pub async fn none_not_stored(cache: Cache) {
    let counter = AtomicUsize::new(0);
    assert_eq!(maybe(&cache, &counter, 5, false).await, None);
    assert_eq!(maybe(&cache, &counter, 5, false).await, None);
    assert_eq!(runs(&counter), 2, "None is not stored without cache_none");
    assert_eq!(maybe(&cache, &counter, 5, true).await, Some(5));
    assert_eq!(maybe(&cache, &counter, 5, false).await, Some(5));
    assert_eq!(runs(&counter), 3, "Some is stored");
}

pub async fn cache_none_stores(cache: Cache) {
    let counter = AtomicUsize::new(0);
    assert_eq!(maybe_cache_none(&cache, &counter, 5, false).await, None);
    assert_eq!(
        maybe_cache_none(&cache, &counter, 5, true).await,
        None,
        "the stored None answers"
    );
    assert_eq!(runs(&counter), 1);
    assert_eq!(
        with_outcome(maybe_cache_none(&cache, &counter, 5, true))
            .await
            .1,
        Some(Outcome::Hit)
    );
    assert_eq!(maybe_cache_none(&cache, &counter, 6, true).await, Some(6));
    assert_eq!(maybe_cache_none(&cache, &counter, 6, false).await, Some(6));
    assert_eq!(runs(&counter), 2, "Some is stored too");
}

// ---------------------------------------------------------------------------------------
// `Result<Option<T>, E>`.

#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Fail,
    Nothing,
    Value,
}

fn answer(id: u64, answer: Answer) -> Result<Option<u64>, String> {
    match answer {
        Answer::Fail => Err("failed".into()),
        Answer::Nothing => Ok(None),
        Answer::Value => Ok(Some(id)),
    }
}

#[redis_cached(key = "lookup:<id>", ttl = 60, cache = cache)]
async fn lookup(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
    reply: Answer,
) -> Result<Option<u64>, String> {
    bump(counter);
    answer(id, reply)
}

#[redis_cached(key = "lookup_none:<id>", ttl = 60, cache = cache, cache_none = true)]
async fn lookup_cache_none(
    cache: &Cache,
    counter: &AtomicUsize,
    id: u64,
    reply: Answer,
) -> Result<Option<u64>, String> {
    bump(counter);
    answer(id, reply)
}

pub async fn result_option(cache: Cache) {
    use Answer::{Fail, Nothing, Value};

    let counter = AtomicUsize::new(0);
    assert_eq!(
        lookup(&cache, &counter, 1, Fail).await,
        Err("failed".into())
    );
    assert_eq!(lookup(&cache, &counter, 1, Nothing).await, Ok(None));
    assert_eq!(lookup(&cache, &counter, 1, Nothing).await, Ok(None));
    assert_eq!(runs(&counter), 3, "neither Err nor Ok(None) is stored");
    assert_eq!(lookup(&cache, &counter, 1, Value).await, Ok(Some(1)));
    assert_eq!(lookup(&cache, &counter, 1, Fail).await, Ok(Some(1)));
    assert_eq!(runs(&counter), 4, "Ok(Some) is stored");

    let counter = AtomicUsize::new(0);
    assert_eq!(
        lookup_cache_none(&cache, &counter, 1, Fail).await,
        Err("failed".into())
    );
    assert_eq!(
        lookup_cache_none(&cache, &counter, 1, Fail).await,
        Err("failed".into())
    );
    assert_eq!(runs(&counter), 2, "Err is not stored, even with cache_none");
    assert_eq!(
        lookup_cache_none(&cache, &counter, 1, Nothing).await,
        Ok(None)
    );
    assert_eq!(
        lookup_cache_none(&cache, &counter, 1, Value).await,
        Ok(None)
    );
    assert_eq!(runs(&counter), 3, "Ok(None) is stored with cache_none");
}

// ---------------------------------------------------------------------------------------
// `refresh = <expr>` recomputes and overwrites.

#[redis_cached(key = "versioned:<id>", ttl = 60, refresh = force, cache = cache)]
async fn versioned(cache: &Cache, counter: &AtomicUsize, id: u64, force: bool) -> String {
    let version = bump(counter);
    format!("{id}@v{version}")
}

pub async fn refresh_recomputes(cache: Cache) {
    let counter = AtomicUsize::new(0);
    assert_eq!(versioned(&cache, &counter, 7, false).await, "7@v1");
    assert_eq!(versioned(&cache, &counter, 7, false).await, "7@v1");
    assert_eq!(
        with_outcome(versioned(&cache, &counter, 7, true)).await,
        ("7@v2".to_owned(), Some(Outcome::Refresh)),
        "refresh runs the body although an entry exists"
    );
    assert_eq!(
        with_outcome(versioned(&cache, &counter, 7, false)).await,
        ("7@v2".to_owned(), Some(Outcome::Hit)),
        "the refreshed value replaced the entry"
    );
    assert_eq!(runs(&counter), 2);
    // A refresh with no entry yet stores too.
    assert_eq!(versioned(&cache, &counter, 8, true).await, "8@v3");
    assert_eq!(versioned(&cache, &counter, 8, false).await, "8@v3");
    assert_eq!(runs(&counter), 3);
}

// ---------------------------------------------------------------------------------------
// `with_outcome`.

#[redis_cached(key = "inner:<id>", ttl = 60, cache = cache)]
async fn inner(cache: &Cache, id: u64) -> u64 {
    id + 1
}

#[redis_cached(key = "outer:<id>", ttl = 60, cache = cache)]
async fn outer(cache: &Cache, id: u64) -> u64 {
    inner(cache, id).await * 2
}

pub async fn outcomes(cache: Cache) {
    assert_eq!(
        with_outcome(outer(&cache, 1)).await,
        (4, Some(Outcome::Miss))
    );
    assert_eq!(
        with_outcome(outer(&cache, 1)).await,
        (4, Some(Outcome::Hit))
    );
    assert_eq!(
        with_outcome(inner(&cache, 1)).await,
        (2, Some(Outcome::Hit))
    );
    // Nested calls report the outermost: the inner call hits, the outer one misses.
    cache.invalidate(&["outer:1"]).await.expect("invalidate");
    assert_eq!(
        with_outcome(outer(&cache, 1)).await,
        (4, Some(Outcome::Miss))
    );
    // Sequential calls report the last one.
    let (_, outcome) = with_outcome(async {
        inner(&cache, 1).await;
        inner(&cache, 2).await
    })
    .await;
    assert_eq!(outcome, Some(Outcome::Miss));
    // No cached call: no outcome.
    assert_eq!(with_outcome(async { 5 }).await, (5, None));
}

// ---------------------------------------------------------------------------------------
// Different strings that would collide naively get different entries.

#[redis_cached(key = "pair:<a>:<b>", ttl = 60, cache = cache)]
async fn pair(cache: &Cache, a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// Pairs that would render alike if parts were joined as they are (the first three), if
/// only `:` were escaped (`a\:\:` both), or if only `:` were percent-encoded.
pub const COLLIDING: &[[(&str, &str); 2]] = &[
    [("a:b", "c"), ("a", "b:c")],
    [("a:", "b"), ("a", ":b")],
    [(":", ""), ("", ":")],
    [("a\\", ":"), ("a:\\", "")],
    [("%3A", "x"), (":", "x")],
];

pub async fn colliding_strings(cache: Cache) {
    for [first, second] in COLLIDING {
        let want_first = (first.0.to_owned(), first.1.to_owned());
        let want_second = (second.0.to_owned(), second.1.to_owned());
        assert_eq!(pair(&cache, first.0, first.1).await, want_first);
        assert_eq!(
            with_outcome(pair(&cache, second.0, second.1)).await,
            (want_second.clone(), Some(Outcome::Miss)),
            "{second:?} must not be served {first:?}'s entry"
        );
        // Both entries stay apart.
        assert_eq!(
            with_outcome(pair(&cache, first.0, first.1)).await,
            (want_first, Some(Outcome::Hit))
        );
        assert_eq!(
            with_outcome(pair(&cache, second.0, second.1)).await,
            (want_second, Some(Outcome::Hit))
        );
    }
}

// ---------------------------------------------------------------------------------------
// Entries expire after their TTL.

#[redis_cached(key = "short:<id>", ttl = 1, cache = cache)]
async fn short_lived(cache: &Cache, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id
}

#[redis_cached(key = "default_ttl:<id>", cache = cache)]
async fn default_lived(cache: &Cache, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id
}

/// Waits (at most 10 s) until the entry that `call` hits expires and the body runs again.
async fn expires<F, Fut>(counter: &AtomicUsize, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    assert_eq!(call().await, 1);
    assert_eq!(call().await, 1);
    assert_eq!(
        runs(counter),
        1,
        "the entry is there right after it was stored"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while runs(counter) == 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "an entry with a 1 s TTL was still served after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(call().await, 1);
    }
    assert_eq!(runs(counter), 2);
    assert_eq!(call().await, 1);
    assert_eq!(runs(counter), 2, "the recomputed value is stored again");
}

/// `ttl = 1`: the entry expires.
pub async fn ttl_expiry(cache: Cache) {
    let counter = AtomicUsize::new(0);
    expires(&counter, || short_lived(&cache, &counter, 1)).await;
}

/// No `ttl`: the cache's default applies. `cache` must have a default TTL of one second.
pub async fn default_ttl_expiry(cache: Cache) {
    assert_eq!(cache.default_ttl(), Duration::from_secs(1));
    let counter = AtomicUsize::new(0);
    expires(&counter, || default_lived(&cache, &counter, 1)).await;
}

// ---------------------------------------------------------------------------------------
// `#[invalidates]`.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

/// A tiny database the cached functions read and the invalidating ones write.
#[derive(Default)]
pub struct Db {
    names: std::sync::Mutex<std::collections::BTreeMap<u64, String>>,
    pub reads: AtomicUsize,
}

impl Db {
    fn name(&self, id: u64) -> String {
        bump(&self.reads);
        let names = self.names.lock().unwrap();
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}"))
    }

    fn all(&self) -> Vec<(u64, String)> {
        bump(&self.reads);
        let names = self.names.lock().unwrap();
        names.iter().map(|(id, name)| (*id, name.clone())).collect()
    }

    fn rename(&self, id: u64, name: &str) {
        self.names.lock().unwrap().insert(id, name.to_owned());
    }
}

#[redis_cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn get_user(cache: &Cache, db: &Db, id: u64) -> Result<User, String> {
    Ok(User {
        id,
        name: db.name(id),
    })
}

#[redis_cached(key = "users:all", ttl = 60, cache = cache)]
async fn list_users(cache: &Cache, db: &Db) -> Vec<(u64, String)> {
    db.all()
}

#[invalidates("user:<id>", "users:all", cache = cache)]
async fn update_user(cache: &Cache, db: &Db, id: u64, name: &str) -> Result<(), String> {
    db.rename(id, name);
    Ok(())
}

#[invalidates("user:<id>", "users:all", cache = cache)]
async fn update_user_failing(cache: &Cache, db: &Db, id: u64, name: &str) -> Result<(), String> {
    // Half-applied before failing: exactly why the keys go whatever the body returns.
    db.rename(id, name);
    Err("constraint violated".into())
}

pub async fn invalidation_recomputes(cache: Cache) {
    let db = Db::default();
    db.rename(42, "Ann");
    db.rename(43, "Bob");
    assert_eq!(get_user(&cache, &db, 42).await.unwrap().name, "Ann");
    assert_eq!(get_user(&cache, &db, 43).await.unwrap().name, "Bob");
    assert_eq!(list_users(&cache, &db).await.len(), 2);
    assert_eq!(runs(&db.reads), 3);
    // Everything is cached now.
    get_user(&cache, &db, 42).await.unwrap();
    list_users(&cache, &db).await;
    assert_eq!(runs(&db.reads), 3);

    assert_eq!(update_user(&cache, &db, 42, "Annie").await, Ok(()));
    assert_eq!(
        with_outcome(get_user(&cache, &db, 42)).await,
        (
            Ok(User {
                id: 42,
                name: "Annie".into()
            }),
            Some(Outcome::Miss)
        ),
        "the next call after #[invalidates] recomputes"
    );
    assert_eq!(
        list_users(&cache, &db).await,
        vec![(42, "Annie".to_owned()), (43, "Bob".to_owned())],
        "every template of #[invalidates] was deleted"
    );
    assert_eq!(runs(&db.reads), 5);
    assert_eq!(
        with_outcome(get_user(&cache, &db, 43)).await.1,
        Some(Outcome::Hit),
        "keys of other arguments stay"
    );
    assert_eq!(runs(&db.reads), 5);
}

pub async fn invalidation_after_err(cache: Cache) {
    let db = Db::default();
    assert_eq!(get_user(&cache, &db, 7).await.unwrap().name, "user 7");
    assert_eq!(list_users(&cache, &db).await, vec![]);
    assert_eq!(
        update_user_failing(&cache, &db, 7, "Eve").await,
        Err("constraint violated".into()),
        "the body's Err is returned as is"
    );
    assert_eq!(get_user(&cache, &db, 7).await.unwrap().name, "Eve");
    assert_eq!(list_users(&cache, &db).await, vec![(7, "Eve".to_owned())]);
    assert_eq!(
        runs(&db.reads),
        4,
        "the keys were deleted although the body failed"
    );
}

/// String keys with separators, `<param.field>` against `<id>`, `self` against a
/// parameter: `#[invalidates]` renders like `#[redis_cached]`.
pub struct Accounts {
    pub cache: Cache,
    pub db: Db,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Handle {
    pub team: String,
    pub login: String,
}

impl Accounts {
    #[redis_cached(key = "account:<team>:<login>", ttl = 60, cache = &self.cache)]
    async fn account(&self, team: &str, login: &str) -> String {
        bump(&self.db.reads);
        format!("{team}/{login}")
    }

    #[invalidates("account:<handle.team>:<handle.login>", cache = &self.cache)]
    async fn rename_account(&self, handle: &Handle) {
        let _ = handle;
    }
}

pub async fn invalidation_renders_like_cached(cache: Cache) {
    let accounts = Accounts {
        cache,
        db: Db::default(),
    };
    let team = r"ops:eu\west";
    let login = "a:b";
    accounts.account(team, login).await;
    accounts.account(team, "a").await;
    accounts.account(team, login).await;
    assert_eq!(runs(&accounts.db.reads), 2);
    accounts
        .rename_account(&Handle {
            team: team.to_owned(),
            login: login.to_owned(),
        })
        .await;
    assert_eq!(accounts.account(team, login).await, r"ops:eu\west/a:b");
    assert_eq!(
        runs(&accounts.db.reads),
        3,
        "the field-rendered key is the same key"
    );
    accounts.account(team, "a").await;
    assert_eq!(runs(&accounts.db.reads), 3, "only that key was deleted");
}
