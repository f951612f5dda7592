//! `#[cache_put("user:<id>", ...)]`: the write-through form. Its arguments are key templates
//! and the options that say how `#[redis_cached]` stores an entry (`ttl`, `jitter`, `version`,
//! `tags`, `cache_none`, `stale`, `stale_if_error`, `refresh_ahead`, `cache`, `key_ignores`); it is read into the
//! same view as a cached function (its first key as the key), so the entry it stores is the
//! one the reading function would have stored, and checked and expanded with the same code.

use crate::args::{self, CachedArgs, KeyIgnores, Tags, kw};
use crate::errors::Errors;
use crate::expand;
use crate::generics::{self, Use};
use crate::model::{self, CachedFn, Key};
use crate::register;
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, ItemFn, Lit, LitBool, LitStr};

/// The named arguments of `#[cache_put]`, besides its key templates.
pub(crate) const PUT_ARGUMENTS: &[&str] = &[
    "ttl",
    "jitter",
    "version",
    "cache",
    "cache_none",
    "key_ignores",
    "tags",
    "stale",
    "stale_if_error",
    "refresh_ahead",
];

/// `#[cache_put("...", "...", ttl = ..., ...)]`, as written.
pub(crate) struct PutArgs {
    keys: Vec<LitStr>,
    ttl: Option<Expr>,
    jitter: Option<Expr>,
    version: Option<Expr>,
    cache: Option<Expr>,
    cache_none: Option<LitBool>,
    key_ignores: Option<KeyIgnores>,
    tags: Option<Tags>,
    stale: Option<(Ident, Expr)>,
    stale_if_error: Option<(Ident, Expr)>,
    refresh_ahead: Option<(Ident, Lit)>,
}

impl Parse for PutArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut put = PutArgs {
            keys: Vec::new(),
            ttl: None,
            jitter: None,
            version: None,
            cache: None,
            cache_none: None,
            key_ignores: None,
            tags: None,
            stale: None,
            stale_if_error: None,
            refresh_ahead: None,
        };
        let hint = format!(
            "expected a key template such as \"user:<id>\", or one of {}",
            args::one_of(PUT_ARGUMENTS)
        );
        args::parse_list(input, PUT_ARGUMENTS, &hint, |input, lookahead| {
            if lookahead.peek(LitStr) {
                put.keys.push(input.parse()?);
            } else if lookahead.peek(kw::ttl) {
                args::set_once(&mut put.ttl, args::value::<kw::ttl, Expr>(input)?)?;
            } else if lookahead.peek(kw::jitter) {
                args::set_once(&mut put.jitter, args::value::<kw::jitter, Expr>(input)?)?;
            } else if lookahead.peek(kw::version) {
                args::set_once(&mut put.version, args::value::<kw::version, Expr>(input)?)?;
            } else if lookahead.peek(kw::cache_none) {
                let flag = args::value::<kw::cache_none, LitBool>(input)?;
                args::set_once(&mut put.cache_none, flag)?;
            } else if lookahead.peek(kw::cache) {
                args::set_once(&mut put.cache, args::value::<kw::cache, Expr>(input)?)?;
            } else if lookahead.peek(kw::key_ignores) {
                let ignores = args::value::<kw::key_ignores, KeyIgnores>(input)?;
                args::set_once(&mut put.key_ignores, ignores)?;
            } else if lookahead.peek(kw::tags) {
                args::set_once(&mut put.tags, args::value::<kw::tags, Tags>(input)?)?;
            } else if lookahead.peek(kw::refresh_ahead) {
                let flag = args::refresh_ahead_flag(input)?;
                args::set_once(&mut put.refresh_ahead, flag)?;
            } else if lookahead.peek(kw::stale_if_error) {
                let window = args::named::<kw::stale_if_error, Expr>(input)?;
                args::set_once(&mut put.stale_if_error, window)?;
            } else if lookahead.peek(kw::stale) {
                args::set_once(&mut put.stale, args::named::<kw::stale, Expr>(input)?)?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(put)
    }
}

/// Whether a template has a placeholder rooted at `return` (`<return>`, `<return.id>`):
/// refused here with the reason, before the template grammar refuses it in the terms of
/// `#[redis_cached]`.
fn names_result(lit: &LitStr) -> bool {
    let text = lit.value();
    text.match_indices("<return").any(|(at, _)| {
        let rest = &text[at + "<return".len()..];
        rest.starts_with('>') || rest.starts_with('.')
    })
}

/// `#[cache_put]` on `function`: the view of a cached function under its first key, and the
/// view of its other keys.
pub(crate) struct PutFn<'a> {
    cached: CachedFn<'a>,
    more: Vec<Key>,
}

impl<'a> PutFn<'a> {
    pub(crate) fn from_syn(args: PutArgs, function: &'a ItemFn) -> syn::Result<Self> {
        let mut errors = Errors::default();
        if args.keys.is_empty() {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[cache_put] needs at least one key template, as in #[cache_put(\"user:<id>\")]: \
                 the keys the returned value is stored under",
            ));
        }
        let templates = args
            .keys
            .iter()
            .chain(args.tags.iter().flat_map(|tags| &tags.0));
        for lit in templates.filter(|lit| names_result(lit)) {
            errors.push(syn::Error::new_spanned(
                lit,
                "a #[cache_put] key or tag cannot name the result: its fence is put on the key \
                 before the body runs, so that a write overlapping this one cannot be \
                 overwritten; name such keys in an #[invalidates] on the same function instead",
            ));
        }
        if function.sig.asyncness.is_none() {
            errors.push(syn::Error::new_spanned(
                function.sig.fn_token,
                "#[cache_put] only applies to `async fn`: add `async` before `fn`",
            ));
        }
        errors.check()?;
        let mut keys = args.keys.into_iter();
        let cached = CachedArgs {
            key: keys.next(),
            ttl: args.ttl,
            jitter: args.jitter,
            ttl_from: None,
            stale: args.stale,
            stale_if_error: args.stale_if_error,
            refresh_ahead: args.refresh_ahead,
            revalidate: None,
            timeout: None,
            soft_timeout: None,
            version: args.version,
            refresh: None,
            cache: args.cache,
            cache_none: args.cache_none,
            near_cache: None,
            key_ignores: args.key_ignores,
            tags: args.tags,
            batch: None,
        };
        let cached = CachedFn::from_syn(cached, function)?;
        let more = keys
            .map(|lit| Key::of_arguments(lit, function))
            .collect::<syn::Result<Vec<_>>>()?;
        Ok(PutFn { cached, more })
    }

    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        if let Err(error) = self.cached.validate() {
            errors.push(error);
        }
        if !self.more.is_empty() {
            generics::check(
                self.cached.function,
                &self.more,
                self.cached.key_ignores.as_deref(),
                Use::Cached,
                &mut errors,
            );
        }
        errors.check()
    }

    // The function runs its body between a fence on its keys and the store of its value:
    //
    //     let __redis_cached_put = __private::Put::new(
    //         __private::Call::new(__private::global(), "path::update_user", |key| ..)
    //             .ttl(3600), // the options, as `#[redis_cached]` writes them
    //     )
    //     .key(|key| ..); // the keys after the first
    //     let __redis_cached_body = __private::pin!(async move { /* body */ });
    //     let __redis_cached_stores = __private::stored_ok::<User>(); // as `#[redis_cached]`
    //     __private::cache_put::<__private::OkOf, _, _>(
    //         __redis_cached_put, __redis_cached_stores, __redis_cached_body,
    //     )
    //     .await
    pub(crate) fn expand(&self) -> TokenStream {
        let cached = &self.cached;
        let function = cached.function;
        let output_span = model::output_span(function);
        let shape = expand::shape(cached.shape, output_span);
        let call = expand::call(cached);
        let more = self.more.iter().map(|key| expand::render(&key.template));
        let body = expand::body(function);
        let stores = expand::stores(cached, function.sig.ident.span());
        let keys = std::iter::once(&cached.key).chain(&self.more);
        let registration = register::deleting(function, keys, &[]);
        let put = quote::quote_spanned! {output_span=>
            ::redis_cached::__private::cache_put::<#shape, _, _>(
                __redis_cached_put,
                __redis_cached_stores,
                __redis_cached_body,
            )
        };
        expand::rewrite(
            function,
            quote! {
                #registration
                let __redis_cached_put = ::redis_cached::__private::Put::new(#call)
                    #(.key(#more))*;
                let __redis_cached_body = ::redis_cached::__private::pin!(#body);
                let __redis_cached_stores = #stores;
                #put
            },
            output_span,
        )
    }
}
