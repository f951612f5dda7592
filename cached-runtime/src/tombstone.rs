//! Invalidation tombstones (opt in: [`CacheBuilder::tombstones`](crate::CacheBuilder::tombstones)):
//! an invalidation of a key overwrites it with a short-lived marker that says which write
//! made it stale, instead of deleting it, so that the miss that follows can name its cause.
//! Every reader treats a tombstone as absent; the lookup that replaces one with its lease
//! reads it in the same round trip.
//!
//! Layout (see `entry.rs` for the marker scheme): `MARKER`, `X`, the invalidation's time
//! (13 ASCII digits, ms since the UNIX epoch), the invalidating function's path, then, when
//! there is one, `\n` and the W3C `traceparent` of the invalidation. Past its first byte a
//! tombstone is UTF-8, which never holds `MARKER` (0xC1): no script that looks for a lease,
//! a claim or a freshness envelope at any offset can take a tombstone for one, and it never
//! ends in an entry's trailer.

use crate::entry::MARKER;
use crate::freshness;

/// The second byte of a tombstone.
pub(crate) const KIND: u8 = b'X';

/// The digits of the invalidation's time.
const AT_LEN: usize = 13;

/// Separates the invalidating function's path from the trace.
const TRACE_SEPARATOR: char = '\n';

/// What an invalidation left under a key it made stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tombstone {
    /// When the key was invalidated, in ms since the UNIX epoch (the invalidating process's
    /// clock).
    pub(crate) at_unix_ms: u64,
    /// The invalidating function's path, or `"Cache::invalidate"`.
    pub(crate) by: String,
    /// The W3C `traceparent` of the invalidation, when it ran in a trace.
    pub(crate) trace: Option<String>,
}

impl Tombstone {
    /// A tombstone for an invalidation by `by`, made now.
    pub(crate) fn now(by: &str) -> Tombstone {
        Tombstone {
            at_unix_ms: freshness::now(),
            by: by.to_owned(),
            trace: crate::spans::traceparent(),
        }
    }

    /// How long ago it was written, in ms (0 when the writer's clock is ahead of ours).
    pub(crate) fn age_ms(&self) -> u64 {
        freshness::now().saturating_sub(self.at_unix_ms)
    }

    /// The bytes to store. A path or trace holding the separator is cut at it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let cut = |text: &str| text.split(TRACE_SEPARATOR).next().unwrap_or_default().len();
        let by = &self.by[..cut(&self.by)];
        let trace = self.trace.as_deref().map(|trace| &trace[..cut(trace)]);
        let mut bytes = Vec::with_capacity(2 + AT_LEN + by.len() + trace.map_or(0, str::len) + 1);
        bytes.extend_from_slice(&[MARKER, KIND]);
        let at = self.at_unix_ms.min(10_u64.pow(AT_LEN as u32) - 1);
        bytes.extend_from_slice(format!("{at:0AT_LEN$}").as_bytes());
        bytes.extend_from_slice(by.as_bytes());
        if let Some(trace) = trace {
            bytes.push(TRACE_SEPARATOR as u8);
            bytes.extend_from_slice(trace.as_bytes());
        }
        bytes
    }

    /// The tombstone `bytes` hold; `None` for anything else, a malformed tombstone included
    /// (bytes from Redis are untrusted).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Tombstone> {
        let rest = bytes.strip_prefix(&[MARKER, KIND])?;
        let (at, rest) = rest.split_at_checked(AT_LEN)?;
        let at_unix_ms = std::str::from_utf8(at).ok()?.parse().ok()?;
        let rest = std::str::from_utf8(rest).ok()?;
        let (by, trace) = match rest.split_once(TRACE_SEPARATOR) {
            Some((by, trace)) if !trace.is_empty() && !trace.contains(TRACE_SEPARATOR) => {
                (by, Some(trace.to_owned()))
            }
            Some(_) => return None,
            None => (rest, None),
        };
        if by.is_empty() {
            return None;
        }
        Some(Tombstone {
            at_unix_ms,
            by: by.to_owned(),
            trace,
        })
    }

    /// Whether stored bytes are a tombstone's (well formed or not): what every lookup
    /// treats as absent.
    pub(crate) fn is_tombstone(bytes: &[u8]) -> bool {
        bytes.starts_with(&[MARKER, KIND])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lease::Lease;

    fn tombstone(by: &str, trace: Option<&str>) -> Tombstone {
        Tombstone {
            at_unix_ms: 1_765_000_000_123,
            by: by.into(),
            trace: trace.map(Into::into),
        }
    }

    #[test]
    fn tombstones_round_trip() {
        for trace in [
            None,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ] {
            let stone = tombstone("my_app::users::update_user", trace);
            let bytes = stone.encode();
            assert!(Tombstone::is_tombstone(&bytes));
            assert_eq!(Tombstone::decode(&bytes), Some(stone));
        }
        let early = Tombstone {
            at_unix_ms: 7,
            ..tombstone("Cache::invalidate", None)
        };
        assert_eq!(Tombstone::decode(&early.encode()), Some(early));
    }

    #[test]
    fn malformed_tombstones_and_other_bytes_decode_to_none() {
        let bytes = tombstone("f", Some("t")).encode();
        // Cut before the path ends, or after the separator but before the trace.
        for cut in (0..=2 + AT_LEN).chain([bytes.len() - 1]) {
            assert_eq!(Tombstone::decode(&bytes[..cut]), None, "{cut}");
        }
        assert_eq!(Tombstone::decode(b""), None);
        assert_eq!(Tombstone::decode(Lease::new().as_bytes()), None);
        assert_eq!(Tombstone::decode(&[MARKER, KIND, 0xff, 0xfe]), None);
        let mut not_digits = bytes.clone();
        not_digits[3] = b'x';
        assert_eq!(Tombstone::decode(&not_digits), None);
        let mut not_utf8 = bytes.clone();
        not_utf8.push(0xff);
        assert_eq!(Tombstone::decode(&not_utf8), None);
        let two_traces = [&bytes[..], b"\nmore"].concat();
        assert_eq!(Tombstone::decode(&two_traces), None);
    }

    #[test]
    fn a_tombstone_is_no_other_stored_form() {
        let bytes = tombstone("a::b", Some("00-x-y-01")).encode();
        // No lease, claim or envelope starts anywhere past its first byte, no trailer ends it.
        assert!(!bytes[1..].contains(&MARKER));
        assert!(!Lease::is_marker(&bytes));
        assert!(crate::entry::open(&bytes, usize::MAX).is_none());
        assert!(crate::freshness::open(&bytes).is_none());
        assert!(crate::store::tags::open(&bytes).is_none());
        // A separator in a path cannot forge a trace.
        let forged = tombstone("a\nb", None).encode();
        assert_eq!(
            Tombstone::decode(&forged).map(|stone| stone.by),
            Some("a".into())
        );
    }
}
