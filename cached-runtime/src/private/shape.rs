//! Which part of a function's return value is stored: the whole value, the `Ok` of a
//! `Result`, the `Some` of an `Option` (a `None` is stored as [`Entry::Absent`], never as
//! the codec's `null`, which `Some(())` or `Some(None)` encode to as well). The macro picks a
//! shape from the return type's last path segment.
//!
//! A shape puts no bound on the stored type: what it must implement is checked where the
//! macro names it (`stored.rs`). So a shape fails only for a return type that is not what its
//! name says, such as a generic struct whose name ends in `Result`.

use crate::entry::Entry;
use std::convert::Infallible;

/// The part of `output` the shape `S` stores (never a `None`): what `<return>` names in an
/// `#[invalidates]` template.
pub fn part<S: Shape<R>, R>(output: &R) -> Option<&S::Stored> {
    match S::stored(output, false)? {
        Entry::Value(value) => Some(value),
        Entry::Absent => None,
    }
}

/// How a return type maps to the entry stored under its key (and to the value `<return>`
/// names in an `#[invalidates]` template).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[redis_cached]` (or `<return>` in `#[invalidates]`) cannot tell which part of `{R}` is its value",
    label = "read as a `Result` or an `Option` by its name, but it is not one",
    note = "a cached function returns `T` (stored whole), `Result<T, E>`, `Option<T>` or `Result<Option<T>, E>`; a generic type whose name ends in `Result` is read as an alias of `Result<T, E>`"
)]
pub trait Shape<R> {
    /// The value type stored.
    type Stored;

    /// What of `output` to store, if anything.
    fn stored(output: &R, cache_none: bool) -> Option<Entry<&Self::Stored>>;

    /// The output a stored entry stands for, if it stands for one of this shape (a stored
    /// `None` stands for no `T` or `Result<T, E>`).
    fn output(stored: Entry<Self::Stored>) -> Option<R>;

    /// What a failed output holds: the `E` of a `Result` (nothing else fails).
    type Failure;

    /// The failure `output` holds, if it is an `Err`.
    fn failure(_output: &R) -> Option<&Self::Failure> {
        None
    }

    /// The output a failure stands for (`Err(failure)`): what the callers that waited for a
    /// failed fill return.
    fn from_failure(failure: Self::Failure) -> R;

    /// Whether `output` is an `Err` (what `stale_if_error` answers with a stored value).
    fn failed(output: &R) -> bool {
        Self::failure(output).is_some()
    }
}

/// Stores the whole value.
#[doc(hidden)]
pub struct Whole;

/// Stores `Ok` values of a `Result`.
#[doc(hidden)]
pub struct OkOf;

/// Stores `Some` values of an `Option` (and `None` with `cache_none`).
#[doc(hidden)]
pub struct SomeOf;

/// Stores `Ok(Some)` values of a `Result<Option<T>, E>` (and `Ok(None)` with `cache_none`).
#[doc(hidden)]
pub struct OkSomeOf;

impl<T> Shape<T> for Whole {
    type Stored = T;
    type Failure = Infallible;

    fn from_failure(failure: Infallible) -> T {
        match failure {}
    }

    fn stored(output: &T, _: bool) -> Option<Entry<&T>> {
        Some(Entry::Value(output))
    }

    fn output(stored: Entry<T>) -> Option<T> {
        match stored {
            Entry::Value(value) => Some(value),
            Entry::Absent => None,
        }
    }
}

impl<T, E> Shape<Result<T, E>> for OkOf {
    type Stored = T;
    type Failure = E;

    fn failure(output: &Result<T, E>) -> Option<&E> {
        output.as_ref().err()
    }

    fn from_failure(failure: E) -> Result<T, E> {
        Err(failure)
    }

    fn stored(output: &Result<T, E>, _: bool) -> Option<Entry<&T>> {
        output.as_ref().ok().map(Entry::Value)
    }

    fn output(stored: Entry<T>) -> Option<Result<T, E>> {
        Whole::output(stored).map(Ok)
    }
}

impl<T> Shape<Option<T>> for SomeOf {
    type Stored = T;
    type Failure = Infallible;

    fn from_failure(failure: Infallible) -> Option<T> {
        match failure {}
    }

    fn stored(output: &Option<T>, cache_none: bool) -> Option<Entry<&T>> {
        match output {
            Some(value) => Some(Entry::Value(value)),
            None => cache_none.then_some(Entry::Absent),
        }
    }

    fn output(stored: Entry<T>) -> Option<Option<T>> {
        Some(match stored {
            Entry::Value(value) => Some(value),
            Entry::Absent => None,
        })
    }
}

impl<T, E> Shape<Result<Option<T>, E>> for OkSomeOf {
    type Stored = T;
    type Failure = E;

    fn failure(output: &Result<Option<T>, E>) -> Option<&E> {
        output.as_ref().err()
    }

    fn from_failure(failure: E) -> Result<Option<T>, E> {
        Err(failure)
    }

    fn stored(output: &Result<Option<T>, E>, cache_none: bool) -> Option<Entry<&T>> {
        output
            .as_ref()
            .ok()
            .and_then(|value| SomeOf::stored(value, cache_none))
    }

    fn output(stored: Entry<T>) -> Option<Result<Option<T>, E>> {
        SomeOf::output(stored).map(Ok)
    }
}
