//! The invalidations of the last few seconds, kept to be applied again after the store
//! changed servers underneath (see `identity.rs`).
//!
//! A primary acknowledges a deletion before its replicas have it: a failover in that moment
//! promotes a replica that still holds the old entry, and a server restarted from a
//! snapshot (or an append-only file synced every second) brings back entries deleted since.
//! Deleting is idempotent, so the cache deletes every key it invalidated within the window
//! once more on the server that now holds it. That costs a miss for keys filled meanwhile,
//! nothing else.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most keys kept, however short the window: a bound on memory (about 100 bytes each)
/// for caches that invalidate many keys a second. Going over it is logged once.
const CAPACITY: usize = 100_000;

pub(crate) struct Journal {
    /// How long a key is kept; zero: nothing is.
    window: Duration,
    entries: Mutex<VecDeque<Entry>>,
    /// Whether it said that it dropped keys within the window (once).
    overflowed: AtomicBool,
}

struct Entry {
    at: Instant,
    key: String,
    /// The invalidating function's path, for the tombstones of the replay.
    by: &'static str,
}

impl Journal {
    pub(crate) fn new(window: Duration) -> Journal {
        Journal {
            window,
            entries: Mutex::default(),
            overflowed: AtomicBool::new(false),
        }
    }

    /// Remembers that `by` invalidated `keys` now.
    pub(crate) fn record(&self, keys: &[String], by: &'static str) {
        if self.window.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_old(&mut entries, now);
        let over = (entries.len() + keys.len())
            .saturating_sub(CAPACITY)
            .min(entries.len());
        if let Some(dropped) = entries.drain(..over).next_back()
            && !self.overflowed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                kept = CAPACITY,
                oldest_kept_for = ?now.saturating_duration_since(dropped.at),
                "more keys invalidated within the replay window than are kept; the oldest \
                 will not be applied again after a failover or restart"
            );
        }
        let skip = keys.len().saturating_sub(CAPACITY);
        entries.extend(keys[skip..].iter().map(|key| Entry {
            at: now,
            key: key.clone(),
            by,
        }));
    }

    /// The keys invalidated within the window, by invalidating function.
    pub(crate) fn recent(&self) -> HashMap<&'static str, Vec<String>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_old(&mut entries, Instant::now());
        let mut owed: HashMap<&'static str, Vec<String>> = HashMap::new();
        for entry in entries.iter() {
            owed.entry(entry.by).or_default().push(entry.key.clone());
        }
        for keys in owed.values_mut() {
            keys.sort_unstable();
            keys.dedup();
        }
        owed
    }

    /// Whether no key was invalidated within the window.
    pub(crate) fn is_empty(&self) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_old(&mut entries, Instant::now());
        entries.is_empty()
    }

    fn forget_old(&self, entries: &mut VecDeque<Entry>, now: Instant) {
        while entries
            .front()
            .is_some_and(|entry| now.saturating_duration_since(entry.at) > self.window)
        {
            entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CAPACITY, Journal};
    use std::time::Duration;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn keeps_the_window_by_function_without_repeats() {
        let journal = Journal::new(Duration::from_secs(60));
        journal.record(&keys(&["a", "b"]), "f");
        journal.record(&keys(&["a"]), "f");
        journal.record(&keys(&["c"]), "g");
        let recent = journal.recent();
        assert_eq!(recent["f"], keys(&["a", "b"]));
        assert_eq!(recent["g"], keys(&["c"]));
    }

    #[test]
    fn forgets_what_is_older_than_the_window() {
        let journal = Journal::new(Duration::from_millis(20));
        journal.record(&keys(&["old"]), "f");
        std::thread::sleep(Duration::from_millis(40));
        journal.record(&keys(&["new"]), "f");
        assert_eq!(journal.recent()["f"], keys(&["new"]));
    }

    #[test]
    fn a_zero_window_keeps_nothing() {
        let journal = Journal::new(Duration::ZERO);
        journal.record(&keys(&["a"]), "f");
        assert!(journal.recent().is_empty());
    }

    #[test]
    fn keeps_at_most_its_capacity_the_newest_first() {
        let journal = Journal::new(Duration::from_secs(60));
        let many: Vec<String> = (0..CAPACITY + 10).map(|i| format!("k{i}")).collect();
        journal.record(&many[..10], "f");
        journal.record(&many[10..], "f");
        let recent = &journal.recent()["f"];
        assert_eq!(recent.len(), CAPACITY);
        assert!(!recent.contains(&"k0".to_owned()));
        assert!(recent.contains(&format!("k{}", CAPACITY + 9)));
    }
}
