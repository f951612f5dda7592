//! TTLs chosen at run time: `ttl = <expression>` over the arguments, and `ttl_from = <fn>`
//! over the value.

use std::time::Duration;

/// The longest TTL an entry gets (100 years): longer ones are capped, so that every TTL is
/// one Redis accepts and no deadline overflows.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `seconds`, capped at [`MAX_TTL`].
pub(crate) fn seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds).min(MAX_TTL)
}

/// What `ttl = <expression>` and the function of `ttl_from = <fn>` may return: a
/// [`Duration`], or whole seconds as an integer.
///
/// A TTL of zero (or a negative number of seconds) cannot be stored (every entry expires):
/// the value is returned to the caller but not stored, and the call logs a warning. A TTL
/// over 100 years (`Duration::MAX` included) is capped at 100 years.
///
/// ```
/// use redis_cached::IntoTtl;
/// use std::time::Duration;
///
/// assert_eq!(90u64.into_ttl(), Some(Duration::from_secs(90)));
/// assert_eq!(Duration::from_millis(1500).into_ttl(), Some(Duration::from_millis(1500)));
/// assert_eq!((-5i64).into_ttl(), None);
/// assert_eq!(Duration::ZERO.into_ttl(), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "a TTL must be a `std::time::Duration` or whole seconds as an integer, not `{Self}`",
    label = "this TTL is `{Self}`",
    note = "for example `ttl = Duration::from_secs(60)`, `ttl = if hot {{ 60 }} else {{ 3600 }}`, or a `ttl_from` function returning a `Duration`"
)]
pub trait IntoTtl {
    /// The TTL (at most 100 years), or `None` when it is not positive.
    fn into_ttl(self) -> Option<Duration>;
}

impl IntoTtl for Duration {
    fn into_ttl(self) -> Option<Duration> {
        (!self.is_zero()).then_some(self.min(MAX_TTL))
    }
}

macro_rules! seconds {
    ($($int:ty),*) => {$(
        impl IntoTtl for $int {
            fn into_ttl(self) -> Option<Duration> {
                u64::try_from(self)
                    .ok()
                    .filter(|&seconds| seconds > 0)
                    .map(seconds)
            }
        }
    )*};
}

seconds!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// TTL jitter: each stored entry's TTL is drawn uniformly from `[(1 - fraction) * ttl, ttl]`,
/// so that entries written in one burst do not all expire in the same instant. Never longer
/// than asked. Set per cache ([`CacheBuilder::ttl_jitter`](crate::CacheBuilder::ttl_jitter))
/// or per function (`jitter = "10%"`, which overrides it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Jitter(f64);

impl Jitter {
    /// `fraction` of the TTL, when it is in `[0, 1)` (zero: no jitter).
    pub(crate) fn new(fraction: f64) -> Option<Jitter> {
        (0.0..1.0).contains(&fraction).then_some(Jitter(fraction))
    }

    /// `ttl` shortened by a uniform share of up to the fraction of it, in whole ms (Redis's
    /// `PX`); `ttl` itself without jitter. The draw is made here, on the fill path only.
    pub(crate) fn apply(self, ttl: Duration) -> Duration {
        if self.0 == 0.0 {
            return ttl;
        }
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        // Below one ms: zero, `ttl` unchanged; the cast saturates.
        let cut = (millis as f64 * self.0 * crate::freshness::draw()) as u64;
        ttl.saturating_sub(Duration::from_millis(cut))
    }
}

#[cfg(test)]
mod tests {
    use super::Jitter;
    use std::time::Duration;

    #[test]
    fn jitter_is_refused_outside_zero_to_one() {
        for refused in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(Jitter::new(refused), None, "{refused}");
        }
        assert!(Jitter::new(0.0).is_some() && Jitter::new(0.99).is_some());
    }

    #[test]
    fn jittered_ttls_spread_over_the_window_and_never_exceed_the_ttl() {
        let ttl = Duration::from_secs(100);
        let jitter = Jitter::new(0.5).unwrap();
        let drawn: Vec<Duration> = (0..1_000).map(|_| jitter.apply(ttl)).collect();
        let (min, max) = (drawn.iter().min().unwrap(), drawn.iter().max().unwrap());
        assert!(
            *min >= Duration::from_secs(50) && *max <= ttl,
            "{min:?}..{max:?}"
        );
        // 1,000 uniform draws over 50 s: the extremes are within 1 s of the ends.
        assert!(*min < Duration::from_secs(51) && *max > Duration::from_secs(99));
        assert_eq!(Jitter::default().apply(ttl), ttl);
        // No overflow at the longest duration (ms saturate).
        assert!(jitter.apply(Duration::MAX) > Duration::from_secs(u64::MAX / 2));
    }
}
