//! Metrics (through the `metrics` facade) and log lines of cached calls. Labels carry the
//! function's path, never a key or a value.

use crate::Outcome;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A function logs at most one failure line per `LOG_EVERY` and cache; the rest are counted
/// (in `redis_cached_errors_total` and in the next line's `suppressed`).
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A cache operation, as labelled in metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// The lookup (which may take a fill lease).
    Fetch,
    /// Storing a value under our lease.
    Fill,
    Encode,
    Decode,
    /// An invalidation's `UNLINK`.
    Delete,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Fetch => "fetch",
            Op::Fill => "fill",
            Op::Encode => "encode",
            Op::Decode => "decode",
            Op::Delete => "delete",
        }
    }
}

pub(crate) fn outcome(function: &'static str, outcome: Outcome) {
    let name = match outcome {
        Outcome::Hit => "redis_cached_hits_total",
        Outcome::Coalesced => "redis_cached_coalesced_total",
        Outcome::Miss => "redis_cached_misses_total",
        Outcome::Refresh => "redis_cached_refreshes_total",
        Outcome::Bypass => "redis_cached_bypasses_total",
    };
    metrics::counter!(name, "function" => function).increment(1);
    crate::outcome::record(outcome);
}

/// Runs a cache operation, recording how long it took.
pub(crate) async fn timed<T>(
    function: &'static str,
    operation: Op,
    op: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let result = op.await;
    cache_time(function, operation, started.elapsed());
    result
}

fn cache_time(function: &'static str, operation: Op, elapsed: Duration) {
    metrics::histogram!(
        "redis_cached_cache_duration_seconds",
        "function" => function,
        "operation" => operation.as_str()
    )
    .record(elapsed);
}

pub(crate) fn body_time(function: &'static str, elapsed: Duration) {
    metrics::histogram!("redis_cached_body_duration_seconds", "function" => function)
        .record(elapsed);
}

pub(crate) fn invalidation(function: &'static str, keys: usize) {
    metrics::counter!("redis_cached_invalidations_total", "function" => function).increment(1);
    metrics::counter!("redis_cached_invalidated_keys_total", "function" => function)
        .increment(keys as u64);
}

/// Gives every metric of the library its unit and `# HELP` text in the installed recorder.
///
/// [`CacheBuilder::build`](crate::CacheBuilder::build) calls it, so a recorder installed
/// before the cache is built needs nothing more; call it yourself after installing one later.
/// The metrics, all labelled `function` (the cached function's path, as
/// `my_app::users::get_user`) unless said otherwise:
///
/// | metric | type, unit | what |
/// |---|---|---|
/// | `redis_cached_hits_total` | counter | calls answered from the cache |
/// | `redis_cached_misses_total` | counter | calls that ran the body and stored (or tried to) |
/// | `redis_cached_refreshes_total` | counter | calls with `refresh` true: body run, entry overwritten |
/// | `redis_cached_coalesced_total` | counter | calls that waited for another caller's fill and got its value |
/// | `redis_cached_bypasses_total` | counter | calls that did not use the cache (none installed, unreachable, invalidation pending) |
/// | `redis_cached_errors_total` | counter; also `operation` (`fetch`, `fill`, `encode`, `decode`, `delete`) | failed cache operations, each logged at most once a second per function |
/// | `redis_cached_invalidations_total` | counter | `#[invalidates]` calls that deleted their keys |
/// | `redis_cached_invalidated_keys_total` | counter | keys those calls deleted |
/// | `redis_cached_cache_duration_seconds` | histogram, seconds; also `operation` | time spent in each cache operation |
/// | `redis_cached_body_duration_seconds` | histogram, seconds | time spent running bodies |
/// | `redis_cached_breaker_opened_total` | counter, no labels | outages: times the circuit breaker opened |
///
/// ```
/// // After installing a recorder, for example metrics-exporter-prometheus's:
/// redis_cached::describe_metrics();
/// ```
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "redis_cached_hits_total",
        Unit::Count,
        "Cached calls answered from the cache, by function."
    );
    describe_counter!(
        "redis_cached_misses_total",
        Unit::Count,
        "Cached calls that ran the body and stored its value (or tried to), by function."
    );
    describe_counter!(
        "redis_cached_refreshes_total",
        Unit::Count,
        "Cached calls asked to refresh: body run and entry overwritten, by function."
    );
    describe_counter!(
        "redis_cached_coalesced_total",
        Unit::Count,
        "Cached calls that waited for another caller's fill and got its value, by function."
    );
    describe_counter!(
        "redis_cached_bypasses_total",
        Unit::Count,
        "Cached calls that did not use the cache (none installed, unreachable, invalidation pending), by function."
    );
    describe_counter!(
        "redis_cached_errors_total",
        Unit::Count,
        "Failed cache operations, by function and operation (fetch, fill, encode, decode, delete)."
    );
    describe_counter!(
        "redis_cached_invalidations_total",
        Unit::Count,
        "#[invalidates] calls whose keys were deleted, by function."
    );
    describe_counter!(
        "redis_cached_invalidated_keys_total",
        Unit::Count,
        "Keys deleted by #[invalidates] calls, by function."
    );
    describe_histogram!(
        "redis_cached_cache_duration_seconds",
        Unit::Seconds,
        "Time spent in cache operations, by function and operation."
    );
    describe_histogram!(
        "redis_cached_body_duration_seconds",
        Unit::Seconds,
        "Time spent running the bodies of cached functions, by function."
    );
    describe_counter!(
        "redis_cached_breaker_opened_total",
        Unit::Count,
        "Times the circuit breaker opened: the cache became unreachable."
    );
}

pub(crate) fn error(
    log: &LogLimit,
    function: &'static str,
    operation: Op,
    error: &dyn std::fmt::Display,
) {
    metrics::counter!(
        "redis_cached_errors_total",
        "function" => function,
        "operation" => operation.as_str()
    )
    .increment(1);
    let Some(suppressed) = log.admit(function) else {
        return;
    };
    let label = operation.as_str();
    // A lost invalidation can leave stale data; a failed read or write only costs time.
    if operation == Op::Delete {
        tracing::error!(function, operation = label, %error, suppressed, "cache invalidation failed");
    } else {
        tracing::warn!(function, operation = label, %error, suppressed, "cache operation failed; calling through");
    }
}

/// Rations a cache's failure lines: at most one per function per `LOG_EVERY`.
#[derive(Default)]
pub(crate) struct LogLimit {
    /// Per function: when it last logged, and the lines left out since.
    logged: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimit {
    /// Whether `function` may log a failure now, with how many it left out since its last line.
    fn admit(&self, function: &'static str) -> Option<u64> {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match logged.get_mut(function) {
            Some((last, suppressed)) if now.duration_since(*last) < LOG_EVERY => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                logged.insert(function, (now, 0));
                Some(0)
            }
        }
    }
}
