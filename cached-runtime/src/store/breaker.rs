//! A circuit breaker, so that an outage costs one timeout rather than one per call: after
//! `THRESHOLD` consecutive connection failures it opens and calls skip Redis; after
//! `BACKOFF` one call probes it (half-open), and a success closes it again.
//!
//! Only failures of the connection count: an error reply (`OOM`, `READONLY`, `NOREPLICAS`)
//! means Redis is there and refused one write.
//!
//! The breaker logs its transitions (opened, with the cause; closed, with how many
//! operations skipped Redis meanwhile), so that an outage is a few log lines, not one per
//! call, and wakes whoever waits for Redis to answer again ([`Breaker::closed`]).

use crate::Error;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const THRESHOLD: u32 = 3;
pub(crate) const BACKOFF: Duration = Duration::from_millis(250);

pub(crate) struct Breaker {
    /// The store's address (redacted), for the log lines.
    address: String,
    started: Instant,
    consecutive_failures: AtomicU32,
    /// When the breaker opened, in milliseconds since `started`.
    opened_at: AtomicU64,
    probing: AtomicBool,
    /// When the current outage began (the breaker first opened), like `opened_at`.
    outage_since: AtomicU64,
    /// Operations that skipped Redis since the breaker opened.
    skipped: AtomicU64,
    closed: Notify,
}

impl Breaker {
    pub(crate) fn new(address: String) -> Breaker {
        Breaker {
            address,
            started: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            outage_since: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            closed: Notify::new(),
        }
    }

    /// Resolves the next time the breaker closes (Redis answers again).
    pub(crate) async fn closed(&self) {
        self.closed.notified().await;
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether a call may go to Redis now.
    pub(crate) fn allow(&self) -> bool {
        if self.consecutive_failures.load(Ordering::Relaxed) < THRESHOLD {
            return true;
        }
        let opened_at = self.opened_at.load(Ordering::Relaxed);
        // Half-open after the backoff: one probe at a time.
        let allowed = self.now() >= opened_at + BACKOFF.as_millis() as u64
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        if !allowed {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Whether the breaker is open (Redis is considered down).
    pub(crate) fn is_open(&self) -> bool {
        self.consecutive_failures.load(Ordering::Relaxed) >= THRESHOLD
    }

    pub(crate) fn record<T>(&self, result: &Result<T, Error>) {
        match result {
            Err(error) if is_connection_failure(error) => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= THRESHOLD {
                    self.opened_at.store(self.now(), Ordering::Relaxed);
                    self.probing.store(false, Ordering::Release);
                }
                if failures == THRESHOLD {
                    self.skipped.store(0, Ordering::Relaxed);
                    self.outage_since.store(self.now(), Ordering::Relaxed);
                    metrics::counter!("redis_cached_breaker_opened_total").increment(1);
                    tracing::warn!(
                        address = %self.address,
                        %error,
                        "cache unreachable: cached calls run their bodies without it until it answers again"
                    );
                }
            }
            _ => {
                let failures = self.consecutive_failures.swap(0, Ordering::AcqRel);
                self.probing.store(false, Ordering::Release);
                if failures >= THRESHOLD {
                    let down = Duration::from_millis(
                        self.now()
                            .saturating_sub(self.outage_since.load(Ordering::Relaxed)),
                    );
                    tracing::info!(
                        address = %self.address,
                        skipped = self.skipped.swap(0, Ordering::Relaxed),
                        ?down,
                        "cache reachable again"
                    );
                    self.closed.notify_waiters();
                }
            }
        }
    }
}

fn is_connection_failure(error: &Error) -> bool {
    match error {
        Error::Timeout(_) => true,
        Error::Redis(error) => {
            error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
        }
        _ => false,
    }
}
