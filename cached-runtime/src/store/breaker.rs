//! A circuit breaker, so that an outage costs one timeout rather than one per call: after
//! `THRESHOLD` consecutive connection failures it opens and calls skip Redis; after
//! `BACKOFF` one call probes it (half-open), and a success closes it again.
//!
//! Only failures to reach a server count: an error reply (`OOM`, `READONLY`, `NOREPLICAS`)
//! means Redis is there and refused one write. On a cluster, a redirect or `CLUSTERDOWN`
//! that outlived the client's own retries counts: the slot's primary is gone.
//!
//! The breaker logs its transitions (opened, with the cause; closed, with how many
//! operations skipped Redis meanwhile), so that an outage is a few log lines, not one per
//! call, and wakes whoever waits for Redis to answer again ([`Breaker::closed`]).

use crate::Error;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Shared by the store's breakers: signalled when any of them closes.
    closed: Arc<Notify>,
}

impl Breaker {
    fn new(address: String, closed: Arc<Notify>) -> Breaker {
        // Registered at 0, so that dashboards show the server before its first outage.
        open_gauge(&address).increment(0.0);
        Breaker {
            address,
            started: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            outage_since: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            closed,
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

    /// Closes the breaker of a primary that serves nothing any more, quietly: an outage of a
    /// server the cache no longer uses is over for the gauge.
    fn forget(&self) {
        if self.consecutive_failures.swap(0, Ordering::AcqRel) >= THRESHOLD {
            open_gauge(&self.address).decrement(1.0);
        }
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
                    open_gauge(&self.address).increment(1.0);
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
            // The common case, a success with nothing to reset: no write, so that
            // concurrent calls on every core do not contend for this cache line.
            _ if self.consecutive_failures.load(Ordering::Acquire) == 0
                && !self.probing.load(Ordering::Acquire) => {}
            _ => {
                let failures = self.consecutive_failures.swap(0, Ordering::AcqRel);
                self.probing.store(false, Ordering::Release);
                if failures >= THRESHOLD {
                    open_gauge(&self.address).decrement(1.0);
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

/// `redis_cached_breaker_open` of the server at `address`: moved by one per breaker that
/// opens or closes, so that the caches of a process on one server add up.
fn open_gauge(address: &str) -> metrics::Gauge {
    metrics::gauge!("redis_cached_breaker_open", "server" => address.to_owned())
}

pub(crate) fn is_connection_failure(error: &Error) -> bool {
    match error {
        Error::Timeout(_) => true,
        Error::Redis(error) => {
            is_unreachable(error)
                || error.is_cluster_error()
                || matches!(error.code(), Some("MASTERDOWN" | "LOADING"))
        }
        _ => false,
    }
}

/// A store's breakers: one for a single server (or a Sentinel-managed primary), one per
/// primary on a Redis Cluster, so that a dead primary fails fast for its own slots only.
pub(crate) struct Breakers {
    /// The single server's breaker; on a cluster, the one of slots whose primary is not known
    /// yet (before the first topology read).
    default: Arc<Breaker>,
    /// Cluster: each hash slot's breaker, replaced whenever the topology is read.
    slots: Option<ArcSwap<SlotBreakers>>,
    /// Cluster: breakers by primary address, so that a breaker outlives topology reads.
    by_address: Mutex<HashMap<String, Arc<Breaker>>>,
    closed: Arc<Notify>,
}

/// A breaker as [`Breakers::for_slot`] gives it: a cluster's slot map may be replaced while an
/// operation runs, so a primary's breaker is held by reference count.
pub(crate) enum BreakerRef<'a> {
    Borrowed(&'a Breaker),
    Owned(Arc<Breaker>),
}

impl std::ops::Deref for BreakerRef<'_> {
    type Target = Breaker;

    fn deref(&self) -> &Breaker {
        match self {
            BreakerRef::Borrowed(breaker) => breaker,
            BreakerRef::Owned(breaker) => breaker,
        }
    }
}

struct SlotBreakers {
    /// Per slot, an index into `breakers` (0: the default one, before the topology is read).
    owners: Box<[u16]>,
    breakers: Vec<Arc<Breaker>>,
}

/// Redis Cluster's number of hash slots.
pub(crate) const SLOTS: usize = 16384;

impl Breakers {
    /// One breaker for the server at `address`.
    pub(crate) fn single(address: String) -> Breakers {
        Breakers::new(address, false)
    }

    /// A breaker per primary of the cluster at `address` (its seeds), once
    /// [`update`](Self::update) has named the primaries.
    pub(crate) fn per_primary(address: String) -> Breakers {
        Breakers::new(address, true)
    }

    fn new(address: String, per_primary: bool) -> Breakers {
        let closed = Arc::new(Notify::new());
        let default = Arc::new(Breaker::new(address, closed.clone()));
        let slots = per_primary.then(|| {
            ArcSwap::from_pointee(SlotBreakers {
                owners: vec![0; SLOTS].into_boxed_slice(),
                breakers: vec![default.clone()],
            })
        });
        Breakers {
            default,
            slots,
            by_address: Mutex::default(),
            closed,
        }
    }

    /// The breaker of the primary serving `slot` (`None`: a single server), borrowed where
    /// it can be: a single server's needs no reference count per operation.
    pub(crate) fn for_slot(&self, slot: Option<u16>) -> BreakerRef<'_> {
        match (&self.slots, slot) {
            (Some(slots), Some(slot)) => {
                let slots = slots.load();
                let owner = slots.owners.get(usize::from(slot)).copied().unwrap_or(0);
                BreakerRef::Owned(
                    slots
                        .breakers
                        .get(usize::from(owner))
                        .unwrap_or(&self.default)
                        .clone(),
                )
            }
            _ => BreakerRef::Borrowed(&self.default),
        }
    }

    /// Cluster: which primary serves `slot` (an index, the same for all its slots), once the
    /// topology has been read: the keys of its slots can go in one request.
    pub(crate) fn primary(&self, slot: u16) -> Option<u16> {
        let slots = self.slots.as_ref()?.load();
        slots
            .owners
            .get(usize::from(slot))
            .copied()
            .filter(|&owner| owner > 0)
    }

    /// Cluster: records which primary serves which slots (`(first, last, address)` ranges).
    pub(crate) fn update(&self, ranges: &[(u16, u16, String)]) {
        let Some(slots) = &self.slots else { return };
        let mut by_address = self
            .by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut breakers = vec![self.default.clone()];
        let mut index = HashMap::new();
        let mut owners = vec![0_u16; SLOTS].into_boxed_slice();
        for (first, last, address) in ranges {
            let owner = *index.entry(address.clone()).or_insert_with(|| {
                let breaker = by_address
                    .entry(address.clone())
                    .or_insert_with(|| Arc::new(Breaker::new(address.clone(), self.closed.clone())))
                    .clone();
                breakers.push(breaker);
                u16::try_from(breakers.len() - 1).unwrap_or(0)
            });
            for slot in usize::from(*first)..=usize::from(*last).min(SLOTS - 1) {
                owners[slot] = owner;
            }
        }
        // Forget primaries that serve nothing any more (an open one no longer counts open).
        by_address.retain(|address, breaker| {
            let kept = index.contains_key(address);
            if !kept {
                breaker.forget();
            }
            kept
        });
        slots.store(Arc::new(SlotBreakers { owners, breakers }));
    }

    /// Whether any breaker is open.
    pub(crate) fn any_open(&self) -> bool {
        self.default.is_open()
            || self
                .by_address
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .any(|breaker| breaker.is_open())
    }

    /// Resolves the next time a breaker closes (a server answers again).
    pub(crate) async fn closed(&self) {
        self.closed.notified().await;
    }
}

/// Whether the server could not be reached at all (I/O, timeout, dropped or refused
/// connection), as opposed to an error reply.
pub(crate) fn is_unreachable(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
}
