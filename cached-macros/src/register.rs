//! The registration each attribute adds to its function: a `static` that the runtime's
//! registry collects at link time (`redis_cached::functions()`), describing the function
//! as written. It holds only literals, so it compiles inside generic functions and methods.
//!
//! ```text
//!     ::redis_cached::__private::inventory::submit! {
//!         ::redis_cached::__private::Registered::Cached(&CachedFunction::new(CachedParts {
//!             path: concat!(module_path!(), "::", "user"),
//!             key: Template::new("user:<id>", &[Token::Literal("user:"), Token::Part]),
//!             ttl: Some(60), version: 1, stored_type: "User", ..
//!         })
//!     }
//! ```

use crate::args::Ttl;
use crate::model::{CachedFn, InvalidatingFn, Key};
use crate::shape::Stored;
use crate::template::Segment;
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemFn;

/// The registration of a `#[redis_cached]` function.
pub(crate) fn cached(cached: &CachedFn) -> TokenStream {
    let path = path(cached.function);
    let key = template(&cached.key);
    let tags = cached.tags.iter().map(template);
    let ttl = option(cached.ttl.as_ref().and_then(|ttl| match ttl {
        Ttl::Seconds(seconds) if cached.ttl_from.is_none() => Some(quote!(#seconds)),
        _ => None,
    }));
    let jitter = option(cached.jitter.map(|fraction| quote!(#fraction)));
    let windows = &cached.windows;
    let stale = option(windows.stale.as_ref().map(|(_, seconds)| quote!(#seconds)));
    let stale_if_error = option(windows.stale_if_error.as_ref().map(|(_, s)| quote!(#s)));
    let refresh_ahead = option(
        windows
            .refresh_ahead
            .as_ref()
            .map(|(_, beta)| quote!(#beta)),
    );
    let version = cached.version;
    // A batch function stores each value of its map.
    let stored_type = match (&cached.batch, &cached.stored) {
        (Some(batch), _) => compact(batch.value.to_token_stream()),
        (None, Stored::Named(ty)) => compact(ty.to_token_stream()),
        (None, Stored::Unit) => "()".to_owned(),
        (None, Stored::Inferred(_)) => "_".to_owned(),
    };
    let batch = cached.batch.is_some();
    submit(quote! {
        Cached(&::redis_cached::__private::CachedFunction::new(::redis_cached::__private::CachedParts {
            path: #path,
            file: ::redis_cached::__private::file!(),
            line: ::redis_cached::__private::line!(),
            key: #key,
            tags: &[#(#tags),*],
            ttl: #ttl,
            jitter: #jitter,
            stale: #stale,
            stale_if_error: #stale_if_error,
            refresh_ahead: #refresh_ahead,
            version: #version,
            stored_type: #stored_type,
            batch: #batch,
        }))
    })
}

/// The registration of an `#[invalidates]` function.
pub(crate) fn invalidating(invalidating: &InvalidatingFn) -> TokenStream {
    deleting(
        invalidating.function,
        &invalidating.keys,
        &invalidating.tags,
    )
}

/// The registration of a function that deletes (or, `#[cache_put]`, overwrites) `keys` and
/// invalidates `tags`: the registry's start-up check matches them to cached functions.
pub(crate) fn deleting<'a>(
    function: &ItemFn,
    keys: impl IntoIterator<Item = &'a Key>,
    tags: &[Key],
) -> TokenStream {
    let path = path(function);
    let keys = keys.into_iter().map(template);
    let tags = tags.iter().map(template);
    submit(quote! {
        Invalidating(&::redis_cached::__private::InvalidatingFunction::new(
            (#path, ::redis_cached::__private::file!(), ::redis_cached::__private::line!()),
            &[#(#keys),*],
            &[#(#tags),*],
        ))
    })
}

fn submit(registered: TokenStream) -> TokenStream {
    quote! {
        ::redis_cached::__private::inventory::submit! {
            ::redis_cached::__private::Registered::#registered
        }
    }
}

fn path(function: &ItemFn) -> TokenStream {
    let name = function.sig.ident.to_string();
    quote!(
        ::redis_cached::__private::concat!(::redis_cached::__private::module_path!(), "::", #name)
    )
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::redis_cached::__private::Option::Some(#value)),
        None => quote!(::redis_cached::__private::Option::None),
    }
}

/// A template as the registry holds it: its text and its literals and placeholders.
fn template(key: &Key) -> TokenStream {
    let text = key.lit.value();
    let tokens = key.template.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(::redis_cached::__private::Token::Literal(#text)),
        Segment::Placeholder(_) => quote!(::redis_cached::__private::Token::Part),
        Segment::TagOpen => quote!(::redis_cached::__private::Token::Literal("{")),
        Segment::TagClose => quote!(::redis_cached::__private::Token::Literal("}")),
    });
    quote!(::redis_cached::__private::Template::new(#text, &[#(#tokens),*]))
}

/// Type tokens as text without the spaces `to_string` puts between tokens, but between two
/// words (`dyn Trait`).
fn compact(tokens: TokenStream) -> String {
    let text = tokens.to_string();
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (at, &c) in chars.iter().enumerate() {
        let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
        if c == ' ' && !(word(out.chars().last().as_ref()) && word(chars.get(at + 1))) {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compact;
    use quote::quote;

    #[test]
    fn types_are_compacted_as_written() {
        assert_eq!(compact(quote!(Vec<crate::User>)), "Vec<crate::User>");
        assert_eq!(compact(quote!(Box<dyn Any + Send>)), "Box<dyn Any+Send>");
    }
}
