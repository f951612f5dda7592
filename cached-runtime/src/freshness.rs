//! Stale-while-revalidate, refresh ahead and stale-if-error: entries that outlive their TTL.
//!
//! A function with `stale`, `stale_if_error` or `refresh_ahead` stores each value in an
//! envelope that says until when it is fresh, how long its body took, and who (if anyone)
//! has claimed its refresh. Redis keeps the entry past its TTL, for the longer of the two
//! windows; what a caller does with it is decided from the envelope, on the one read a hit
//! already makes:
//!
//! ```text
//! fresh, no early refresh drawn        -> hit
//! fresh, early refresh drawn (XFetch)  -> claim; if ours: run the body, store, return it;
//!                                         else a hit
//! stale window (TTL .. TTL + stale)    -> claim; if ours: as above (on an `Err`: the stale
//!                                         value); else the stale value at once
//! stale-if-error window only           -> a miss that keeps the old value: an `Err` of the
//!                                         body returns it (and puts it back)
//! ```
//!
//! The claim is written into the entry itself (`SETRANGE`, by a one-key script that checks
//! the entry is the one read): an invalidation's `UNLINK` deletes it with the value, so a
//! refresh that raced an invalidation finds its claim gone and does not store. Envelopes are
//! written in ASCII digits so that the scripts read them with `tonumber`.
//!
//! Layout: `MARKER`, `F`, fresh-until (13 digits, ms since the UNIX epoch), the body's
//! duration (10 digits, ms), claimed-until (13 digits, ms since the epoch; zeros: unclaimed),
//! the claimant's lease token (18 bytes; zeros: none), then the value's bytes (a codec's
//! output or a stored `None`'s marker).

use crate::entry::MARKER;
use crate::store::lease::Lease;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The second byte of a fresh-until envelope.
pub(crate) const KIND: u8 = b'F';

pub(crate) const FRESH_UNTIL: Range<usize> = 2..15;
const DELTA: Range<usize> = 15..25;
pub(crate) const CLAIMED_UNTIL: Range<usize> = 25..38;
pub(crate) const CLAIMANT: Range<usize> = 38..56;

/// The envelope's length before the value.
pub(crate) const HEADER_LEN: usize = CLAIMANT.end;

/// Where a claim is written in the envelope: claimed-until, then the claimant's token.
pub(crate) const CLAIM_AT: usize = CLAIMED_UNTIL.start;

/// Where the claimant's token is, for the script that stores a refresh.
pub(crate) const CLAIMANT_AT: usize = CLAIMANT.start;

/// A function's windows past its TTL, and its early-refresh factor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Windows {
    /// Served stale while one caller refreshes.
    pub(crate) stale: Duration,
    /// Served when the body fails.
    pub(crate) stale_if_error: Duration,
    /// XFetch's beta; zero: no early refresh.
    pub(crate) beta: f64,
}

/// What a caller does with an entry it read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Serve it.
    Fresh,
    /// Fresh, but refresh it now if no one else is (XFetch's draw came up).
    RefreshEarly,
    /// In the stale window: serve it unless the refresh is ours to run.
    Stale,
    /// Past the stale window but within stale-if-error: run the body, and serve this value
    /// only if the body fails.
    ErrorFallback,
    /// Past every window (the clocks of processes and Redis differ): a miss.
    Expired,
}

/// An envelope's header, as read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// ms since the UNIX epoch.
    pub(crate) fresh_until: u64,
    /// How long the body that computed the value ran, in ms.
    pub(crate) delta: u64,
    /// ms since the UNIX epoch; zero: unclaimed.
    pub(crate) claimed_until: u64,
}

impl Windows {
    /// Whether entries of this function need the envelope.
    pub(crate) fn any(&self) -> bool {
        !self.stale.is_zero() || !self.stale_if_error.is_zero() || self.beta > 0.0
    }

    /// How much longer than its TTL an entry is kept.
    pub(crate) fn extra(&self) -> Duration {
        self.stale.max(self.stale_if_error)
    }

    /// What to do with an entry of `header` at `now` (ms since the epoch).
    pub(crate) fn judge(&self, header: &Header, now: u64) -> Freshness {
        let past = |window: Duration| header.fresh_until.saturating_add(millis(window));
        if now < header.fresh_until {
            if self.beta > 0.0 && self.draws_early(header, now) {
                return Freshness::RefreshEarly;
            }
            Freshness::Fresh
        } else if now < past(self.stale) {
            Freshness::Stale
        } else if now < past(self.stale_if_error) {
            Freshness::ErrorFallback
        } else {
            Freshness::Expired
        }
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh when
    /// `now - delta * beta * ln(rand) >= fresh_until`, so that the slower the body, the
    /// earlier one caller, chosen at random, refreshes ahead of the expiry.
    fn draws_early(&self, header: &Header, now: u64) -> bool {
        let ahead = header.delta as f64 * self.beta * -draw().ln();
        now as f64 + ahead >= header.fresh_until as f64
    }
}

/// A uniform draw in (0, 1], from the OS-keyed hasher the rest of the crate uses: for
/// XFetch, and for the TTL jitter (`ttl.rs`).
pub(crate) fn draw() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    (bits as f64 + 1.0) / (1u64 << 53) as f64
}

/// `value` in an envelope fresh until `fresh_until` (ms since the epoch), computed in
/// `delta`, unclaimed.
pub(crate) fn wrap(value: &[u8], fresh_until: u64, delta: Duration) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.extend_from_slice(&[MARKER, KIND]);
    out.extend_from_slice(
        format!("{fresh_until:013}{:010}", millis(delta).min(9_999_999_999)).as_bytes(),
    );
    out.extend_from_slice(&[b'0'; CLAIMANT.start - CLAIMED_UNTIL.start]);
    out.extend_from_slice(&[0; CLAIMANT.end - CLAIMANT.start]);
    out.extend_from_slice(value);
    out
}

/// The header and the value of an envelope; `None` for bytes that are none.
pub(crate) fn open(stored: &[u8]) -> Option<(Header, &[u8])> {
    let header = stored.get(..HEADER_LEN)?;
    if header[..2] != [MARKER, KIND] {
        return None;
    }
    let number = |range: Range<usize>| -> Option<u64> {
        std::str::from_utf8(&header[range]).ok()?.parse().ok()
    };
    let header_read = Header {
        fresh_until: number(FRESH_UNTIL)?,
        delta: number(DELTA)?,
        claimed_until: number(CLAIMED_UNTIL)?,
    };
    Some((header_read, &stored[HEADER_LEN..]))
}

/// The value inside an envelope still fresh at `now` (ms since the epoch): what a batch
/// function, which has no windows of its own, may serve from an entry a single function
/// with them stored.
pub(crate) fn fresh_value(stored: &[u8], now: u64) -> Option<&[u8]> {
    open(stored)
        .filter(|(header, _)| now < header.fresh_until)
        .map(|(_, value)| value)
}

/// The fresh-until field of an envelope, as the claim script compares it.
pub(crate) fn fresh_until_field(fresh_until: u64) -> String {
    format!("{fresh_until:013}")
}

/// What a claim writes at [`CLAIM_AT`]: claimed until `until` (ms since the epoch), by the
/// holder of `lease`.
pub(crate) fn claim(until: u64, lease: &Lease) -> Vec<u8> {
    let mut claim = format!("{until:013}").into_bytes();
    claim.extend_from_slice(lease.as_bytes());
    claim
}

/// Now, in ms since the UNIX epoch (zero for a clock set before it).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
        .saturating_add_signed(SKEW.load(Ordering::Relaxed))
}

/// How far [`now`] is moved from the system's clock, in ms (see [`skew_clock`]).
static SKEW: AtomicI64 = AtomicI64::new(0);

/// Moves the clock that this process writes fresh-until times by and judges them by, by
/// `millis` (negative: back), as if its system clock were off: for the tests of processes
/// whose clocks differ. Not public API.
pub fn skew_clock(millis: i64) {
    SKEW.store(millis, Ordering::Relaxed);
}

/// A duration in whole ms, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn envelopes_round_trip_and_refuse_other_bytes() {
        let wrapped = wrap(b"{\"a\":1}", 1_700_000_000_123, Duration::from_millis(42));
        let (header, value) = open(&wrapped).unwrap();
        assert_eq!(
            header,
            Header {
                fresh_until: 1_700_000_000_123,
                delta: 42,
                claimed_until: 0
            }
        );
        assert_eq!(value, b"{\"a\":1}");
        assert_eq!(open(b"{\"a\":1}"), None);
        assert_eq!(open(&wrapped[..HEADER_LEN - 1]), None);
        let mut claimed = wrapped.clone();
        let lease = Lease::new();
        let claim = claim(1_700_000_000_999, &lease);
        claimed[CLAIM_AT..CLAIM_AT + claim.len()].copy_from_slice(&claim);
        assert_eq!(open(&claimed).unwrap().0.claimed_until, 1_700_000_000_999);
        assert_eq!(&claimed[CLAIMANT_AT..HEADER_LEN], lease.as_bytes());
    }

    #[test]
    fn windows_judge_by_the_clock() {
        let windows = Windows {
            stale: 10 * S,
            stale_if_error: 60 * S,
            beta: 0.0,
        };
        let header = Header {
            fresh_until: 100_000,
            delta: 0,
            claimed_until: 0,
        };
        assert_eq!(windows.judge(&header, 99_999), Freshness::Fresh);
        assert_eq!(windows.judge(&header, 100_000), Freshness::Stale);
        assert_eq!(windows.judge(&header, 109_999), Freshness::Stale);
        assert_eq!(windows.judge(&header, 110_000), Freshness::ErrorFallback);
        assert_eq!(windows.judge(&header, 160_000), Freshness::Expired);
    }

    #[test]
    fn early_refresh_is_likelier_near_the_expiry_and_for_slow_bodies() {
        let windows = Windows {
            beta: 1.0,
            ..Windows::default()
        };
        let early = |now: u64, delta: u64| {
            let header = Header {
                fresh_until: 100_000,
                delta,
                claimed_until: 0,
            };
            (0..2_000)
                .filter(|_| windows.judge(&header, now) == Freshness::RefreshEarly)
                .count()
        };
        assert_eq!(early(50_000, 0), 0, "an instant body never refreshes early");
        let (far, near) = (early(99_000, 1_000), early(99_900, 1_000));
        // P(early) = exp(-(fresh_until - now) / delta): e^-1 (~736 of 2,000) and e^-0.1 (~1,810).
        assert!((600..900).contains(&far), "{far}");
        assert!((1_700..1_950).contains(&near), "{near}");
    }
}
