//! Metrics (through the `metrics` facade) and log lines of cached calls. Labels carry the
//! function's path, never a key or a value.

use crate::Outcome;
use crate::registry::CachedFunction;
use crate::stats::{Counters, Stats};
use crate::tombstone::Tombstone;
use arc_swap::ArcSwapOption;
use metrics::{Counter, Histogram, Key, Label, Metadata, Recorder};
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
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
    outcomes(function, outcome, 1);
}

/// `count` calls (or ids of a batch) of `function` that ended in `outcome`, recorded at once.
pub(crate) fn outcomes(function: &'static str, outcome: Outcome, count: u64) {
    if count == 0 {
        return;
    }
    let metric = match outcome {
        Outcome::Hit => Metric::Hits,
        Outcome::Coalesced => Metric::Coalesced,
        Outcome::Miss => Metric::Misses,
        Outcome::Refresh => Metric::Refreshes,
        Outcome::Stale => Metric::Stale,
        Outcome::Bypass => Metric::Bypasses,
    };
    let metrics = Metrics::of(function);
    metrics.stats.outcomes(outcome, count);
    metrics.counter(metric, count);
    crate::outcome::record(outcome);
    crate::spans::outcome(outcome);
}

/// Runs a cache operation, recording how long it took. Lookups, the one operation of a hit,
/// are timed one in [`FETCH_SAMPLE`] per thread and recorded with that weight: two clock
/// reads cost a hit more than the rest of its metrics.
pub(crate) fn timed<F: Future>(function: &'static str, operation: Op, op: F) -> Timed<F> {
    let timing = match operation {
        Op::Fetch => fetch_sampled().then_some((Metric::FetchTime, FETCH_SAMPLE)),
        Op::Fill => Some((Metric::FillTime, 1)),
        Op::Delete => Some((Metric::DeleteTime, 1)),
        Op::Encode | Op::Decode => None,
    };
    Timed {
        op,
        function,
        timing: timing.map(|(metric, weight)| (metric, weight, Instant::now())),
    }
}

pin_project_lite::pin_project! {
    /// [`timed`]'s future: the operation's, polled in place (an `async fn` around it would
    /// copy it, on every hit, into a future of its own).
    pub(crate) struct Timed<F> {
        #[pin]
        op: F,
        function: &'static str,
        // The metric, its weight, and when the operation was made (every caller awaits
        // it at once).
        timing: Option<(Metric, usize, Instant)>,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.op.poll(cx));
        if let Some((metric, weight, started)) = this.timing.take() {
            Metrics::of(this.function).histogram(metric, started.elapsed(), weight);
        }
        Poll::Ready(output)
    }
}

/// One lookup in this many is timed, on each thread.
const FETCH_SAMPLE: usize = 8;

/// Whether this lookup is one of the timed ones.
fn fetch_sampled() -> bool {
    thread_local! {
        static LOOKUPS: Cell<usize> = const { Cell::new(0) };
    }
    LOOKUPS
        .try_with(|lookups| {
            let n = lookups.get();
            lookups.set(n.wrapping_add(1));
            n % FETCH_SAMPLE == 0
        })
        .unwrap_or(true)
}

pub(crate) fn body_time(function: &'static str, elapsed: Duration) {
    let metrics = Metrics::of(function);
    metrics.stats.body_time(elapsed);
    metrics.histogram(Metric::BodyTime, elapsed, 1);
}

impl CachedFunction {
    /// This function's [`Stats`] in this process so far (all zeros before its first call).
    /// Cheap enough for a page or an endpoint: one short lock of a map of functions, then
    /// relaxed loads.
    pub fn stats(&self) -> Stats {
        stats(self.path)
    }
}

/// What `function` did in this process so far; zeros before its first call (without
/// making its metrics: a page listing every function need not allocate for the idle ones).
pub(crate) fn stats(function: &str) -> Stats {
    let by_name = BY_NAME.lock().unwrap_or_else(PoisonError::into_inner);
    by_name
        .as_ref()
        .and_then(|by_name| by_name.get(function))
        .map_or_else(Stats::default, |metrics| metrics.stats.read())
}

/// Every function's metrics, by name: made on its first call, kept for the process's life.
static BY_NAME: Mutex<Option<HashMap<&'static str, &'static Metrics>>> = Mutex::new(None);

/// The per-call metrics of a function: the counters of its outcomes and the histograms of
/// its operations' durations.
#[derive(Clone, Copy)]
enum Metric {
    Hits,
    Coalesced,
    Misses,
    Refreshes,
    Stale,
    Bypasses,
    FetchTime,
    FillTime,
    DeleteTime,
    BodyTime,
}

const METRICS: usize = 10;

impl Metric {
    /// The metric's key, with the function's labels.
    fn key(self, function: &'static str) -> Key {
        let (name, operation) = match self {
            Metric::Hits => ("redis_cached_hits_total", None),
            Metric::Coalesced => ("redis_cached_coalesced_total", None),
            Metric::Misses => ("redis_cached_misses_total", None),
            Metric::Refreshes => ("redis_cached_refreshes_total", None),
            Metric::Stale => ("redis_cached_stale_total", None),
            Metric::Bypasses => ("redis_cached_bypasses_total", None),
            Metric::FetchTime => ("redis_cached_cache_duration_seconds", Some(Op::Fetch)),
            Metric::FillTime => ("redis_cached_cache_duration_seconds", Some(Op::Fill)),
            Metric::DeleteTime => ("redis_cached_cache_duration_seconds", Some(Op::Delete)),
            Metric::BodyTime => ("redis_cached_body_duration_seconds", None),
        };
        let mut labels = vec![Label::from_static_parts("function", function)];
        if let Some(operation) = operation {
            labels.push(Label::from_static_parts("operation", operation.as_str()));
        }
        Key::from_parts(name, labels)
    }
}

/// What `metrics::counter!` and `histogram!` would give for `target: module_path!()`.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// A function's metric keys, built once (the `metrics!` macros build a label vector and
/// hash it on every call), and its handles in the process-wide recorder, registered once
/// per metric (a recorder looks a key up in its registry on every registration).
///
/// Handles are kept only for a recorder that was the process-wide one when
/// [`describe_metrics`] last looked (cache builds call it): such a recorder lives until the
/// process ends, so no other recorder can later stand at its address. Under any other
/// recorder (`metrics::with_local_recorder`, or one installed later without a
/// `describe_metrics` call) every call registers its metric again, as the macros do.
pub(crate) struct Metrics {
    keys: [Key; METRICS],
    /// The handles in the first two process-wide recorders seen (the no-op one, then the
    /// one installed): plain loads on the hot path. A third goes the slower way.
    resolved: [OnceLock<Resolved>; 2],
    /// The counts and body times the process reads itself (the inspection page).
    stats: Counters,
}

/// A function's handles in one recorder, each registered on first use.
struct Resolved {
    recorder: RecorderId,
    counters: [OnceLock<Counter>; METRICS],
    histograms: [OnceLock<Histogram>; METRICS],
}

/// A recorder's identity: its address and vtable (never dereferenced).
#[derive(Clone, Copy, PartialEq, Eq)]
struct RecorderId(*const dyn Recorder);

// SAFETY: only compared, never dereferenced.
unsafe impl Send for RecorderId {}
// SAFETY: as above.
unsafe impl Sync for RecorderId {}

impl RecorderId {
    fn of(recorder: &dyn Recorder) -> RecorderId {
        let pointer: *const (dyn Recorder + '_) = recorder;
        // SAFETY: only the lifetime bound changes; the pointer is never dereferenced.
        RecorderId(unsafe {
            std::mem::transmute::<*const (dyn Recorder + '_), *const (dyn Recorder + 'static)>(
                pointer,
            )
        })
    }

    fn same(self, other: RecorderId) -> bool {
        // Address and vtable: two recorders of different types may share an address
        // (zero-sized ones). A type with two vtables only costs the slower path.
        std::ptr::eq(self.0, other.0)
    }
}

/// The process-wide recorder (or the no-op one, before any is installed), as
/// `describe_metrics` last saw it from a thread without a local recorder.
static PROCESS_RECORDER: ArcSwapOption<RecorderId> = ArcSwapOption::const_empty();

impl Metrics {
    /// The metrics of `function`, found by the address of its name: a thread-local slot
    /// per address, else a process-wide map by name (each function's metrics live as long
    /// as the process: there are as many as cached functions).
    fn of(function: &'static str) -> &'static Metrics {
        const SLOTS: usize = 64;
        type Slot = Cell<Option<(*const u8, &'static Metrics)>>;
        thread_local! {
            static RECENT: [Slot; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
        }
        let address = function.as_ptr();
        let slot = (address as usize >> 3) % SLOTS;
        let recent = RECENT
            .try_with(|recent| match recent[slot].get() {
                Some((seen, metrics)) if seen == address => Some(metrics),
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(metrics) = recent {
            return metrics;
        }
        let metrics = *BY_NAME
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .entry(function)
            .or_insert_with(|| {
                Box::leak(Box::new(Metrics {
                    keys: [
                        Metric::Hits,
                        Metric::Coalesced,
                        Metric::Misses,
                        Metric::Refreshes,
                        Metric::Stale,
                        Metric::Bypasses,
                        Metric::FetchTime,
                        Metric::FillTime,
                        Metric::DeleteTime,
                        Metric::BodyTime,
                    ]
                    .map(|metric| metric.key(function)),
                    resolved: [OnceLock::new(), OnceLock::new()],
                    stats: Counters::new(),
                }))
            });
        let _ = RECENT.try_with(|recent| recent[slot].set(Some((address, metrics))));
        metrics
    }

    fn counter(&self, metric: Metric, value: u64) {
        let key = &self.keys[metric as usize];
        self.with_handles(
            |recorder| recorder.register_counter(key, &METADATA).increment(value),
            |resolved, recorder| {
                resolved.counters[metric as usize]
                    .get_or_init(|| recorder.register_counter(key, &METADATA))
                    .increment(value);
            },
        );
    }

    /// Records `elapsed`, `weight` times (a sample standing for as many operations).
    fn histogram(&self, metric: Metric, elapsed: Duration, weight: usize) {
        let key = &self.keys[metric as usize];
        let record = |histogram: &Histogram| match weight {
            1 => histogram.record(elapsed),
            _ => histogram.record_many(elapsed, weight),
        };
        self.with_handles(
            |recorder| record(&recorder.register_histogram(key, &METADATA)),
            |resolved, recorder| {
                record(
                    resolved.histograms[metric as usize]
                        .get_or_init(|| recorder.register_histogram(key, &METADATA)),
                );
            },
        );
    }

    /// Calls `kept` with this function's handles in the recorder in effect if they may be
    /// kept (see [`Metrics`]), else `each_call` with the recorder.
    fn with_handles(
        &self,
        each_call: impl FnOnce(&dyn Recorder),
        kept: impl FnOnce(&Resolved, &dyn Recorder),
    ) {
        metrics::with_recorder(|recorder| {
            let id = RecorderId::of(recorder);
            for slot in &self.resolved {
                match slot.get() {
                    Some(resolved) if resolved.recorder.same(id) => {
                        return kept(resolved, recorder);
                    }
                    Some(_) => continue,
                    None => break,
                }
            }
            let process = PROCESS_RECORDER.load();
            if process.as_deref().is_some_and(|process| process.same(id)) {
                for slot in &self.resolved {
                    let resolved = slot.get_or_init(|| Resolved {
                        recorder: id,
                        counters: Default::default(),
                        histograms: Default::default(),
                    });
                    if resolved.recorder.same(id) {
                        return kept(resolved, recorder);
                    }
                }
            }
            each_call(recorder);
        });
    }
}

/// Records which recorder is the process-wide one, from a thread of its own (the calling
/// thread may have a local recorder), so that functions keep their handles in it.
fn note_process_recorder() {
    let seen = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .spawn_scoped(scope, || metrics::with_recorder(RecorderId::of))
            .ok()?
            .join()
            .ok()
    });
    if let Some(seen) = seen {
        PROCESS_RECORDER.store(Some(Arc::new(seen)));
    }
}

pub(crate) fn invalidation(function: &'static str, keys: usize) {
    metrics::counter!("redis_cached_invalidations_total", "function" => function).increment(1);
    metrics::counter!("redis_cached_invalidated_keys_total", "function" => function)
        .increment(keys as u64);
}

/// Records, for a miss that replaced a tombstone, the time since its invalidation (0 when
/// the invalidating process's clock is ahead) in the histogram, and the cause in the call's
/// span.
pub(crate) fn invalidation_to_miss(function: &'static str, cause: Option<&Tombstone>) {
    if let Some(cause) = cause {
        let ago = cause.age_ms();
        metrics::histogram!("redis_cached_invalidation_to_miss_seconds", "function" => function)
            .record(Duration::from_millis(ago));
        crate::spans::caused_by(&cause.by, ago, cause.trace.as_deref());
    }
}

/// Counts keys a clear deleted; `function` is `*` for [`Cache::clear`](crate::Cache::clear).
pub(crate) fn cleared(function: &'static str, keys: u64) {
    metrics::counter!("redis_cached_cleared_keys_total", "function" => function).increment(keys);
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
/// | `redis_cached_refreshes_total` | counter | calls that refreshed the entry: `refresh` true, or a claimed refresh ahead of expiry or in the `stale` window |
/// | `redis_cached_stale_total` | counter | calls answered with a value past its TTL (`stale`, `stale_if_error`) |
/// | `redis_cached_coalesced_total` | counter | calls that waited for another caller's fill and got its value |
/// | `redis_cached_bypasses_total` | counter | calls that did not use the cache (none installed, unreachable, invalidation pending) |
/// | `redis_cached_errors_total` | counter; also `operation` (`fetch`, `fill`, `encode`, `decode`, `delete`) | failed cache operations, each logged at most once a second per function |
/// | `redis_cached_invalidations_total` | counter | `#[invalidates]` calls that deleted their keys |
/// | `redis_cached_invalidated_keys_total` | counter | keys those calls deleted |
/// | `redis_cached_cleared_keys_total` | counter; `function` is `*` for [`Cache::clear`](crate::Cache::clear) | keys deleted by [`Cache::clear`](crate::Cache::clear) and [`Cache::clear_function`](crate::Cache::clear_function) |
/// | `redis_cached_cache_duration_seconds` | histogram, seconds; also `operation` | time spent in each cache operation; lookups (`fetch`) are timed one in 8 on each thread and recorded 8 times, so the count stays the number of lookups and the sum is an estimate |
/// | `redis_cached_body_duration_seconds` | histogram, seconds | time spent running bodies |
/// | `redis_cached_invalidation_to_miss_seconds` | histogram, seconds | with [`tombstones`](crate::CacheBuilder::tombstones): for each miss that replaced a tombstone, the time from the invalidation that left it to the miss (0 when the clocks disagree) |
/// | `redis_cached_breaker_opened_total` | counter, no labels | outages: times the circuit breaker opened |
/// | `redis_cached_breaker_open` | gauge; labelled `server` only (its address, password redacted) | breakers open for that server: 1 while it is unreachable (more if several caches of the process use it), 0 once it answers again |
/// | `redis_cached_pending_invalidations` | gauge, no labels | keys whose invalidation could not reach Redis, deleted later: misses until then |
/// | `redis_cached_near_eviction_lag_seconds` | histogram, seconds, no labels | near tier: from a key's write in Redis to this process's eviction, measured with probes (see [`NearCache::probe_every`](crate::NearCache::probe_every)); includes the clock offset between the writer's host and this one |
///
/// ```
/// // After installing a recorder, for example metrics-exporter-prometheus's:
/// redis_cached::describe_metrics();
/// ```
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    note_process_recorder();
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
        "Cached calls that refreshed their entry (asked to, or ahead of expiry), by function."
    );
    describe_counter!(
        "redis_cached_stale_total",
        Unit::Count,
        "Cached calls answered with a value past its TTL, by function."
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
    describe_counter!(
        "redis_cached_cleared_keys_total",
        Unit::Count,
        "Keys deleted by Cache::clear (function \"*\") and Cache::clear_function, by function."
    );
    describe_histogram!(
        "redis_cached_cache_duration_seconds",
        Unit::Seconds,
        "Time spent in cache operations, by function and operation."
    );
    describe_histogram!(
        "redis_cached_invalidation_to_miss_seconds",
        Unit::Seconds,
        "Time from an invalidation to the miss that replaced its tombstone, by function (with tombstones on)."
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
    describe_gauge!(
        "redis_cached_breaker_open",
        Unit::Count,
        "Circuit breakers open for the server (label server): 0 while it answers."
    );
    describe_gauge!(
        "redis_cached_pending_invalidations",
        Unit::Count,
        "Keys whose invalidation could not reach Redis yet: misses until it is applied."
    );
    describe_histogram!(
        "redis_cached_near_eviction_lag_seconds",
        Unit::Seconds,
        "Near cache: time from a key's write in Redis to its eviction here, measured by probes (includes clock offset between hosts)."
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
