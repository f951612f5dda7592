//! The rules between the parts of a view, all reported together: the keys tell a generic
//! function's instantiations apart, or `key_ignores` says why they need not (`generics`),
//! `cache_none` is only given where the stored part is an `Option`, and a batch function's
//! key names its ids and it takes no option the batch form refuses (`batch`).

use crate::args::{NOT_WITH_BATCH, Ttl};
use crate::batch::{self, BatchParam};
use crate::errors::Errors;
use crate::generics::{self, Use};
use crate::model::{CachedFn, InvalidatingFn};
use quote::ToTokens;
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
        if let Some((name, _)) = &self.timeout
            && !self.shape.is_result()
        {
            errors.push(syn::Error::new(
                name.span(),
                "`timeout` answers a body that runs too long with `Err(redis_cached::TimedOut.into())`, \
                 but this function returns no `Result`: return `Result<T, E>` with \
                 `E: From<redis_cached::TimedOut>`, or remove it",
            ));
        }
        if let Some((name, _)) = &self.soft_timeout
            && self.windows.stale.is_none()
            && self.windows.stale_if_error.is_none()
            && self.batch.is_none()
        {
            errors.push(syn::Error::new(
                name.span(),
                "`soft_timeout` serves the stored value when the body runs longer, which needs \
                 a window in which it may still be served: add `stale = \"..\"` or \
                 `stale_if_error = \"..\"`, or remove it",
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
        if !batch::names(&self.key.template, &batch.ident) {
            let ids = &batch.ident;
            errors.push(syn::Error::new_spanned(
                &self.key.lit,
                format!(
                    "the key of a batch function must name its batch parameter `<{ids}>`: it is \
                     rendered once per id, as in `key = \"employee:<{ids}>\"`"
                ),
            ));
        }
        let unsupported = |option: &str, span: &dyn ToTokens| {
            syn::Error::new_spanned(
                span,
                format!(
                    "`{option}` is not supported with `batch`: remove it, or cache a function \
                     of one id instead"
                ),
            )
        };
        for option in NOT_WITH_BATCH {
            if let Some(given) = self.given(option) {
                errors.push(unsupported(option, given));
            }
        }
    }

    /// Where `option`, an entry of `NOT_WITH_BATCH`, is given, if it is.
    fn given(&self, option: &str) -> Option<&dyn ToTokens> {
        let windows = &self.windows;
        match option {
            "tags" => self.tags.first().map(|tag| &tag.lit as _),
            "near_cache" => self.near_cache.as_ref().map(|flag| flag as _),
            "refresh" => self.refresh.as_ref().map(|refresh| refresh as _),
            "cache_none" => self.cache_none.as_ref().map(|flag| flag as _),
            "ttl = <expression>" => match &self.ttl {
                Some(Ttl::Expr(expr)) => Some(expr),
                _ => None,
            },
            "ttl_from" => self.ttl_from.as_ref().map(|ttl_from| ttl_from as _),
            "stale" => windows.stale.as_ref().map(|(name, _)| name as _),
            "stale_if_error" => windows.stale_if_error.as_ref().map(|(name, _)| name as _),
            "refresh_ahead" => windows.refresh_ahead.as_ref().map(|(name, _)| name as _),
            "revalidate = \"background\"" => windows.background.as_ref().map(|name| name as _),
            "timeout" => self.timeout.as_ref().map(|(name, _)| name as _),
            "soft_timeout" => self.soft_timeout.as_ref().map(|(name, _)| name as _),
            // Unreachable for the entries: the test below gives each one.
            _ => None,
        }
    }
}

impl InvalidatingFn<'_> {
    /// Tags group entries across instantiations: only keys must tell them apart. With
    /// `each = ids`, some template names `<ids>`, and none of those names the result (it is
    /// rendered after the body, which has the ids then).
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        if let Some(ids) = &self.each {
            let templates = || self.keys.iter().chain(&self.tags);
            if !templates().any(|key| batch::names(&key.template, ids)) {
                errors.push(syn::Error::new_spanned(
                    ids,
                    format!(
                        "no template names `<{ids}>`: `each = {ids}` renders the templates that \
                         name it once per element, as in \
                         `#[invalidates(\"employee:<{ids}>\", each = {ids})]`; name it, or \
                         remove `each`"
                    ),
                ));
            }
            for key in templates().filter(|key| batch::names(&key.template, ids)) {
                if key.template.names_result() {
                    errors.push(syn::Error::new_spanned(
                        &key.lit,
                        format!(
                            "a template rendered once per element of `{ids}` cannot also name \
                             `<return>`: split it into two templates"
                        ),
                    ));
                }
            }
        }
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

#[cfg(test)]
mod tests {
    //! The batch form refuses every option of `NOT_WITH_BATCH`, each with its own error.

    use crate::args::NOT_WITH_BATCH;
    use crate::model::CachedFn;

    #[test]
    fn batch_refuses_each_listed_option() -> syn::Result<()> {
        let args = syn::parse_str(
            r#"key = "employee:<ids>", batch = ids, tags = ["employees"], near_cache = true,
               refresh = false, cache_none = true, ttl = Duration::from_secs(60),
               ttl_from = ttl_of, stale = "1m", stale_if_error = "1h", refresh_ahead,
               revalidate = "background", timeout = "2s", soft_timeout = "200ms""#,
        )?;
        let function = syn::parse_str(
            "async fn employees(ids: &[i64]) -> Result<HashMap<i64, String>, String> { todo!() }",
        )?;
        let Err(errors) = CachedFn::from_syn(args, &function)?.validate() else {
            panic!("a batch function with every refused option passed validation");
        };
        let messages: Vec<String> = errors.into_iter().map(|error| error.to_string()).collect();
        for option in NOT_WITH_BATCH {
            let refusal = format!("`{option}` is not supported with `batch`");
            assert!(
                messages.iter().any(|message| message.starts_with(&refusal)),
                "no error says {refusal:?}; the errors: {messages:#?}"
            );
        }
        Ok(())
    }
}
