//! The registry of cached functions and the start-up check: every attribute registers what
//! it says at link time, `functions()` lists them, and `check()` finds the invalidation
//! that can match nothing, two templates rendering one key with different stored types, and
//! a long TTL nothing invalidates. The functions below make each mistake on purpose.
// The functions are registered, not called: the registry lists them all the same.
#![allow(dead_code)]

mod harness;
mod support;

use redis_cached::registry::{FindingKind, Severity};
use redis_cached::{Cache, invalidates, redis_cached};
use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::LevelFilter;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u64,
}

#[redis_cached(key = "reg:user:<id>", ttl = 60, tags = ["reg:team:<team>"], version = 3)]
async fn user(id: u64, team: u32) -> Result<User, String> {
    let _ = team;
    Ok(User { id })
}

#[redis_cached(key = "reg:user:<id>:posts", ttl = "2h", stale = 30)]
async fn posts(id: u64) -> Vec<String> {
    vec![id.to_string()]
}

#[redis_cached(key = "reg:batch:<ids>", ttl = 60, batch = ids)]
async fn batch(ids: &[u64]) -> std::collections::HashMap<u64, u64> {
    ids.iter().map(|id| (*id, *id)).collect()
}

struct Repo<T>(T);

impl<T: Send + Sync> Repo<T> {
    /// A method of a generic `impl`: registered like a free function.
    #[redis_cached(key = "reg:repo:<id>", ttl = 60, cache = cache)]
    async fn find(&self, cache: &Cache, id: u64) -> Option<u64> {
        Some(id)
    }
}

#[invalidates("reg:user:<id>", tags = ["reg:team:<team>"])]
async fn rename(id: u64, team: u32) {
    let _ = (id, team);
}

// The mistakes.

/// A typo: `usr` for `user`.
#[invalidates("reg:usr:<id>")]
async fn typo(id: u64) {
    let _ = id;
}

/// A tag no cached function carries.
#[invalidates(tags = ["reg:teams:<team>"])]
async fn tag_typo(team: u32) {
    let _ = team;
}

/// Renders the keys of `profile_name` too (`<id>` may be any text): another stored type.
#[redis_cached(key = "reg:profile:<id>", ttl = 60)]
async fn profile_id(id: String) -> u64 {
    id.len() as u64
}

#[redis_cached(key = "reg:profile:<name>", ttl = 60)]
async fn profile_name(name: String) -> String {
    name
}

/// A day-long TTL that nothing invalidates.
#[redis_cached(key = "reg:config:<name>", ttl = "1d")]
async fn config(name: String) -> String {
    name
}

fn path(name: &str) -> String {
    format!("registry::{name}")
}

#[test]
fn functions_lists_each_attribute_as_written() {
    let functions = redis_cached::functions();
    let cached = |name: &str| {
        let path = path(name);
        *functions
            .cached
            .iter()
            .find(|function| function.path == path)
            .unwrap_or_else(|| panic!("{path} is registered"))
    };
    let user = cached("user");
    assert_eq!(user.key.text(), "reg:user:<id>");
    assert_eq!(user.tags.len(), 1);
    assert_eq!(user.tags[0].text(), "reg:team:<team>");
    assert_eq!(user.ttl, Some(60));
    assert_eq!(user.version, 3);
    assert_eq!(user.stored_type, "User");
    assert!(user.file.ends_with("registry.rs"));
    let posts = cached("posts");
    assert_eq!(
        (posts.ttl, posts.stale, posts.version),
        (Some(7200), Some(30), 1)
    );
    assert_eq!(posts.stored_type, "Vec<String>");
    assert!(cached("batch").batch);
    assert_eq!(cached("batch").stored_type, "u64");
    assert_eq!(cached("find").key.text(), "reg:repo:<id>");

    let rename = functions
        .invalidating
        .iter()
        .find(|function| function.path == path("rename"))
        .expect("rename is registered");
    assert_eq!(rename.keys[0].text(), "reg:user:<id>");
    assert_eq!(rename.tags[0].text(), "reg:team:<team>");
    // Sorted by path.
    let paths: Vec<&str> = functions
        .cached
        .iter()
        .map(|function| function.path)
        .collect();
    assert!(paths.is_sorted());
}

/// The findings of `kind` that name `name`.
fn findings(kind: FindingKind, name: &str) -> Vec<redis_cached::registry::Finding> {
    let path = path(name);
    redis_cached::check()
        .findings
        .into_iter()
        .filter(|finding| finding.kind == kind && finding.functions.contains(&path.as_str()))
        .collect()
}

#[test]
fn check_finds_an_invalidated_key_no_cached_function_renders() {
    let found = findings(FindingKind::InvalidatesNothing, "typo");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0].message.contains("\"reg:usr:<id>\""),
        "{}",
        found[0].message
    );
    assert!(found[0].message.contains("did you mean \"reg:user:<id>\""));

    let tags = findings(FindingKind::InvalidatesNothing, "tag_typo");
    assert_eq!(tags.len(), 1, "{tags:?}");
    assert!(
        tags[0]
            .message
            .contains("tag template \"reg:teams:<team>\"")
    );
    // The correct invalidation is not reported.
    assert!(findings(FindingKind::InvalidatesNothing, "rename").is_empty());
}

#[test]
fn check_finds_two_templates_rendering_one_key_with_other_types() {
    let found = findings(FindingKind::SharedKeyOtherType, "profile_id");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(found[0].functions.contains(&path("profile_name").as_str()));
    // `reg:user:<id>` and `reg:user:<id>:posts` never render one key: `<id>` cannot hold
    // a `:` unescaped.
    assert!(findings(FindingKind::SharedKeyOtherType, "posts").is_empty());
}

#[test]
fn check_warns_of_a_long_ttl_nothing_invalidates() {
    let found = findings(FindingKind::LongTtlNeverInvalidated, "config");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].severity, Severity::Warning);
    // Two hours, but `rename`'s `reg:user:<id>` does not target `reg:user:<id>:posts`.
    assert_eq!(
        findings(FindingKind::LongTtlNeverInvalidated, "posts").len(),
        1
    );
    // A minute-long TTL is not reported.
    assert!(findings(FindingKind::LongTtlNeverInvalidated, "user").is_empty());
    let report = redis_cached::check();
    let text = report.to_string();
    assert!(text.starts_with("error: "), "errors first:\n{text}");
}

#[test]
fn building_a_cache_logs_the_findings_once() {
    let logs = support::Logs::default();
    let subscriber = logs.subscriber(LevelFilter::WARN);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            for _ in 0..2 {
                Cache::builder("mem://")
                    .build()
                    .await
                    .expect("mem:// builds");
            }
        })
    });
    let text = logs.text();
    assert_eq!(text.matches("\"reg:usr:<id>\"").count(), 1, "{text}");
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("WARN"), "{text}");
}
