//! Soak: a mixed workload of cached reads, writes and invalidations at full concurrency for a
//! set time, against a real redis-server that is killed (`SIGKILL`), frozen
//! (`SIGSTOP`/`SIGCONT`) and restarted on the same port on a schedule. It checks every call
//! and replays the history for stale reads, then prints operations, failures, stale reads,
//! body runs per key, hit ratio, latencies and the faults it injected. Exits with status 1
//! if it found a failure or a stale read. Not run in CI:
//!
//! ```sh
//! scripts/soak 60                # installs redis-server if missing, then runs:
//! cargo run --release -p redis-cached-tools --bin soak -- --seconds 60
//! ```
//!
//! Flags: `--seconds N` (60), `--concurrency N` (64 calls in flight), `--keys N` (100),
//! `--timeout-ms N` (100, the cache's bound on each Redis operation), `--seed N` (random;
//! the schedule and the workload are drawn from it, the timings of course vary),
//! `--without-fill-leases` (the control: plain `GET` / `SET .. EX`, where the checker must
//! find stale reads, which shows that it can).
//! `RUST_LOG=redis_cached=warn` shows the library's log lines (many, during outages).
//!
//! The source of truth is in this process: one version counter per key behind a tokio
//! `RwLock` (a row lock). Writers bump it under the write lock; read bodies read it under
//! the read lock. It never fails and is exactly ordered, so any stale read the checker finds
//! is the cache's doing, not the source's. Bodies sleep random amounts around the source
//! access (the race windows: a write can land between a fill's source read and its store).
//!
//! The checker: a read is stale if it started after an invalidation of version `v` (of its
//! key) had returned, and returned a version below `v`. A failure is a call that panicked
//! or returned another key's value (every value carries its key).

#[path = "../../../tests/harness/mod.rs"]
mod harness;

use harness::RedisServer;
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Out of 100 operations: reads, then writes (`#[invalidates]`), the rest plain
/// `Cache::invalidate` calls that change nothing in the source.
const READ_PERCENT: u64 = 80;
const WRITE_PERCENT: u64 = 15;
/// Out of 1,000 read bodies: how many fail (an `Err`, which is not stored).
const SOURCE_ERRORS_PER_MILLE: u64 = 5;
/// Faults start after this, and none is under way in the last `QUIET_END`.
const WARMUP: Duration = Duration::from_secs(2);
const QUIET_END: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// The source of truth and the cached functions.

/// One version per key, behind a row lock; and how often each key's read body ran.
struct Source {
    rows: Vec<RwLock<u64>>,
    body_runs: Vec<AtomicU64>,
}

impl Source {
    fn new(keys: u64) -> Source {
        Source {
            rows: (0..keys).map(|_| RwLock::new(0)).collect(),
            body_runs: (0..keys).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    async fn read(&self, id: u64) -> u64 {
        *self.rows[id as usize].read().await
    }

    /// Bumps the version inside a "transaction" that holds the row for `hold`.
    async fn write(&self, id: u64, hold: Duration) -> u64 {
        let mut row = self.rows[id as usize].write().await;
        pause(hold).await;
        *row += 1;
        *row
    }
}

/// A cached value; it carries its key, so that a mix-up is seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Item {
    id: u64,
    version: u64,
}

/// An injected failure of the source: not stored, so waiting callers run the body.
#[derive(Debug)]
struct SourceError;

/// The delays (and failure) a read body is to inject, drawn by the caller.
#[derive(Clone, Copy)]
struct ReadPlan {
    before: Duration,
    after: Duration,
    fail: bool,
}

#[derive(Clone, Copy)]
struct WritePlan {
    before: Duration,
    hold: Duration,
    after: Duration,
}

#[redis_cached(key = "soak:item:<id>", ttl = 60, cache = cache)]
async fn read_item(
    cache: &Cache,
    source: &Source,
    id: u64,
    plan: ReadPlan,
) -> Result<Item, SourceError> {
    source.body_runs[id as usize].fetch_add(1, Ordering::Relaxed);
    pause(plan.before).await;
    if plan.fail {
        return Err(SourceError);
    }
    let version = source.read(id).await;
    // The window of the stale-set race: a write and its invalidation may land here.
    pause(plan.after).await;
    Ok(Item { id, version })
}

#[invalidates("soak:item:<id>", cache = cache)]
async fn write_item(cache: &Cache, source: &Source, id: u64, plan: WritePlan) -> u64 {
    pause(plan.before).await;
    let version = source.write(id, plan.hold).await;
    // Committed but not yet invalidated: reads may still see the old version here.
    pause(plan.after).await;
    version
}

async fn pause(duration: Duration) {
    if duration.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(duration).await;
    }
}

// ---------------------------------------------------------------------------------------
// Randomness: SplitMix64, seeded, so that a schedule can be drawn again.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A whole number of milliseconds in `low..=high`.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }

    fn read_plan(&mut self) -> ReadPlan {
        // tokio's timer has millisecond resolution: a pause is none, or whole milliseconds.
        let before = if self.below(2) == 0 {
            Duration::ZERO
        } else {
            self.millis(1, 2)
        };
        let after = match self.below(100) {
            0..40 => Duration::ZERO,
            40..85 => self.millis(1, 3),
            85..99 => self.millis(5, 30),
            // Longer than the cache's timeout: outlives whole outages' worth of operations.
            _ => self.millis(100, 300),
        };
        ReadPlan {
            before,
            after,
            fail: self.below(1000) < SOURCE_ERRORS_PER_MILLE,
        }
    }

    fn write_plan(&mut self) -> WritePlan {
        WritePlan {
            before: self.millis(0, 2),
            hold: self.millis(0, 1),
            after: self.millis(0, 3),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The workload.

struct Args {
    seconds: u64,
    concurrency: usize,
    keys: u64,
    timeout: Duration,
    seed: u64,
    /// The control run: plain `GET` / `SET .. EX`, where the checker must find stale reads.
    without_fill_leases: bool,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            seconds: 60,
            concurrency: 64,
            keys: 100,
            timeout: Duration::from_millis(100),
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |now| now.as_nanos() as u64),
            without_fill_leases: false,
        };
        let mut given = std::env::args().skip(1);
        while let Some(flag) = given.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (flag.clone(), None),
            };
            if name == "--help" || name == "-h" {
                return Err(String::new());
            }
            if name == "--without-fill-leases" {
                args.without_fill_leases = true;
                continue;
            }
            let value = inline
                .or_else(|| given.next())
                .ok_or_else(|| format!("{name} needs a value"))?;
            let number: u64 = value
                .parse()
                .map_err(|_| format!("{name}: `{value}` is not a whole number"))?;
            match name.as_str() {
                "--seconds" => args.seconds = number,
                "--concurrency" => args.concurrency = number as usize,
                "--keys" => args.keys = number,
                "--timeout-ms" => args.timeout = Duration::from_millis(number),
                "--seed" => args.seed = number,
                _ => return Err(format!("unknown flag {name}")),
            }
        }
        if args.seconds == 0 || args.concurrency == 0 || args.keys == 0 || args.timeout.is_zero() {
            return Err("--seconds, --concurrency, --keys and --timeout-ms must be above 0".into());
        }
        Ok(args)
    }
}

const USAGE: &str = "usage: cargo run --release -p redis-cached-tools --bin soak -- [--seconds 60] \
                     [--concurrency 64] [--keys 100] [--timeout-ms 100] [--seed N] \
                     [--without-fill-leases]";

/// What one worker saw. Times are nanoseconds since the start of the run.
#[derive(Default)]
struct Log {
    /// (key, time the read started, version it returned)
    reads: Vec<(u32, u64, u64)>,
    /// (key, time the invalidation returned, version the write produced)
    writes: Vec<(u32, u64, u64)>,
    read_latencies: Vec<u32>,
    write_latencies: Vec<u32>,
    hits: u64,
    source_errors: u64,
    invalidations: u64,
    invalidation_errors: u64,
    failures: Vec<String>,
}

enum Op {
    Read(ReadPlan),
    Write(WritePlan),
    Invalidate,
}

enum Done {
    Read {
        started: Instant,
        latency: Duration,
        outcome: Option<Outcome>,
        result: Result<Item, SourceError>,
    },
    Write {
        returned: Instant,
        latency: Duration,
        version: u64,
    },
    Invalidate {
        ok: bool,
    },
}

async fn perform(cache: Cache, source: Arc<Source>, id: u64, op: Op) -> Done {
    match op {
        Op::Read(plan) => {
            let started = Instant::now();
            let (result, outcome) = with_outcome(read_item(&cache, &source, id, plan)).await;
            Done::Read {
                started,
                latency: started.elapsed(),
                outcome,
                result,
            }
        }
        Op::Write(plan) => {
            let started = Instant::now();
            let version = write_item(&cache, &source, id, plan).await;
            let returned = Instant::now();
            Done::Write {
                returned,
                latency: returned - started,
                version,
            }
        }
        Op::Invalidate => Done::Invalidate {
            ok: cache
                .invalidate(&[&format!("soak:item:{id}")])
                .await
                .is_ok(),
        },
    }
}

/// One of `concurrency` workers: one call in flight at a time until `until`. Each call runs
/// in a task of its own, so that a panic is counted rather than fatal.
async fn worker(
    cache: Cache,
    source: Arc<Source>,
    keys: u64,
    mut rng: Rng,
    t0: Instant,
    until: Instant,
) -> Log {
    let mut log = Log::default();
    let since = |at: Instant| (at - t0).as_nanos() as u64;
    let micros = |latency: Duration| latency.as_micros().min(u32::MAX as u128) as u32;
    while Instant::now() < until {
        let id = rng.below(keys);
        let roll = rng.below(100);
        let op = if roll < READ_PERCENT {
            Op::Read(rng.read_plan())
        } else if roll < READ_PERCENT + WRITE_PERCENT {
            Op::Write(rng.write_plan())
        } else {
            Op::Invalidate
        };
        let kind = match op {
            Op::Read(_) => "read",
            Op::Write(_) => "write",
            Op::Invalidate => "invalidate",
        };
        match tokio::spawn(perform(cache.clone(), source.clone(), id, op)).await {
            Err(error) => log.failures.push(format!(
                "t={:.3}s {kind} of key {id}: {error}",
                since(Instant::now()) as f64 / 1e9
            )),
            Ok(Done::Read {
                started,
                latency,
                outcome,
                result,
            }) => {
                log.read_latencies.push(micros(latency));
                if outcome == Some(Outcome::Hit) {
                    log.hits += 1;
                }
                match result {
                    Ok(item) if item.id != id => log.failures.push(format!(
                        "t={:.3}s read of key {id} returned key {}'s value",
                        since(started) as f64 / 1e9,
                        item.id
                    )),
                    Ok(item) => log.reads.push((id as u32, since(started), item.version)),
                    Err(SourceError) => log.source_errors += 1,
                }
            }
            Ok(Done::Write {
                returned,
                latency,
                version,
            }) => {
                log.write_latencies.push(micros(latency));
                log.writes.push((id as u32, since(returned), version));
            }
            Ok(Done::Invalidate { ok }) => {
                log.invalidations += 1;
                if !ok {
                    log.invalidation_errors += 1;
                }
            }
        }
    }
    log
}

// ---------------------------------------------------------------------------------------
// Faults.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    /// SIGKILL, down for a while, restarted empty on the same port.
    Kill,
    /// SIGSTOP for longer than the timeout, then SIGCONT.
    Freeze,
    /// SIGSTOP for less than the timeout: slow answers, no errors.
    Blip,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            FaultKind::Kill => "kill+restart",
            FaultKind::Freeze => "freeze",
            FaultKind::Blip => "short freeze",
        })
    }
}

struct Fault {
    kind: FaultKind,
    /// Since the start of the run.
    at: Duration,
    /// Until the server answered again (restarted, or resumed).
    lasted: Duration,
}

/// Runs on a thread of its own (the harness blocks): waits `WARMUP`, then alternates healthy
/// spells of 1.5 to 3.5 s with a fault, until `QUIET_END` before `until`. Returns the server
/// running, and the schedule that ran.
fn inject_faults(
    mut server: RedisServer,
    mut rng: Rng,
    t0: Instant,
    until: Instant,
) -> (RedisServer, Vec<Fault>) {
    let mut faults = Vec::new();
    std::thread::sleep(WARMUP);
    loop {
        let healthy = rng.millis(1500, 3500);
        let (kind, down) = match rng.below(10) {
            0..4 => (FaultKind::Kill, rng.millis(200, 1500)),
            4..8 => (FaultKind::Freeze, rng.millis(200, 1500)),
            _ => (FaultKind::Blip, rng.millis(20, 80)),
        };
        // Restarting can take a moment beyond `down`: leave a second for it.
        if Instant::now() + healthy + down + Duration::from_secs(1) + QUIET_END > until {
            break;
        }
        std::thread::sleep(healthy);
        let started = Instant::now();
        match kind {
            FaultKind::Kill => {
                server.kill();
                std::thread::sleep(down);
                server.restart();
            }
            FaultKind::Freeze | FaultKind::Blip => {
                server.signal("STOP");
                std::thread::sleep(down);
                server.signal("CONT");
            }
        }
        faults.push(Fault {
            kind,
            at: started - t0,
            lasted: started.elapsed(),
        });
    }
    (server, faults)
}

// ---------------------------------------------------------------------------------------
// The checker and the report.

/// A read that returned an older version than an invalidation that returned before it
/// started.
struct Stale {
    key: u32,
    started: u64,
    seen: u64,
    invalidated: u64,
    invalidated_at: u64,
}

/// Replays one key's history (see the module documentation).
fn stale_reads(key: u32, reads: &mut [(u64, u64)], writes: &mut [(u64, u64)]) -> Vec<Stale> {
    reads.sort_unstable();
    writes.sort_unstable();
    let mut found = Vec::new();
    let (mut newest, mut newest_at) = (0, 0);
    let mut next_write = writes.iter().peekable();
    for &(started, seen) in reads.iter() {
        while let Some(&&(returned, version)) = next_write.peek() {
            if returned >= started {
                break;
            }
            if version > newest {
                (newest, newest_at) = (version, returned);
            }
            next_write.next();
        }
        if seen < newest {
            found.push(Stale {
                key,
                started,
                seen,
                invalidated: newest,
                invalidated_at: newest_at,
            });
        }
    }
    found
}

fn percentile(sorted: &[u32], per_mille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = (sorted.len() * per_mille / 1000).min(sorted.len() - 1);
    Duration::from_micros(u64::from(sorted[index]))
}

fn latency_line(name: &str, latencies: &mut [u32]) -> String {
    latencies.sort_unstable();
    format!(
        "  {name:<7} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        percentile(latencies, 500),
        percentile(latencies, 990),
        latencies
            .last()
            .map_or(Duration::ZERO, |&max| Duration::from_micros(u64::from(max)))
    )
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The fault under way at `at`, or the last one before it, and how long before.
fn near_fault(faults: &[Fault], at: u64) -> String {
    let at = Duration::from_nanos(at);
    match faults.iter().rev().find(|fault| fault.at <= at) {
        Some(fault) if at <= fault.at + fault.lasted => {
            format!(
                "during the {} at {:.3}s",
                fault.kind,
                fault.at.as_secs_f64()
            )
        }
        Some(fault) => format!(
            "{:.3}s after the {} at {:.3}s ended",
            (at - fault.at - fault.lasted).as_secs_f64(),
            fault.kind,
            fault.at.as_secs_f64()
        ),
        None => "before any fault".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .init();

    let server = RedisServer::start();
    let mut builder = Cache::builder(&server.url())
        .timeout(args.timeout)
        .lazy(true);
    if args.without_fill_leases {
        builder = builder.without_fill_leases();
    }
    let cache = builder.build().await.expect("a valid URL");
    let source = Arc::new(Source::new(args.keys));
    println!(
        "soak: {} s, {} calls in flight, {} keys, timeout {:?}, seed {}, redis-server on port \
         {}{}",
        args.seconds,
        args.concurrency,
        args.keys,
        args.timeout,
        args.seed,
        server.port(),
        if args.without_fill_leases {
            ", WITHOUT fill leases (control run)"
        } else {
            ""
        }
    );

    let mut seeds = Rng(args.seed);
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(args.seconds);
    let fault_rng = Rng(seeds.next());
    let faults = std::thread::spawn(move || inject_faults(server, fault_rng, t0, until));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let rng = Rng(seeds.next());
            tokio::spawn(worker(
                cache.clone(),
                source.clone(),
                args.keys,
                rng,
                t0,
                until,
            ))
        })
        .collect();
    let mut log = Log::default();
    for task in workers {
        let part = task
            .await
            .expect("workers do not panic (calls run in tasks of their own)");
        log.reads.extend(part.reads);
        log.writes.extend(part.writes);
        log.read_latencies.extend(part.read_latencies);
        log.write_latencies.extend(part.write_latencies);
        log.hits += part.hits;
        log.source_errors += part.source_errors;
        log.invalidations += part.invalidations;
        log.invalidation_errors += part.invalidation_errors;
        log.failures.extend(part.failures);
    }
    let elapsed = t0.elapsed();
    let (server, faults) = faults.join().expect("the fault injector does not panic");

    // After the run, with Redis healthy: every key read twice through the cache, in the
    // history like any read. The first read may fill, the second should hit.
    let recovered = Instant::now();
    while cache.ping().await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovered = recovered.elapsed();
    // Lets deferred invalidations (retried every second at most) land.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut final_current, mut final_hits) = ([0; 2], 0);
    for (pass, current) in final_current.iter_mut().enumerate() {
        for id in 0..args.keys {
            let started = Instant::now();
            let plan = ReadPlan {
                before: Duration::ZERO,
                after: Duration::ZERO,
                fail: false,
            };
            let (result, outcome) = with_outcome(read_item(&cache, &source, id, plan)).await;
            let item = result.expect("no source error is injected here");
            if item.id != id {
                log.failures.push(format!(
                    "final read of key {id} returned key {}'s value",
                    item.id
                ));
                continue;
            }
            log.reads
                .push((id as u32, (started - t0).as_nanos() as u64, item.version));
            if item.version == source.read(id).await {
                *current += 1;
            }
            if pass == 1 && outcome == Some(Outcome::Hit) {
                final_hits += 1;
            }
        }
    }
    let degraded = cache.is_degraded();
    drop(server);

    // Replay each key's history.
    let keys = args.keys as usize;
    let mut reads_by_key: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    let mut writes_by_key: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    for &(key, at, version) in &log.reads {
        reads_by_key[key as usize].push((at, version));
    }
    for &(key, at, version) in &log.writes {
        writes_by_key[key as usize].push((at, version));
    }
    let mut stale: Vec<Stale> = (0..keys)
        .flat_map(|key| stale_reads(key as u32, &mut reads_by_key[key], &mut writes_by_key[key]))
        .collect();
    stale.sort_unstable_by_key(|found| found.started);
    let stale_keys = {
        let mut keys: Vec<u32> = stale.iter().map(|found| found.key).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    };

    // The figures.
    let reads = log.read_latencies.len() as u64;
    let writes = log.write_latencies.len() as u64;
    let operations = reads + writes + log.invalidations;
    let mut runs: Vec<u64> = source
        .body_runs
        .iter()
        .map(|runs| runs.load(Ordering::Relaxed))
        .collect();
    runs.sort_unstable();
    let total_runs: u64 = runs.iter().sum();
    let mut all_latencies: Vec<u32> = log
        .read_latencies
        .iter()
        .chain(&log.write_latencies)
        .copied()
        .collect();
    println!();
    println!("duration       {:.1} s", elapsed.as_secs_f64());
    println!(
        "operations     {} ({}/s)",
        grouped(operations),
        grouped((operations as f64 / elapsed.as_secs_f64()) as u64)
    );
    println!(
        "  reads        {}: {} hits, hit ratio {:.1}%; {} injected source errors (not stored)",
        grouped(reads),
        grouped(log.hits),
        100.0 * log.hits as f64 / reads.max(1) as f64,
        grouped(log.source_errors)
    );
    println!("  writes       {} (#[invalidates])", grouped(writes));
    println!(
        "  invalidate   {} (Cache::invalidate calls; {} returned an error during outages)",
        grouped(log.invalidations),
        grouped(log.invalidation_errors)
    );
    println!("failures       {}", log.failures.len());
    for failure in log.failures.iter().take(10) {
        println!("  {failure}");
    }
    println!(
        "stale reads    {} on {stale_keys} keys (of {} reads checked against {} writes)",
        grouped(stale.len() as u64),
        grouped(log.reads.len() as u64),
        grouped(log.writes.len() as u64)
    );
    for found in stale.iter().take(10) {
        println!(
            "  key {}: read started at {:.6}s returned version {}, but the invalidation of \
             version {} had returned at {:.6}s ({})",
            found.key,
            found.started as f64 / 1e9,
            found.seen,
            found.invalidated,
            found.invalidated_at as f64 / 1e9,
            near_fault(&faults, found.started)
        );
    }
    println!(
        "body runs      {} in all; per key min {} / median {} / max {}",
        grouped(total_runs),
        runs.first().copied().unwrap_or(0),
        runs[runs.len() / 2],
        runs.last().copied().unwrap_or(0)
    );
    println!("latency");
    println!("{}", latency_line("reads", &mut log.read_latencies));
    println!("{}", latency_line("writes", &mut log.write_latencies));
    println!("{}", latency_line("all", &mut all_latencies));
    let count = |kind| faults.iter().filter(|fault| fault.kind == kind).count();
    println!(
        "faults         {} kill+restart, {} freeze, {} short freeze",
        count(FaultKind::Kill),
        count(FaultKind::Freeze),
        count(FaultKind::Blip)
    );
    for fault in &faults {
        println!(
            "  {:>7.3}s  {:<12}  {:>5} ms until it answered again",
            fault.at.as_secs_f64(),
            fault.kind,
            fault.lasted.as_millis()
        );
    }
    println!(
        "after the run  Redis answered after {recovered:.1?}; keys read back at their current \
         version: {}/{keys}, then {}/{keys} ({final_hits} hits); breaker {}",
        final_current[0],
        final_current[1],
        if degraded { "OPEN" } else { "closed" }
    );

    if log.failures.is_empty() && stale.is_empty() {
        println!("OK: 0 failures, 0 stale reads");
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED: {} failures, {} stale reads (seed {})",
            log.failures.len(),
            stale.len(),
            args.seed
        );
        ExitCode::FAILURE
    }
}
