//! Single-flight within one process: concurrent misses on a key run the body once.
//!
//! A flight is keyed by the lease its pilot holds in the store, not by the key alone: a call
//! joins a flight only if the store still shows that flight's lease, so a call that starts
//! after an invalidation (which deleted the lease) never joins a flight that read old data.
//! No lock is held across the body, and a joiner that is dropped does not affect the flight.

use crate::Cache;
use crate::lease::Lease;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// What a flight delivers: the encoded value, or `None` when the body's output is not
/// stored (an `Err`, a `None`), in which case joiners run the body themselves.
pub(crate) type Landing = Option<Arc<[u8]>>;

type Board = HashMap<String, (Lease, watch::Receiver<Option<Landing>>)>;

/// The flights in progress of one [`Cache`].
#[derive(Clone, Default)]
pub(crate) struct Flights {
    board: Arc<Mutex<Board>>,
}

impl Flights {
    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the flight of the caller that holds `lease` on `key`.
    pub(crate) fn depart(&self, cache: &Cache, key: &str, lease: &Lease) -> Pilot {
        let (sender, receiver) = watch::channel(None);
        self.board()
            .insert(key.to_owned(), (lease.clone(), receiver));
        Pilot {
            cache: cache.clone(),
            key: key.to_owned(),
            lease: lease.clone(),
            sender,
            landed: false,
        }
    }

    /// Waits for this process's flight holding `lease` on `key`, if there is one.
    /// `Some(None)`: the flight ended without a value to share.
    pub(crate) async fn join(&self, key: &str, lease: &Lease) -> Option<Landing> {
        let mut receiver = match self.board().get(key) {
            Some((held, receiver)) if held == lease => receiver.clone(),
            _ => return None,
        };
        let landing = match receiver.wait_for(Option::is_some).await {
            Ok(landing) => landing.clone().flatten(),
            Err(_) => None,
        };
        Some(landing)
    }

    fn remove(&self, key: &str, lease: &Lease) {
        let mut board = self.board();
        if board.get(key).is_some_and(|(held, _)| held == lease) {
            board.remove(key);
        }
    }
}

/// The caller running the body for a flight. Dropped before landing (the caller was
/// cancelled), it lets joiners go on alone and releases its lease in the background.
pub(crate) struct Pilot {
    cache: Cache,
    key: String,
    lease: Lease,
    sender: watch::Sender<Option<Landing>>,
    landed: bool,
}

impl Pilot {
    /// Hands the result to every joiner.
    pub(crate) fn land(mut self, landing: Landing) {
        self.landed = true;
        self.sender.send_replace(Some(landing));
        self.cache.flights().remove(&self.key, &self.lease);
    }
}

impl Drop for Pilot {
    fn drop(&mut self) {
        if self.landed {
            return;
        }
        self.cache.flights().remove(&self.key, &self.lease);
        self.cache.release_in_background(&self.key, &self.lease);
    }
}
