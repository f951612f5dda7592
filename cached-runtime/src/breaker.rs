//! A circuit breaker, so that an outage costs one timeout rather than one per call: after
//! `THRESHOLD` consecutive connection failures it opens and calls skip Redis; after
//! `BACKOFF` one call probes it (half-open), and a success closes it again.
//!
//! Only failures of the connection count: an error reply (`OOM`, `READONLY`, `NOREPLICAS`)
//! means Redis is there and refused one write.

use crate::Error;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const THRESHOLD: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(250);

pub(crate) struct Breaker {
    started: Instant,
    consecutive_failures: AtomicU32,
    /// When the breaker opened, in milliseconds since `started`.
    opened_at: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    pub(crate) fn new() -> Breaker {
        Breaker {
            started: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
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
        if self.now() < opened_at + BACKOFF.as_millis() as u64 {
            return false;
        }
        // Half-open: one probe at a time.
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
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
            }
            _ => {
                self.consecutive_failures.store(0, Ordering::Release);
                self.probing.store(false, Ordering::Release);
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
