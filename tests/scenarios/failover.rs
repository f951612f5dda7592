//! Failover under load, shared by `cluster.rs` (a primary SIGKILLed) and `sentinel.rs` (the
//! primary SIGKILLed): callers keep calling a cached function for the whole failover; no
//! call fails or returns a wrong value, every call returns within [`CALL_LIMIT`], and hits
//! resume on the keys of the failed primary once its replica is promoted. What it measured
//! is printed (`--nocapture`).

use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Concurrent callers.
pub const CALLERS: usize = 16;

/// The longest any call may take, whatever happens underneath: generous, against the
/// cache's timeouts of a few hundred milliseconds.
pub const CALL_LIMIT: Duration = Duration::from_secs(2);

/// How long after the failure hits must be back on every key of the failed primary.
const HITS_BACK_WITHIN: Duration = Duration::from_secs(30);

/// The value of `id`: anything else returned is wrong.
fn expected(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
}

#[redis_cached(key = "load:<id>", ttl = 600, cache = cache)]
async fn value(cache: &Cache, id: u64) -> Result<u64, String> {
    // A quick source.
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(expected(id))
}

struct Call {
    started: Instant,
    took: Duration,
    id: u64,
    outcome: Option<Outcome>,
    right: bool,
}

/// Loads `ids` from [`CALLERS`] tasks, runs `failover` (which makes the primary serving
/// `victim_ids` fail, and returns once its replica is promoted), and keeps loading until
/// every one of `victim_ids` has been a hit again.
pub async fn failover_under_load<F, Fut>(
    cache: Cache,
    ids: Vec<u64>,
    victim_ids: Vec<u64>,
    failover: F,
) where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    assert!(!victim_ids.is_empty() && victim_ids.iter().all(|id| ids.contains(id)));
    // Warm: every key stored, and read back as a hit.
    for &id in &ids {
        crate::support::eventually(Duration::from_secs(10), "a warm hit", || async {
            with_outcome(value(&cache, id)).await.1 == Some(Outcome::Hit)
        })
        .await;
    }

    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(ids);
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (cache, calls, done, ids) =
                (cache.clone(), calls.clone(), done.clone(), ids.clone());
            tokio::spawn(async move {
                let mut next = caller;
                while !done.load(Ordering::Relaxed) {
                    let id = ids[next % ids.len()];
                    next += 1;
                    let started = Instant::now();
                    let (result, outcome) = with_outcome(value(&cache, id)).await;
                    let call = Call {
                        started,
                        took: started.elapsed(),
                        id,
                        outcome,
                        right: result == Ok(expected(id)),
                    };
                    calls
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(call);
                }
            })
        })
        .collect();

    // Steady load before the failure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed_at = Instant::now();
    failover().await;
    let promoted_after = failed_at.elapsed();

    // Hits back on every key of the failed primary: a hit on each, started after the failure.
    let hits_back_after = loop {
        let missing = {
            let calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
            victim_ids
                .iter()
                .filter(|&&id| {
                    !calls.iter().any(|call| {
                        call.id == id
                            && call.started > failed_at
                            && call.outcome == Some(Outcome::Hit)
                    })
                })
                .count()
        };
        if missing == 0 {
            break failed_at.elapsed();
        }
        assert!(
            failed_at.elapsed() < HITS_BACK_WITHIN,
            "{missing} of {} keys of the failed primary never hit again within {HITS_BACK_WITHIN:?}",
            victim_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Steady load after the recovery too, so that the figures cover both sides of it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Relaxed);
    let mut panicked = 0;
    for caller in callers {
        if caller.await.is_err() {
            panicked += 1;
        }
    }

    let calls = std::mem::take(&mut *calls.lock().unwrap_or_else(PoisonError::into_inner));
    let wrong = calls.iter().filter(|call| !call.right).count();
    let mut took: Vec<Duration> = calls.iter().map(|call| call.took).collect();
    took.sort();
    let percentile = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)];
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls.iter().filter(|call| call.started > failed_at) {
        *outcomes
            .entry(call.outcome.map_or("none", |outcome| outcome.as_str()))
            .or_default() += 1;
    }
    let victims_bypassed_until = calls
        .iter()
        .filter(|call| victim_ids.contains(&call.id) && call.outcome != Some(Outcome::Hit))
        .map(|call| call.started.saturating_duration_since(failed_at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "failover under load: {} calls from {CALLERS} callers; promoted {promoted_after:?} and \
         hits back on all {} keys of the failed primary {hits_back_after:?} after the failure \
         (last non-hit on them {victims_bypassed_until:?} after); latency p50 {:?} p99 {:?} \
         max {:?}; outcomes after the failure {outcomes:?}; {wrong} wrong, {panicked} failed",
        calls.len(),
        victim_ids.len(),
        percentile(50),
        percentile(99),
        took.last().copied().unwrap_or_default(),
    );
    assert_eq!(panicked, 0, "callers panicked");
    assert_eq!(wrong, 0, "calls returned wrong values");
    let slowest = took.last().copied().unwrap_or_default();
    assert!(
        slowest < CALL_LIMIT,
        "a call took {slowest:?} (p99 {:?})",
        percentile(99)
    );
}
