//! Before anything is installed, cached functions without `cache = ...` run their bodies
//! uncached, never panic, and say so in the log once.
//!
//! A binary of its own with one test: the installed cache and the log are process-wide.

mod harness;
mod support;

use redis_cached::{invalidates, redis_cached};
use std::sync::atomic::AtomicUsize;
use support::{Logs, bump, runs};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::util::SubscriberInitExt;

#[redis_cached(key = "lonely:<id>", ttl = 60)]
async fn lonely(counter: &AtomicUsize, id: u64) -> u64 {
    bump(counter);
    id + 1
}

#[redis_cached(key = "lonely_owned:<id>")]
async fn lonely_owned(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[invalidates("lonely:<id>")]
async fn lonely_forget(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_installed_cache_bodies_run_uncached_and_it_is_logged_once() {
    let logs = Logs::default();
    logs.subscriber(LevelFilter::TRACE)
        .try_init()
        .expect("the only subscriber of this binary");
    assert!(redis_cached::installed().is_none());

    let counter = AtomicUsize::new(0);
    for _ in 0..3 {
        assert_eq!(lonely(&counter, 1).await, 2);
    }
    assert_eq!(runs(&counter), 3, "every call runs the body");
    let (value, outcome) = redis_cached::with_outcome(lonely(&counter, 1)).await;
    assert_eq!((value, outcome), (2, Some(redis_cached::Outcome::Bypass)));
    assert_eq!(lonely_forget(1).await, Ok(1));
    let tasks: Vec<_> = (0..8u64).map(|id| tokio::spawn(lonely_owned(id))).collect();
    for (id, task) in (0..8u64).zip(tasks) {
        assert_eq!(task.await.expect("no panic"), Some(id.to_string()));
    }

    let text = logs.text().to_lowercase();
    let warnings = text
        .lines()
        .filter(|line| line.contains("no cache") && line.contains("install"))
        .count();
    assert_eq!(
        warnings, 1,
        "the log says once that no cache is installed:\n{text}"
    );
    assert!(redis_cached::installed().is_none());
}
