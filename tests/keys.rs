//! Key rendering as Redis sees it: exact key text, escaping, injectivity (fixed pairs and a
//! property test), hash tags (`#{...}`), and the digest form of long keys.

mod harness;
mod scenarios;
mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use redis::cluster_routing::Slot;
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use support::{bump, keys_under, runs};

/// The keys under `cache`'s prefix, without the prefix.
async fn rendered(cache: &Cache) -> Vec<String> {
    let prefix = cache.prefix();
    keys_under(prefix)
        .await
        .into_iter()
        .map(|key| {
            key.strip_prefix(prefix)
                .expect("under the prefix")
                .to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Exact key text.

#[redis_cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn by_u64(cache: &Cache, id: u64) -> u64 {
    id
}

#[redis_cached(key = "signed:<n>", ttl = 60, cache = cache)]
async fn by_i64(cache: &Cache, n: i64) -> i64 {
    n
}

#[redis_cached(key = "wide:<n>", ttl = 60, cache = cache)]
async fn by_i128(cache: &Cache, n: i128) -> String {
    n.to_string()
}

#[redis_cached(key = "flag:<on>:<size>", ttl = 60, cache = cache)]
async fn by_bool(cache: &Cache, on: bool, size: usize) -> bool {
    on && size > 0
}

#[tokio::test]
async fn integers_and_bools_render_plainly() {
    let cache = support::redis_cache("int_keys").await;
    by_u64(&cache, 42).await;
    by_u64(&cache, 0).await;
    by_u64(&cache, u64::MAX).await;
    by_i64(&cache, -7).await;
    by_i128(&cache, i128::MIN).await;
    by_bool(&cache, true, 3).await;
    by_bool(&cache, false, 0).await;
    let mut want = vec![
        "user:42".to_owned(),
        "user:0".to_owned(),
        format!("user:{}", u64::MAX),
        "signed:-7".to_owned(),
        format!("wide:{}", i128::MIN),
        "flag:true:3".to_owned(),
        "flag:false:0".to_owned(),
    ];
    want.sort();
    assert_eq!(rendered(&cache).await, want);
}

#[redis_cached(key = "name:<name>", ttl = 60, cache = cache)]
async fn by_name(cache: &Cache, name: &str) -> String {
    name.to_owned()
}

#[redis_cached(key = "owned:<name>", ttl = 60, cache = cache)]
async fn by_string(cache: &Cache, name: String) -> String {
    name
}

#[redis_cached(key = "char:<c>", ttl = 60, cache = cache)]
async fn by_char(cache: &Cache, c: char) -> char {
    c
}

#[tokio::test]
async fn strings_escape_backslash_colon_and_braces_only() {
    let cache = support::redis_cache("string_keys").await;
    let cases = [
        ("plain", "plain"),
        ("a:b", r"a\:b"),
        (r"a\b", r"a\\b"),
        (r"\:", r"\\\:"),
        ("{x}", r"\(x\)"),
        ("a}b{", r"a\)b\("),
        (r"\(", r"\\("),
        ("()", "()"),
        ("", ""),
        ("%3A %", "%3A %"),
        ("ünï cødé ✓", "ünï cødé ✓"),
        ("*?[x]", "*?[x]"),
        ("a\nb", "a\nb"),
    ];
    for (name, _) in cases {
        assert_eq!(by_name(&cache, name).await, name);
    }
    by_string(&cache, "x:y".to_owned()).await;
    by_char(&cache, ':').await;
    by_char(&cache, '\\').await;
    by_char(&cache, 'z').await;
    by_char(&cache, '{').await;
    by_char(&cache, '}').await;
    let mut want: Vec<String> = cases.iter().map(|(_, key)| format!("name:{key}")).collect();
    want.extend(
        [
            r"owned:x\:y",
            r"char:\:",
            r"char:\\",
            "char:z",
            r"char:\(",
            r"char:\)",
        ]
        .map(String::from),
    );
    want.sort();
    assert_eq!(rendered(&cache).await, want);
}

// ---------------------------------------------------------------------------------------
// Hash tags: `#{...}` writes its braces; arguments cannot.

#[redis_cached(key = "#{tenant:<tenant>}:user:<id>", ttl = 60, cache = cache)]
async fn tenant_user(cache: &Cache, counter: &AtomicUsize, tenant: &str, id: &str) -> String {
    bump(counter);
    format!("{tenant}/{id}")
}

#[invalidates("#{tenant:<tenant>}:user:<id>", cache = cache)]
async fn rename_tenant_user(cache: &Cache, tenant: &str, id: &str) {
    let _ = (tenant, id);
}

#[redis_cached(key = "orders:#{<tenant>}:<id>", ttl = 60, cache = cache)]
async fn tenant_orders(cache: &Cache, tenant: &str, id: u64) -> u64 {
    id
}

#[tokio::test]
async fn a_hash_tag_renders_its_braces_and_arguments_escape_theirs() {
    let cache = support::redis_cache("hash_tag").await;
    let counter = AtomicUsize::new(0);
    tenant_user(&cache, &counter, "acme", "42").await;
    tenant_orders(&cache, "acme", 7).await;
    // Braces in arguments, inside the tag and out: escaped, so that the tag's text stays
    // what the template says and no argument forms a tag of its own.
    tenant_user(&cache, &counter, "a}b{c", "{x}").await;
    let mut want = vec![
        "{tenant:acme}:user:42".to_owned(),
        "orders:{acme}:7".to_owned(),
        r"{tenant:a\)b\(c}:user:\(x\)".to_owned(),
    ];
    want.sort();
    assert_eq!(rendered(&cache).await, want);
    let prefix = cache.prefix();
    assert_eq!(
        support::raw_get_text(&format!("{prefix}{{tenant:acme}}:user:42"))
            .await
            .as_deref(),
        Some(r#""acme/42""#)
    );
    // The keys of one tenant share the slot of the tag's text, whatever else they hold.
    for key in keys_under(prefix).await {
        let tag = key.split(['{', '}']).nth(1).expect("a tag");
        assert_eq!(Slot::for_key(&key), Slot::for_key(tag), "{key}");
    }
    assert_eq!(
        Slot::for_key(format!("{prefix}{{tenant:acme}}:user:42")),
        Slot::for_key("tenant:acme")
    );
}

#[tokio::test]
async fn invalidation_with_the_same_hash_tag_deletes_the_entry() {
    let cache = support::redis_cache("hash_tag_invalidation").await;
    let counter = AtomicUsize::new(0);
    let long = "i".repeat(2000);
    for (tenant, id) in [("acme", "42"), ("{a}", "}"), ("acme", long.as_str())] {
        tenant_user(&cache, &counter, tenant, id).await;
        assert_eq!(
            with_outcome(tenant_user(&cache, &counter, tenant, id))
                .await
                .1,
            Some(Outcome::Hit)
        );
        assert_eq!(keys_under(cache.prefix()).await.len(), 1);
        rename_tenant_user(&cache, tenant, id).await;
        assert_eq!(keys_under(cache.prefix()).await, Vec::<String>::new());
        assert_eq!(
            with_outcome(tenant_user(&cache, &counter, tenant, id))
                .await
                .1,
            Some(Outcome::Miss)
        );
        rename_tenant_user(&cache, tenant, id).await;
    }
    assert_eq!(runs(&counter), 6);
}

#[derive(Clone)]
struct Account {
    id: u64,
    login: String,
}

struct Request {
    account: Account,
    page: (u32, String),
}

struct Tenant {
    cache: Cache,
    slug: String,
}

impl Tenant {
    #[redis_cached(key = "tenant:<self.slug>:<account.login>", ttl = 60, cache = &self.cache)]
    async fn of(&self, account: &Account) -> u64 {
        account.id
    }
}

#[redis_cached(key = "account:<account.id>:<account.login>", ttl = 60, cache = cache)]
async fn by_fields(cache: &Cache, account: Account) -> u64 {
    account.id
}

#[redis_cached(
    key = "request:<request.account.id>:<request.page.0>:<request.page.1>",
    ttl = 60,
    cache = cache
)]
async fn by_nested_fields(cache: &Cache, request: &Request) -> u32 {
    request.page.0
}

#[tokio::test]
async fn field_placeholders_render_the_fields() {
    let cache = support::redis_cache("field_keys").await;
    let account = Account {
        id: 42,
        login: "ann:admin".into(),
    };
    by_fields(&cache, account.clone()).await;
    by_nested_fields(
        &cache,
        &Request {
            account: account.clone(),
            page: (3, r"a\b".into()),
        },
    )
    .await;
    let tenant = Tenant {
        cache: cache.clone(),
        slug: "acme:eu".into(),
    };
    tenant.of(&account).await;
    assert_eq!(
        rendered(&cache).await,
        vec![
            r"account:42:ann\:admin".to_owned(),
            r"request:42:3:a\\b".to_owned(),
            r"tenant:acme\:eu:ann\:admin".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_prefix_with_a_backslash_is_rejected() {
    for url in ["mem://", harness::shared_url()] {
        let built = Cache::builder(url).prefix(r"app\").build().await;
        assert!(built.is_err(), "{url}: a prefix with `\\` was accepted");
    }
}

// ---------------------------------------------------------------------------------------
// Arguments that would collide naively get different keys and different values.

#[redis_cached(key = "pair:<a>:<b>", ttl = 60, cache = cache)]
async fn pair(cache: &Cache, a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

scenarios::scenario_tests!(keys, support::shared_builder);

#[tokio::test]
async fn colliding_strings_get_different_keys() {
    let cache = support::redis_cache("colliding_keys").await;
    assert_eq!(pair(&cache, "a:b", "c").await, ("a:b".into(), "c".into()));
    assert_eq!(pair(&cache, "a", "b:c").await, ("a".into(), "b:c".into()));
    let prefix = cache.prefix();
    assert_eq!(
        rendered(&cache).await,
        vec![r"pair:a:b\:c".to_owned(), r"pair:a\:b:c".to_owned()]
    );
    assert_eq!(
        support::raw_get_text(&format!(r"{prefix}pair:a\:b:c"))
            .await
            .as_deref(),
        Some(r#"["a:b","c"]"#)
    );
    assert_eq!(
        support::raw_get_text(&format!(r"{prefix}pair:a:b\:c"))
            .await
            .as_deref(),
        Some(r#"["a","b:c"]"#)
    );
    for [first, second] in scenarios::COLLIDING {
        pair(&cache, first.0, first.1).await;
        pair(&cache, second.0, second.1).await;
    }
    assert_eq!(
        rendered(&cache).await.len(),
        2 * scenarios::COLLIDING.len(),
        "every pair of COLLIDING has two keys"
    );
}

#[redis_cached(key = "prop:<case>:<a>:<b>", ttl = 60, cache = cache)]
async fn prop_pair(cache: &Cache, case: u64, a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// Mostly short strings of separators, escapes, braces and their encoded forms, so that a
/// case's tuples often render alike under a faulty scheme (plain join, escaping only `:`,
/// percent-encoding only `:`, braces escaped as `(` or `\{`); now and then arbitrary ones,
/// the empty string included.
fn key_string() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        ":", "\\", "a", "%3A", "\\:", "#", "{", "}", "\\(", "\\)", "(",
    ]);
    prop_oneof![
        6 => proptest::string::string_regex(r"[a:\\{}(]{0,3}").expect("a valid regex"),
        3 => proptest::collection::vec(fragment, 0..4).prop_map(|parts| parts.concat()),
        1 => any::<String>(),
    ]
}

#[test]
fn different_argument_tuples_render_different_keys() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let cache = runtime.block_on(support::redis_cache("prop"));
    let raw = runtime.block_on(harness::raw_connection());
    let next_case = AtomicU64::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let tuples = proptest::collection::vec((key_string(), key_string()), 2..24);
    let result = runner.run(&tuples, |tuples| {
        // Each case (and each shrinking step) writes under a namespace of its own.
        let case = next_case.fetch_add(1, Ordering::Relaxed);
        let (returned, keys) = runtime.block_on(async {
            let mut returned = Vec::new();
            for (a, b) in &tuples {
                returned.push(prop_pair(&cache, case, a, b).await);
            }
            let namespace = format!("{}prop:{case}:", cache.prefix());
            let keys = support::keys_matching(&mut raw.clone(), &namespace).await;
            (returned, keys)
        });
        for (tuple, value) in tuples.iter().zip(&returned) {
            prop_assert_eq!(value, tuple, "a call was served another tuple's entry");
        }
        for key in &keys {
            prop_assert!(
                !key.contains(['{', '}']),
                "an argument wrote a brace: {:?}",
                key
            );
        }
        let distinct: BTreeSet<&(String, String)> = tuples.iter().collect();
        prop_assert_eq!(
            keys.len(),
            distinct.len(),
            "distinct tuples {:?} rendered keys {:?}",
            distinct,
            keys
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

// ---------------------------------------------------------------------------------------
// Long keys.

#[redis_cached(key = "long:<s>", ttl = 60, cache = cache)]
async fn long(cache: &Cache, counter: &AtomicUsize, s: &str) -> usize {
    bump(counter);
    s.len()
}

#[redis_cached(key = "<s>:tail", ttl = 60, cache = cache)]
async fn leading_part(cache: &Cache, s: &str) -> usize {
    s.len()
}

/// Whether `key` is `head`, `\#` and 64 lowercase hex digits.
fn is_digest_of(key: &str, head: &str) -> bool {
    key.strip_prefix(head)
        .and_then(|rest| rest.strip_prefix(r"\#"))
        .is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[tokio::test]
async fn keys_over_1024_bytes_take_the_digest_form() {
    let cache = support::redis_cache("long_keys").await;
    let prefix = cache.prefix().to_owned();
    let fits = 1024 - prefix.len() - "long:".len();
    let counter = AtomicUsize::new(0);

    // Exactly 1024 bytes: kept as is.
    let at_limit = "x".repeat(fits);
    assert_eq!(long(&cache, &counter, &at_limit).await, fits);
    assert!(support::raw_exists(&format!("{prefix}long:{at_limit}")).await);

    // One byte more, and more: digests that keep the literal head, one per argument.
    let over = "x".repeat(fits + 1);
    let far_over = "x".repeat(5000);
    let far_over_other = format!("{}y", "x".repeat(4999));
    for s in [&over, &far_over, &far_over_other] {
        assert_eq!(long(&cache, &counter, s).await, s.len());
        assert_eq!(
            with_outcome(long(&cache, &counter, s)).await,
            (s.len(), Some(Outcome::Hit))
        );
    }
    assert_eq!(runs(&counter), 4);
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    let digests: Vec<&String> = keys.iter().filter(|key| key.len() < 1024).collect();
    assert_eq!(digests.len(), 3, "{keys:?}");
    for key in digests {
        assert!(is_digest_of(key, &format!("{prefix}long:")), "{key}");
    }
    // The limit applies to the rendered (escaped) key: 600 colons render as 1200 bytes.
    long(&cache, &counter, &":".repeat(600)).await;
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 5);
    assert!(keys.iter().all(|key| key.len() <= 1024), "{keys:?}");
}

#[tokio::test]
async fn max_key_len_sets_the_digest_threshold() {
    let prefix = support::unique_prefix("max_key_len");
    let cache = Cache::builder(harness::shared_url())
        .prefix(prefix.clone())
        .max_key_len(prefix.len() + 16)
        .build()
        .await
        .unwrap();
    let counter = AtomicUsize::new(0);
    long(&cache, &counter, "0123456789").await; // long:0123456789 is 15 bytes
    long(&cache, &counter, "0123456789a").await; // 16
    long(&cache, &counter, "0123456789ab").await; // 17: digest
    leading_part(&cache, &"z".repeat(20)).await; // head is the prefix alone
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.contains(&format!("{prefix}long:0123456789")));
    assert!(keys.contains(&format!("{prefix}long:0123456789a")));
    assert_eq!(
        keys.iter()
            .filter(|key| is_digest_of(key, &format!("{prefix}long:")))
            .count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|key| is_digest_of(key, &prefix)).count(),
        1,
        "{keys:?}"
    );
}

#[tokio::test]
async fn the_digest_form_keeps_the_hash_tag_and_its_slot() {
    let cache = support::redis_cache("long_tagged").await;
    let prefix = cache.prefix().to_owned();
    let counter = AtomicUsize::new(0);
    let id = "y".repeat(2000);
    tenant_user(&cache, &counter, "acme", &id).await;
    assert_eq!(
        with_outcome(tenant_user(&cache, &counter, "acme", &id))
            .await
            .1,
        Some(Outcome::Hit)
    );
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    // The head is cut before the tag's `{`, and the whole tag follows it.
    assert!(
        is_digest_of(&keys[0], &format!("{prefix}{{tenant:acme}}")),
        "{keys:?}"
    );
    let full = format!("{prefix}{{tenant:acme}}:user:{id}");
    assert_eq!(Slot::for_key(&keys[0]), Slot::for_key(&full));
    assert_eq!(Slot::for_key(&keys[0]), Slot::for_key("tenant:acme"));
}

#[tokio::test]
async fn the_digest_form_keeps_the_start_of_a_long_non_ascii_prefix() {
    // An odd number of ASCII bytes, then 200 two-byte `é`: byte 256 falls inside an `é`.
    let mut prefix = support::unique_prefix("long_prefix");
    if prefix.len().is_multiple_of(2) {
        prefix.push('_');
    }
    prefix.push_str(&"é".repeat(200));
    let cache = Cache::builder(harness::shared_url())
        .prefix(prefix.clone())
        .max_key_len(prefix.len() + 10)
        .build()
        .await
        .unwrap();
    let counter = AtomicUsize::new(0);
    long(&cache, &counter, &"x".repeat(100)).await;
    let namespace: String = prefix.chars().take(30).collect();
    let keys = keys_under(&namespace).await;
    assert_eq!(keys.len(), 1, "the key left the prefix's namespace");
}

#[cfg(feature = "uuid")]
#[redis_cached(key = "account:<id>", ttl = 60, cache = cache)]
async fn account(cache: &Cache, id: uuid::Uuid) -> String {
    id.to_string()
}

#[cfg(feature = "uuid")]
#[tokio::test]
async fn uuids_render_hyphenated() {
    let cache = support::redis_cache("uuid").await;
    let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    account(&cache, id).await;
    assert_eq!(
        support::raw_get_text(&format!(
            "{}account:01234567-89ab-cdef-0123-456789abcdef",
            cache.prefix()
        ))
        .await
        .as_deref(),
        Some(r#""01234567-89ab-cdef-0123-456789abcdef""#)
    );
}
