//! The rules between the parts of a view, all reported together: the keys tell a generic
//! function's instantiations apart, or `key_ignores` says why they need not (`generics`),
//! `cache_none` is only given where the stored part is an `Option`, and a batch function's
//! key names its ids (`batch`).

use crate::args::Ttl;
use crate::batch::BatchParam;
use crate::errors::Errors;
use crate::generics::{self, Use};
use crate::model::{CachedFn, InvalidatingFn};
use crate::template::{Placeholder, Segment};
use std::slice;

impl CachedFn<'_> {
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        generics::check(
            self.function,
            slice::from_ref(&self.key),
            self.key_ignores.as_deref(),
            Use::Cached,
            &mut errors,
        );
        if let Some(batch) = &self.batch {
            self.batch_errors(batch, &mut errors);
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
        errors.check()
    }

    /// A batch function's rules: its key names the batch parameter, and it takes no option
    /// the batch form does not support.
    fn batch_errors(&self, batch: &BatchParam, errors: &mut Errors) {
        let names_ids = self.key.template.segments.iter().any(|segment| {
            matches!(segment, Segment::Placeholder(Placeholder { root, .. }) if *root == batch.ident)
        });
        if !names_ids {
            let ids = &batch.ident;
            errors.push(syn::Error::new_spanned(
                &self.key.lit,
                format!(
                    "the key of a batch function must name its batch parameter `<{ids}>`: it is \
                     rendered once per id, as in `key = \"employee:<{ids}>\"`"
                ),
            ));
        }
        let unsupported = |option: &str, span: &dyn quote::ToTokens| {
            syn::Error::new_spanned(
                span,
                format!(
                    "`{option}` is not supported with `batch`: remove it, or cache a function \
                     of one id instead"
                ),
            )
        };
        if let Some(tag) = self.tags.first() {
            errors.push(unsupported("tags", &tag.lit));
        }
        if let Some(flag) = &self.near_cache {
            errors.push(unsupported("near_cache", flag));
        }
        if let Some(refresh) = &self.refresh {
            errors.push(unsupported("refresh", refresh));
        }
        if let Some(flag) = &self.cache_none {
            errors.push(unsupported("cache_none", flag));
        }
        if let Some(Ttl::Expr(expr)) = &self.ttl {
            errors.push(unsupported("ttl = <expression>", expr));
        }
        if let Some(ttl_from) = &self.ttl_from {
            errors.push(unsupported("ttl_from", ttl_from));
        }
        let windows = &self.windows;
        let names = [
            windows.stale.as_ref().map(|(name, _)| name),
            windows.stale_if_error.as_ref().map(|(name, _)| name),
            windows.refresh_ahead.as_ref().map(|(name, _)| name),
            windows.background.as_ref(),
        ];
        for name in names.into_iter().flatten() {
            errors.push(unsupported(&name.to_string(), name));
        }
    }
}

impl InvalidatingFn<'_> {
    /// Tags group entries across instantiations: only keys must tell them apart.
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        if !self.keys.is_empty() {
            generics::check(
                self.function,
                &self.keys,
                self.key_ignores.as_deref(),
                Use::Invalidation,
                &mut errors,
            );
        }
        errors.check()
    }
}
