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
