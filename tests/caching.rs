//! `#[redis_cached]` against a real redis-server: the body runs once, what is (not) stored,
//! refresh, garbage entries, TTLs, and every kind of function the attribute accepts.

mod harness;
mod scenarios;
mod support;

use redis_cached::{Cache, KeyPart, Outcome, redis_cached, with_outcome};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use support::{bump, raw_exists, raw_get, raw_get_text, raw_set, raw_ttl, runs};

// ---------------------------------------------------------------------------------------
// The behaviour `memory.rs` checks on mem://, here on Redis.

scenarios::scenario_tests!(caching, support::shared_builder);

/// An application's own name for `Result`, as many crates have.
type AppResult<T> = Result<T, String>;

#[redis_cached(key = "aliased:<id>", ttl = 60, cache = cache)]
async fn aliased(cache: &Cache, counter: &AtomicUsize, id: u64, fail: bool) -> AppResult<u64> {
    bump(counter);
    if fail {
        Err(format!("no {id}"))
    } else {
        Ok(id)
    }
}

#[tokio::test]
async fn err_of_a_result_alias_is_not_stored() {
    let cache = support::redis_cache("result_alias").await;
    let counter = AtomicUsize::new(0);
    assert_eq!(aliased(&cache, &counter, 1, true).await, Err("no 1".into()));
    assert_eq!(
        aliased(&cache, &counter, 1, false).await,
        Ok(1),
        "the Err was served from the cache"
    );
    assert_eq!(runs(&counter), 2);
}

// ---------------------------------------------------------------------------------------
// What Redis holds.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
}

#[redis_cached(key = "profile:<id>", ttl = 60, cache = cache)]
async fn profile(cache: &Cache, counter: &AtomicUsize, id: u64) -> Profile {
    bump(counter);
    Profile {
        id,
        name: "Ann".into(),
        tags: vec!["a:b".into()],
    }
}

#[tokio::test]
async fn the_value_is_stored_as_json_under_the_rendered_key() {
    let cache = support::redis_cache("json_value").await;
    let counter = AtomicUsize::new(0);
    let first = profile(&cache, &counter, 9).await;
    assert_eq!(
        raw_get_text(&format!("{}profile:9", cache.prefix()))
            .await
            .as_deref(),
        Some(r#"{"id":9,"name":"Ann","tags":["a:b"]}"#)
    );
    assert_eq!(profile(&cache, &counter, 9).await, first);
    assert_eq!(runs(&counter), 1);
}

#[redis_cached(key = "err:<id>", ttl = 60, cache = cache)]
async fn always_err(cache: &Cache, id: u64) -> Result<u64, String> {
    Err(format!("no {id}"))
}

#[redis_cached(key = "none:<id>", ttl = 60, cache = cache)]
async fn always_none(cache: &Cache, id: u64) -> Option<u64> {
    let _ = id;
    None
}

#[redis_cached(key = "none_stored:<id>", ttl = 60, cache = cache, cache_none = true)]
async fn always_none_stored(cache: &Cache, id: u64) -> Option<u64> {
    let _ = id;
    None
}

#[redis_cached(key = "ok_none:<id>", ttl = 60, cache = cache, cache_none = true)]
async fn ok_none_stored(cache: &Cache, id: u64) -> Result<Option<u64>, String> {
    let _ = id;
    Ok(None)
}

#[tokio::test]
async fn err_and_none_leave_no_key_and_cache_none_stores_a_none_marker() {
    let cache = support::redis_cache("err_none_keys").await;
    let prefix = cache.prefix().to_owned();
    assert_eq!(always_err(&cache, 1).await, Err("no 1".into()));
    assert!(
        !raw_exists(&format!("{prefix}err:1")).await,
        "an Err was written"
    );
    assert_eq!(always_none(&cache, 1).await, None);
    assert!(
        !raw_exists(&format!("{prefix}none:1")).await,
        "a None was written"
    );
    // A stored `None` is the marker byte and `N`, never the codec's `null`, which a
    // `Some(())` or `Some(None)` encodes to as well.
    assert_eq!(always_none_stored(&cache, 1).await, None);
    let stored = raw_get(&format!("{prefix}none_stored:1")).await;
    assert_eq!(
        stored.as_deref().map(support::untrailed),
        Some(b"\xc1N".as_slice())
    );
    assert_eq!(ok_none_stored(&cache, 1).await, Ok(None));
    let stored = raw_get(&format!("{prefix}ok_none:1")).await;
    assert_eq!(
        stored.as_deref().map(support::untrailed),
        Some(b"\xc1N".as_slice())
    );
    assert_eq!(support::keys_under(&prefix).await.len(), 2);
}

// ---------------------------------------------------------------------------------------
// TTLs in Redis.

#[redis_cached(key = "ttl_secs", ttl = 60, cache = cache)]
async fn ttl_secs(cache: &Cache) -> u8 {
    1
}

#[redis_cached(key = "ttl_minutes", ttl = "15m", cache = cache)]
async fn ttl_minutes(cache: &Cache) -> u8 {
    2
}

#[redis_cached(key = "ttl_mixed", ttl = "1h30m", cache = cache)]
async fn ttl_mixed(cache: &Cache) -> u8 {
    3
}

#[redis_cached(key = "ttl_days", ttl = "2d", cache = cache)]
async fn ttl_days(cache: &Cache) -> u8 {
    4
}

#[redis_cached(key = "ttl_default", cache = cache)]
async fn ttl_default(cache: &Cache) -> u8 {
    5
}

/// The TTL Redis reports for `key` is `configured` (less the seconds a slow machine took).
async fn assert_ttl(key: String, configured: i64) {
    let ttl = raw_ttl(&key).await;
    assert!(
        (configured - 5..=configured).contains(&ttl),
        "TTL of {key} is {ttl}, configured {configured}"
    );
}

#[tokio::test]
async fn the_ttl_in_redis_is_the_configured_one() {
    let cache = support::shared_builder("ttl_in_redis")
        .default_ttl(Duration::from_secs(123))
        .build()
        .await
        .expect("the shared redis-server answers");
    let prefix = cache.prefix().to_owned();
    ttl_secs(&cache).await;
    ttl_minutes(&cache).await;
    ttl_mixed(&cache).await;
    ttl_days(&cache).await;
    ttl_default(&cache).await;
    assert_ttl(format!("{prefix}ttl_secs"), 60).await;
    assert_ttl(format!("{prefix}ttl_minutes"), 900).await;
    assert_ttl(format!("{prefix}ttl_mixed"), 5400).await;
    assert_ttl(format!("{prefix}ttl_days"), 172_800).await;
    assert_ttl(format!("{prefix}ttl_default"), 123).await;
}

#[tokio::test]
async fn the_default_ttl_is_one_hour() {
    let cache = support::redis_cache("ttl_one_hour").await;
    assert_eq!(cache.default_ttl(), Duration::from_secs(3600));
    ttl_default(&cache).await;
    assert_ttl(format!("{}ttl_default", cache.prefix()), 3600).await;
}

#[redis_cached(key = "refreshed:<id>", ttl = 60, refresh = force, cache = cache)]
async fn refreshed(cache: &Cache, counter: &AtomicUsize, id: u64, force: bool) -> String {
    bump(counter);
    format!("{id}:{}", runs(counter))
}

#[tokio::test]
async fn refresh_overwrites_the_value_and_resets_the_ttl() {
    let cache = support::redis_cache("refresh_ttl").await;
    let key = format!("{}refreshed:3", cache.prefix());
    let counter = AtomicUsize::new(0);
    assert_eq!(refreshed(&cache, &counter, 3, false).await, "3:1");
    let mut redis = harness::raw_connection().await;
    let _: bool = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(5)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(refreshed(&cache, &counter, 3, true).await, "3:2");
    assert_eq!(raw_get_text(&key).await.as_deref(), Some(r#""3:2""#));
    assert_ttl(key, 60).await;
}

// ---------------------------------------------------------------------------------------
// Garbage under the key.

#[redis_cached(key = "garbage:<id>", ttl = 60, cache = cache)]
async fn sturdy(cache: &Cache, counter: &AtomicUsize, id: u64) -> Profile {
    bump(counter);
    Profile {
        id,
        name: "fresh".into(),
        tags: vec![],
    }
}

#[tokio::test]
async fn a_garbage_value_is_a_miss_and_is_overwritten() {
    let cache = support::redis_cache("garbage").await;
    let garbage: [&[u8]; 5] = [
        b"not json",
        b"",
        b"\xff\xfe\x00",
        br#"{"id":"one"}"#,
        br#"{"id":1,"name":"stale""#,
    ];
    for (id, bytes) in (1u64..).zip(garbage) {
        let key = format!("{}garbage:{id}", cache.prefix());
        raw_set(&key, bytes).await;
        let counter = AtomicUsize::new(0);
        let (value, outcome) = with_outcome(sturdy(&cache, &counter, id)).await;
        assert_eq!(value.id, id);
        assert_eq!(value.name, "fresh");
        assert_eq!(outcome, Some(Outcome::Miss), "{bytes:?} was not a miss");
        assert_eq!(
            raw_get_text(&key).await,
            Some(format!(r#"{{"id":{id},"name":"fresh","tags":[]}}"#)),
            "{bytes:?} was not overwritten"
        );
        assert_ttl(key, 60).await;
        assert_eq!(sturdy(&cache, &counter, id).await, value);
        assert_eq!(runs(&counter), 1);
    }
}

#[tokio::test]
async fn a_garbage_value_that_looks_like_a_lease_is_a_miss_and_is_overwritten() {
    // A stray value starting with the marker byte is no lease (nor a stored `None`): a miss,
    // overwritten at once. One of a lease's form is waited for as a live filler's would be,
    // and taken over after the longest wait (`max_wait`, shortened here from 30 s).
    let cache = support::shared_builder("garbage_c1")
        .fill_lease(std::time::Duration::from_millis(200))
        .max_wait(std::time::Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let mut lease_like = b"\xc1L".to_vec();
    lease_like.extend_from_slice(&[7; 16]);
    for (id, garbage) in [(1, b"\xc1 binary garbage".as_slice()), (2, &lease_like)] {
        let key = format!("{}garbage:{id}", cache.prefix());
        raw_set(&key, garbage).await;
        let counter = AtomicUsize::new(0);
        assert_eq!(sturdy(&cache, &counter, id).await.name, "fresh");
        assert_eq!(
            support::raw_get_text(&key).await,
            Some(format!(r#"{{"id":{id},"name":"fresh","tags":[]}}"#)),
            "the garbage was not overwritten"
        );
    }
}

// ---------------------------------------------------------------------------------------
// `max_value_len`.

#[redis_cached(key = "sized:<len>", ttl = 60, cache = cache)]
async fn sized(cache: &Cache, counter: &AtomicUsize, len: usize) -> String {
    bump(counter);
    "x".repeat(len)
}

#[tokio::test]
async fn values_over_max_value_len_are_neither_stored_nor_read() {
    let cache = support::shared_builder("max_value_len")
        .max_value_len(16 + support::TRAILER_LEN)
        .build()
        .await
        .unwrap();
    let counter = AtomicUsize::new(0);
    // `"xxxxxxxxxxxxxx"` is 16 bytes of JSON, 30 with the entry's trailer: stored.
    assert_eq!(sized(&cache, &counter, 14).await.len(), 14);
    assert_eq!(sized(&cache, &counter, 14).await.len(), 14);
    assert_eq!(runs(&counter), 1);
    // 17 bytes: returned, not stored.
    assert_eq!(sized(&cache, &counter, 15).await.len(), 15);
    assert_eq!(sized(&cache, &counter, 15).await.len(), 15);
    assert_eq!(runs(&counter), 3);
    assert!(!raw_exists(&format!("{}sized:15", cache.prefix())).await);
    // An oversized entry written by someone else is not read.
    let key = format!("{}sized:3", cache.prefix());
    raw_set(&key, format!("\"{}\"", "y".repeat(40)).as_bytes()).await;
    assert_eq!(sized(&cache, &counter, 3).await, "xxx");
    assert_eq!(raw_get_text(&key).await.as_deref(), Some(r#""xxx""#));
}

// ---------------------------------------------------------------------------------------
// Methods: `&self`, `&mut self`, `self: Arc<Self>`, `self`.

struct Repo {
    cache: Cache,
    tenant: String,
    reads: AtomicUsize,
}

impl Repo {
    #[redis_cached(key = "repo:<self.tenant>:<id>", ttl = 60, cache = &self.cache)]
    async fn get(&self, id: u64) -> String {
        bump(&self.reads);
        format!("{}/{id}", self.tenant)
    }

    #[redis_cached(key = "repo_mut:<self.tenant>:<id>", ttl = 60, cache = self.cache.clone())]
    async fn get_mut(&mut self, id: u64) -> String {
        *self.reads.get_mut() += 1;
        self.tenant.push('!');
        format!("{}/{id}", self.tenant)
    }

    #[redis_cached(key = "repo_arc:<self.tenant>:<id>", ttl = 60, cache = &self.cache)]
    async fn get_arc(self: Arc<Self>, id: u64) -> String {
        bump(&self.reads);
        format!("{}/{id}", self.tenant)
    }
}

#[tokio::test]
async fn methods_with_ref_self() {
    let repo = Repo {
        cache: support::redis_cache("ref_self").await,
        tenant: "acme:eu".into(),
        reads: AtomicUsize::new(0),
    };
    assert_eq!(repo.get(1).await, "acme:eu/1");
    assert_eq!(repo.get(1).await, "acme:eu/1");
    assert_eq!(runs(&repo.reads), 1);
    assert!(raw_exists(&format!(r"{}repo:acme\:eu:1", repo.cache.prefix())).await);
}

#[tokio::test]
async fn methods_with_mut_self() {
    let mut repo = Repo {
        cache: support::redis_cache("mut_self").await,
        tenant: "acme".into(),
        reads: AtomicUsize::new(0),
    };
    // The key is rendered on entry, before the body changes `self.tenant`.
    assert_eq!(repo.get_mut(1).await, "acme!/1");
    assert_eq!(repo.tenant, "acme!");
    repo.tenant = "acme".into();
    assert_eq!(repo.get_mut(1).await, "acme!/1");
    assert_eq!(repo.tenant, "acme", "a hit does not run the body");
    assert_eq!(runs(&repo.reads), 1);
    assert!(raw_exists(&format!("{}repo_mut:acme:1", repo.cache.prefix())).await);
}

#[tokio::test]
async fn methods_with_arc_self() {
    let repo = Arc::new(Repo {
        cache: support::redis_cache("arc_self").await,
        tenant: "acme".into(),
        reads: AtomicUsize::new(0),
    });
    assert_eq!(Arc::clone(&repo).get_arc(2).await, "acme/2");
    assert_eq!(Arc::clone(&repo).get_arc(2).await, "acme/2");
    assert_eq!(runs(&repo.reads), 1);
    assert!(raw_exists(&format!("{}repo_arc:acme:2", repo.cache.prefix())).await);
}

/// A key part of its own, used as `self` by value.
#[derive(Clone, Copy)]
struct Sku(u32, char);

impl KeyPart for Sku {
    fn write_key(&self, out: &mut String) {
        self.0.write_key(out);
        out.push_str(r"\,");
        self.1.write_key(out);
    }
}

impl Sku {
    #[redis_cached(key = "sku:<self>", ttl = 60, cache = cache)]
    async fn price(self, cache: &Cache, counter: &AtomicUsize) -> u32 {
        bump(counter);
        self.0 * 100
    }
}

#[tokio::test]
async fn methods_with_self_by_value_and_a_custom_key_part() {
    let cache = support::redis_cache("self_by_value").await;
    let counter = AtomicUsize::new(0);
    assert_eq!(Sku(3, ':').price(&cache, &counter).await, 300);
    assert_eq!(Sku(3, ':').price(&cache, &counter).await, 300);
    assert_eq!(runs(&counter), 1);
    assert_eq!(
        support::keys_under(cache.prefix()).await,
        vec![format!(r"{}sku:3\,\:", cache.prefix())]
    );
}

// ---------------------------------------------------------------------------------------
// Generics, `impl Trait` arguments, lifetimes.

#[redis_cached(key = "generic:<id>", ttl = 60, cache = cache)]
async fn generic<K>(cache: &Cache, counter: &AtomicUsize, id: K) -> String
where
    K: KeyPart + std::fmt::Display,
{
    bump(counter);
    format!("<{id}>")
}

// `suffix` is not rendered, so its type is named (`<S>`): as an unrendered `impl Into<String>`
// the key could not tell its types apart, which is a compile error.
#[redis_cached(key = "impl_arg:<S>:<name>", ttl = 60, cache = cache)]
async fn impl_arg<S: Into<String>>(
    cache: &Cache,
    counter: &AtomicUsize,
    name: impl KeyPart + AsRef<str>,
    suffix: S,
) -> String {
    bump(counter);
    format!("{}{}", name.as_ref(), suffix.into())
}

#[redis_cached(key = "lifetimes:<first>:<second>", ttl = 60, cache = cache)]
async fn lifetimes<'a, 'b: 'a>(
    cache: &'a Cache,
    counter: &'b AtomicUsize,
    first: &'a str,
    second: Cow<'b, str>,
) -> String {
    bump(counter);
    format!("{first}+{second}")
}

#[tokio::test]
async fn generic_functions() {
    let cache = support::redis_cache("generic").await;
    let counter = AtomicUsize::new(0);
    assert_eq!(generic(&cache, &counter, 5u32).await, "<5>");
    assert_eq!(generic(&cache, &counter, 5u64).await, "<5>");
    assert_eq!(
        generic(&cache, &counter, String::from("x:y")).await,
        "<x:y>"
    );
    assert_eq!(generic(&cache, &counter, "x:y").await, "<x:y>");
    assert_eq!(
        runs(&counter),
        2,
        "5u32 and 5u64 render alike, as do String and &str"
    );
    let prefix = cache.prefix();
    assert_eq!(
        support::keys_under(prefix).await,
        vec![
            format!("{prefix}generic:5"),
            format!(r"{prefix}generic:x\:y")
        ]
    );
}

#[tokio::test]
async fn impl_trait_arguments() {
    let cache = support::redis_cache("impl_trait").await;
    let counter = AtomicUsize::new(0);
    assert_eq!(impl_arg(&cache, &counter, "ann", "!").await, "ann!");
    assert_eq!(
        impl_arg(&cache, &counter, String::from("ann"), "?").await,
        "ann!"
    );
    assert_eq!(runs(&counter), 1);
    assert!(raw_exists(&format!("{}impl_arg:&str:ann", cache.prefix())).await);
}

#[tokio::test]
async fn functions_with_lifetimes() {
    let cache = support::redis_cache("lifetimes").await;
    let counter = AtomicUsize::new(0);
    let owned = String::from("b");
    assert_eq!(
        lifetimes(&cache, &counter, "a", Cow::Borrowed(&owned)).await,
        "a+b"
    );
    assert_eq!(
        lifetimes(&cache, &counter, "a", Cow::Owned("b".into())).await,
        "a+b"
    );
    assert_eq!(runs(&counter), 1);
    assert!(raw_exists(&format!("{}lifetimes:a:b", cache.prefix())).await);
}

// ---------------------------------------------------------------------------------------
// Destructured parameters, as in axum handlers.

struct State<T>(T);
struct Path<T>(T);
struct Query<T>(T);

struct Page {
    number: u32,
    size: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Json<T>(T);

struct App {
    cache: Cache,
    reads: AtomicUsize,
}

#[redis_cached(key = "item:<id>", ttl = 60, cache = &app.cache)]
async fn show_item(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Result<Json<u64>, String> {
    bump(&app.reads);
    Ok(Json(id * 3))
}

#[redis_cached(key = "list:<owner>:<kind>:<number>:<size>", ttl = 60, cache = &app.cache)]
async fn list_items(
    State(app): State<Arc<App>>,
    Path((owner, kind)): Path<(String, u8)>,
    Query(Page { number, size }): Query<Page>,
) -> Json<Vec<String>> {
    bump(&app.reads);
    Json(vec![format!("{owner}/{kind}/{number}/{size}")])
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn destructured_parameters_in_the_key() {
    let app = Arc::new(App {
        cache: support::redis_cache("destructured").await,
        reads: AtomicUsize::new(0),
    });
    let state = || State(Arc::clone(&app));
    // Handlers' futures must be Send to be served by axum.
    assert_eq!(assert_send(show_item(state(), Path(4))).await, Ok(Json(12)));
    assert_eq!(show_item(state(), Path(4)).await, Ok(Json(12)));
    let page = || {
        Query(Page {
            number: 2,
            size: 10,
        })
    };
    let path = || Path(("ann:b".to_owned(), 1));
    let listed = assert_send(list_items(state(), path(), page())).await;
    assert_eq!(listed, Json(vec!["ann:b/1/2/10".to_owned()]));
    assert_eq!(list_items(state(), path(), page()).await, listed);
    assert_eq!(runs(&app.reads), 2);
    let prefix = app.cache.prefix();
    assert_eq!(
        support::keys_under(prefix).await,
        vec![
            format!("{prefix}item:4"),
            format!(r"{prefix}list:ann\:b:1:2:10")
        ]
    );
}

// ---------------------------------------------------------------------------------------
// `cache = <expr>`: a `&Cache` or a `Cache`, from arguments or `self`.

struct Shards {
    caches: Vec<Cache>,
    reads: AtomicUsize,
}

impl Shards {
    fn pick(&self, id: u64) -> &Cache {
        &self.caches[(id % 2) as usize]
    }

    #[redis_cached(key = "sharded:<id>", ttl = 60, cache = self.pick(id))]
    async fn by_method(&self, id: u64) -> u64 {
        bump(&self.reads);
        id
    }
}

#[redis_cached(key = "indexed:<id>", ttl = 60, cache = &caches[shard])]
async fn indexed(caches: &[Cache], shard: usize, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id
}

#[redis_cached(key = "owned:<id>", ttl = 60, cache = caches[0].clone())]
async fn owned_cache(caches: Vec<Cache>, counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id + caches.len() as u64
}

#[tokio::test]
async fn cache_expressions_may_use_arguments_and_self() {
    let shards = Shards {
        caches: vec![
            support::redis_cache("cache_expr_even").await,
            support::redis_cache("cache_expr_odd").await,
        ],
        reads: AtomicUsize::new(0),
    };
    let [even, odd] = [shards.caches[0].prefix(), shards.caches[1].prefix()];

    assert_eq!(shards.by_method(2).await, 2);
    assert_eq!(shards.by_method(3).await, 3);
    assert_eq!(shards.by_method(2).await, 2);
    assert_eq!(runs(&shards.reads), 2);

    let counter = AtomicUsize::new(0);
    assert_eq!(indexed(&shards.caches, 1, &counter, 7).await, 7);
    assert_eq!(indexed(&shards.caches, 1, &counter, 7).await, 7);
    assert_eq!(indexed(&shards.caches, 0, &counter, 7).await, 7);
    assert_eq!(runs(&counter), 2, "shard 0 has no entry for 7 yet");

    let counter = AtomicUsize::new(0);
    assert_eq!(owned_cache(shards.caches.clone(), &counter, 1).await, 3);
    assert_eq!(owned_cache(shards.caches.clone(), &counter, 1).await, 3);
    assert_eq!(runs(&counter), 1);

    assert_eq!(
        support::keys_under(even).await,
        vec![
            format!("{even}indexed:7"),
            format!("{even}owned:1"),
            format!("{even}sharded:2"),
        ]
    );
    assert_eq!(
        support::keys_under(odd).await,
        vec![format!("{odd}indexed:7"), format!("{odd}sharded:3")]
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency: one connection serves many calls at once.

#[redis_cached(key = "concurrent:<id>", ttl = 60, cache = cache)]
async fn concurrent(cache: Cache, id: u64) -> u64 {
    id * id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_calls_return_their_own_values() {
    let cache = support::redis_cache("concurrent").await;
    let tasks: Vec<_> = (0..200u64)
        .map(|id| tokio::spawn(concurrent(cache.clone(), id % 50)))
        .collect();
    for (id, task) in (0..200u64).zip(tasks) {
        assert_eq!(task.await.unwrap(), (id % 50) * (id % 50));
    }
    assert_eq!(support::keys_under(cache.prefix()).await.len(), 50);
}
