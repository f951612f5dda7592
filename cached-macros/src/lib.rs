//! Procedural macros of [`redis-cached`](https://docs.rs/redis-cached). Depend on
//! `redis-cached` instead: the generated code refers to it, and its documentation describes
//! both attributes in full.

mod args;
mod expand;
mod template;

use proc_macro::TokenStream;
use syn::{ItemFn, TraitItemFn, parse_macro_input};

/// Caches an `async fn`'s result in Redis under a key rendered from its arguments.
///
/// See the `redis-cached` crate documentation for every argument.
#[proc_macro_attribute]
pub fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| expand::cached(syn::parse(args)?, function))
}

/// Deletes cache keys rendered from an `async fn`'s arguments after its body ran.
///
/// See the `redis-cached` crate documentation for every argument.
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| {
        expand::invalidates(syn::parse(args)?, function)
    })
}

/// Expands the function; on an error, emits the error next to the unchanged item so that
/// one mistake does not cascade into errors at every call site.
fn expand_or_keep(
    item: TokenStream,
    expand: impl FnOnce(ItemFn) -> syn::Result<proc_macro2::TokenStream>,
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
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote!(#error #original).into()
        }
    }
}
