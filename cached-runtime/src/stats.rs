//! In-process statistics of each cached function: its outcome counts and its body times,
//! readable by the process itself (the inspection page) where the `metrics` facade only
//! hands them to a recorder.
//!
//! Written on every call, so cheap on the hit path: one relaxed `fetch_add` on a counter
//! the call already has at hand (telemetry's per-function [`Metrics`](crate::telemetry)),
//! no lock, no allocation, no clock read. Body times go into a log-bucket histogram of
//! atomics: a body already read the clock to be timed.

use crate::Outcome;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a cached function did since the process started: how many calls had each
/// [`Outcome`], and how long its body took.
///
/// Counts are of this process only (every instance of a service keeps its own) and start at
/// zero when it starts. They are read one after the other without a lock, so under load a
/// snapshot may count a call in one field that another does not count yet.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use redis_cached::redis_cached;
///
/// #[redis_cached(key = "stats-doc:<id>", ttl = 60, cache = cache)]
/// async fn stats_doc_name(cache: &redis_cached::Cache, id: u64) -> String {
///     format!("user {id}")
/// }
///
/// let cache = redis_cached::Cache::connect("mem://").await?;
/// stats_doc_name(&cache, 1).await; // a miss: the body runs
/// stats_doc_name(&cache, 1).await; // a hit
///
/// let function = redis_cached::functions()
///     .cached
///     .into_iter()
///     .find(|function| function.path.ends_with("::stats_doc_name"))
///     .unwrap();
/// let stats = function.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// assert_eq!(stats.hit_ratio(), Some(0.5));
/// assert!(stats.body_p50.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache ([`Outcome::Hit`]).
    pub hits: u64,
    /// Calls that found nothing usable, ran the body and stored its value, or tried to
    /// ([`Outcome::Miss`]).
    pub misses: u64,
    /// Calls answered with a value past its TTL, within `stale` or `stale_if_error`
    /// ([`Outcome::Stale`]).
    pub stale: u64,
    /// Calls that waited for another caller's fill and got its value
    /// ([`Outcome::Coalesced`]).
    pub coalesced: u64,
    /// Calls that did not use the cache: none installed, unreachable, an invalidation
    /// pending ([`Outcome::Bypass`]).
    pub bypasses: u64,
    /// Calls that refreshed their entry: `refresh` true, or a refresh claimed ahead of the
    /// expiry or in the `stale` window ([`Outcome::Refresh`]).
    pub refreshes: u64,
    /// The median time the body took, over every run of it (misses, refreshes, and
    /// bypasses that ran it); `None` before it first ran. Read off a histogram of
    /// logarithmic buckets: within about 6% of the true value, and at microsecond
    /// resolution at best.
    pub body_p50: Option<Duration>,
    /// The 99th percentile of the body's time, as [`body_p50`](Self::body_p50).
    pub body_p99: Option<Duration>,
}

impl Stats {
    /// The share of calls that used the cache and were answered from it without running
    /// the body: `(hits + stale + coalesced) / (hits + stale + coalesced + misses +
    /// refreshes)`, between 0 and 1. Bypasses do not count: they did not use the cache.
    /// `None` before any such call.
    pub fn hit_ratio(&self) -> Option<f64> {
        let served = self.hits + self.stale + self.coalesced;
        let total = served + self.misses + self.refreshes;
        (total > 0).then(|| served as f64 / total as f64)
    }
}

/// A function's counters: one per [`Outcome`], and its body times.
pub(crate) struct Counters {
    outcomes: Outcomes,
    body: Times,
}

/// The outcome counters, on cache lines of their own (128 bytes: two lines, for CPUs that
/// fetch lines in pairs): every call on every core writes one, while the metrics handles
/// beside them are only read, and sharing a line would make those reads miss.
#[repr(align(128))]
#[derive(Default)]
struct Outcomes([AtomicU64; OUTCOMES]);

const OUTCOMES: usize = 6;

/// An outcome's counter.
fn slot(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Hit => 0,
        Outcome::Miss => 1,
        Outcome::Stale => 2,
        Outcome::Coalesced => 3,
        Outcome::Bypass => 4,
        Outcome::Refresh => 5,
    }
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            outcomes: Outcomes::default(),
            body: Times::new(),
        }
    }

    /// Counts one call: relaxed, as nothing else is ordered by it.
    #[inline]
    pub(crate) fn outcomes(&self, outcome: Outcome, count: u64) {
        self.outcomes.0[slot(outcome)].fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn body_time(&self, elapsed: Duration) {
        self.body.record(elapsed);
    }

    pub(crate) fn read(&self) -> Stats {
        let count = |outcome| self.outcomes.0[slot(outcome)].load(Ordering::Relaxed);
        Stats {
            hits: count(Outcome::Hit),
            misses: count(Outcome::Miss),
            stale: count(Outcome::Stale),
            coalesced: count(Outcome::Coalesced),
            bypasses: count(Outcome::Bypass),
            refreshes: count(Outcome::Refresh),
            body_p50: self.body.quantile(0.50),
            body_p99: self.body.quantile(0.99),
        }
    }
}

/// Sub-buckets per power of two: 8, so a bucket is at most 1/8 of its lower bound wide and
/// its midpoint within 1/16 of any value in it.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Times are recorded in microseconds, up to 2^40 µs (about 12 days); longer ones count in
/// the last bucket.
const MAX_EXPONENT: u32 = 40;
const BUCKETS: usize = ((MAX_EXPONENT - SUB_BITS + 2) as usize) * SUB as usize;

/// A histogram of times in logarithmic buckets of microseconds (HdrHistogram's layout,
/// without its precision knobs): a fixed array of atomics, so recording takes no lock and
/// never allocates. 2.5 KiB each: one per function (its body times), one per near tier (its
/// eviction lags).
pub(crate) struct Times {
    buckets: [AtomicU64; BUCKETS],
}

impl Times {
    pub(crate) fn new() -> Times {
        Times {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// How many times were recorded.
    pub(crate) fn count(&self) -> u64 {
        (self.buckets.iter())
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The `q` quantile (0..=1), as the midpoint of the bucket it falls in; `None` when
    /// nothing was recorded.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = (self.buckets.iter())
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the value asked for, 1-based: the smallest with at least `q` of the
        // values at or below it.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bounds(index);
                return Some(Duration::from_micros(low + width / 2));
            }
        }
        None
    }
}

/// The bucket of a time of `micros`: values below [`SUB`] have one each; above, each power
/// of two is split in [`SUB`] equal buckets.
fn bucket(micros: u64) -> usize {
    let micros = micros.min((1 << (MAX_EXPONENT + 1)) - 1);
    if micros < SUB {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros();
    let sub = (micros >> (exponent - SUB_BITS)) - SUB;
    ((exponent - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The lower bound and the width of bucket `index`, in microseconds.
fn bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, 1);
    }
    let (group, sub) = (index / SUB, index % SUB);
    let shift = group - 1;
    ((SUB + sub) << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values() {
        for micros in (0..5_000).chain([1 << 20, (1 << 20) + 1, 123_456_789, 1 << 40]) {
            let (low, width) = bounds(bucket(micros));
            assert!(
                (low..low + width).contains(&micros),
                "{micros} in {low}+{width}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // Consecutive and increasing.
        for index in 1..BUCKETS {
            let (low, _) = bounds(index);
            let (previous, width) = bounds(index - 1);
            assert_eq!(previous + width, low);
        }
    }

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let times = Times::new();
        assert_eq!(times.quantile(0.5), None);
        for ms in 1..=100 {
            times.record(Duration::from_millis(ms));
        }
        let near = |got: Option<Duration>, want: f64| {
            let got = got.unwrap().as_secs_f64() * 1000.0;
            assert!(
                (got - want).abs() <= want / 16.0,
                "{got} ms, not ~{want} ms"
            );
        };
        near(times.quantile(0.5), 50.0);
        near(times.quantile(0.99), 99.0);
    }

    #[test]
    fn the_hit_ratio_leaves_bypasses_out() {
        let counters = Counters::new();
        for outcome in [
            Outcome::Hit,
            Outcome::Hit,
            Outcome::Coalesced,
            Outcome::Miss,
        ] {
            counters.outcomes(outcome, 1);
        }
        counters.outcomes(Outcome::Bypass, 1);
        let stats = counters.read();
        assert_eq!((stats.hits, stats.coalesced, stats.misses), (2, 1, 1));
        assert_eq!(stats.hit_ratio(), Some(0.75));
        assert_eq!(Stats::default().hit_ratio(), None);
    }
}
