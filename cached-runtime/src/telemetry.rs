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
        Outcome::Miss => "redis_cached_misses_total",
        Outcome::Refresh => "redis_cached_refreshes_total",
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
    metrics::counter!("redis_cached_invalidations_total", "function" => function)
        .increment(keys as u64);
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
