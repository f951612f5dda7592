//! The soak's history and its checker (`scripts/soak`, `tools/src/bin/soak.rs`).
//!
//! Every app process of a soak run records each operation it made as a [`Record`], one JSON
//! line each, with times on one clock that all processes on the machine share
//! ([`monotonic_ns`], `CLOCK_MONOTONIC`). The coordinator reads the lines of all processes
//! and [`check`]s them together:
//!
//! - **Stale reads.** A read of key `k` that started at `s` must return a version at least
//!   as new as every write of `k` whose invalidation (of the keys, or of the tag, that the
//!   read's function uses) returned `Ok` before `s`. A read that returns an older version
//!   is a violation unless a window the documentation declares explains it, which the
//!   checker measures (from the first invalidation that should have hidden the version to
//!   the read's start) and reports:
//!   - the `stale` window of a function that declares one ([`Function::Stale`]), up to
//!     [`Bounds::stale_window`], for a read served `STALE`;
//!   - the near tier's eviction lag, for hits of the process that has one, up to
//!     [`Bounds::near_lag`];
//!   - a run shared while Redis could not be used, for a read served `BYPASS`: the read
//!     joined a body run of its own process, of the same key, that began before the first
//!     invalidation it missed and was still running when the read began (an invalidation
//!     made by another process cannot reach a process that cannot reach Redis; the guide
//!     declares data at most one body run older than the call);
//!   - an invalidation that a failover lost, for an entry served from Redis (`HIT`,
//!     `COALESCED` or `STALE`): every invalidation that should have hidden the version
//!     returned inside one of [`Bounds::failovers`] (from shortly before a primary was
//!     replaced until the topology was healthy again). Looked at first: a lost
//!     invalidation explains the other windows' reads too.
//!
//!   Each window explains only the outcomes it produces: a body's run (`MISS`, `BYPASS`)
//!   that returned an old version is a violation whatever the window, and so is a
//!   coalesced wait outside a failover (a batch has one outcome for all its ids: its
//!   reads count as entries).
//! - **Failures.** A call that failed because of the cache (a panic, a value of another
//!   key, an id missing from a batch's answer) is a violation; a body's own error is not.
//! - **Body runs.** How many times each key's bodies ran in all processes, and how many
//!   ran at once at most (the flight), per key space: reported, not judged (during an
//!   outage every caller runs its body, as documented).
//!
//! Times are nanoseconds of `CLOCK_MONOTONIC`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Now on `CLOCK_MONOTONIC`, in nanoseconds: one clock for every process on the machine
/// (unlike [`std::time::Instant`], whose values cannot leave the process), never set back.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Linux
    // and macOS, where clock_gettime cannot fail with these arguments.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The cached function a read went through. Each keeps its entries under keys of its own,
/// all of them versioned by the same source row per id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Function {
    /// `soak:item:<id>`, invalidated by key.
    Item,
    /// The batch form over the same keys as [`Function::Item`].
    Batch,
    /// `soak:tagged:<id>`, tagged `soak:tag:<id>`, invalidated by tag.
    Tagged,
    /// `soak:swr:<id>`, with a `stale` window, invalidated by key.
    Stale,
}

impl Function {
    /// Whether a write's tag invalidation (rather than its key invalidation) is the one
    /// that hides this function's old entries.
    fn by_tag(self) -> bool {
        self == Function::Tagged
    }

    /// The key space of its entries (the batch form shares the item's).
    fn space(self) -> Function {
        match self {
            Function::Batch => Function::Item,
            other => other,
        }
    }
}

/// One operation of one app process (`worker`, its index), as recorded. `key` is the id
/// (the source row); times (`start`, `end`, `at`, `keys_done`, `tags_done`) are
/// [`monotonic_ns`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// A read that returned `version` of `key` (a batch records one per id), from the
    /// call's `start` to its `end`.
    Read {
        worker: u8,
        function: Function,
        key: u32,
        start: u64,
        end: u64,
        version: u64,
        /// `HIT`, `MISS`, `COALESCED`, ... (`redis_cached::Outcome`), if the call had one.
        outcome: Option<String>,
    },
    /// A write, from `start`: the source row went to `version`, then its keys were invalidated
    /// (`keys_done`: when `Cache::invalidate` returned `Ok`; `None` if it returned an
    /// error) and its tag (`tags_done`, `Cache::invalidate_tags`).
    Write {
        worker: u8,
        key: u32,
        version: u64,
        start: u64,
        keys_done: Option<u64>,
        tags_done: Option<u64>,
    },
    /// A body ran (a miss, or a refresh) from `start` to `end`.
    Body {
        worker: u8,
        function: Function,
        key: u32,
        start: u64,
        end: u64,
    },
    /// A read whose body returned an error (injected, or the source's), started `at`: not a
    /// failure.
    BodyError {
        worker: u8,
        function: Function,
        key: u32,
        at: u64,
    },
    /// A call that failed because of the cache, at `at`: `what` says how.
    Failure { worker: u8, at: u64, what: String },
}

/// What the documentation declares, for the checker to allow and measure.
#[derive(Clone, Debug, Default)]
pub struct Bounds {
    /// The `stale` window of [`Function::Stale`], in ns.
    pub stale_window: u64,
    /// The process with a near tier, if any.
    pub near_worker: Option<u8>,
    /// How long that process's near tier may lag behind an invalidation (ns).
    pub near_lag: u64,
    /// Intervals (start, end) in which an acknowledged invalidation may be lost to a
    /// failover.
    pub failovers: Vec<(u64, u64)>,
}

/// A stale read no declared window explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The process that read.
    pub worker: u8,
    /// The function it read through.
    pub function: Function,
    /// The id read.
    pub key: u32,
    /// When the read started ([`monotonic_ns`]).
    pub start: u64,
    /// The version it returned.
    pub seen: u64,
    /// The newest version invalidated before it started.
    pub expected: u64,
    /// When the first invalidation that should have hidden `seen` returned.
    pub invalidated_at: u64,
    /// How the call was served (`HIT`, `COALESCED`, ...), if known.
    pub outcome: Option<String>,
}

/// How much of one declared window the run used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowUse {
    /// Reads it explained.
    pub reads: u64,
    /// The longest time from an invalidation to a read it explained, in ns.
    pub max: u64,
    /// How those reads were served (`HIT`, `COALESCED`, ...), and how many each.
    pub outcomes: BTreeMap<String, u64>,
}

impl WindowUse {
    fn add(&mut self, lag: u64, outcome: &Option<String>) {
        self.reads += 1;
        self.max = self.max.max(lag);
        let outcome = outcome.as_deref().unwrap_or("no outcome");
        *self.outcomes.entry(outcome.to_owned()).or_default() += 1;
    }
}

/// What [`check`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Reads recorded (a batch's ids count one each).
    pub reads: u64,
    /// Writes recorded.
    pub writes: u64,
    /// Writes whose key or tag invalidation returned an error (not counted by the checker:
    /// their invalidation did not complete).
    pub unacknowledged: u64,
    /// Reads whose body returned an error.
    pub body_errors: u64,
    /// Stale reads no window explains, by start.
    pub stale: Vec<Violation>,
    /// Calls that failed because of the cache, and processes that failed.
    pub failures: Vec<String>,
    /// What the `stale` window explained.
    pub stale_window: WindowUse,
    /// What the near tier's lag explained.
    pub near_lag: WindowUse,
    /// What failovers explained.
    pub failover: WindowUse,
    /// What runs shared while Redis could not be used explained.
    pub shared_run: WindowUse,
    /// The most body runs of one key (per key space) in all processes.
    pub max_runs: u64,
    /// The most body runs of one key (per key space) at once, in all processes.
    pub max_flight: u64,
    /// Reads served from the cache (`HIT`, or `STALE`).
    pub hits: u64,
    /// Reads' latencies (from start to end, in ns): the 50th and 99th percentiles and the
    /// longest.
    pub latency: [u64; 3],
    /// The longest read: its process, function, key, start, latency (ns) and outcome.
    pub slowest: Option<(u8, Function, u32, u64, u64, Option<String>)>,
}

impl Report {
    /// Stale reads no window explains, and failures.
    pub fn violations(&self) -> usize {
        self.stale.len() + self.failures.len()
    }
}

/// One key's acknowledged invalidations of one kind, sorted by when they returned, with the
/// running maximum of their versions.
struct Acks {
    /// (returned at, version)
    acks: Vec<(u64, u64)>,
    newest: Vec<u64>,
}

impl Acks {
    fn new(mut acks: Vec<(u64, u64)>) -> Acks {
        acks.sort_unstable();
        let mut max = 0;
        let newest = acks
            .iter()
            .map(|&(_, version)| {
                max = max.max(version);
                max
            })
            .collect();
        Acks { acks, newest }
    }

    /// The invalidations that returned before `start` and should have hidden `seen`.
    fn missed(&self, start: u64, seen: u64) -> impl Iterator<Item = &(u64, u64)> {
        let before = self.acks.partition_point(|&(at, _)| at < start);
        self.acks[..before]
            .iter()
            .filter(move |&&(_, version)| version > seen)
    }

    /// The newest version invalidated before `start`.
    fn newest_before(&self, start: u64) -> u64 {
        match self.acks.partition_point(|&(at, _)| at < start) {
            0 => 0,
            n => self.newest[n - 1],
        }
    }
}

/// Checks a whole run's records (all processes) against `bounds`; see the module
/// documentation for the rules.
pub fn check(records: &[Record], bounds: &Bounds) -> Report {
    let mut report = Report::default();
    let mut by_key: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    let mut by_tag: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    let mut bodies: HashMap<(Function, u32), Vec<(u64, u64)>> = HashMap::new();
    let mut runs_of: HashMap<(u8, Function, u32), Vec<(u64, u64)>> = HashMap::new();
    let mut latencies = Vec::new();
    for record in records {
        match record {
            Record::Write {
                key,
                version,
                keys_done,
                tags_done,
                ..
            } => {
                report.writes += 1;
                if keys_done.is_none() || tags_done.is_none() {
                    report.unacknowledged += 1;
                }
                if let Some(at) = keys_done {
                    by_key.entry(*key).or_default().push((*at, *version));
                }
                if let Some(at) = tags_done {
                    by_tag.entry(*key).or_default().push((*at, *version));
                }
            }
            Record::Body {
                worker,
                function,
                key,
                start,
                end,
            } => {
                let run = (*start, *end);
                bodies
                    .entry((function.space(), *key))
                    .or_default()
                    .push(run);
                runs_of
                    .entry((*worker, function.space(), *key))
                    .or_default()
                    .push(run);
            }
            Record::BodyError { .. } => report.body_errors += 1,
            Record::Failure { worker, at, what } => {
                report
                    .failures
                    .push(format!("process {worker} at {at} ns: {what}"));
            }
            Record::Read {
                worker,
                function,
                key,
                start,
                end,
                outcome,
                ..
            } => {
                report.reads += 1;
                let latency = end.saturating_sub(*start);
                latencies.push(latency);
                if report
                    .slowest
                    .as_ref()
                    .is_none_or(|slowest| slowest.4 < latency)
                {
                    report.slowest =
                        Some((*worker, *function, *key, *start, latency, outcome.clone()));
                }
                if matches!(outcome.as_deref(), Some("HIT" | "STALE")) {
                    report.hits += 1;
                }
            }
        }
    }
    let by_key: HashMap<u32, Acks> = by_key.into_iter().map(|(k, v)| (k, Acks::new(v))).collect();
    let by_tag: HashMap<u32, Acks> = by_tag.into_iter().map(|(k, v)| (k, Acks::new(v))).collect();
    for record in records {
        let Record::Read {
            worker,
            function,
            key,
            start,
            version,
            outcome,
            ..
        } = record
        else {
            continue;
        };
        let (worker, function, key, start, version) = (*worker, *function, *key, *start, *version);
        let acks = if function.by_tag() { &by_tag } else { &by_key };
        let Some(acks) = acks.get(&key) else {
            continue;
        };
        let expected = acks.newest_before(start);
        if version >= expected {
            continue;
        }
        let missed: Vec<u64> = acks.missed(start, version).map(|&(at, _)| at).collect();
        let first = missed.iter().copied().min().unwrap_or(start);
        let lag = start - first;
        let lost_to_failover = missed.iter().all(|&at| {
            bounds
                .failovers
                .iter()
                .any(|&(from, to)| from <= at && at <= to)
        });
        // Each window explains only what it serves: an entry from Redis (a hit, one found
        // after waiting for a fill, or past its TTL; a batch has one outcome for all its
        // ids), or one from the near tier (a hit). A lost invalidation explains the others'
        // figures too, so it is looked at first.
        let served = |names: &[&str]| names.contains(&outcome.as_deref().unwrap_or(""));
        let batch = function == Function::Batch;
        if lost_to_failover && (batch || served(&["HIT", "COALESCED", "STALE"])) {
            report.failover.add(lag, outcome);
        } else if served(&["BYPASS"])
            && runs_of
                .get(&(worker, function.space(), key))
                .is_some_and(|runs| {
                    runs.iter()
                        .any(|&(from, to)| from < first && from <= start && start <= to)
                })
        {
            report.shared_run.add(lag, outcome);
        } else if function == Function::Stale && served(&["STALE"]) && lag <= bounds.stale_window {
            report.stale_window.add(lag, outcome);
        } else if bounds.near_worker == Some(worker)
            && matches!(function, Function::Item | Function::Batch)
            && (batch || served(&["HIT"]))
            && lag <= bounds.near_lag
        {
            report.near_lag.add(lag, outcome);
        } else {
            report.stale.push(Violation {
                worker,
                function,
                key,
                start,
                seen: version,
                expected,
                invalidated_at: first,
                outcome: outcome.clone(),
            });
        }
    }
    for runs in bodies.values_mut() {
        report.max_runs = report.max_runs.max(runs.len() as u64);
        report.max_flight = report.max_flight.max(max_overlap(runs));
    }
    report.stale.sort_unstable_by_key(|found| found.start);
    latencies.sort_unstable();
    let at = |per_mille: usize| {
        let index = (latencies.len() * per_mille / 1000).min(latencies.len().saturating_sub(1));
        latencies.get(index).copied().unwrap_or(0)
    };
    report.latency = [at(500), at(990), latencies.last().copied().unwrap_or(0)];
    report
}

/// The most intervals of `runs` that overlap at one instant.
fn max_overlap(runs: &[(u64, u64)]) -> u64 {
    let mut edges: Vec<(u64, i64)> = runs
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // At one instant an end comes before a start: back-to-back runs do not overlap.
    edges.sort_unstable();
    let (mut now, mut max) = (0i64, 0i64);
    for (_, step) in edges {
        now += step;
        max = max.max(now);
    }
    max as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read served from an entry: `STALE` for the `stale` function, `HIT` for the others.
    fn read(worker: u8, function: Function, start: u64, version: u64) -> Record {
        let outcome = if function == Function::Stale {
            "STALE"
        } else {
            "HIT"
        };
        served(worker, function, start, version, outcome)
    }

    fn served(worker: u8, function: Function, start: u64, version: u64, outcome: &str) -> Record {
        Record::Read {
            worker,
            function,
            key: 7,
            start,
            end: start + 1,
            version,
            outcome: Some(outcome.to_owned()),
        }
    }

    fn write(version: u64, keys_done: Option<u64>, tags_done: Option<u64>) -> Record {
        Record::Write {
            worker: 1,
            key: 7,
            version,
            start: 0,
            keys_done,
            tags_done,
        }
    }

    #[test]
    fn a_read_older_than_a_completed_invalidation_is_a_violation() {
        let records = [
            write(1, Some(100), Some(100)),
            write(2, Some(200), Some(210)),
            // Before the second invalidation returned: either version is right.
            read(0, Function::Item, 150, 1),
            read(0, Function::Item, 199, 1),
            // After it: version 1 is stale, for key and tag functions alike.
            read(0, Function::Item, 201, 2),
            read(2, Function::Batch, 300, 1),
            read(0, Function::Tagged, 205, 1),
            read(0, Function::Tagged, 211, 1),
        ];
        let report = check(&records, &Bounds::default());
        let found: Vec<(Function, u64, u64, u64)> = report
            .stale
            .iter()
            .map(|v| (v.function, v.start, v.seen, v.expected))
            .collect();
        assert_eq!(
            found,
            [(Function::Tagged, 211, 1, 2), (Function::Batch, 300, 1, 2)]
        );
        assert_eq!(report.stale[0].invalidated_at, 210);
        assert_eq!((report.reads, report.writes), (6, 2));
        assert_eq!((report.hits, report.latency), (6, [1, 1, 1]));
    }

    #[test]
    fn an_invalidation_that_returned_an_error_constrains_nothing() {
        let records = [write(1, None, Some(10)), read(0, Function::Item, 50, 0)];
        let report = check(&records, &Bounds::default());
        assert!(report.stale.is_empty());
        assert_eq!(report.unacknowledged, 1);
    }

    #[test]
    fn declared_windows_are_allowed_and_measured() {
        let bounds = Bounds {
            stale_window: 1_000,
            near_worker: Some(3),
            near_lag: 50,
            failovers: vec![(5_000, 6_000)],
        };
        let records = [
            write(1, Some(100), Some(100)),
            // The stale window: 900 ns after the invalidation, within it; 1,100, past it.
            read(0, Function::Stale, 1_000, 0),
            read(0, Function::Stale, 1_200, 0),
            // The near tier's process, within its lag; another process is not allowed one.
            read(3, Function::Item, 140, 0),
            read(0, Function::Item, 140, 0),
            // Lost to a failover: allowed however late the read; one invalidation outside
            // the failover that should have hidden it too makes it a violation.
            write(2, Some(5_500), Some(5_500)),
            read(0, Function::Item, 60_000, 1),
            // Each window explains only what it serves: a body's run that returned an old
            // version is no lost invalidation, nor near-tier lag.
            served(0, Function::Item, 60_001, 1, "BYPASS"),
            // A wait for another caller's fill that found the entry a failover kept is
            // explained; outside a failover it is not.
            served(0, Function::Item, 60_002, 1, "COALESCED"),
            served(0, Function::Item, 2_000, 0, "COALESCED"),
            served(3, Function::Item, 141, 0, "MISS"),
            served(0, Function::Stale, 1_001, 0, "HIT"),
            write(3, Some(65_000), Some(65_000)),
            read(0, Function::Item, 70_000, 1),
        ];
        let report = check(&records, &bounds);
        let found: Vec<(u8, u64)> = report.stale.iter().map(|v| (v.worker, v.start)).collect();
        assert_eq!(
            found,
            [
                (0, 140),
                (3, 141),
                (0, 1_001),
                (0, 1_200),
                (0, 2_000),
                (0, 60_001),
                (0, 70_000)
            ]
        );
        let used = |window: &WindowUse| (window.reads, window.max);
        assert_eq!(used(&report.stale_window), (1, 900));
        assert_eq!(used(&report.near_lag), (1, 40));
        assert_eq!(used(&report.failover), (2, 54_502));
        assert_eq!(report.failover.outcomes["HIT"], 1);
        assert_eq!(report.failover.outcomes["COALESCED"], 1);
    }

    #[test]
    fn a_shared_run_explains_only_a_bypass_that_joined_a_run_begun_before_the_invalidation() {
        let body = |worker: u8, start: u64, end: u64| Record::Body {
            worker,
            function: Function::Item,
            key: 7,
            start,
            end,
        };
        let records = [
            // A run of process 0 from 50 to 400; the write's invalidation returned at 100.
            body(0, 50, 400),
            write(1, Some(100), Some(100)),
            // Joined that run at 200: explained.
            served(0, Function::Item, 200, 0, "BYPASS"),
            // Another process has no such run; a hit is no shared run; after the run ended,
            // nothing is shared.
            served(1, Function::Item, 201, 0, "BYPASS"),
            served(0, Function::Item, 202, 0, "HIT"),
            served(0, Function::Item, 500, 0, "BYPASS"),
            // A run begun after the invalidation read the new version: no excuse.
            body(2, 150, 600),
            served(2, Function::Item, 300, 0, "BYPASS"),
        ];
        let report = check(&records, &Bounds::default());
        let found: Vec<(u8, u64)> = report.stale.iter().map(|v| (v.worker, v.start)).collect();
        assert_eq!(found, [(1, 201), (0, 202), (2, 300), (0, 500)]);
        assert_eq!((report.shared_run.reads, report.shared_run.max), (1, 100));
    }

    #[test]
    fn failures_count_and_body_errors_do_not() {
        let records = [
            Record::Failure {
                worker: 2,
                at: 5,
                what: "a panic".into(),
            },
            Record::BodyError {
                worker: 1,
                function: Function::Item,
                key: 7,
                at: 6,
            },
        ];
        let report = check(&records, &Bounds::default());
        assert_eq!(report.violations(), 1);
        assert_eq!(report.body_errors, 1);
    }

    #[test]
    fn body_runs_and_flight_per_key_space() {
        let body = |function, key, start, end| Record::Body {
            worker: 0,
            function,
            key,
            start,
            end,
        };
        let records = [
            // The item and batch forms share keys: three runs of key 1, two at once.
            body(Function::Item, 1, 0, 10),
            body(Function::Batch, 1, 5, 15),
            body(Function::Item, 1, 15, 20),
            // Another key space: not the same key.
            body(Function::Tagged, 1, 6, 7),
        ];
        let report = check(&records, &Bounds::default());
        assert_eq!((report.max_runs, report.max_flight), (3, 2));
    }

    #[test]
    fn records_round_trip_as_json_lines() {
        let record = write(4, Some(9), None);
        let line = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);
        assert!(line.starts_with(r#"{"op":"write""#));
    }

    #[test]
    fn the_clock_moves_forward() {
        let before = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_ns() >= before + 2_000_000);
    }
}
