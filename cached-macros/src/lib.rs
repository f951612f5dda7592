//! Procedural macros of [`redis-cached`](https://docs.rs/redis-cached). Depend on
//! `redis-cached` instead: the generated code refers to it, and its documentation describes
//! both attributes in full.
//!
//! Each attribute runs the same pipeline: parse the arguments (`args`), read the function
//! into a typed view (`model`, with `template` for the keys and `shape` for the return
//! type), check the rules between its parts (`valid`, with `generics`), and write the tokens
//! (`expand`). The errors of a step are reported together (`errors`).

mod args;
mod batch;
mod errors;
mod expand;
mod generics;
mod model;
mod put;
mod register;
mod shape;
mod template;
mod valid;

use model::{CachedFn, InvalidatingFn};
use proc_macro::TokenStream;
use syn::{ItemFn, TraitItemFn, parse_macro_input};

/// The attribute documented at
/// [`redis_cached::redis_cached`](https://docs.rs/redis-cached/latest/redis_cached/attr.redis_cached.html):
/// depend on `redis-cached`, which re-exports it.
#[proc_macro_attribute]
pub fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| {
        let cached = CachedFn::from_syn(syn::parse(args)?, function)?;
        cached.validate()?;
        Ok(expand::cached(&cached))
    })
}

/// The attribute documented at
/// [`redis_cached::invalidates`](https://docs.rs/redis-cached/latest/redis_cached/attr.invalidates.html):
/// depend on `redis-cached`, which re-exports it.
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| {
        let invalidating = InvalidatingFn::from_syn(syn::parse(args)?, function)?;
        invalidating.validate()?;
        Ok(expand::invalidates(&invalidating))
    })
}

/// The attribute documented at
/// [`redis_cached::cache_put`](https://docs.rs/redis-cached/latest/redis_cached/attr.cache_put.html):
/// depend on `redis-cached`, which re-exports it.
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| {
        let put = put::PutFn::from_syn(syn::parse(args)?, function)?;
        put.validate()?;
        Ok(put.expand())
    })
}

/// Expands the function; on an error, emits the error next to the unchanged item so that
/// one mistake does not cascade into errors at every call site.
fn expand_or_keep(
    item: TokenStream,
    expand: impl FnOnce(&ItemFn) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    if let Ok(declaration) = syn::parse::<TraitItemFn>(item.clone())
        && declaration.default.is_none()
    {
        let error = syn::Error::new_spanned(
            declaration.sig.fn_token,
            "this attribute needs the function's body: put it on the method in the `impl` block, \
             not on the trait's declaration",
        );
        let error = error.into_compile_error();
        return quote::quote!(#error #original).into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(&function) {
        Ok(tokens) => expand::own_locals_resolved(tokens).into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote!(#error #original).into()
        }
    }
}
