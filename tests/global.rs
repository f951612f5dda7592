//! `init` / `install`: the process-wide cache of functions without `cache = ...`.
//!
//! One test only: the installed cache is process-wide, and `no_global.rs` (a binary of its
//! own) covers the state before anything is installed.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::atomic::AtomicUsize;
use support::{bump, runs};

#[redis_cached(key = "global:<id>", ttl = 60)]
async fn square(counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id * id
}

#[invalidates("global:<id>")]
async fn forget(id: u64) -> u64 {
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn init_and_install_set_the_cache_used_without_cache_expr() {
    // A server of its own: `init` installs a cache without a prefix.
    let server = harness::RedisServer::start();
    let mut redis = server.connection().await;
    let stored = |redis: &mut redis::aio::MultiplexedConnection| {
        let mut redis = redis.clone();
        async move { support::keys_matching(&mut redis, "").await }
    };
    assert!(redis_cached::installed().is_none());

    let cache = redis_cached::init(&server.url())
        .await
        .expect("init connects");
    assert_eq!(cache.backend_kind(), "redis");
    assert!(redis_cached::installed().is_some_and(|installed| installed.prefix().is_empty()));

    let counter = AtomicUsize::new(0);
    assert_eq!(square(&counter, 3).await, 9);
    assert_eq!(
        with_outcome(square(&counter, 3)).await,
        (9, Some(Outcome::Hit))
    );
    assert_eq!(runs(&counter), 1);
    assert_eq!(stored(&mut redis).await, vec!["global:3".to_owned()]);
    assert_eq!(forget(3).await, 3);
    assert!(
        stored(&mut redis).await.is_empty(),
        "#[invalidates] used it too"
    );
    assert_eq!(square(&counter, 3).await, 9);
    assert_eq!(runs(&counter), 2);

    // A failed `init` leaves the installed cache in place.
    let closed = format!("redis://127.0.0.1:{}", harness::free_port());
    assert!(redis_cached::init(&closed).await.is_err());
    assert_eq!(
        with_outcome(square(&counter, 3)).await.1,
        Some(Outcome::Hit)
    );

    // `install` replaces it and hands back the one it replaced.
    let memory = Cache::builder("mem://")
        .prefix("second:")
        .build()
        .await
        .unwrap();
    let previous = redis_cached::install(memory);
    assert!(previous.is_some_and(|previous| previous.backend_kind() == "redis"));
    assert!(redis_cached::installed().is_some_and(|installed| installed.prefix() == "second:"));
    assert_eq!(
        with_outcome(square(&counter, 3)).await,
        (9, Some(Outcome::Miss)),
        "the new cache is empty"
    );
    assert_eq!(
        with_outcome(square(&counter, 4)).await.1,
        Some(Outcome::Miss)
    );
    assert_eq!(
        with_outcome(square(&counter, 4)).await.1,
        Some(Outcome::Hit)
    );
    assert_eq!(runs(&counter), 4);
    assert_eq!(
        stored(&mut redis).await,
        vec!["global:3".to_owned()],
        "nothing more went to Redis"
    );
}
