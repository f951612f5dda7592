//! The gauges dashboards alert on: `redis_cached_breaker_open` (per server) is 1 while the
//! server is down and 0 once it answers again; `redis_cached_pending_invalidations` counts
//! the keys whose invalidation waits for Redis, and is 0 again once they are deleted. Read
//! through a real Prometheus recorder: a binary of its own, since the recorder is
//! process-wide.

mod harness;
mod support;

use harness::RedisServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use redis_cached::{Cache, invalidates, redis_cached};
use std::time::Duration;
use support::eventually;

#[redis_cached(key = "gauge:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> u64 {
    id
}

#[invalidates("gauge:<id>", cache = cache)]
async fn write(cache: &Cache, id: u64) {}

/// The value of the series `series` (name and labels, as rendered) on the page.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn breaker_and_pending_gauges_follow_an_outage() {
    let handle: PrometheusHandle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this binary");
    let mut server = RedisServer::start();
    let cache = support::topology_builder(&server.url(), "gauges")
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("redis answers");
    let breaker = format!("redis_cached_breaker_open{{server=\"{}\"}}", server.url());
    let pending = "redis_cached_pending_invalidations";
    read(&cache, 1).await;
    let page = handle.render();
    assert_eq!(value(&page, &breaker), Some(0.0), "{page}");
    assert_eq!(value(&page, pending), Some(0.0), "{page}");

    server.kill();
    for id in 0..5 {
        read(&cache, id).await;
    }
    assert!(cache.is_degraded(), "the breaker did not open");
    for id in [1, 2, 3] {
        write(&cache, id).await;
    }
    write(&cache, 1).await; // a key already pending counts once
    let page = handle.render();
    assert_eq!(value(&page, &breaker), Some(1.0), "breaker open: {page}");
    assert_eq!(
        value(&page, pending),
        Some(3.0),
        "three keys pending: {page}"
    );

    server.restart();
    eventually(Duration::from_secs(10), "both gauges back to 0", || async {
        read(&cache, 9).await;
        let page = handle.render();
        value(&page, &breaker) == Some(0.0) && value(&page, pending) == Some(0.0)
    })
    .await;
}
