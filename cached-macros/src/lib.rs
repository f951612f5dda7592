//! Procedural macros of [`redis-cached`](https://docs.rs/redis-cached). Depend on
//! `redis-cached` instead: the generated code refers to it, and its documentation describes
//! both attributes in full.

mod args;
mod expand;
mod generics;
mod template;

use proc_macro::TokenStream;
use syn::{ItemFn, TraitItemFn, parse_macro_input};

/// Caches an `async fn`'s result in Redis under a key rendered from its arguments.
///
/// On each call: render the key, look it up, and on a hit return the decoded value; on a
/// miss run the body and store its result with a TTL. Cache failures never fail the call.
///
/// Arguments:
/// - `key = "user:<id>"` (required): the key template; `<name>` is a parameter (or a name a
///   parameter's pattern binds), `<name.field>` a field, `<self.field>` a field of `self`.
/// - `ttl = 3600` or `ttl = "15m"` (`s`, `m`, `h`, `d`): how long entries live; omitted,
///   the cache's default TTL.
/// - `refresh = <bool expr>`: when true, skip the lookup, run the body, overwrite the entry.
/// - `cache = <expr>`: a `Cache` or `&Cache` to use instead of the process-wide one.
/// - `cache_none = true`: for `Option` returns, store `None` too.
/// - `near_cache = true|false`: use the cache's near tier for this function, or not; with
///   `true` the tier holds the decoded value, which must then be `Clone`.
///
/// ```
/// use redis_cached::redis_cached;
///
/// #[redis_cached(key = "square:<n>", ttl = "1h")]
/// async fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// assert_eq!(square(12).await, 144); // runs the body
/// assert_eq!(square(12).await, 144); // from the cache
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| expand::cached(syn::parse(args)?, function))
}

/// Deletes cache keys rendered from an `async fn`'s arguments after its body ran.
///
/// Takes one or more key templates (the grammar of `#[redis_cached]`'s `key`) and an
/// optional `cache = <expr>`. The keys are rendered at entry and deleted with one command
/// after the body, whatever it returned.
///
/// ```
/// use redis_cached::{invalidates, redis_cached};
///
/// #[redis_cached(key = "user:<id>", ttl = 60)]
/// async fn user_name(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// #[invalidates("user:<id>", "users:all")]
/// async fn rename_user(id: u64, name: &str) -> Result<(), String> {
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// user_name(1).await;
/// rename_user(1, "Ada").await.ok();
/// # Ok(()) }
/// ```
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
