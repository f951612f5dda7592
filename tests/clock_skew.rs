//! Processes whose clocks differ. A function with `stale` (or `stale_if_error`,
//! `refresh_ahead`) stores its entry with the wall-clock time it is fresh until, by the
//! filler's clock; a reader judges it by its own. So a reader whose clock is `d` behind the
//! filler's judges every window `d` late (fresh up to TTL + d after the fill), one `d` ahead
//! judges them `d` early; Redis's own expiry (TTL plus the longer window, by Redis's clock)
//! bounds both. Measured here with writer +2 s and reader -2 s (and the reverse), by the
//! runtime's test clock (`__private::skew_clock`, process-wide: this file holds one test).

mod harness;
mod support;

use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::bump;

const TTL: Duration = Duration::from_secs(2);
/// How much the two processes' clocks differ.
const SKEW: i64 = 4_000;

/// Each fill returns its run's number: the version a call is served.
#[redis_cached(key = "skewed:<id>", ttl = 2, stale = 2, cache = cache)]
async fn skewed(cache: &Cache, counter: &AtomicUsize, id: u64) -> usize {
    let _ = id;
    bump(counter)
}

/// Sleeps until `at`.
async fn until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

#[tokio::test]
async fn a_reader_judges_windows_by_its_own_clock_within_redis_expiry() {
    let cache = support::redis_cache("clock_skew").await;
    let counter = AtomicUsize::new(0);
    let private = redis_cached::__private::skew_clock;

    // Writer 2 s ahead, reader 2 s behind: the reader is 4 s behind the filler.
    private(SKEW / 2);
    let filled = Instant::now();
    assert_eq!(
        with_outcome(skewed(&cache, &counter, 1)).await,
        (1, Some(Outcome::Miss))
    );
    private(-SKEW / 2);
    // Past the TTL (2 s), inside the stale window by true time: still fresh to the reader,
    // a hit with no refresh.
    until(filled + TTL + Duration::from_millis(500)).await;
    assert_eq!(
        with_outcome(skewed(&cache, &counter, 1)).await,
        (1, Some(Outcome::Hit)),
        "2.5 s after the fill, a reader 4 s behind the filler judges the entry fresh"
    );
    // Past TTL + stale (4 s): Redis deleted the key, whatever the clocks say.
    until(filled + TTL * 2 + Duration::from_millis(300)).await;
    assert_eq!(
        with_outcome(skewed(&cache, &counter, 1)).await,
        (2, Some(Outcome::Miss)),
        "Redis's expiry bounds what a slow clock serves"
    );

    // Writer 2 s behind, reader 2 s ahead: the reader is 4 s ahead of the filler, past
    // TTL + stale at once: each read is a miss, which refills.
    private(-SKEW / 2);
    assert_eq!(
        with_outcome(skewed(&cache, &counter, 2)).await,
        (3, Some(Outcome::Miss))
    );
    private(SKEW / 2);
    let (value, outcome) = with_outcome(skewed(&cache, &counter, 2)).await;
    assert_eq!(
        (value, outcome),
        (4, Some(Outcome::Miss)),
        "a reader 4 s ahead finds an entry filled now past TTL + stale"
    );
    private(0);
}
