//! Soak: app processes run a mixed workload of cached reads, writes, tag invalidations,
//! batches and `stale` functions against a shared source of truth, on one redis-server, a
//! Redis Cluster and Sentinel in turn, while faults are injected; then a checker replays
//! the histories of all processes together (`redis_cached_tools::history`). Not run in CI:
//!
//! ```sh
//! scripts/soak --seconds 60                  # installs redis-server if missing, then runs:
//! cargo run -p redis-cached-tools --bin soak -- --seconds 60
//! scripts/soak --faults network --seconds 20 --topology cluster
//! ```
//!
//! Per topology it prints one line, `topology=... ops=N faults=N violations=N`, then the
//! windows the checker measured, the faults and the first violations; it exits with status 1
//! if any topology had a violation.
//!
//! # Processes
//!
//! The soak binary is the coordinator: for each topology it starts a redis-server for the
//! source of truth (never faulted), the topology under test (`tests/harness`), and
//! `--workers` app processes (4): itself again, with the hidden flag `--worker`. Each keeps
//! `--concurrency` calls in flight (16) over `--keys` ids (50) for `--seconds` (60), writes
//! its history to a file (JSON lines of `history::Record`, times on `CLOCK_MONOTONIC`,
//! shared by all processes) and exits; the coordinator injects faults meanwhile, then
//! reads the files and runs the checker. Process 0 has a near tier
//! (`CacheBuilder::near_cache`, its `max_lifetime` 1 s).
//!
//! # Workload
//!
//! The source of truth is the never-faulted server: one version per id, `INCR`ed by each
//! write. Out of 100 operations:
//! - 40 reads of `read_item` (key `soak:item:<id>`), 10 batch reads of 3 ids through
//!   `read_items` (`batch = ids`, the same keys), 15 reads of `read_tagged`
//!   (`soak:tagged:<id>`, `tags = ["soak:tag:<id>"]`), 15 of `read_swr`
//!   (`soak:swr:<id>`, `ttl = 1, stale = "2s"`). Bodies read the version between random
//!   pauses (the stale-set race's window); 5 in 1,000 fail (an `Err`, not stored);
//! - 20 writes: `INCR` the version, then `Cache::invalidate` of the item and `stale` keys
//!   and `Cache::invalidate_tags` of the tag; each is recorded with when it returned `Ok`.
//!
//! After `--seconds`, and 1.5 s for the faults to heal, every process reads every id once
//! more through each function: an entry an invalidation missed is found there too.
//!
//! # Faults
//!
//! `--faults process` (the default): on one server `SIGKILL` and a restart (empty),
//! freezes (`SIGSTOP` beyond the timeout) and short ones (below it); on a Cluster, short
//! freezes of a primary and coordinated failovers (`CLUSTER FAILOVER`); under Sentinel,
//! short freezes of the primary and `SENTINEL FAILOVER`. `--faults network`
//! (`tests/harness/netfault.rs`: packet filter rules, so root and `iptables`): 200 ms more
//! on each packet each way, and 5 % of packets dropped, to and from every data node, for 1
//! to 2 s; one app process partitioned from Redis while the others go on (one server only:
//! the last process reaches it at 127.0.0.2, the others at 127.0.0.1); a Cluster primary
//! partitioned from clients and its peers for 3 s, its replica elected meanwhile, then
//! healed; a Sentinel primary partitioned away until the sentinels name its replica, then
//! healed (it rejoins as a replica before the next failover). `--faults all`: both.
//! Faults start after 2 s, each kind in turn (the longest first, so that a short run has
//! it) with 1 to 2 s between them, and none is under way in the last 2 s.
//!
//! # Checker
//!
//! See `redis_cached_tools::history`: no read returns a version older than the newest write
//! whose invalidation returned `Ok` before the read began, except within the declared
//! windows, which it measures, each for the outcome it produces: the `stale` window (2 s,
//! a read served `STALE`), the near tier's lag (a hit of process 0, up to the tier's
//! `max_lifetime`, 1 s) and a failover (a hit of an entry whose invalidations all returned
//! from 1 s before a failover or a primary's partition began until it healed), and a run
//! shared while Redis could not be used (a `BYPASS` read that joined a body of its process
//! begun before the invalidation it missed); no call
//! fails because of the cache; the most body runs of one key and the most at once, the
//! share of reads served from the cache and their latency are reported.
//!
//! Flags: `--seconds N` per topology (60), `--topology single|cluster|sentinel|all` (all),
//! `--faults process|network|all` (process), `--workers N` (4), `--concurrency N` (16 per
//! process), `--keys N` (50), `--timeout-ms N` (100, the cache's bound on each Redis
//! operation), `--seed N` (random; the schedule and the workload are drawn from it, the
//! timings of course vary), `--without-fill-leases` (the control: plain `GET` /
//! `SET .. EX`, where the checker must find stale reads, which shows that it can),
//! `--histories DIR` (keeps each process's history as `DIR/<topology>-<process>.jsonl`,
//! one `history::Record` per line, times in `CLOCK_MONOTONIC` ns; by default they go to a
//! temporary directory, removed after the check).
//! `RUST_LOG=redis_cached=warn` shows the library's log lines (many, during outages).
//!
//! Each stale read is printed with the function, how the call was served (`HIT`,
//! `COALESCED`, `BYPASS`, ...) and the fault nearest before it; the first three of each
//! function and outcome are listed, all of them are counted.

#[path = "../../../tests/harness/mod.rs"]
mod harness;

use harness::cluster::{self, RedisCluster};
use harness::netfault::{self, NetFault};
use harness::sentinel::RedisSentinel;
use harness::{RedisServer, TempDir};
use redis_cached::{Cache, NearCache, Outcome, redis_cached, with_outcome};
use redis_cached_tools::history::{self, Bounds, Function, Record, Report, monotonic_ns};
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufWriter, Write};
use std::process::{Child, Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Out of 100 operations: item reads, batch reads, tagged reads, `stale` reads; the rest
/// are writes.
const ITEM_PERCENT: u64 = 40;
const BATCH_PERCENT: u64 = 10;
const TAGGED_PERCENT: u64 = 15;
const STALE_PERCENT: u64 = 15;
/// Ids per batch read.
const BATCH: u64 = 3;
/// Out of 1,000 read bodies: how many fail (an `Err`, which is not stored).
const SOURCE_ERRORS_PER_MILLE: u64 = 5;
/// `read_swr`'s `stale` window (its attribute says `"2s"`).
const STALE_WINDOW: Duration = Duration::from_secs(2);
/// Process 0's near tier keeps an entry this long at most: the bound of its lag.
const NEAR_LIFETIME: Duration = Duration::from_secs(1);
/// Faults start after this, and none is under way in the last `QUIET_END`.
const WARMUP: Duration = Duration::from_secs(2);
const QUIET_END: Duration = Duration::from_secs(2);
/// After the run, before the final reads: deferred invalidations land meanwhile.
const SETTLE: Duration = Duration::from_millis(1500);
/// An invalidation that returned this long before a failover began may be lost in it
/// (replication is asynchronous).
const FAILOVER_MARGIN: Duration = Duration::from_secs(1);
/// How long a failover may take to heal, at most.
const HEAL_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// An app process: the source of truth and the cached functions.

/// The source of truth (a connection to the never-faulted server) and this process's
/// record of the bodies that ran.
struct Source {
    truth: redis::aio::MultiplexedConnection,
    worker: u8,
    bodies: Mutex<Vec<Record>>,
}

impl Source {
    async fn version(&self, id: u64) -> Result<u64, SourceError> {
        let version: Option<u64> = redis::cmd("GET")
            .arg(format!("soak:v:{id}"))
            .query_async(&mut self.truth.clone())
            .await
            .map_err(|_| SourceError)?;
        Ok(version.unwrap_or(0))
    }

    async fn bump(&self, id: u64) -> redis::RedisResult<u64> {
        redis::cmd("INCR")
            .arg(format!("soak:v:{id}"))
            .query_async(&mut self.truth.clone())
            .await
    }

    fn ran(&self, function: Function, ids: &[u64], start: u64) {
        let end = monotonic_ns();
        let mut bodies = self
            .bodies
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        bodies.extend(ids.iter().map(|&id| Record::Body {
            worker: self.worker,
            function,
            key: id as u32,
            start,
            end,
        }));
    }
}

/// A cached value; it carries its key, so that a mix-up is seen.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Item {
    id: u64,
    version: u64,
}

/// A failure of the body (injected, or of the source): not stored.
#[derive(Debug)]
struct SourceError;

/// The delays (and failure) a read body is to inject, drawn by the caller.
#[derive(Clone, Copy)]
struct ReadPlan {
    before: Duration,
    after: Duration,
    fail: bool,
}

impl ReadPlan {
    const PLAIN: ReadPlan = ReadPlan {
        before: Duration::ZERO,
        after: Duration::ZERO,
        fail: false,
    };
}

/// Every read body: reads the versions of `ids` between the plan's pauses.
async fn body(
    source: &Source,
    function: Function,
    ids: &[u64],
    plan: ReadPlan,
) -> Result<Vec<Item>, SourceError> {
    let start = monotonic_ns();
    pause(plan.before).await;
    let mut items = Vec::with_capacity(ids.len());
    let mut result = Err(SourceError);
    if !plan.fail {
        for &id in ids {
            match source.version(id).await {
                Ok(version) => items.push(Item { id, version }),
                Err(error) => {
                    source.ran(function, ids, start);
                    return Err(error);
                }
            }
        }
        result = Ok(items);
    }
    // The window of the stale-set race: a write and its invalidation may land here.
    pause(plan.after).await;
    source.ran(function, ids, start);
    result
}

async fn one(
    source: &Source,
    function: Function,
    id: u64,
    plan: ReadPlan,
) -> Result<Item, SourceError> {
    body(source, function, &[id], plan)
        .await?
        .pop()
        .ok_or(SourceError)
}

#[redis_cached(key = "soak:item:<id>", ttl = 60, cache = cache)]
async fn read_item(
    cache: &Cache,
    source: &Source,
    id: u64,
    plan: ReadPlan,
) -> Result<Item, SourceError> {
    one(source, Function::Item, id, plan).await
}

#[redis_cached(key = "soak:item:<ids>", ttl = 60, batch = ids, cache = cache)]
async fn read_items(
    cache: &Cache,
    source: &Source,
    ids: &[u64],
    plan: ReadPlan,
) -> Result<HashMap<u64, Item>, SourceError> {
    let items = body(source, Function::Batch, ids, plan).await?;
    Ok(items.into_iter().map(|item| (item.id, item)).collect())
}

#[redis_cached(key = "soak:tagged:<id>", ttl = 60, tags = ["soak:tag:<id>"], cache = cache)]
async fn read_tagged(
    cache: &Cache,
    source: &Source,
    id: u64,
    plan: ReadPlan,
) -> Result<Item, SourceError> {
    one(source, Function::Tagged, id, plan).await
}

#[redis_cached(key = "soak:swr:<id>", ttl = 1, stale = "2s", cache = cache)]
async fn read_swr(
    cache: &Cache,
    source: &Source,
    id: u64,
    plan: ReadPlan,
) -> Result<Item, SourceError> {
    one(source, Function::Stale, id, plan).await
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
}

/// What one app process is to do (the hidden `--worker` flags).
struct WorkerArgs {
    index: u8,
    url: String,
    truth: String,
    out: String,
    /// `CLOCK_MONOTONIC` ns: when to start, and to stop.
    start: u64,
    until: u64,
    near: bool,
}

/// One operation, run in a task of its own (so that a panic is counted, not fatal); returns
/// what it recorded.
async fn operation(
    cache: Cache,
    source: Arc<Source>,
    keys: u64,
    roll: u64,
    id: u64,
    plan: ReadPlan,
) -> Vec<Record> {
    let worker = source.worker;
    let read =
        |function,
         id: u64,
         start,
         (result, outcome): (Result<Item, SourceError>, Option<Outcome>)| match result {
            Ok(item) if item.id != id => Record::Failure {
                worker,
                at: start,
                what: format!("a read of key {id} returned key {}'s value", item.id),
            },
            Ok(item) => Record::Read {
                worker,
                function,
                key: id as u32,
                start,
                end: monotonic_ns(),
                version: item.version,
                outcome: outcome.map(|outcome| outcome.as_str().to_owned()),
            },
            Err(SourceError) => Record::BodyError {
                worker,
                function,
                key: id as u32,
                at: start,
            },
        };
    let start = monotonic_ns();
    let source = &*source;
    let cache = &cache;
    match roll {
        r if r < ITEM_PERCENT => {
            vec![read(
                Function::Item,
                id,
                start,
                with_outcome(read_item(cache, source, id, plan)).await,
            )]
        }
        r if r < ITEM_PERCENT + BATCH_PERCENT => {
            let ids: Vec<u64> = (0..BATCH).map(|i| (id + i) % keys).collect();
            let (result, outcome) = with_outcome(read_items(cache, source, &ids, plan)).await;
            match result {
                Ok(mut items) => ids
                    .iter()
                    .map(|&id| match items.remove(&id) {
                        Some(item) => read(Function::Batch, id, start, (Ok(item), outcome)),
                        None => Record::Failure {
                            worker,
                            at: start,
                            what: format!("a batch read of {ids:?} had no value for {id}"),
                        },
                    })
                    .collect(),
                Err(SourceError) => vec![read(
                    Function::Batch,
                    id,
                    start,
                    (Err(SourceError), outcome),
                )],
            }
        }
        r if r < ITEM_PERCENT + BATCH_PERCENT + TAGGED_PERCENT => {
            vec![read(
                Function::Tagged,
                id,
                start,
                with_outcome(read_tagged(cache, source, id, plan)).await,
            )]
        }
        r if r < ITEM_PERCENT + BATCH_PERCENT + TAGGED_PERCENT + STALE_PERCENT => {
            vec![read(
                Function::Stale,
                id,
                start,
                with_outcome(read_swr(cache, source, id, plan)).await,
            )]
        }
        _ => {
            pause(plan.before).await;
            let version = match source.bump(id).await {
                Ok(version) => version,
                // The source's own failure, not the cache's.
                Err(_) => {
                    return vec![Record::BodyError {
                        worker,
                        function: Function::Item,
                        key: id as u32,
                        at: start,
                    }];
                }
            };
            // Committed but not yet invalidated: reads may still see the old version here.
            pause(plan.before).await;
            let keys_done = cache
                .invalidate(&[&format!("soak:item:{id}"), &format!("soak:swr:{id}")])
                .await
                .ok()
                .map(|()| monotonic_ns());
            let tags_done = cache
                .invalidate_tags(&[&format!("soak:tag:{id}")])
                .await
                .ok()
                .map(|()| monotonic_ns());
            vec![Record::Write {
                worker,
                key: id as u32,
                version,
                start,
                keys_done,
                tags_done,
            }]
        }
    }
}

/// One of the process's `concurrency` loops: one call in flight at a time until `until`.
async fn calls(
    cache: Cache,
    source: Arc<Source>,
    keys: u64,
    mut rng: Rng,
    until: u64,
) -> Vec<Record> {
    let mut records = Vec::new();
    while monotonic_ns() < until {
        let (roll, id, plan) = (rng.below(100), rng.below(keys), rng.read_plan());
        let call = operation(cache.clone(), source.clone(), keys, roll, id, plan);
        match tokio::spawn(call).await {
            Ok(done) => records.extend(done),
            Err(error) => records.push(Record::Failure {
                worker: source.worker,
                at: monotonic_ns(),
                what: format!("a call panicked: {error}"),
            }),
        }
    }
    records
}

async fn sleep_until(at: u64) {
    let now = monotonic_ns();
    if at > now {
        tokio::time::sleep(Duration::from_nanos(at - now)).await;
    }
}

async fn run_worker(args: &Args, worker: &WorkerArgs) -> Result<(), String> {
    let mut builder = Cache::builder(&worker.url).timeout(args.timeout).lazy(true);
    if args.without_fill_leases {
        builder = builder.without_fill_leases();
    }
    if worker.near {
        builder = builder.near_cache(NearCache::new(16 << 20).max_lifetime(NEAR_LIFETIME));
    }
    let cache = builder
        .build()
        .await
        .map_err(|error| format!("the cache: {error}"))?;
    let truth = redis::Client::open(worker.truth.as_str())
        .map_err(|error| format!("the source's URL: {error}"))?
        .get_multiplexed_async_connection()
        .await
        .map_err(|error| format!("the source: {error}"))?;
    let source = Arc::new(Source {
        truth,
        worker: worker.index,
        bodies: Mutex::new(Vec::new()),
    });
    let mut seeds = Rng(args.seed ^ u64::from(worker.index).wrapping_mul(0x5851_F42D_4C95_7F2D));
    sleep_until(worker.start).await;
    let loops: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let rng = Rng(seeds.next());
            tokio::spawn(calls(
                cache.clone(),
                source.clone(),
                args.keys,
                rng,
                worker.until,
            ))
        })
        .collect();
    let mut records = Vec::new();
    for done in loops {
        records.extend(
            done.await
                .map_err(|error| format!("a loop panicked: {error}"))?,
        );
    }
    // The final reads, once the faults healed.
    sleep_until(worker.until + SETTLE.as_nanos() as u64).await;
    for id in 0..args.keys {
        for roll in [
            0,
            ITEM_PERCENT + BATCH_PERCENT,
            ITEM_PERCENT + BATCH_PERCENT + TAGGED_PERCENT,
        ] {
            records.extend(
                operation(
                    cache.clone(),
                    source.clone(),
                    args.keys,
                    roll,
                    id,
                    ReadPlan::PLAIN,
                )
                .await,
            );
        }
    }
    records.append(
        &mut source
            .bodies
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    );
    let file =
        std::fs::File::create(&worker.out).map_err(|error| format!("{}: {error}", worker.out))?;
    let mut out = BufWriter::new(file);
    for record in &records {
        serde_json::to_writer(&mut out, record).map_err(|error| error.to_string())?;
        out.write_all(b"\n").map_err(|error| error.to_string())?;
    }
    out.flush()
        .map_err(|error| format!("{}: {error}", worker.out))
}

// ---------------------------------------------------------------------------------------
// The coordinator: topologies and faults.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topology {
    Single,
    Cluster,
    Sentinel,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Single => "single",
            Topology::Cluster => "cluster",
            Topology::Sentinel => "sentinel",
        })
    }
}

/// What is under test, started by the harness.
enum Setup {
    Single(RedisServer),
    Cluster(RedisCluster),
    Sentinel(RedisSentinel),
}

impl Setup {
    fn start(topology: Topology) -> Setup {
        match topology {
            Topology::Single => {
                Setup::Single(RedisServer::start_with(&["--bind", "127.0.0.1", APART]))
            }
            Topology::Cluster => Setup::Cluster(RedisCluster::start()),
            Topology::Sentinel => Setup::Sentinel(RedisSentinel::start()),
        }
    }

    fn url(&self) -> String {
        match self {
            Setup::Single(server) => server.url(),
            Setup::Cluster(cluster) => cluster.url(),
            Setup::Sentinel(sentinel) => sentinel.url(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    /// One server: SIGKILL, down for a while, restarted empty on the same port.
    Kill,
    /// SIGSTOP for longer than the timeout, then SIGCONT (one server).
    Freeze,
    /// SIGSTOP for less than the timeout (of a primary): slow answers, no errors.
    Blip,
    /// `CLUSTER FAILOVER` on a replica, or `SENTINEL FAILOVER`, until healthy again.
    Failover,
    /// 200 ms more each way on every packet to and from the data nodes.
    Latency,
    /// 5 % of the packets to and from the data nodes dropped.
    Loss,
    /// One app process (the last) cut off from Redis while the others go on.
    PartitionApp,
    /// A primary cut off from clients and its peers until it was replaced, then healed.
    PartitionPrimary,
}

impl FaultKind {
    /// Whether an acknowledged invalidation may be lost in it.
    fn fails_over(self) -> bool {
        matches!(self, FaultKind::Failover | FaultKind::PartitionPrimary)
    }

    /// What it may take at most, healing included.
    fn takes(self, topology: Topology) -> Duration {
        match (self, topology) {
            (FaultKind::Failover, _) => Duration::from_secs(5),
            (FaultKind::PartitionPrimary, _) => Duration::from_secs(7),
            _ => Duration::from_secs(3),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            FaultKind::Kill => "kill+restart",
            FaultKind::Freeze => "freeze",
            FaultKind::Blip => "short freeze",
            FaultKind::Failover => "failover",
            FaultKind::Latency => "latency 200ms",
            FaultKind::Loss => "loss 5%",
            FaultKind::PartitionApp => "app partition",
            FaultKind::PartitionPrimary => "primary partition",
        })
    }
}

struct Fault {
    kind: FaultKind,
    /// `CLOCK_MONOTONIC` ns.
    at: u64,
    /// Until it healed (answered again, or the new primary was named).
    lasted: Duration,
    /// Whether a primary was replaced (a failover, or a partition long enough for one).
    replaced: bool,
    /// When the topology was seen healthy again (`CLOCK_MONOTONIC` ns): a failover's old
    /// primary back as a replica. `None`: not seen yet.
    settled: Option<u64>,
}

/// The faults this topology gets under `--faults`.
fn fault_kinds(topology: Topology, faults: Faults) -> Vec<FaultKind> {
    let mut kinds = Vec::new();
    if faults != Faults::Network {
        kinds.extend(match topology {
            Topology::Single => [FaultKind::Kill, FaultKind::Freeze, FaultKind::Blip],
            Topology::Cluster | Topology::Sentinel => {
                [FaultKind::Blip, FaultKind::Failover, FaultKind::Failover]
            }
        });
    }
    if faults != Faults::Process {
        kinds.extend([
            FaultKind::Latency,
            FaultKind::Loss,
            match topology {
                Topology::Single => FaultKind::PartitionApp,
                Topology::Cluster | Topology::Sentinel => FaultKind::PartitionPrimary,
            },
        ]);
    }
    kinds
}

/// The loopback address the last app process reaches a single server at, so that a
/// partition of that address cuts it alone off (`NetFault::on_port_via`).
const APART: &str = "127.0.0.2";

/// Injects one fault of `kind` into `setup`; returns once it healed, with whether a
/// primary was replaced.
fn inject(
    setup: &mut Setup,
    runtime: &tokio::runtime::Runtime,
    kind: FaultKind,
    rng: &mut Rng,
) -> bool {
    let data_ports: Vec<u16> = match &*setup {
        Setup::Single(server) => vec![server.port()],
        Setup::Cluster(cluster) => cluster.nodes().iter().map(|node| node.port()).collect(),
        Setup::Sentinel(sentinel) => vec![sentinel.primary().port(), sentinel.replica().port()],
    };
    match (setup, kind) {
        (_, FaultKind::Latency) => {
            let fault = NetFault::on_ports(&data_ports);
            fault.delay(Duration::from_millis(200));
            std::thread::sleep(rng.millis(800, 1500));
        }
        (_, FaultKind::Loss) => {
            let fault = NetFault::on_ports(&data_ports);
            fault.loss(5);
            std::thread::sleep(rng.millis(1000, 2000));
        }
        (Setup::Single(server), FaultKind::PartitionApp) => {
            let fault = NetFault::on_port_via(server.port(), APART);
            fault.partition();
            std::thread::sleep(rng.millis(800, 1500));
        }
        (Setup::Single(server), FaultKind::Kill) => {
            server.kill();
            std::thread::sleep(rng.millis(200, 1500));
            server.restart();
        }
        (Setup::Single(server), FaultKind::Freeze | FaultKind::Blip) => {
            let down = if kind == FaultKind::Freeze {
                rng.millis(200, 1500)
            } else {
                rng.millis(20, 80)
            };
            server.signal("STOP");
            std::thread::sleep(down);
            server.signal("CONT");
        }
        (Setup::Cluster(cluster), FaultKind::Blip) => {
            let primaries = cluster.primaries();
            let primary = primaries[rng.below(primaries.len() as u64) as usize];
            cluster.stop(primary);
            std::thread::sleep(rng.millis(20, 80));
            cluster.cont(primary);
        }
        (Setup::Cluster(cluster), FaultKind::Failover) => {
            let primaries = cluster.primaries();
            let primary = primaries[rng.below(primaries.len() as u64) as usize];
            let replica = cluster.replica_of(primary);
            cluster.failover(replica);
            runtime.block_on(cluster.wait_promoted(replica, HEAL_LIMIT));
        }
        (Setup::Cluster(cluster), FaultKind::PartitionPrimary) => {
            let primaries = cluster.primaries();
            let primary = primaries[rng.below(primaries.len() as u64) as usize];
            let port = cluster.node(primary).port();
            // Its ports, and the links it opened to the other nodes' buses.
            let fault = NetFault::isolating(port, &[port + 10_000]);
            fault.partition();
            // Beyond cluster-node-timeout: its replica is elected meanwhile.
            std::thread::sleep(cluster::NODE_TIMEOUT * 3);
            fault.heal();
            drop(fault);
            runtime.block_on(cluster.wait_healthy(HEAL_LIMIT));
            return !cluster.primaries().contains(&primary);
        }
        (Setup::Sentinel(sentinel), FaultKind::Blip) => {
            sentinel.primary().stop();
            std::thread::sleep(rng.millis(20, 80));
            sentinel.primary().cont();
        }
        // Healed once the sentinels name the new primary; the old one rejoins as its replica
        // later (see `prepare`).
        (Setup::Sentinel(sentinel), FaultKind::Failover) => runtime.block_on(async {
            sentinel.failover().await;
            sentinel.wait_new_primary(HEAL_LIMIT).await;
        }),
        (Setup::Sentinel(sentinel), FaultKind::PartitionPrimary) => {
            let fault = NetFault::on_port(sentinel.primary().port());
            fault.partition();
            runtime.block_on(sentinel.wait_new_primary(HEAL_LIMIT));
        }
        (_, kind) => unreachable!("{kind} is not drawn for this topology"),
    }
    kind.fails_over()
}

/// Under Sentinel, a failover heals once the sentinels name the new primary, and settles
/// once the old one is back as its replica (the sentinels see it within 10 s): until then
/// it may still take writes. Before a fault of `kind` (`None`: the run's end) this marks
/// the faults that settled meanwhile, and waits for them to if the fault is a failover (it
/// needs the replica) or the run is over.
fn settle(
    setup: &Setup,
    runtime: &tokio::runtime::Runtime,
    kind: Option<FaultKind>,
    done: &mut [Fault],
) {
    let Setup::Sentinel(sentinel) = setup else {
        return;
    };
    let Some(unsettled) = done.iter().position(|fault| fault.settled.is_none()) else {
        return;
    };
    if kind.is_none_or(FaultKind::fails_over) {
        runtime.block_on(sentinel.wait_healthy(HEAL_LIMIT));
    } else if sentinel.healthy().is_err() {
        return;
    }
    let now = monotonic_ns();
    for fault in &mut done[unsettled..] {
        fault.settled.get_or_insert(now);
    }
}

/// Waits `WARMUP`, then alternates healthy spells of 1 to 2 s with a fault, until
/// `QUIET_END` before `until`: each of `kinds` in turn, in an order drawn again for each
/// round, except that the first round starts with the longest (so that a short run has it).
/// Returns the schedule that ran.
fn inject_faults(
    setup: &mut Setup,
    faults: Faults,
    runtime: &tokio::runtime::Runtime,
    topology: Topology,
    mut rng: Rng,
    start: u64,
    until: u64,
) -> Vec<Fault> {
    let mut done = Vec::new();
    std::thread::sleep(Duration::from_nanos(start.saturating_sub(monotonic_ns())) + WARMUP);
    let mut round: Vec<FaultKind> = Vec::new();
    let mut first = true;
    loop {
        if round.is_empty() {
            round = fault_kinds(topology, faults);
            for i in (1..round.len()).rev() {
                round.swap(i, rng.below(i as u64 + 1) as usize);
            }
            // Drawn from the end.
            if std::mem::take(&mut first) {
                round.sort_by_key(|kind| kind.takes(topology));
            }
        }
        let Some(kind) = round.pop() else {
            break;
        };
        settle(setup, runtime, Some(kind), &mut done);
        let healthy = rng.millis(1000, 2000);
        let end = monotonic_ns() + (healthy + kind.takes(topology) + QUIET_END).as_nanos() as u64;
        if end > until {
            break;
        }
        std::thread::sleep(healthy);
        let at = monotonic_ns();
        let replaced = inject(setup, runtime, kind, &mut rng);
        let healed = monotonic_ns();
        let sentinel = matches!(setup, Setup::Sentinel(_));
        done.push(Fault {
            kind,
            at,
            lasted: Duration::from_nanos(healed - at),
            replaced,
            settled: (!(sentinel && kind.fails_over())).then_some(healed),
        });
    }
    settle(setup, runtime, None, &mut done);
    done
}

// ---------------------------------------------------------------------------------------
// Arguments.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Faults {
    Process,
    Network,
    All,
}

struct Args {
    seconds: u64,
    topologies: Vec<Topology>,
    faults: Faults,
    workers: u8,
    concurrency: usize,
    keys: u64,
    timeout: Duration,
    seed: u64,
    /// The control run: plain `GET` / `SET .. EX`, where the checker must find stale reads.
    without_fill_leases: bool,
    /// Where to keep the histories (`--histories DIR`): `DIR/<topology>-<process>.jsonl`.
    histories: Option<std::path::PathBuf>,
    /// Set in an app process.
    worker: Option<WorkerArgs>,
}

const USAGE: &str = "usage: cargo run -p redis-cached-tools --bin soak -- [--seconds 60] \
                     [--topology single|cluster|sentinel|all] [--faults process|network|all] \
                     [--workers 4] [--concurrency 16] [--keys 50] [--timeout-ms 100] [--seed N] \
                     [--without-fill-leases] [--histories DIR]";

impl Args {
    fn parse(given: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            seconds: 60,
            topologies: vec![Topology::Single, Topology::Cluster, Topology::Sentinel],
            faults: Faults::Process,
            workers: 4,
            concurrency: 16,
            keys: 50,
            timeout: Duration::from_millis(100),
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |now| now.as_nanos() as u64),
            without_fill_leases: false,
            histories: None,
            worker: None,
        };
        let mut worker: HashMap<String, String> = HashMap::new();
        let mut near = false;
        let mut given = given.into_iter();
        while let Some(flag) = given.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (flag.clone(), None),
            };
            match name.as_str() {
                "--help" | "-h" => return Err(String::new()),
                "--without-fill-leases" => {
                    args.without_fill_leases = true;
                    continue;
                }
                "--near" => {
                    near = true;
                    continue;
                }
                _ => {}
            }
            let value = inline
                .or_else(|| given.next())
                .ok_or_else(|| format!("{name} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name}: `{value}` is not a whole number"))
            };
            match name.as_str() {
                "--seconds" => args.seconds = number()?,
                "--workers" => args.workers = number()?.min(64) as u8,
                "--concurrency" => args.concurrency = number()? as usize,
                "--keys" => args.keys = number()?,
                "--timeout-ms" => args.timeout = Duration::from_millis(number()?),
                "--seed" => args.seed = number()?,
                "--topology" => {
                    args.topologies = match value.as_str() {
                        "single" => vec![Topology::Single],
                        "cluster" => vec![Topology::Cluster],
                        "sentinel" => vec![Topology::Sentinel],
                        "all" => vec![Topology::Single, Topology::Cluster, Topology::Sentinel],
                        _ => {
                            return Err(format!(
                                "--topology: `{value}` is not single, cluster, sentinel or all"
                            ));
                        }
                    }
                }
                "--faults" => {
                    args.faults = match value.as_str() {
                        "process" => Faults::Process,
                        "network" => Faults::Network,
                        "all" => Faults::All,
                        _ => {
                            return Err(format!(
                                "--faults: `{value}` is not process, network or all"
                            ));
                        }
                    }
                }
                "--histories" => args.histories = Some(value.into()),
                "--worker" | "--url" | "--truth" | "--out" | "--start" | "--until" => {
                    worker.insert(name.clone(), value);
                }
                _ => return Err(format!("unknown flag {name}")),
            }
        }
        if args.seconds == 0
            || args.workers == 0
            || args.concurrency == 0
            || args.keys < BATCH
            || args.timeout.is_zero()
        {
            return Err(
                "--seconds, --workers, --concurrency and --timeout-ms must be above 0, \
                        --keys at least 3"
                    .into(),
            );
        }
        if let Some(index) = worker.remove("--worker") {
            let mut take = |name: &str| {
                worker
                    .remove(name)
                    .ok_or_else(|| format!("--worker needs {name}"))
            };
            let time = |value: String| value.parse::<u64>().map_err(|error| error.to_string());
            args.worker = Some(WorkerArgs {
                index: index.parse().map_err(|_| "--worker: not an index")?,
                url: take("--url")?,
                truth: take("--truth")?,
                out: take("--out")?,
                start: time(take("--start")?)?,
                until: time(take("--until")?)?,
                near,
            });
        }
        Ok(args)
    }
}

// ---------------------------------------------------------------------------------------
// One topology's run, and the report.

/// What a topology's run found, for the exit status.
struct Checked {
    violations: usize,
}

fn millis(ns: u64) -> String {
    format!("{:.1}ms", ns as f64 / 1e6)
}

fn run_topology(args: &Args, topology: Topology, seed: u64) -> Checked {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("soak: a runtime: {error}");
            return Checked { violations: 1 };
        }
    };
    let set_up = std::time::Instant::now();
    let truth = RedisServer::start();
    let mut setup = Setup::start(topology);
    let dir = TempDir::new("soak");
    let set_up = set_up.elapsed();
    let url = setup.url();
    let start = monotonic_ns() + Duration::from_secs(1).as_nanos() as u64;
    let until = start + Duration::from_secs(args.seconds).as_nanos() as u64;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("soak: this program's path: {error}");
            return Checked { violations: 1 };
        }
    };
    let mut workers: Vec<(String, std::io::Result<Child>)> = Vec::new();
    for index in 0..args.workers {
        let out = args
            .histories
            .as_deref()
            .unwrap_or(dir.path())
            .join(format!("{topology}-{index}.jsonl"));
        let out = out.to_string_lossy().into_owned();
        // The last process reaches a single server at an address of its own.
        let worker_url = match &setup {
            Setup::Single(server) if index + 1 == args.workers => {
                format!("redis://{APART}:{}", server.port())
            }
            _ => url.clone(),
        };
        let mut command = Command::new(&exe);
        command.args([
            "--worker",
            &index.to_string(),
            "--url",
            &worker_url,
            "--truth",
            &truth.url(),
            "--out",
            &out,
            "--start",
            &start.to_string(),
            "--until",
            &until.to_string(),
            "--concurrency",
            &args.concurrency.to_string(),
            "--keys",
            &args.keys.to_string(),
            "--timeout-ms",
            &args.timeout.as_millis().to_string(),
            "--seed",
            &seed.to_string(),
        ]);
        if index == 0 {
            command.arg("--near");
        }
        if args.without_fill_leases {
            command.arg("--without-fill-leases");
        }
        workers.push((out, command.spawn()));
    }
    let faults = inject_faults(
        &mut setup,
        args.faults,
        &runtime,
        topology,
        Rng(seed),
        start,
        until,
    );

    let mut records = Vec::new();
    for (index, (out, child)) in workers.into_iter().enumerate() {
        let status = child.and_then(|mut child| child.wait());
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => records.push(Record::Failure {
                worker: index as u8,
                at: monotonic_ns(),
                what: format!("the process exited with {status}"),
            }),
            Err(error) => records.push(Record::Failure {
                worker: index as u8,
                at: monotonic_ns(),
                what: format!("the process did not run: {error}"),
            }),
        }
        let Ok(file) = std::fs::File::open(&out) else {
            continue;
        };
        for line in std::io::BufReader::new(file).lines() {
            match line.map_err(|error| error.to_string()).and_then(|line| {
                serde_json::from_str::<Record>(&line).map_err(|error| error.to_string())
            }) {
                Ok(record) => records.push(record),
                Err(error) => records.push(Record::Failure {
                    worker: index as u8,
                    at: monotonic_ns(),
                    what: format!("its history: {error}"),
                }),
            }
        }
    }
    drop(setup);
    drop(truth);

    let bounds = Bounds {
        stale_window: STALE_WINDOW.as_nanos() as u64,
        near_worker: Some(0),
        near_lag: NEAR_LIFETIME.as_nanos() as u64,
        failovers: faults
            .iter()
            .filter(|fault| fault.replaced)
            .map(|fault| {
                (
                    fault.at.saturating_sub(FAILOVER_MARGIN.as_nanos() as u64),
                    fault.settled.unwrap_or(u64::MAX),
                )
            })
            .collect(),
    };
    let report = history::check(&records, &bounds);
    print_report(topology, &report, &faults, start, set_up, seed);
    Checked {
        violations: report.violations(),
    }
}

/// The fault that began last before `at`, and how long before (times since `start`).
fn near_fault(faults: &[Fault], at: u64, start: u64) -> String {
    let since = |at: u64| at.saturating_sub(start) as f64 / 1e9;
    faults.iter().rev().find(|fault| fault.at <= at).map_or(
        "before any fault".to_owned(),
        |fault| {
            format!(
                "{:.3}s after the {} at {:.3}s began",
                since(at) - since(fault.at),
                fault.kind,
                since(fault.at)
            )
        },
    )
}

fn print_report(
    topology: Topology,
    report: &Report,
    faults: &[Fault],
    start: u64,
    set_up: Duration,
    seed: u64,
) {
    let since = |at: u64| at.saturating_sub(start) as f64 / 1e9;
    println!(
        "topology={topology} ops={} faults={} violations={} (stale reads {}, failed calls {})",
        report.reads + report.writes,
        faults.len(),
        report.violations(),
        report.stale.len(),
        report.failures.len()
    );
    let outcomes = |window: &history::WindowUse| {
        let counts: Vec<String> = window
            .outcomes
            .iter()
            .map(|(outcome, n)| format!("{outcome} {n}"))
            .collect();
        counts.join(", ")
    };
    println!(
        "  windows: stale window used by {} reads (max {}, declared {:?}; {}); near-tier lag \
         max {} ({} reads, bound {:?}; {}); failover window {} reads, max {} after the lost \
         invalidation ({}); runs shared while Redis was not used {} reads, max {} ({})",
        report.stale_window.reads,
        millis(report.stale_window.max),
        STALE_WINDOW,
        outcomes(&report.stale_window),
        millis(report.near_lag.max),
        report.near_lag.reads,
        NEAR_LIFETIME,
        outcomes(&report.near_lag),
        report.failover.reads,
        millis(report.failover.max),
        outcomes(&report.failover),
        report.shared_run.reads,
        millis(report.shared_run.max),
        outcomes(&report.shared_run),
    );
    println!(
        "  {} reads ({:.1} % from the cache; latency p50 {}, p99 {}, max {}), {} writes ({} \
         with an invalidation that returned an error), {} body errors; body runs per key \
         max {}, at once max {}; set up in {:.1}s, seed {seed}",
        report.reads,
        100.0 * report.hits as f64 / report.reads.max(1) as f64,
        millis(report.latency[0]),
        millis(report.latency[1]),
        millis(report.latency[2]),
        report.writes,
        report.unacknowledged,
        report.body_errors,
        report.max_runs,
        report.max_flight,
        set_up.as_secs_f64()
    );
    for fault in faults {
        let mut settled = match fault.settled {
            Some(at) if at > fault.at + fault.lasted.as_nanos() as u64 => {
                format!(", settled after {} ms", (at - fault.at) / 1_000_000)
            }
            _ => String::new(),
        };
        if fault.kind.fails_over() && !fault.replaced {
            settled.push_str(", the primary was not replaced");
        }
        println!(
            "  fault {:>7.3}s  {:<12}  healed after {} ms{settled}",
            since(fault.at),
            fault.kind,
            fault.lasted.as_millis()
        );
    }
    if let Some((worker, function, key, at, latency, outcome)) = &report.slowest {
        println!(
            "  slowest read: process {worker} {function:?} key {key} at {:.3}s took {} ({}; {})",
            since(*at),
            millis(*latency),
            outcome.as_deref().unwrap_or("no outcome"),
            near_fault(faults, *at, start)
        );
    }
    for failure in report.failures.iter().take(10) {
        println!("  FAILURE {failure}");
    }
    // The first three of each function and outcome.
    let mut kinds: std::collections::BTreeMap<String, Vec<&history::Violation>> =
        Default::default();
    for found in &report.stale {
        let outcome = found.outcome.as_deref().unwrap_or("no outcome");
        kinds
            .entry(format!("{:?} {outcome}", found.function))
            .or_default()
            .push(found);
    }
    if !kinds.is_empty() {
        let counts: Vec<String> = kinds
            .iter()
            .map(|(kind, found)| format!("{kind}: {}", found.len()))
            .collect();
        println!(
            "  stale reads by function and outcome: {}",
            counts.join(", ")
        );
    }
    for found in kinds.values().flat_map(|found| found.iter().take(3)) {
        let near = near_fault(faults, found.start, start);
        println!(
            "  STALE process {} {:?} key {}: read at {:.6}s returned version {} ({}), but \
             version {} had been invalidated at {:.6}s ({near})",
            found.worker,
            found.function,
            found.key,
            since(found.start),
            found.seen,
            found.outcome.as_deref().unwrap_or("no outcome"),
            found.expected,
            since(found.invalidated_at),
        );
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
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
    if let Some(worker) = &args.worker {
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("soak process {}: a runtime: {error}", worker.index);
                return ExitCode::FAILURE;
            }
        };
        return match runtime.block_on(run_worker(&args, worker)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("soak process {}: {error}", worker.index);
                ExitCode::FAILURE
            }
        };
    }
    println!(
        "soak: {} s per topology, {} processes x {} calls in flight, {} keys, timeout {:?}, \
         faults {:?}, seed {}{}",
        args.seconds,
        args.workers,
        args.concurrency,
        args.keys,
        args.timeout,
        args.faults,
        args.seed,
        if args.without_fill_leases {
            ", WITHOUT fill leases (control run)"
        } else {
            ""
        }
    );
    if let Some(dir) = &args.histories
        && let Err(error) = std::fs::create_dir_all(dir)
    {
        eprintln!("soak: {}: {error}", dir.display());
        return ExitCode::from(2);
    }
    if args.faults != Faults::Process {
        // Root and iptables, or a message saying what to do.
        netfault::require();
    }
    let mut seeds = Rng(args.seed);
    let mut violations = 0;
    for &topology in &args.topologies {
        violations += run_topology(&args, topology, seeds.next()).violations;
    }
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        println!("FAILED: {violations} violations (seed {})", args.seed);
        ExitCode::FAILURE
    }
}
