//! Every metric comes with its `# HELP` text and unit, and counts what its name says
//! (`redis_cached_invalidations_total` counts calls, `..._invalidated_keys_total` keys), read
//! through a real Prometheus recorder. A binary of its own: the recorder is process-wide.

use metrics_exporter_prometheus::PrometheusBuilder;
use redis_cached::{Cache, invalidates, redis_cached};

#[redis_cached(key = "metric:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> u64 {
    id
}

#[invalidates("metric:<id>", "metrics:all", cache = cache)]
async fn write(cache: &Cache, id: u64) {}

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
    let page = handle.render();
    for metric in [
        "redis_cached_hits_total",
        "redis_cached_misses_total",
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
