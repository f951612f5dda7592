//! The Prometheus recorder: the runtime records through the `metrics` facade, and
//! `metrics-exporter-prometheus` renders histograms as summaries unless they have buckets.
//! The dashboards (`dashboards/`) compute quantiles with `histogram_quantile` over
//! `_bucket` series, so every `_seconds` metric gets buckets here. `tests/dashboards.rs`
//! installs this same recorder.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Buckets from 0.1 ms (a near-tier eviction on loopback) to 2.5 s, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The time from an invalidation to the next miss runs up to the tombstones' lifetime: from
/// 10 ms to 2 minutes, in seconds.
pub const INVALIDATION_TO_MISS_BUCKETS: [f64; 10] =
    [0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A recorder builder whose `_seconds` histograms (cache and body durations, the near tier's
/// eviction lag) have [`BUCKETS`], and the time from an invalidation to the next miss
/// [`INVALIDATION_TO_MISS_BUCKETS`] (a full name wins over a suffix).
pub fn recorder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("redis_cached_invalidation_to_miss_seconds".to_owned()),
            &INVALIDATION_TO_MISS_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
}
