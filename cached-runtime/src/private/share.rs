//! How a failed fill hands its `Err` to the callers that waited for it: a clone each, when
//! the error type is `Clone`. Which it is, the generated code finds out without a bound on
//! the user's function, by autoref specialization on the shape's failure type:
//!
//! ```ignore
//! use ::redis_cached::__private::{CloneOutput as _, KeepOutput as _};
//! (&::redis_cached::__private::Probe::<<OkOf as Shape<ReturnType>>::Failure>::new()).sharing()
//! ```
//!
//! `Probe<R>` has `sharing` through [`CloneOutput`] only when `R: Clone + Send + Sync +
//! 'static`; otherwise method lookup takes one more reference and finds [`KeepOutput`]'s,
//! which shares nothing. (In a generic function whose return type names a type parameter,
//! the bound cannot be proven, and nothing is shared.)

use crate::flight::Shared;
use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

/// How the failures (`E`) of a function are shared with the callers that waited for them.
pub struct Sharing<R> {
    share: Option<fn(&R) -> Shared>,
    take: fn(&(dyn Any + Send + Sync)) -> Option<R>,
}

impl<R> Clone for Sharing<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Sharing<R> {}

impl<R> Sharing<R> {
    /// Nothing is shared.
    pub fn none() -> Self {
        Sharing {
            share: None,
            take: |_| None,
        }
    }

    /// `output`, for the callers waiting for it, when it can be shared.
    pub(crate) fn share(&self, output: &R) -> Option<Shared> {
        self.share.map(|share| share(output))
    }

    /// A clone of a shared output.
    pub(crate) fn take(&self, shared: &(dyn Any + Send + Sync)) -> Option<R> {
        (self.take)(shared)
    }
}

impl<R: Clone + Send + Sync + 'static> Sharing<R> {
    fn cloned() -> Self {
        Sharing {
            share: Some(|output| Arc::new(output.clone())),
            take: |shared| shared.downcast_ref::<R>().cloned(),
        }
    }
}

/// What the generated code asks how to share `R` (see the module's docs).
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    #[allow(clippy::new_without_default)] // Named by generated code only.
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

/// `Probe<R>::sharing` for an `R` that can be cloned into other tasks.
pub trait CloneOutput<R> {
    fn sharing(&self) -> Sharing<R>;
}

impl<R: Clone + Send + Sync + 'static> CloneOutput<R> for Probe<R> {
    fn sharing(&self) -> Sharing<R> {
        Sharing::cloned()
    }
}

/// `Probe<R>::sharing` for every other `R`: nothing is shared.
pub trait KeepOutput<R> {
    fn sharing(&self) -> Sharing<R>;
}

impl<R> KeepOutput<R> for &Probe<R> {
    fn sharing(&self) -> Sharing<R> {
        Sharing::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_borrow)] // The reference is what the dispatch turns on.
    fn clone_outputs_are_shared_and_others_are_not() {
        let cloned = (&Probe::<Result<u32, String>>::new()).sharing();
        let shared = cloned.share(&Err("down".to_owned()));
        let back = shared.and_then(|shared| cloned.take(&*shared));
        assert_eq!(back, Some(Err("down".to_owned())));

        struct NotClone;
        let kept = (&Probe::<Result<u32, NotClone>>::new()).sharing();
        assert!(kept.share(&Ok(1)).is_none());
    }
}
