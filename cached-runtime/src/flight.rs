//! Single-flight within one process: concurrent misses on a key run the body once.
//!
//! A flight is keyed by the lease its pilot holds in the store, not by the key alone: a call
//! joins a flight only if the store still shows that flight's lease, so a call that starts
//! after an invalidation (which deleted the lease) never joins a flight that read old data.
//! A tag's invalidation leaves the lease: a call also joins only a flight that read the tag
//! versions it reads now.
//!
//! While the store cannot be reached there is no lease to check, so calls that could not
//! look their key up join a *degraded* flight keyed by the key alone: an outage does not
//! multiply the load on the source. An invalidation takes the key's degraded flight off the
//! board ([`Flights::forget`]), so calls that start after it never join a flight that may
//! have read old data.
//!
//! While a leased flight's body runs, one task per cache keeps the leases of all its flights
//! alive (see [`keep_alive`]), so that callers in other processes keep waiting for a live
//! filler however slow its body is, and take the key over only once a filler died.
//!
//! No lock is held across the body; a joiner that is dropped does not affect the flight, and
//! no joiner waits longer than it is told to.

use crate::key::is_tag_key;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::store::{Store, WeakStore};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// An output a flight hands its joiners, type-erased: each clones it back.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

/// What a flight delivers to its joiners.
#[derive(Clone)]
pub(crate) enum Landing {
    /// The stored bytes, which joiners decode.
    Value(Arc<[u8]>),
    /// The body's `Err`, not stored: each joiner returns a clone.
    Output(Shared),
    /// An output neither stored nor shared (a `None`, or an `Err` whose type is not `Clone`);
    /// `failed` when it is an `Err`.
    Nothing { failed: bool },
}

type Receiver = watch::Receiver<Option<Landing>>;

/// A flight on the board: the lease that identifies it, the versions of its call's tags
/// read when it took the lease (empty: untagged), and its landing.
type Seat = (Lease, Vec<u8>, Receiver);

/// The flights of one kind in progress, by key.
#[derive(Clone, Default)]
struct Board(Arc<Mutex<HashMap<String, Seat>>>);

impl Board {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Seat>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a flight on `key` identified by `lease` (stamped with its tag versions),
    /// replacing any other.
    fn depart(&self, key: &str, (lease, stamp): (&Lease, &[u8]), release: Option<Store>) -> Pilot {
        let mut board = self.lock();
        let pilot = self.depart_locked(&mut board, key, lease, release);
        if let Some((_, stamped, _)) = board.get_mut(key) {
            stamped.extend_from_slice(stamp);
        }
        pilot
    }

    /// [`depart`](Self::depart) under a lock the caller already holds.
    fn depart_locked(
        &self,
        board: &mut HashMap<String, Seat>,
        key: &str,
        lease: &Lease,
        release: Option<Store>,
    ) -> Pilot {
        let (sender, receiver) = watch::channel(None);
        board.insert(key.to_owned(), (lease.clone(), Vec::new(), receiver));
        Pilot {
            board: self.clone(),
            key: key.to_owned(),
            lease: lease.clone(),
            sender,
            release,
            landed: false,
        }
    }

    fn remove(&self, key: &str, lease: &Lease) {
        let mut board = self.lock();
        if board.get(key).is_some_and(|(held, _, _)| held == lease) {
            board.remove(key);
        }
    }
}

/// The flights in progress of one cache.
#[derive(Clone, Default)]
pub(crate) struct Flights {
    /// Flights whose pilot holds a lease in the store.
    leased: Board,
    /// Flights of calls that could not reach the store.
    degraded: Board,
    /// Refreshes of entries served stale or ahead of their expiry, by the claim they hold.
    refreshing: Board,
    /// The task that keeps the leased flights' leases alive (in the runtime of the flight
    /// that started it: it is started again when that runtime is gone).
    keeper: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// What waiting for a flight gave.
pub(crate) enum Joined {
    /// No flight of this process holds the key (under that lease).
    NoFlight,
    /// The bytes the flight stored.
    Value(Arc<[u8]>),
    /// The `Err` the flight did not store, to clone.
    Output(Shared),
    /// The flight failed with nothing to share, or its pilot was dropped: the lease is
    /// released, and the key is to be looked up again, where one caller takes it over.
    Failed,
    /// The flight's output is not stored and cannot be shared: the caller runs the body.
    NoValue,
    /// The flight outlasted the wait.
    TimedOut,
}

/// A seat on a degraded flight.
pub(crate) enum Boarding {
    /// No flight was in progress: the caller runs the body and lands it.
    Pilot(Pilot),
    /// Another call is running the body: the caller waits for it.
    Passenger(Passenger),
}

/// A caller waiting for a flight's landing.
pub(crate) struct Passenger(Receiver);

impl Passenger {
    /// Waits for the landing, at most `wait`.
    pub(crate) async fn wait(mut self, wait: Duration) -> Joined {
        match tokio::time::timeout(wait, self.0.wait_for(Option::is_some)).await {
            Ok(Ok(landing)) => match landing.clone() {
                Some(Landing::Value(bytes)) => Joined::Value(bytes),
                Some(Landing::Output(output)) => Joined::Output(output),
                Some(Landing::Nothing { failed: true }) => Joined::Failed,
                Some(Landing::Nothing { failed: false }) | None => Joined::NoValue,
            },
            // The pilot was dropped without landing.
            Ok(Err(_)) => Joined::Failed,
            Err(_) => Joined::TimedOut,
        }
    }
}

impl Flights {
    /// Registers the flight of the caller that holds `lease` on `key` in `store`, having read
    /// its tags' versions `stamp`, whose lease is then kept alive until it lands; a pilot
    /// dropped before landing releases it.
    pub(crate) fn depart(&self, store: &Store, key: &str, lease: &Lease, stamp: &Stamp) -> Pilot {
        let pilot = self
            .leased
            .depart(key, (lease, &stamp.0), Some(store.clone()));
        let mut keeper = self.keeper.lock().unwrap_or_else(PoisonError::into_inner);
        if keeper.as_ref().is_none_or(JoinHandle::is_finished) {
            let task = keep_alive(self.leased.clone(), store.downgrade());
            *keeper = tokio::runtime::Handle::try_current()
                .ok()
                .map(|runtime| runtime.spawn(task));
        }
        pilot
    }

    /// Waits, at most `wait`, for this process's flight holding `lease` on `key`, if any,
    /// and if it read the tag versions `stamp` the caller reads now: a flight that read
    /// versions since invalidated read old data, whatever lease it holds.
    pub(crate) fn join(
        &self,
        key: &str,
        (lease, stamp): (&Lease, &Stamp),
        wait: Duration,
    ) -> impl Future<Output = Joined> + use<> {
        let receiver = match self.leased.lock().get(key) {
            Some((held, stamped, receiver)) if held == lease && *stamped == stamp.0 => {
                Some(receiver.clone())
            }
            _ => None,
        };
        async move {
            match receiver {
                Some(receiver) => Passenger(receiver).wait(wait).await,
                None => Joined::NoFlight,
            }
        }
    }

    /// Boards the degraded flight on `key`, as its pilot if none is in progress.
    pub(crate) fn board_degraded(&self, key: &str) -> Boarding {
        let mut board = self.degraded.lock();
        if let Some((_, _, receiver)) = board.get(key) {
            return Boarding::Passenger(Passenger(receiver.clone()));
        }
        // Its own identity, never written to the store: no lease exists while degraded.
        let pilot = self
            .degraded
            .depart_locked(&mut board, key, &Lease::new(), None);
        Boarding::Pilot(pilot)
    }

    /// Registers this process's refresh of `key` under `claim`, unless one is in progress:
    /// other callers then serve the entry they read without asking the store for a claim.
    /// The refresh ends when the returned pilot is dropped.
    pub(crate) fn refresh(&self, key: &str, claim: &Lease) -> Option<Pilot> {
        let mut board = self.refreshing.lock();
        if board.contains_key(key) {
            return None;
        }
        Some(self.refreshing.depart_locked(&mut board, key, claim, None))
    }

    /// Takes `keys`' degraded flights off the board (they are being invalidated): later calls
    /// start flights of their own. A tag key among them takes every degraded flight off: a
    /// flight does not know its tags, and degraded flights are few (an outage's).
    pub(crate) fn forget<K: AsRef<str>>(&self, keys: &[K]) {
        let mut board = self.degraded.lock();
        if board.is_empty() {
            return;
        }
        if keys.iter().any(|key| is_tag_key(key.as_ref())) {
            board.clear();
            return;
        }
        for key in keys {
            board.remove(key.as_ref());
        }
    }

    /// [`forget`](Self::forget) of every degraded flight whose key `select` picks (a clear).
    pub(crate) fn forget_where(&self, select: impl Fn(&str) -> bool) {
        self.degraded.lock().retain(|key, _| !select(key));
    }
}

/// The caller running the body for a flight. Dropped before landing (the caller was
/// cancelled), it lets joiners go on alone and releases its lease in the background.
pub(crate) struct Pilot {
    board: Board,
    key: String,
    lease: Lease,
    sender: watch::Sender<Option<Landing>>,
    /// The store that holds `lease`, for a leased flight.
    release: Option<Store>,
    landed: bool,
}

impl Pilot {
    /// Hands the result to every joiner.
    pub(crate) fn land(mut self, landing: Landing) {
        self.landed = true;
        self.sender.send_replace(Some(landing));
        self.board.remove(&self.key, &self.lease);
    }
}

impl Drop for Pilot {
    fn drop(&mut self) {
        if self.landed {
            return;
        }
        self.board.remove(&self.key, &self.lease);
        if let Some(store) = &self.release {
            store.release_detached(&self.key, &self.lease);
        }
    }
}

/// Every third of a lease, makes the leases of this cache's leased flights live a lease's
/// length more (while each still holds its key: one script call per server, or per hash
/// slot on a cluster), for as long as the store lives. A filler whose process dies stops
/// being kept alive, and its lease lapses within one lease's length.
async fn keep_alive(board: Board, store: WeakStore) {
    loop {
        let period = store.upgrade().map(|store| store.leases().ttl() / 3);
        let Some(period) = period.filter(|period| !period.is_zero()) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        let held: Vec<(String, Lease)> = board
            .lock()
            .iter()
            .map(|(key, (lease, _, _))| (key.clone(), lease.clone()))
            .collect();
        if !held.is_empty() {
            store.extend_leases(&held).await;
        }
    }
}

tokio::task_local! {
    /// The keys the current task is running a body for, innermost last.
    static FILLING: Vec<String>;
}

/// Whether the current task is running a body for `key`: a cached call of that key from
/// inside the body must not wait for the flight it is part of.
pub(crate) fn is_filling(key: &str) -> bool {
    FILLING
        .try_with(|keys| keys.iter().any(|filling| filling == key))
        .unwrap_or(false)
}

/// Runs `body` as the current task's fill of `key`.
pub(crate) async fn filling<F: Future>(key: &str, body: F) -> F::Output {
    filling_all([key], body).await
}

/// Runs `body` as the current task's fill of every key of `keys` (a batch's).
pub(crate) async fn filling_all<'a, F: Future>(
    keys: impl IntoIterator<Item = &'a str>,
    body: F,
) -> F::Output {
    let mut filling = FILLING.try_with(Vec::clone).unwrap_or_default();
    filling.extend(keys.into_iter().map(str::to_owned));
    FILLING.scope(filling, body).await
}
