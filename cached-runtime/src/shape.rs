//! Which part of a function's return value is stored: the whole value, the `Ok` of a
//! `Result`, the `Some` of an `Option`. The macro picks a shape from the return type's last
//! path segment.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a return type maps to the value stored under its key.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "the return type `{R}` cannot be cached",
    label = "the cached value must implement `Serialize` and `DeserializeOwned`",
    note = "a cached function returns `T`, `Result<T, E>`, `Option<T>` or `Result<Option<T>, E>` where `T: Serialize + DeserializeOwned`"
)]
pub trait Shape<R> {
    /// What is stored.
    type Stored: Serialize + DeserializeOwned;

    /// The part of `output` to store, if any.
    fn stored(output: &R, cache_none: bool) -> Option<&Self::Stored>;

    /// The output a stored value stands for.
    fn output(stored: Self::Stored) -> R;
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

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Shape<T> for Whole {
    type Stored = T;

    fn stored(output: &T, _: bool) -> Option<&T> {
        Some(output)
    }

    fn output(stored: T) -> T {
        stored
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned, E> Shape<Result<T, E>> for OkOf {
    type Stored = T;

    fn stored(output: &Result<T, E>, _: bool) -> Option<&T> {
        output.as_ref().ok()
    }

    fn output(stored: T) -> Result<T, E> {
        Ok(stored)
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Shape<Option<T>> for SomeOf {
    type Stored = Option<T>;

    fn stored(output: &Option<T>, cache_none: bool) -> Option<&Option<T>> {
        (output.is_some() || cache_none).then_some(output)
    }

    fn output(stored: Option<T>) -> Option<T> {
        stored
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned, E> Shape<Result<Option<T>, E>> for OkSomeOf {
    type Stored = Option<T>;

    fn stored(output: &Result<Option<T>, E>, cache_none: bool) -> Option<&Option<T>> {
        output
            .as_ref()
            .ok()
            .filter(|value| value.is_some() || cache_none)
    }

    fn output(stored: Option<T>) -> Result<Option<T>, E> {
        Ok(stored)
    }
}
