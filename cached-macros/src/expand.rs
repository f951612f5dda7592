//! Code generation: writes the tokens of a validated view, the user's function kept as
//! written, with its body run through the runtime's cache-aside (`cached`) or invalidation
//! (`invalidate`) helper. Every runtime item is reached through `::redis_cached::__private`.

use crate::args::Ttl;
use crate::batch::{self, BatchParam};
use crate::model::{CacheSource, CachedFn, InvalidatingFn, Key, output_span};
use crate::register;
use crate::shape::{Shape, Stored};
use crate::template::{Placeholder, RootKind, Segment, Template};
use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, FnArg, Ident, ItemFn, Pat, ReturnType};

// `#[redis_cached]`: render the key at entry, then look up, or run the body and store.
//
// Input:
//
//     #[redis_cached(key = "user:<id>", ttl = 60)]
//     async fn user(id: u64) -> Result<User, Error> {
//         /* body */
//     }
//
// Output (`__private` is `::redis_cached::__private`):
//
//     async fn user(id: u64) -> Result<User, Error> {
//         let __redis_cached_call = __private::Call::new(
//             __private::global(), // or `__private::explicit(&(<expr>))` for `cache = <expr>`
//             __private::concat!(__private::module_path!(), "::", "user"),
//             |__redis_cached_key: &mut __private::KeyBuilder| {
//                 __redis_cached_key.literal("user:");
//                 __redis_cached_key.part(&id);
//             },
//         )
//         // `.tag(|__redis_cached_key| ..)` per tag, then
//         .ttl(60u64); // `.ttl_value(<expr>)` for `ttl = <expr>`; and `.jitter(0.1f64)`,
//         // `.refresh(..)`, `.cache_none(..)`, `.near(..)`, `.stale(..)`, `.stale_if_error(..)`,
//         // `.refresh_ahead(..)`, `.timeout(..)` as given (with `timeout`, the body below is
//         // `async move { __private::time_limit::<OkOf, _, _>(ms, async move { .. }).await }`)
//         // Pinned here, in the function's own future, so that the runtime's futures hold a
//         // pointer to the body rather than copies of it.
//         let __redis_cached_body = __private::pin!(async move {
//             #[allow(unreachable_code, /* and clippy's lints on the next lines */)]
//             if false {
//                 let __redis_cached_unreachable: Result<User, Error> = loop {};
//                 return __redis_cached_unreachable;
//             }
//             /* body */
//         });
//         // `near_clone::<User>(..)` around the check, for `near_cache = true`, and
//         // `ttl_from(.., |value| IntoTtl::into_ttl((<fn>)(value)))` for `ttl_from = <fn>`.
//         let __redis_cached_stores = __private::stored_ok::<User>();
//         __private::cached::<__private::OkOf, _, _>(
//             __redis_cached_call,
//             __redis_cached_stores,
//             // How a failed fill hands its `Err` to its waiters: cloned, if `Error` is
//             // `Clone` (see `sharing`).
//             { use __private::{CloneOutput as _, KeepOutput as _};
//               (&__private::Probe::<
//                   <__private::OkOf as __private::Shape<Result<User, Error>>>::Failure,
//               >::new()).sharing() },
//             __redis_cached_body,
//         )
//         .await
//     }
//
// The shape (`Whole`, `OkOf`, `SomeOf`, `OkSomeOf`) follows the return type; the `cached::<..>`
// call and `.await` are spanned on the return type, so that a return type that is not the
// `Result` its name says is reported there. The stored type (`User`) is checked by the
// shape's check (`stored_whole`, `stored_ok`, `stored_some`, `stored_ok_some`) written on its
// own tokens, so that an unstorable type is reported once, at its name: `cached` puts no
// bound on it. Through an alias, or with an `impl Trait`, the check infers the type (`_`).
//
// A hash tag's `#{` and `}` are `.hash_tag_open()` and `.hash_tag_close()` between the
// other steps: `"#{tenant:<t>}:<id>"` is `hash_tag_open(); literal("tenant:"); part(&t);
// hash_tag_close(); literal(":"); part(&id);`.
pub(crate) fn cached(cached: &CachedFn) -> TokenStream {
    if let Some(batch) = &cached.batch {
        return self::batch(cached, batch);
    }
    let function = cached.function;
    let output_span = output_span(function);
    let shape = shape(cached.shape, output_span);
    let stores = stores(cached, function.sig.ident.span());
    let body = body(function);
    // With `timeout`, the body is dropped at the limit and the call returns the shape's
    // `Err(TimedOut.into())`, reported at `timeout` when the error type cannot hold it.
    let body = match &cached.timeout {
        Some((name, millis)) => quote_spanned! {name.span()=>
            async move {
                ::redis_cached::__private::time_limit::<#shape, _, _>(#millis, #body).await
            }
        },
        None => body,
    };
    // With `revalidate = "background"` or `soft_timeout`, boxed: a claimed refresh, or a body
    // that outlives `soft_timeout`, runs it to its end in a task of its own.
    let (pinned, cached_fn) =
        if cached.windows.background.is_some() || cached.soft_timeout.is_some() {
            let boxed = quote_spanned! {function.sig.ident.span()=>
                ::redis_cached::__private::Box::pin(#body)
            };
            (boxed, quote!(cached_revalidating))
        } else {
            (
                quote!(::redis_cached::__private::pin!(#body)),
                quote!(cached),
            )
        };
    let sharing = sharing(function, &shape);
    // Spanned on the return type: a return type of no known shape is reported there.
    let call = quote_spanned! {output_span=>
        ::redis_cached::__private::#cached_fn::<#shape, _, _>(
            __redis_cached_call,
            __redis_cached_stores,
            #sharing,
            __redis_cached_body,
        )
    };
    let registration = register::cached(cached);
    let new_call = self::call(cached);
    rewrite(
        function,
        quote! {
            #registration
            let __redis_cached_call = #new_call;
            // Pinned here, in the function's own future, so that the runtime's futures hold
            // a pointer to the body rather than copies of it.
            let __redis_cached_body = #pinned;
            // A statement of its own: an error in it is not taken for one in an argument of
            // `cached` (the compiler would suggest borrowing instead of showing the message).
            let __redis_cached_stores = #stores;
            #call
        },
        output_span,
    )
}

/// What the expansion's own locals (`__redis_cached_call`, ...) are named with.
const LOCAL_PREFIX: &str = "__redis_cached_";

/// `tokens`, the expansion, with each of its own locals resolved where the attribute is,
/// whatever place (span) it was written at, which stays for errors: a local written at a
/// token of another expansion (a return type given to a `macro_rules!` macro) would
/// otherwise not see its declaration.
pub(crate) fn own_locals_resolved(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(mut ident) if ident.to_string().starts_with(LOCAL_PREFIX) => {
                ident.set_span(Span::call_site().located_at(ident.span()));
                TokenTree::Ident(ident)
            }
            TokenTree::Group(group) => {
                let mut resolved =
                    Group::new(group.delimiter(), own_locals_resolved(group.stream()));
                resolved.set_span(group.span());
                TokenTree::Group(resolved)
            }
            other => other,
        })
        .collect()
}

/// The `Call` of one call of `cached`: its cache, its key rendered, and its options.
pub(crate) fn call(cached: &CachedFn) -> TokenStream {
    let cache = cache_source(&cached.cache);
    let name = function_name(cached.function);
    let tags = cached.tags.iter().map(|tag| render(&tag.template));
    let render = render(&cached.key.template);
    let ttl = cached.ttl.as_ref().map(|ttl| match ttl {
        Ttl::Seconds(seconds) => quote!(.ttl(#seconds)),
        Ttl::Expr(expr) => quote_spanned!(expr.span()=> .ttl_value(#expr)),
    });
    let jitter = jitter(cached);
    let windows = &cached.windows;
    let stale = (windows.stale.as_ref()).map(|(_, seconds)| quote!(.stale(#seconds)));
    let stale_if_error =
        (windows.stale_if_error.as_ref()).map(|(_, seconds)| quote!(.stale_if_error(#seconds)));
    let refresh_ahead =
        (windows.refresh_ahead.as_ref()).map(|(_, beta)| quote!(.refresh_ahead(#beta)));
    let refresh =
        (cached.refresh.as_ref()).map(|expr| quote_spanned!(expr.span()=> .refresh(#expr)));
    let cache_none = (cached.cache_none.as_ref()).map(|flag| quote!(.cache_none(#flag)));
    let near = (cached.near_cache.as_ref()).map(|flag| quote!(.near(#flag)));
    let timeout = (cached.timeout.as_ref()).map(|(_, millis)| quote!(.timeout(#millis)));
    let background = (windows.background.as_ref()).map(|_| quote!(.revalidate_background()));
    let soft_timeout =
        (cached.soft_timeout.as_ref()).map(|(_, millis)| quote!(.soft_timeout(#millis)));
    let version = (cached.version != 1).then(|| {
        let version = cached.version;
        quote!(.version(#version))
    });
    quote! {
        ::redis_cached::__private::Call::new(#cache, #name, #render)
            #(.tag(#tags))* #ttl #jitter #refresh #cache_none #near #stale #stale_if_error
            #refresh_ahead #timeout #background #soft_timeout #version
    }
}

/// `.jitter(fraction)` for `jitter = "N%"`: the call's, over the cache's.
fn jitter(cached: &CachedFn) -> Option<TokenStream> {
    cached.jitter.map(|fraction| quote!(.jitter(#fraction)))
}

/// How a failed fill shares its `Err` with its waiters: the runtime's autoref probe on the
/// shape's failure type (the `E` of `Result<T, E>`; a clone each when it is `Clone + Send +
/// Sync + 'static`). Nothing is shared for a function with generics or a return type naming
/// a lifetime: the probe would pick the `Clone` impl on a bound it cannot check
/// (`'static`), and fail.
fn sharing(function: &ItemFn, shape: &TokenStream) -> TokenStream {
    let none = quote!(::redis_cached::__private::Sharing::none());
    let ReturnType::Type(_, output) = &function.sig.output else {
        return none;
    };
    let lifetimes = output.to_token_stream().into_iter().any(
        |token| matches!(&token, proc_macro2::TokenTree::Punct(punct) if punct.as_char() == '\''),
    );
    let impl_trait = output
        .to_token_stream()
        .into_iter()
        .any(|token| matches!(&token, proc_macro2::TokenTree::Ident(ident) if ident == "impl"));
    if !function.sig.generics.params.is_empty() || lifetimes || impl_trait {
        return none;
    }
    quote! {{
        use ::redis_cached::__private::{CloneOutput as _, KeepOutput as _};
        (&::redis_cached::__private::Probe::<
            <#shape as ::redis_cached::__private::Shape<#output>>::Failure,
        >::new())
            .sharing()
    }}
}

// `#[redis_cached(batch = ids)]`: render one key per id at entry, look them all up, run the
// body with the missing ids only, then store what it returned.
//
// Input:
//
//     #[redis_cached(key = "employee:<ids>", ttl = 60, batch = ids)]
//     async fn employees(ids: &[i64]) -> Result<HashMap<i64, Employee>, Error> {
//         /* body */
//     }
//
// Output (`__private` is `::redis_cached::__private`):
//
//     async fn employees(ids: &[i64]) -> Result<HashMap<i64, Employee>, Error> {
//         let __redis_cached_batch = __private::Batch::new(
//             __private::global(),
//             __private::concat!(__private::module_path!(), "::", "employees"),
//             &ids[..],
//             // `ids` here is one id: the template's `<ids>` renders an element.
//             |__redis_cached_key: &mut __private::KeyBuilder, ids| {
//                 __redis_cached_key.literal("employee:");
//                 __redis_cached_key.part(&ids);
//             },
//         )
//         .ttl(60u64);
//         let __redis_cached_stores = __private::stored_batch::<Employee>();
//         let (__redis_cached_filling, __redis_cached_missing) =
//             match __private::batch_lookup::<__private::OkOf, _>(
//                 __redis_cached_batch,
//                 __redis_cached_stores,
//             )
//             .await
//             {
//                 __private::Looked::Done(__redis_cached_output) => return __redis_cached_output,
//                 __private::Looked::Run(filling, missing) => (filling, missing),
//             };
//         // The parameter, rebound to the missing ids (`Vec<K>` for a `Vec<K>` parameter).
//         let ids = &__redis_cached_missing[..];
//         let __redis_cached_body = __private::pin!(async move { /* as for `cached` */ });
//         __private::batch_fill::<__private::OkOf, _, _>(
//             __redis_cached_filling,
//             __redis_cached_stores,
//             __redis_cached_body,
//         )
//         .await
//     }
fn batch(cached: &CachedFn, batch: &BatchParam) -> TokenStream {
    let function = cached.function;
    let cache = cache_source(&cached.cache);
    let name = function_name(function);
    let ids = &batch.ident;
    let steps = steps(&cached.key.template);
    let render = quote! {
        |__redis_cached_key: &mut ::redis_cached::__private::KeyBuilder, #ids| { #(#steps)* }
    };
    // A TTL expression is refused with `batch` by `valid`.
    let ttl = match &cached.ttl {
        Some(Ttl::Seconds(seconds)) => Some(quote!(.ttl(#seconds))),
        _ => None,
    };
    let jitter = jitter(cached);
    let output_span = output_span(function);
    let shape = shape(cached.shape, output_span);
    let value = batch.value;
    let stores =
        shaped(quote_spanned!(value.span()=> ::redis_cached::__private::stored_batch::<#value>()));
    let mutability = batch.mutability;
    let missing = if batch.owned {
        quote!(__redis_cached_missing)
    } else {
        quote!(&__redis_cached_missing[..])
    };
    let body = body(function);
    // The parameter's `mut` moves to its rebinding: the parameter itself is only borrowed.
    let mut signed = function.clone();
    for input in &mut signed.sig.inputs {
        if let FnArg::Typed(typed) = input
            && let Pat::Ident(binding) = &mut *typed.pat
            && binding.ident == *ids
        {
            binding.mutability = None;
        }
    }
    let lookup = quote_spanned! {output_span=>
        ::redis_cached::__private::batch_lookup::<#shape, _>(
            __redis_cached_batch,
            __redis_cached_stores,
        )
    };
    let fill = quote_spanned! {output_span=>
        ::redis_cached::__private::batch_fill::<#shape, _, _>(
            __redis_cached_filling,
            __redis_cached_stores,
            __redis_cached_body,
        )
    };
    let registration = register::cached(cached);
    let version = (cached.version != 1).then(|| {
        let version = cached.version;
        quote!(.version(#version))
    });
    rewrite(
        &signed,
        quote! {
            #registration
            let __redis_cached_batch =
                ::redis_cached::__private::Batch::new(#cache, #name, &#ids[..], #render)
                    #ttl #jitter #version;
            let __redis_cached_stores = #stores;
            let (__redis_cached_filling, __redis_cached_missing) = match #lookup.await {
                ::redis_cached::__private::Looked::Done(__redis_cached_output) => {
                    return __redis_cached_output;
                }
                ::redis_cached::__private::Looked::Run(__redis_cached_filling, __redis_cached_missing) => {
                    (__redis_cached_filling, __redis_cached_missing)
                }
            };
            let #mutability #ids = #missing;
            let __redis_cached_body = ::redis_cached::__private::pin!(#body);
            #fill
        },
        output_span,
    )
}

// `#[invalidates]`: render every key at entry, run the body, then delete them all.
//
// Input:
//
//     #[invalidates("user:<id>", "users:all")]
//     async fn rename_user(id: u64, name: &str) -> Result<(), Error> {
//         /* body */
//     }
//
// Output (`__private` is `::redis_cached::__private`):
//
//     async fn rename_user(id: u64, name: &str) -> Result<(), Error> {
//         let __redis_cached_invalidation = __private::Invalidation::new(
//             __private::global(), // or `__private::explicit(&(<expr>))` for `cache = <expr>`
//             __private::concat!(__private::module_path!(), "::", "rename_user"),
//             2usize, // the number of keys and tags
//         )
//         .key(|__redis_cached_key: &mut __private::KeyBuilder| {
//             __redis_cached_key.literal("user:");
//             __redis_cached_key.part(&id);
//         })
//         .key(|__redis_cached_key: &mut __private::KeyBuilder| {
//             __redis_cached_key.literal("users:all");
//         }); // and `.tag(|__redis_cached_key| ..)` per tag of `tags = [...]`
//         // With `each = ids`, a template naming `<ids>` (`"employee:<ids>"`) renders once
//         // per element, all into the same deletion (`.each_tag` for a tag):
//         //
//         //     .each_key(&ids[..], |__redis_cached_key: &mut __private::KeyBuilder, ids| {
//         //         __redis_cached_key.literal("employee:");
//         //         __redis_cached_key.part(&ids);
//         //     })
//         let __redis_cached_body = __private::pin!(async move {
//             #[allow(unreachable_code, /* and clippy's lints on the next lines */)]
//             if false {
//                 let __redis_cached_unreachable: Result<(), Error> = loop {};
//                 return __redis_cached_unreachable;
//             }
//             /* body */
//         });
//         __private::invalidate(__redis_cached_invalidation, __redis_cached_body).await
//     }
//
// Keys and tags naming the result (`"department:<return.department>"` on a function
// returning `Result<Employee, Error>`) are left out of the chain above and rendered after
// the body, from the stored part of the result (by the same shapes as `#[redis_cached]`),
// only when there is one:
//
//         __private::invalidate_with_result::<__private::OkOf, _, _, _>(
//             __redis_cached_invalidation,
//             __redis_cached_body,
//             |__redis_cached_invalidation: &mut __private::Invalidation, __redis_cached_result| {
//                 __redis_cached_invalidation.add_key(|__redis_cached_key: &mut __private::KeyBuilder| {
//                     __redis_cached_key.literal("department:");
//                     __redis_cached_key.part(&__redis_cached_result.department);
//                 }); // `.add_tag(..)` for a tag
//             },
//         )
//         .await
//
// `__redis_cached_result` is a `&Employee`: a field it does not have is rustc's "no field"
// error, spanned on the template. The call is spanned on the return type, as `cached` is.
pub(crate) fn invalidates(invalidating: &InvalidatingFn) -> TokenStream {
    let function = invalidating.function;
    let cache = cache_source(&invalidating.cache);
    let name = function_name(function);
    let count = invalidating.keys.len() + invalidating.tags.len();
    // With `each = ids`, the templates naming `<ids>` render once per element: `.each_key(..)`
    // (`.each_tag(..)`) with a closure of one id, as a batch function's key.
    let at_entry = |keys: &[Key], one: &str, each: &str| -> Vec<TokenStream> {
        (keys.iter())
            .filter(|key| !key.template.names_result())
            .map(|key| match &invalidating.each {
                Some(ids) if batch::names(&key.template, ids) => {
                    let steps = steps(&key.template);
                    let method = format_ident!("{each}");
                    quote! {
                        .#method(&#ids[..], |__redis_cached_key: &mut ::redis_cached::__private::KeyBuilder, #ids| {
                            #(#steps)*
                        })
                    }
                }
                _ => {
                    let render = render(&key.template);
                    let method = format_ident!("{one}");
                    quote!(.#method(#render))
                }
            })
            .collect()
    };
    let renders = at_entry(&invalidating.keys, "key", "each_key");
    let tags = at_entry(&invalidating.tags, "tag", "each_tag");
    let output_span = output_span(function);
    let body = body(function);
    let call = if invalidating.names_result() {
        let from_result = from_result(invalidating);
        let shape = shape(invalidating.shape, output_span);
        quote_spanned! {output_span=>
            ::redis_cached::__private::invalidate_with_result::<#shape, _, _, _>(
                __redis_cached_invalidation,
                __redis_cached_body,
                #from_result,
            )
        }
    } else {
        quote! {
            ::redis_cached::__private::invalidate(__redis_cached_invalidation, __redis_cached_body)
        }
    };
    let registration = register::invalidating(invalidating);
    rewrite(
        function,
        quote! {
            #registration
            let __redis_cached_invalidation =
                ::redis_cached::__private::Invalidation::new(#cache, #name, #count)
                    #(#renders)* #(#tags)*;
            let __redis_cached_body = ::redis_cached::__private::pin!(#body);
            #call
        },
        output_span,
    )
}

/// The closure that adds the keys and tags naming the result, rendered from
/// `__redis_cached_result`.
fn from_result(invalidating: &InvalidatingFn) -> TokenStream {
    let from_result = |keys: &[Key], add: Ident| -> Vec<TokenStream> {
        (keys.iter())
            .filter(|key| key.template.names_result())
            .map(|key| {
                let render = render(&key.template);
                quote!(__redis_cached_invalidation.#add(#render);)
            })
            .collect()
    };
    let keys = from_result(&invalidating.keys, format_ident!("add_key"));
    let tags = from_result(&invalidating.tags, format_ident!("add_tag"));
    quote! {
        |__redis_cached_invalidation: &mut ::redis_cached::__private::Invalidation,
         __redis_cached_result| {
            #(#keys)* #(#tags)*
        }
    }
}

/// The user's attributes, visibility and signature, around a new body.
pub(crate) fn rewrite(
    function: &ItemFn,
    statements: TokenStream,
    output_span: Span,
) -> TokenStream {
    let ItemFn {
        attrs, vis, sig, ..
    } = function;
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Outer));
    let awaited = quote_spanned!(output_span=> .await);
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            #statements #awaited
        }
    }
}

/// The original body as an `async move` block whose output type is pinned to the declared
/// return type, so that `?`, `return` and type errors behave as in the user's code.
pub(crate) fn body(function: &ItemFn) -> TokenStream {
    let statements = &function.block.stmts;
    let output = match &function.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let output_span = output_span(function);
    let fake_return = quote_spanned! {output_span=>
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value
        )]
        if false {
            let __redis_cached_unreachable: #output = loop {};
            return __redis_cached_unreachable;
        }
    };
    quote! {
        async move {
            #fake_return
            #(#statements)*
        }
    }
}

/// `::redis_cached::__private::global()` or the user's `cache = <expr>`.
fn cache_source(cache: &CacheSource) -> TokenStream {
    match cache {
        CacheSource::Global => quote!(::redis_cached::__private::global()),
        // Borrowed, so that `cache = cache` does not move a parameter the body uses.
        CacheSource::Explicit(expr) => {
            quote_spanned!(expr.span()=> ::redis_cached::__private::explicit(&(#expr)))
        }
    }
}

/// `"my_crate::module::function"`, the label of metrics and log lines.
fn function_name(function: &ItemFn) -> TokenStream {
    let name = function.sig.ident.to_string();
    quote!(
        ::redis_cached::__private::concat!(::redis_cached::__private::module_path!(), "::", #name)
    )
}

/// The runtime's marker type for `shape`, spanned at `span`.
pub(crate) fn shape(shape: Shape, span: Span) -> TokenStream {
    match shape {
        Shape::Whole => quote_spanned!(span=> ::redis_cached::__private::Whole),
        Shape::OkOf => quote_spanned!(span=> ::redis_cached::__private::OkOf),
        Shape::SomeOf => quote_spanned!(span=> ::redis_cached::__private::SomeOf),
        Shape::OkSomeOf => quote_spanned!(span=> ::redis_cached::__private::OkSomeOf),
    }
}

/// The check on the stored type that makes its `Stores`, spanned on the stored type (on the
/// function's name, `unit`, for `()`): the one place where an unstorable type is reported.
pub(crate) fn stores(cached: &CachedFn, unit: Span) -> TokenStream {
    let span = cached.stored.span(unit);
    let ty = match &cached.stored {
        Stored::Named(ty) => quote!(#ty),
        Stored::Unit => quote_spanned!(span=> ()),
        Stored::Inferred(_) => quote_spanned!(span=> _),
    };
    let check = match cached.shape {
        Shape::Whole => quote_spanned!(span=> stored_whole),
        Shape::OkOf => quote_spanned!(span=> stored_ok),
        Shape::SomeOf => quote_spanned!(span=> stored_some),
        Shape::OkSomeOf => quote_spanned!(span=> stored_ok_some),
    };
    let mut stores = quote_spanned!(span=> ::redis_cached::__private::#check::<#ty>());
    if cached.near_holds_values() {
        // The call itself is not spanned on the type: the compiler, taking the type for an
        // expression at the same place, would suggest borrowing it instead of showing the
        // message. The error still points at the type argument.
        stores = quote!(::redis_cached::__private::near_clone::<#ty>(#stores));
    }
    if let Some(ttl_from) = &cached.ttl_from {
        // Spanned on the function's path: a wrong argument or return type is reported there.
        let ttl = quote_spanned! {ttl_from.span()=>
            ::redis_cached::IntoTtl::into_ttl((#ttl_from)(__redis_cached_value))
        };
        stores = quote! {
            ::redis_cached::__private::ttl_from(#stores, |__redis_cached_value| #ttl)
        };
    }
    shaped(stores)
}

/// `stores` with a `static` of the function's own, where the runtime keeps the stored type's
/// shape fingerprint once traced.
fn shaped(stores: TokenStream) -> TokenStream {
    quote! {{
        static __REDIS_CACHED_SHAPE: ::redis_cached::__private::ShapeCell =
            ::redis_cached::__private::ShapeCell::new();
        ::redis_cached::__private::shaped(#stores, &__REDIS_CACHED_SHAPE)
    }}
}

/// A closure that writes the template into the key builder.
pub(crate) fn render(template: &Template) -> TokenStream {
    let steps = steps(template);
    quote! {
        |__redis_cached_key: &mut ::redis_cached::__private::KeyBuilder| { #(#steps)* }
    }
}

/// The key builder's calls that write the template.
fn steps(template: &Template) -> impl Iterator<Item = TokenStream> + '_ {
    template.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(__redis_cached_key.literal(#text);),
        Segment::TagOpen => quote!(__redis_cached_key.hash_tag_open();),
        Segment::TagClose => quote!(__redis_cached_key.hash_tag_close();),
        // A whole parameter that cannot be rendered is reported at its declaration; a field,
        // at the template.
        Segment::Placeholder(Placeholder {
            root,
            kind,
            members,
            span,
        }) => {
            if *kind == RootKind::Type {
                quote_spanned!(root.span()=> __redis_cached_key.type_name::<#root>();)
            } else if *kind == RootKind::Result {
                // Already a reference: `&Employee`.
                let result = Ident::new("__redis_cached_result", *span);
                quote_spanned!(*span=> __redis_cached_key.part(&#result #(.#members)*);)
            } else if members.is_empty() {
                quote_spanned!(root.span()=> __redis_cached_key.part(&#root);)
            } else {
                // The parameter's own resolution (the template may come from another
                // expansion than the signature), the template's place for errors.
                let mut root = root.clone();
                root.set_span(root.span().located_at(*span));
                quote_spanned!(*span=> __redis_cached_key.part(&#root #(.#members)*);)
            }
        }
    })
}
