//! `#[invalidates]` against a real redis-server: every key goes in one UNLINK after the
//! body ran, whatever it returned, and the next cached call recomputes.

mod harness;
mod scenarios;
mod support;

use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::atomic::AtomicUsize;
use support::{bump, raw_exists, runs};

scenarios::scenario_tests!(invalidation, support::shared_builder);

// ---------------------------------------------------------------------------------------

#[redis_cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn get_user(cache: &Cache, counter: &AtomicUsize, id: u64) -> String {
    bump(counter);
    format!("user {id}")
}

#[redis_cached(key = "team:<team>:members", ttl = 60, cache = cache)]
async fn members(cache: &Cache, counter: &AtomicUsize, team: &str) -> Vec<u64> {
    bump(counter);
    vec![team.len() as u64]
}

#[redis_cached(key = "users:all", ttl = 60, cache = cache)]
async fn all_users(cache: &Cache, counter: &AtomicUsize) -> Vec<u64> {
    bump(counter);
    vec![1, 2]
}

#[invalidates("user:<id>", "team:<team>:members", "users:all", cache = cache)]
async fn move_user(cache: &Cache, id: u64, team: &str) -> Result<&'static str, String> {
    let _ = (id, team);
    Ok("moved")
}

#[invalidates("user:<id>", cache = cache)]
async fn failing_delete(cache: &Cache, id: u64) -> Result<(), String> {
    Err(format!("cannot delete {id}"))
}

#[tokio::test]
async fn every_template_goes_in_one_unlink() {
    // A server of its own, so that its command statistics are this test's alone.
    let server = harness::RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix("app:")
        .build()
        .await
        .unwrap();
    let counter = AtomicUsize::new(0);
    get_user(&cache, &counter, 42).await;
    get_user(&cache, &counter, 43).await;
    members(&cache, &counter, "ops:eu").await;
    members(&cache, &counter, "dev").await;
    all_users(&cache, &counter).await;
    assert_eq!(runs(&counter), 5);
    for key in [r"app:user:42", r"app:team:ops\:eu:members", "app:users:all"] {
        assert!(
            support::keys_matching(&mut server.connection().await, key)
                .await
                .contains(&key.to_owned()),
            "{key} was not stored"
        );
    }

    let mut redis = server.connection().await;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(move_user(&cache, 42, "ops:eu").await, Ok("moved"));
    let calls = server.command_calls().await;
    assert_eq!(calls.get("unlink"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("del"), None, "{calls:?}");

    let left = support::keys_matching(&mut redis, "app:").await;
    assert_eq!(
        left,
        vec!["app:team:dev:members".to_owned(), "app:user:43".to_owned()],
        "exactly the three rendered keys were deleted"
    );
    get_user(&cache, &counter, 42).await;
    members(&cache, &counter, "ops:eu").await;
    all_users(&cache, &counter).await;
    assert_eq!(runs(&counter), 8, "the three entries were recomputed");
    get_user(&cache, &counter, 43).await;
    members(&cache, &counter, "dev").await;
    assert_eq!(runs(&counter), 8, "the other entries stayed");
}

#[tokio::test]
async fn absent_keys_do_not_stop_the_others_being_deleted() {
    let cache = support::redis_cache("inv_absent").await;
    let counter = AtomicUsize::new(0);
    get_user(&cache, &counter, 1).await;
    // `team:x:members` and `users:all` were never stored.
    assert_eq!(move_user(&cache, 1, "x").await, Ok("moved"));
    assert!(support::keys_under(cache.prefix()).await.is_empty());
    assert_eq!(
        failing_delete(&cache, 1).await,
        Err("cannot delete 1".into())
    );
    get_user(&cache, &counter, 1).await;
    assert_eq!(runs(&counter), 2);
}

#[tokio::test]
async fn an_invalidation_whose_body_fails_still_deletes() {
    let cache = support::redis_cache("inv_err_key").await;
    let counter = AtomicUsize::new(0);
    get_user(&cache, &counter, 5).await;
    let key = format!("{}user:5", cache.prefix());
    assert!(raw_exists(&key).await);
    assert!(failing_delete(&cache, 5).await.is_err());
    assert!(!raw_exists(&key).await, "the key survived a failing body");
}

#[tokio::test]
async fn cache_invalidate_deletes_rendered_keys_under_the_prefix() {
    let cache = support::redis_cache("inv_api").await;
    let counter = AtomicUsize::new(0);
    get_user(&cache, &counter, 1).await;
    all_users(&cache, &counter).await;
    cache
        .invalidate(&["user:1", "users:all", "never:stored"])
        .await
        .unwrap();
    assert!(support::keys_under(cache.prefix()).await.is_empty());
    assert_eq!(
        with_outcome(get_user(&cache, &counter, 1)).await.1,
        Some(Outcome::Miss)
    );
    assert_eq!(runs(&counter), 3);
}

#[redis_cached(key = "doc:<path>", ttl = 60, cache = cache)]
async fn document(cache: &Cache, counter: &AtomicUsize, path: &str) -> usize {
    bump(counter);
    path.len()
}

#[invalidates("doc:<path>", cache = cache)]
async fn edit_document(cache: &Cache, path: &str) {
    let _ = path;
}

#[tokio::test]
async fn long_keys_are_invalidated_by_their_digest() {
    let cache = support::redis_cache("inv_long").await;
    let counter = AtomicUsize::new(0);
    let path = "dir:".repeat(500);
    assert_eq!(document(&cache, &counter, &path).await, 2000);
    assert_eq!(document(&cache, &counter, "short").await, 5);
    let keys = support::keys_under(cache.prefix()).await;
    assert!(keys.iter().any(|key| key.contains(r"doc:\#")), "{keys:?}");
    edit_document(&cache, &path).await;
    assert_eq!(
        support::keys_under(cache.prefix()).await,
        vec![format!("{}doc:short", cache.prefix())]
    );
    document(&cache, &counter, &path).await;
    assert_eq!(runs(&counter), 3);
}

// ---------------------------------------------------------------------------------------
// A caller dropped while its UNLINK waits for the connection still deletes.

#[invalidates("user:<id>", cache = cache)]
async fn rename(cache: &Cache, id: u64) {
    let _ = id;
}

/// The connection is being re-established to a frozen server when the invalidation starts,
/// so its `UNLINK` waits, unsent; the caller gives up (a request timeout) and drops it. The
/// deletion must go on without the caller: once the server answers, the entry is gone.
#[tokio::test]
async fn a_caller_dropped_while_its_unlink_waits_still_deletes() {
    let server = harness::RedisServer::start();
    let cache = Cache::builder(&server.url())
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .await
        .expect("connects");
    let counter = AtomicUsize::new(0);
    get_user(&cache, &counter, 1).await;
    let mut admin = server.connection().await;
    // Cut the cache's connection, then freeze the server: the reconnect hangs in its
    // handshake, with the `UNLINK` queued behind it.
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    server.signal("STOP");
    // The first command finds the connection cut and starts a reconnect, which hangs.
    let _ = cache.ping().await;
    let dropped = tokio::time::timeout(std::time::Duration::from_millis(100), rename(&cache, 1));
    assert!(
        dropped.await.is_err(),
        "the invalidation waited for the frozen server"
    );
    server.signal("CONT");
    let key = format!("{}user:1", cache.prefix());
    support::eventually(
        std::time::Duration::from_secs(5),
        "the entry deleted",
        || {
            let (mut admin, key) = (admin.clone(), key.clone());
            async move {
                let exists: u64 = redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async(&mut admin)
                    .await
                    .expect("EXISTS");
                exists == 0
            }
        },
    )
    .await;
}
