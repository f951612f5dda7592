//! An outage is logged as the breaker's transitions plus at most one line per second per
//! function, not one line per call. In a test binary of its own: `tracing` callsites are
//! global, and a test without a subscriber running beside this one would hide lines.

mod harness;
mod support;

use harness::RedisServer;
use redis_cached::{Cache, redis_cached};
use std::time::Duration;
use support::Logs;
use tracing_subscriber::filter::LevelFilter;

#[redis_cached(key = "ping:<id>", ttl = 60, cache = cache)]
async fn quick(cache: &Cache, id: u64) -> u64 {
    id
}

/// 150 calls a second for `seconds` on distinct keys (nothing to coalesce).
async fn traffic(cache: &Cache, seconds: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / 150));
    for id in 0..150 * seconds {
        tick.tick().await;
        assert_eq!(quick(cache, id).await, id);
    }
}

#[test]
fn an_outage_is_logged_as_transitions_and_at_most_a_line_per_second() {
    let logs = Logs::default();
    let subscriber = logs.subscriber(LevelFilter::INFO);
    // On a current-thread runtime every task runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut server = RedisServer::start();
    runtime.block_on(async {
        let cache = Cache::builder(&server.url())
            .timeout(Duration::from_millis(100))
            .lazy(true)
            .build()
            .await
            .expect("a valid URL");
        traffic(&cache, 1).await;
        server.kill();
        traffic(&cache, 3).await;
        server.restart();
        traffic(&cache, 1).await;
    });
    drop(runtime);
    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    println!(
        "{} lines for a 3 s outage at 150 calls/s:\n{text}",
        lines.len()
    );
    let count = |needle: &str| lines.iter().filter(|line| line.contains(needle)).count();
    assert_eq!(
        count("cache unreachable"),
        1,
        "one line when the breaker opens:\n{text}"
    );
    assert_eq!(
        count("cache reachable again"),
        1,
        "one when it closes:\n{text}"
    );
    assert!(
        text.contains("skipped="),
        "the closing line says how many operations skipped Redis:\n{text}"
    );
    let failures = count("cache operation failed");
    assert!(
        (1..=4).contains(&failures),
        "3 s of failures at 150 calls/s gave {failures} failure lines:\n{text}"
    );
    assert!(
        lines.len() <= 10,
        "{} lines for a 3 s outage:\n{text}",
        lines.len()
    );
}
