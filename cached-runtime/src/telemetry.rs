//! Metrics (through the `metrics` facade) and log lines of cached calls. Labels carry the
//! function's path, never a key or a value.

use crate::Outcome;
use std::time::Duration;

pub(crate) fn outcome(function: &'static str, outcome: Outcome) {
    let name = match outcome {
        Outcome::Hit => "redis_cached_hits_total",
        Outcome::Miss => "redis_cached_misses_total",
        Outcome::Refresh => "redis_cached_refreshes_total",
    };
    metrics::counter!(name, "function" => function).increment(1);
    crate::outcome::record(outcome);
}

pub(crate) fn cache_time(function: &'static str, operation: &'static str, elapsed: Duration) {
    metrics::histogram!(
        "redis_cached_cache_duration_seconds",
        "function" => function,
        "operation" => operation
    )
    .record(elapsed);
}

pub(crate) fn body_time(function: &'static str, elapsed: Duration) {
    metrics::histogram!("redis_cached_body_duration_seconds", "function" => function)
        .record(elapsed);
}

pub(crate) fn invalidation(function: &'static str, keys: usize) {
    metrics::counter!("redis_cached_invalidations_total", "function" => function)
        .increment(keys as u64);
}

pub(crate) fn error(
    function: &'static str,
    operation: &'static str,
    error: &dyn std::fmt::Display,
) {
    metrics::counter!(
        "redis_cached_errors_total",
        "function" => function,
        "operation" => operation
    )
    .increment(1);
    if operation == "delete" {
        tracing::error!(function, operation, %error, "cache invalidation failed");
    } else {
        tracing::warn!(function, operation, %error, "cache operation failed; calling through");
    }
}
