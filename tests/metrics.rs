//! Every metric comes with its `# HELP` text and unit, and counts what its name says
//! (`redis_cached_invalidations_total` counts calls, `..._invalidated_keys_total` keys), read
//! through a real Prometheus recorder. A binary of its own: the recorder is process-wide.

use metrics_exporter_prometheus::PrometheusBuilder;
use redis_cached::{Cache, invalidates, redis_cached};
use std::time::Duration;

#[redis_cached(key = "metric:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> u64 {
    id
}

#[invalidates("metric:<id>", "metrics:all", cache = cache)]
async fn write(cache: &Cache, id: u64) {}

/// Fails when `fail`: past its 100 ms TTL, answered from the stored value.
#[redis_cached(key = "stale:<id>", ttl = Duration::from_millis(100), stale_if_error = 60, cache = cache)]
async fn flaky(cache: &Cache, id: u64, fail: bool) -> Result<u64, String> {
    if fail { Err("down".into()) } else { Ok(id) }
}

/// The value of `name{function="metrics::<function>"}` on the page, 0 if absent.
fn count(page: &str, name: &str, function: &str) -> u64 {
    let series = format!("{name}{{function=\"metrics::{function}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_are_described_and_count_what_they_say() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this binary");
    // Built after the recorder is installed: the build describes the metrics.
    let cache = Cache::connect("mem://").await.expect("mem:// builds");
    read(&cache, 1).await;
    read(&cache, 1).await;
    write(&cache, 1).await;
    assert_eq!(flaky(&cache, 2, false).await, Ok(2));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(flaky(&cache, 2, true).await, Ok(2));
    let page = handle.render();
    for metric in [
        "redis_cached_hits_total",
        "redis_cached_misses_total",
        "redis_cached_stale_total",
        "redis_cached_invalidations_total",
        "redis_cached_invalidated_keys_total",
        "redis_cached_body_duration_seconds",
        "redis_cached_cache_duration_seconds",
    ] {
        assert!(
            page.contains(&format!("# HELP {metric} ")),
            "{metric} has no HELP line:\n{page}"
        );
    }
    assert_eq!(
        count(&page, "redis_cached_misses_total", "read"),
        1,
        "{page}"
    );
    assert_eq!(count(&page, "redis_cached_hits_total", "read"), 1, "{page}");
    assert_eq!(
        count(&page, "redis_cached_stale_total", "flaky"),
        1,
        "{page}"
    );
    assert_eq!(
        count(&page, "redis_cached_invalidations_total", "write"),
        1,
        "{page}"
    );
    assert_eq!(
        count(&page, "redis_cached_invalidated_keys_total", "write"),
        2,
        "{page}"
    );
}
