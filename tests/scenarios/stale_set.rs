//! The stale-set race, checked: once an `#[invalidates]` call has returned, no call that
//! starts afterwards returns a value computed from a source read made before that write.
//! Run by `stale_set.rs` (single node) and `cluster.rs`.
//!
//! Writers bump a version in a real store (a counter on the shared single-node server,
//! apart from the cache) and invalidate; readers read the version through the cache, with
//! delays injected between the source read and the store. A checker replays the history.

use crate::{harness, support};
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The store: a counter in Redis that the cache does not touch.
#[derive(Clone)]
struct Store {
    redis: MultiplexedConnection,
    key: String,
}

impl Store {
    async fn read(&self) -> u64 {
        let mut redis = self.redis.clone();
        let version: Option<u64> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut redis)
            .await
            .expect("the store answers");
        version.unwrap_or(0)
    }

    async fn bump(&self) -> u64 {
        let mut redis = self.redis.clone();
        redis::cmd("INCR")
            .arg(&self.key)
            .query_async(&mut redis)
            .await
            .expect("the store answers")
    }
}

/// Reads the version, then lingers before the cache stores it: the window of the race.
#[redis_cached(key = "item:<item>", ttl = 60, cache = cache)]
async fn read_version(cache: &Cache, store: &Store, item: u64, linger_us: u64) -> u64 {
    let version = store.read().await;
    tokio::time::sleep(Duration::from_micros(linger_us)).await;
    version
}

#[invalidates("item:<item>", cache = cache)]
async fn write_version(cache: &Cache, store: &Store, item: u64) -> u64 {
    store.bump().await
}

/// What the checker needs: when each invalidation returned, and what each read saw.
#[derive(Default)]
struct History {
    /// (time the invalidation returned, version its write produced)
    writes: Vec<(Instant, u64)>,
    /// (time the read started, version it returned)
    reads: Vec<(Instant, u64)>,
    /// Reads answered from the cache without running the body (`Hit`, `Coalesced`).
    hits: usize,
}

impl History {
    /// Reads that returned a version older than one whose invalidation had returned before
    /// the read started.
    fn violations(&mut self) -> usize {
        self.writes.sort();
        self.reads.sort();
        let mut newest_invalidated = 0;
        let mut writes = self.writes.iter().peekable();
        let mut violations = 0;
        for &(started, seen) in &self.reads {
            while let Some(&&(returned, version)) = writes.peek() {
                if returned >= started {
                    break;
                }
                newest_invalidated = newest_invalidated.max(version);
                writes.next();
            }
            if seen < newest_invalidated {
                violations += 1;
            }
        }
        violations
    }
}

/// What a run of the checker saw.
pub struct Checked {
    pub reads: usize,
    pub hits: usize,
    pub violations: usize,
}

impl Checked {
    /// The share of reads answered from the cache.
    fn hit_ratio(&self) -> f64 {
        self.hits as f64 / self.reads as f64
    }
}

/// Runs `operations` reads and writes over a few items from 32 tasks; returns what it saw.
pub async fn run_checker(cache: Cache, operations: u64) -> Checked {
    let store = Store {
        redis: harness::raw_connection().await,
        key: support::unique_prefix("store"),
    };
    let history = Arc::new(Mutex::new(History::default()));
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (cache, store, history, next) =
                (cache.clone(), store.clone(), history.clone(), next.clone());
            tokio::spawn(async move {
                let mut local = History::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= operations {
                        break;
                    }
                    // A cheap deterministic mix: one write in eight, injected delays of
                    // 0 to 300 us between the source read and the store.
                    let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                    if mixed % 8 == 0 {
                        let version = write_version(&cache, &store, 0).await;
                        local.writes.push((Instant::now(), version));
                    } else {
                        let started = Instant::now();
                        let (seen, outcome) =
                            with_outcome(read_version(&cache, &store, 0, mixed % 300)).await;
                        local.reads.push((started, seen));
                        if matches!(outcome, Some(Outcome::Hit | Outcome::Coalesced)) {
                            local.hits += 1;
                        }
                    }
                }
                let mut history = history.lock().await;
                history.writes.extend(local.writes);
                history.reads.extend(local.reads);
                history.hits += local.hits;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("no task panics");
    }
    let mut history = history.lock().await;
    assert!(history.reads.len() as u64 > operations / 2);
    let checked = Checked {
        reads: history.reads.len(),
        hits: history.hits,
        violations: history.violations(),
    };
    eprintln!(
        "{} reads ({} from the cache, {:.0}%), {} writes, {} stale reads",
        checked.reads,
        checked.hits,
        checked.hit_ratio() * 100.0,
        history.writes.len(),
        checked.violations
    );
    checked
}

/// No stale read, and the cache did serve: at least a third of the reads were answered from
/// it, as hits or by joining another caller's fill (about half are, with one write in eight).
pub fn assert_fresh_and_cached(checked: &Checked) {
    assert_eq!(checked.violations, 0, "stale reads");
    assert!(
        checked.hit_ratio() >= 1.0 / 3.0,
        "only {} of {} reads were answered from the cache: the run did not exercise it",
        checked.hits,
        checked.reads
    );
}
