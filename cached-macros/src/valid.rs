//! The rules between the parts of a view, all reported together: the keys tell a generic
//! function's instantiations apart, or `key_ignores` says why they need not (`generics`),
//! `cache_none` is only given where the stored part is an `Option`, and a batch function's
//! key names its ids (`batch`).

use crate::errors::Errors;
use crate::generics::{self, Use};
use crate::model::{CachedFn, InvalidatingFn};
use std::slice;

impl CachedFn<'_> {
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        errors.check(generics::check(
            self.function,
            slice::from_ref(&self.key),
            self.key_ignores.as_deref(),
            Use::Cached,
        ));
        if let Some(batch) = &self.batch {
            self.batch_errors(batch)
                .into_iter()
                .for_each(|error| errors.push(error));
        } else if let Some(flag) = &self.cache_none
            && !self.shape.is_option()
        {
            errors.push(syn::Error::new_spanned(
                flag,
                "`cache_none` only applies to functions returning `Option<T>` or `Result<Option<T>, E>`",
            ));
        }
        if let Some((name, _)) = &self.windows.stale_if_error
            && !self.shape.is_result()
        {
            errors.push(syn::Error::new(
                name.span(),
                "`stale_if_error` answers an `Err` of the body with the last stored value, but \
                 this function returns no `Result`: return `Result<T, E>`, or remove it",
            ));
        }
        if let (Some(flag), Some(window)) = (&self.near_cache, self.windows.first()) {
            errors.push(syn::Error::new_spanned(
                flag,
                format!(
                    "`near_cache` cannot be combined with `{window}`: an entry that may be \
                     served past its TTL is judged on every read from Redis, never held in the \
                     near cache; remove `near_cache`"
                ),
            ));
        }
        errors.finish()
    }
}

impl InvalidatingFn<'_> {
    /// Tags group entries across instantiations: only keys must tell them apart.
    pub(crate) fn validate(&self) -> syn::Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        generics::check(
            self.function,
            &self.keys,
            self.key_ignores.as_deref(),
            Use::Invalidation,
        )
    }
}
