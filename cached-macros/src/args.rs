//! The attribute arguments of `#[redis_cached(...)]` and `#[invalidates(...)]`, as written:
//! their syntax here, their meaning in `model` (a missing key, a TTL's value) and `valid`.

use syn::ext::IdentExt;
use syn::parse::{Lookahead1, Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitBool, LitStr, Token, UnOp, bracketed};

/// The arguments of `#[redis_cached]`: the parser takes no other, its error for an unknown
/// one lists these, and the attribute's reference documents each (a test compares them).
pub(crate) const CACHED_ARGUMENTS: &[&str] = &[
    "key",
    "ttl",
    "ttl_from",
    "jitter",
    "refresh",
    "cache",
    "cache_none",
    "near_cache",
    "key_ignores",
    "tags",
    "stale",
    "stale_if_error",
    "refresh_ahead",
    "revalidate",
    "timeout",
    "soft_timeout",
    "version",
    "batch",
];

/// The named arguments of `#[invalidates]`, besides its key templates; as above.
pub(crate) const INVALIDATES_ARGUMENTS: &[&str] = &["cache", "key_ignores", "tags", "each"];

/// What `batch` does not combine with, as `valid` refuses it and names it in the error, in
/// that order; the reference lists the same.
pub(crate) const NOT_WITH_BATCH: &[&str] = &[
    "tags",
    "near_cache",
    "refresh",
    "cache_none",
    "ttl = <expression>",
    "ttl_from",
    "stale",
    "stale_if_error",
    "refresh_ahead",
    "revalidate = \"background\"",
    "timeout",
    "soft_timeout",
];

/// The argument names, as keywords for `lookahead1`.
pub(crate) mod kw {
    syn::custom_keyword!(key);
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(refresh);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(near_cache);
    syn::custom_keyword!(key_ignores);
    syn::custom_keyword!(tags);
    syn::custom_keyword!(ttl_from);
    syn::custom_keyword!(stale);
    syn::custom_keyword!(stale_if_error);
    syn::custom_keyword!(refresh_ahead);
    syn::custom_keyword!(batch);
    syn::custom_keyword!(revalidate);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(soft_timeout);
    syn::custom_keyword!(version);
    syn::custom_keyword!(jitter);
    syn::custom_keyword!(each);
}

/// `#[redis_cached(key = "...", ttl = ..., ttl_from = ..., jitter = ..., refresh = ...,
/// cache = ..., cache_none = ..., near_cache = ..., key_ignores = [...], tags = [...], stale = ...,
/// stale_if_error = ..., refresh_ahead = ..., revalidate = "...", timeout = ...,
/// soft_timeout = ..., version = N, batch = ids)]`
pub(crate) struct CachedArgs {
    /// Required; reported missing by `model`, together with the other mistakes.
    pub(crate) key: Option<LitStr>,
    /// Converted to seconds by [`ttl_seconds`] in `model`.
    pub(crate) ttl: Option<Expr>,
    pub(crate) ttl_from: Option<(Ident, Expr)>,
    /// `"10%"`, read by [`jitter`].
    pub(crate) jitter: Option<Expr>,
    /// Durations, as `ttl`'s literals.
    pub(crate) stale: Option<(Ident, Expr)>,
    pub(crate) stale_if_error: Option<(Ident, Expr)>,
    /// `true`, or XFetch's beta.
    pub(crate) refresh_ahead: Option<(Ident, Lit)>,
    /// `"background"` or `"inline"`.
    pub(crate) revalidate: Option<(Ident, LitStr)>,
    /// The longest the body may run, as [`duration_millis`] reads it.
    pub(crate) timeout: Option<(Ident, Expr)>,
    /// How long a caller waits for the body while a stored value may be served, likewise.
    pub(crate) soft_timeout: Option<(Ident, Expr)>,
    /// The function's version, a positive integer ([`version`] checks it).
    pub(crate) version: Option<Expr>,
    pub(crate) refresh: Option<Expr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) near_cache: Option<LitBool>,
    pub(crate) key_ignores: Option<KeyIgnores>,
    pub(crate) tags: Option<Tags>,
    /// The parameter holding a batch function's ids.
    pub(crate) batch: Option<Ident>,
}

/// `#[invalidates("...", "...", cache = ..., key_ignores = [...], tags = [...], each = ids)]`
pub(crate) struct InvalidatesArgs {
    /// At least one key or tag; reported empty by `model`.
    pub(crate) keys: Vec<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) key_ignores: Option<KeyIgnores>,
    pub(crate) tags: Option<Tags>,
    /// The collection parameter whose templates are rendered once per element.
    pub(crate) each: Option<Ident>,
}

/// `tags = ["department:<dept>", "employees"]`: tag templates, at least one.
pub(crate) struct Tags(pub(crate) Vec<LitStr>);

impl Parse for Tags {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let expected = "`tags` takes a bracketed list of tag templates, as in \
                        `tags = [\"department:<dept>\", \"employees\"]`";
        if !input.peek(syn::token::Bracket) {
            return Err(input.error(expected));
        }
        let content;
        let brackets = bracketed!(content in input);
        let mut tags = Vec::new();
        while !content.is_empty() {
            tags.push(
                content
                    .parse::<LitStr>()
                    .map_err(|error| syn::Error::new(error.span(), expected))?,
            );
            if !content.is_empty() {
                content.parse::<Token![,]>()?;
            }
        }
        if tags.is_empty() {
            return Err(syn::Error::new(
                brackets.span.join(),
                "`tags = []` lists no tag: name at least one, as in `tags = [\"employees\"]`, \
                 or remove the argument",
            ));
        }
        for (index, tag) in tags.iter().enumerate() {
            let value = tag.value();
            if value.is_empty() {
                return Err(syn::Error::new(
                    tag.span(),
                    "an empty tag names no group of entries: write what the tagged entries \
                     share, as in `tags = [\"employees\"]`",
                ));
            }
            if tags[..index].iter().any(|earlier| earlier.value() == value) {
                return Err(syn::Error::new(
                    tag.span(),
                    format!("`tags` lists {value:?} twice: remove this one"),
                ));
            }
        }
        Ok(Tags(tags))
    }
}

/// `key_ignores = [E, db]`: type and const parameters, and `impl Trait` arguments by their
/// binding, that the key need not tell apart. Checked against the function in `generics`.
pub(crate) struct KeyIgnores(pub(crate) Vec<Ident>);

impl Parse for KeyIgnores {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !input.peek(syn::token::Bracket) {
            return Err(input.error(
                "`key_ignores` takes a bracketed list of type parameters, as in \
                 `key_ignores = [E]`",
            ));
        }
        let content;
        bracketed!(content in input);
        let mut idents: Vec<Ident> = Vec::new();
        while !content.is_empty() {
            if let Ok(lifetime) = content.fork().parse::<syn::Lifetime>() {
                return Err(syn::Error::new_spanned(
                    &lifetime,
                    format!(
                        "lifetimes never need to be in the key; remove `{lifetime}` from \
                         `key_ignores`"
                    ),
                ));
            }
            let ident = content.parse::<Ident>().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "`key_ignores` lists names of type parameters, const parameters or \
                     `impl Trait` arguments, as in `key_ignores = [E, db]`",
                )
            })?;
            if idents.contains(&ident) {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("`{ident}` is listed twice in `key_ignores`; keep one"),
                ));
            }
            idents.push(ident);
            if !content.is_empty() {
                content.parse::<Token![,]>()?;
            }
        }
        Ok(KeyIgnores(idents))
    }
}

impl Parse for CachedArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut key = None;
        let mut ttl = None;
        let mut refresh = None;
        let mut cache = None;
        let mut cache_none = None;
        let mut near_cache = None;
        let mut key_ignores = None;
        let mut tags = None;
        let mut ttl_from = None;
        let mut stale = None;
        let mut stale_if_error = None;
        let mut refresh_ahead = None;
        let mut batch = None;
        let mut revalidate = None;
        let mut timeout = None;
        let mut soft_timeout = None;
        let mut version = None;
        let mut jitter = None;
        let hint = format!("expected one of {}", one_of(CACHED_ARGUMENTS));
        parse_list(input, CACHED_ARGUMENTS, &hint, |input, lookahead| {
            if lookahead.peek(kw::key) {
                let name = input.parse::<kw::key>()?;
                input.parse::<Token![=]>()?;
                let template = input.parse::<LitStr>().map_err(|error| {
                    syn::Error::new(
                        error.span(),
                        "`key` must be a string literal template, as in `key = \"user:<id>\"`",
                    )
                })?;
                set_once(&mut key, (name, template))?;
            } else if lookahead.peek(kw::ttl_from) {
                set_once(&mut ttl_from, named::<kw::ttl_from, Expr>(input)?)?;
            } else if lookahead.peek(kw::ttl) {
                set_once(&mut ttl, value::<kw::ttl, Expr>(input)?)?;
            } else if lookahead.peek(kw::stale_if_error) {
                set_once(
                    &mut stale_if_error,
                    named::<kw::stale_if_error, Expr>(input)?,
                )?;
            } else if lookahead.peek(kw::soft_timeout) {
                set_once(&mut soft_timeout, named::<kw::soft_timeout, Expr>(input)?)?;
            } else if lookahead.peek(kw::jitter) {
                set_once(&mut jitter, value::<kw::jitter, Expr>(input)?)?;
            } else if lookahead.peek(kw::version) {
                set_once(&mut version, value::<kw::version, Expr>(input)?)?;
            } else if lookahead.peek(kw::timeout) {
                set_once(&mut timeout, named::<kw::timeout, Expr>(input)?)?;
            } else if lookahead.peek(kw::revalidate) {
                set_once(&mut revalidate, named::<kw::revalidate, LitStr>(input)?)?;
            } else if lookahead.peek(kw::stale) {
                set_once(&mut stale, named::<kw::stale, Expr>(input)?)?;
            } else if lookahead.peek(kw::refresh_ahead) {
                set_once(&mut refresh_ahead, refresh_ahead_flag(input)?)?;
            } else if lookahead.peek(kw::refresh) {
                set_once(&mut refresh, value::<kw::refresh, Expr>(input)?)?;
            } else if lookahead.peek(kw::cache_none) {
                set_once(&mut cache_none, value::<kw::cache_none, LitBool>(input)?)?;
            } else if lookahead.peek(kw::near_cache) {
                set_once(&mut near_cache, value::<kw::near_cache, LitBool>(input)?)?;
            } else if lookahead.peek(kw::key_ignores) {
                set_once(
                    &mut key_ignores,
                    value::<kw::key_ignores, KeyIgnores>(input)?,
                )?;
            } else if lookahead.peek(kw::tags) {
                set_once(&mut tags, value::<kw::tags, Tags>(input)?)?;
            } else if lookahead.peek(kw::batch) {
                let name = input.parse::<kw::batch>()?;
                input.parse::<Token![=]>()?;
                set_once(&mut batch, (name, collection(input, "batch")?))?;
            } else if lookahead.peek(kw::cache) {
                set_once(&mut cache, value::<kw::cache, Expr>(input)?)?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(CachedArgs {
            key,
            ttl,
            refresh,
            cache,
            cache_none,
            near_cache,
            key_ignores,
            tags,
            ttl_from,
            jitter,
            stale,
            stale_if_error,
            refresh_ahead,
            revalidate,
            timeout,
            soft_timeout,
            version,
            batch,
        })
    }
}

impl Parse for InvalidatesArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut keys = Vec::new();
        let mut cache = None;
        let mut key_ignores = None;
        let mut tags = None;
        let mut each = None;
        let hint = format!(
            "expected a key template such as \"user:<id>\", or one of {}",
            one_of(INVALIDATES_ARGUMENTS)
        );
        parse_list(input, INVALIDATES_ARGUMENTS, &hint, |input, lookahead| {
            if lookahead.peek(LitStr) {
                keys.push(input.parse()?);
            } else if lookahead.peek(kw::cache) {
                set_once(&mut cache, value::<kw::cache, Expr>(input)?)?;
            } else if lookahead.peek(kw::key_ignores) {
                set_once(
                    &mut key_ignores,
                    value::<kw::key_ignores, KeyIgnores>(input)?,
                )?;
            } else if lookahead.peek(kw::tags) {
                set_once(&mut tags, value::<kw::tags, Tags>(input)?)?;
            } else if lookahead.peek(kw::each) {
                let name = input.parse::<kw::each>()?;
                input.parse::<Token![=]>()?;
                set_once(&mut each, (name, collection(input, "each")?))?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(InvalidatesArgs {
            keys,
            cache,
            key_ignores,
            tags,
            each,
        })
    }
}

/// The parameter name after `batch =` or `each =`.
fn collection(input: ParseStream, argument: &str) -> syn::Result<Ident> {
    input.parse::<Ident>().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!(
                "`{argument}` names the parameter that holds the ids, as in `{argument} = ids`"
            ),
        )
    })
}

/// Parses comma-separated arguments with `argument`, which returns `false` for one it does
/// not know. A name outside `accepted` is not given to it, so that the list is the whole
/// truth; such a name, or one `argument` does not know, is reported with `hint`.
pub(crate) fn parse_list(
    input: ParseStream,
    accepted: &[&str],
    hint: &str,
    mut argument: impl FnMut(ParseStream, &Lookahead1) -> syn::Result<bool>,
) -> syn::Result<()> {
    while !input.is_empty() {
        let lookahead = input.lookahead1();
        let listed = match input.fork().call(Ident::parse_any) {
            Ok(name) => accepted.iter().any(|accepted| name == accepted),
            Err(_) => true,
        };
        if !listed || !argument(input, &lookahead)? {
            return Err(unknown_argument(input, lookahead.error(), hint));
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(())
}

/// "`a`, `b`, `c`".
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

/// An error for an argument name that is not known, naming it; `fallback` for anything else.
fn unknown_argument(input: ParseStream, fallback: syn::Error, expected: &str) -> syn::Error {
    match input.fork().call(Ident::parse_any) {
        Ok(ident) => syn::Error::new(
            ident.span(),
            format!("unknown argument `{ident}`: {expected}"),
        ),
        Err(_) => fallback,
    }
}

/// Parses `name = value`, keeping the name for error spans.
pub(crate) fn value<K: Parse + Spanned, V: Parse>(input: ParseStream) -> syn::Result<(K, V)> {
    let name = input.parse::<K>()?;
    input.parse::<Token![=]>()?;
    Ok((name, input.parse()?))
}

/// Parses `name = value`, keeping the name with the value (for errors spanned on it later).
pub(crate) fn named<K: Parse + Spanned + quote::ToTokens, V: Parse>(
    input: ParseStream,
) -> syn::Result<(K, (Ident, V))> {
    let (keyword, value) = value::<K, V>(input)?;
    let name = Ident::new(&keyword.to_token_stream().to_string(), keyword.span());
    Ok((keyword, (name, value)))
}

/// `refresh_ahead = <beta or bool>`; alone, `refresh_ahead` is `refresh_ahead = true`.
pub(crate) fn refresh_ahead_flag(
    input: ParseStream,
) -> syn::Result<(kw::refresh_ahead, (Ident, Lit))> {
    if input.peek2(Token![=]) {
        return named::<kw::refresh_ahead, Lit>(input);
    }
    let keyword = input.parse::<kw::refresh_ahead>()?;
    let name = Ident::new("refresh_ahead", keyword.span);
    let on = Lit::Bool(LitBool::new(true, keyword.span));
    Ok((keyword, (name, on)))
}

/// Stores an argument, rejecting a second occurrence at its name.
pub(crate) fn set_once<K: Spanned + quote::ToTokens, V>(
    slot: &mut Option<V>,
    (name, value): (K, V),
) -> syn::Result<()> {
    if slot.is_some() {
        let name_text = name.to_token_stream().to_string();
        return Err(syn::Error::new(
            name.span(),
            format!("`{name_text}` is given twice; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// A `ttl`: a literal (whole seconds, checked here) or an expression evaluated per call.
pub(crate) enum Ttl {
    Seconds(u64),
    Expr(Expr),
}

/// `3600` or `"1h"` (whole seconds, at least one), or any expression but a literal.
pub(crate) fn ttl(expr: &Expr) -> syn::Result<Ttl> {
    let literal = match expr {
        Expr::Lit(_) => true,
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => matches!(**expr, Expr::Lit(_)),
        _ => false,
    };
    if literal {
        duration_seconds(expr, "ttl").map(Ttl::Seconds)
    } else {
        Ok(Ttl::Expr(expr.clone()))
    }
}

/// A function's `version = N`: an integer from 1 to 2^32 - 1.
pub(crate) fn version(expr: &Expr) -> syn::Result<u32> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = expr
        && let Ok(version @ 1..) = int.base10_parse::<u32>()
    {
        return Ok(version);
    }
    Err(syn::Error::new_spanned(
        expr,
        "`version` is a positive integer below 2^32, as in `version = 2`: raise it when what \
         the function computes changes, and entries of other versions are misses",
    ))
}

/// `jitter = "10%"`: the share of the TTL each stored TTL may be shortened by, as a
/// fraction, from `"0%"` (none, whatever the cache's) to below `"100%"`.
pub(crate) fn jitter(expr: &Expr) -> syn::Result<f64> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Str(text),
        ..
    }) = expr
        && let Some(percent) = text.value().trim().strip_suffix('%')
        && let Ok(percent) = percent.trim_end().parse::<f64>()
        && (0.0..100.0).contains(&percent)
    {
        return Ok(percent / 100.0);
    }
    Err(syn::Error::new_spanned(
        expr,
        "`jitter` is a percentage of the TTL below 100, as in `jitter = \"10%\"`: each stored \
         TTL is drawn from 90% to 100% of it (`\"0%\"`: none, whatever the cache's)",
    ))
}

/// XFetch's beta of `refresh_ahead = true` or `refresh_ahead = 2.0`: positive.
pub(crate) fn beta(lit: &Lit) -> syn::Result<Option<f64>> {
    let beta = match lit {
        Lit::Bool(flag) if !flag.value => return Ok(None),
        Lit::Bool(_) => Some(1.0),
        Lit::Float(float) => float.base10_parse::<f64>().ok(),
        Lit::Int(int) => int.base10_parse::<f64>().ok(),
        _ => None,
    };
    match beta {
        Some(beta) if beta.is_finite() && beta > 0.0 => Ok(Some(beta)),
        _ => Err(syn::Error::new_spanned(
            lit,
            "`refresh_ahead` is `true` or XFetch's beta, a positive number (`refresh_ahead = \
             2.0` refreshes earlier; 1.0 is the default)",
        )),
    }
}

/// The longest duration argument: 100 years, the runtime's cap on TTLs.
const MAX_SECONDS: u64 = 100 * 365 * 86_400;

/// A duration argument (`ttl`, `stale`, `stale_if_error`), `3600` or `"1h"`: whole seconds,
/// at least one.
pub(crate) fn duration_seconds(expr: &Expr, name: &str) -> syn::Result<u64> {
    let seconds = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse::<u64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => parse_duration(&text.value()),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Some(0),
        _ => None,
    };
    match seconds {
        Some(0) if name == "ttl" => Err(syn::Error::new_spanned(
            expr,
            "ttl must be positive: entries always expire, so give at least one second",
        )),
        Some(0) => Err(syn::Error::new_spanned(
            expr,
            format!("`{name}` must be positive: give at least one second, or remove it"),
        )),
        Some(seconds) if seconds > MAX_SECONDS => Err(syn::Error::new_spanned(
            expr,
            format!("`{name}` is at most 100 years (`\"36500d\"`)"),
        )),
        Some(seconds) => Ok(seconds),
        None => Err(syn::Error::new_spanned(
            expr,
            format!(
                "{name} must be whole seconds (`{name} = 3600`) or a duration string with units \
                 s, m, h, d (`{name} = \"15m\"`, `{name} = \"1h30m\"`)"
            ),
        )),
    }
}

/// `timeout`, `3` or `"2s"`, `"500ms"`, `"1m30s"`: milliseconds, at least one.
pub(crate) fn duration_millis(expr: &Expr, name: &str) -> syn::Result<u64> {
    let millis = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int
            .base10_parse::<u64>()
            .ok()
            .and_then(|seconds| seconds.checked_mul(1000)),
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => parse_millis(&text.value()),
        _ => None,
    };
    match millis {
        Some(0) => Err(syn::Error::new_spanned(
            expr,
            format!("`{name}` must be positive: give at least one millisecond, or remove it"),
        )),
        Some(millis) if millis <= MAX_SECONDS * 1000 => Ok(millis),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!(
                "{name} must be whole seconds (`{name} = 2`) or a duration string with units \
                 ms, s, m, h, d (`{name} = \"500ms\"`, `{name} = \"2s\"`), at most 100 years"
            ),
        )),
    }
}

/// `"90s"`, `"15m"`, `"1h30m"`, `"7d"` in whole seconds; every number needs a unit.
fn parse_duration(text: &str) -> Option<u64> {
    parse_millis(text)
        .filter(|millis| !text.contains("ms") && millis % 1000 == 0)
        .map(|millis| millis / 1000)
}

/// `"500ms"`, `"90s"`, `"15m"`, `"1h30m"`, `"7d"` in milliseconds; every number needs a unit.
fn parse_millis(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        let (scale, unit_len) = match &rest[digits..] {
            unit if unit.starts_with("ms") => (1, 2),
            unit if unit.starts_with('s') => (1000, 1),
            unit if unit.starts_with('m') => (60_000, 1),
            unit if unit.starts_with('h') => (3_600_000, 1),
            unit if unit.starts_with('d') => (86_400_000, 1),
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(scale)?)?;
        rest = &rest[digits + unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    //! The duration strings `ttl` accepts; the argument lists against the parser and the
    //! reference.
    //!
    //! The reference (`src/docs/*.md` of the facade) has, per attribute, one table whose
    //! header is `| Argument | Value | Meaning |`, each row naming one argument in its first
    //! cell as `` `name` ``; `#[invalidates]`'s key templates, which have no name, are the
    //! row whose first cell starts with `` `" ``. `redis_cached.md` names what `batch`
    //! refuses on one line starting `` Not combined with `batch` ``, each in backticks.

    use super::{
        CACHED_ARGUMENTS, CachedArgs, INVALIDATES_ARGUMENTS, InvalidatesArgs, NOT_WITH_BATCH,
        jitter, parse_duration, parse_millis,
    };
    use syn::parse::Parse;

    const CACHED_DOCS: &str = include_str!("../../src/docs/redis_cached.md");
    const INVALIDATES_DOCS: &str = include_str!("../../src/docs/invalidates.md");

    /// The texts between backticks.
    fn code_spans(text: &str) -> Vec<&str> {
        text.split('`').skip(1).step_by(2).collect()
    }

    /// The argument names the reference's table documents, in its order.
    fn documented_arguments(docs: &str) -> Vec<&str> {
        let rows = docs
            .lines()
            .skip_while(|line| *line != "| Argument | Value | Meaning |")
            .skip(2)
            .take_while(|line| line.starts_with('|'));
        rows.map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default().trim();
            code_spans(cell).first().copied().unwrap_or(cell)
        })
        .filter(|name| !name.starts_with('"'))
        .collect()
    }

    /// Both ways: what `accepted` has and `documented` lacks, and the other way round.
    fn assert_same(what: &str, accepted: &[&str], documented: &[&str]) {
        let undocumented: Vec<_> = accepted
            .iter()
            .filter(|a| !documented.contains(a))
            .collect();
        let refused: Vec<_> = documented
            .iter()
            .filter(|d| !accepted.contains(d))
            .collect();
        assert!(
            undocumented.is_empty() && refused.is_empty() && accepted.len() == documented.len(),
            "{what}: in the code but not in the reference: {undocumented:?}; in the reference \
             but not in the code: {refused:?}; the reference: {documented:?}"
        );
    }

    /// Each listed name reaches its branch of the parser: the value after it is wrong, so
    /// the error is that value's, never "unknown argument".
    fn assert_parsed<T: Parse>(names: &[&str]) {
        for name in names {
            if let Err(error) = syn::parse_str::<T>(&format!("{name} = ,")) {
                let message = error.to_string();
                assert!(
                    !message.starts_with("unknown argument"),
                    "`{name}` is listed but the parser refuses it: {message}"
                );
            }
        }
    }

    #[test]
    fn the_reference_documents_each_argument_once() {
        assert_same(
            "#[redis_cached]",
            CACHED_ARGUMENTS,
            &documented_arguments(CACHED_DOCS),
        );
        assert_same(
            "#[invalidates]",
            INVALIDATES_ARGUMENTS,
            &documented_arguments(INVALIDATES_DOCS),
        );
        let batch_line = CACHED_DOCS
            .lines()
            .find(|line| line.starts_with("Not combined with `batch`"))
            .unwrap_or_default();
        let documented = code_spans(batch_line);
        assert_same(
            "not with `batch`",
            NOT_WITH_BATCH,
            documented.get(1..).unwrap_or_default(),
        );
    }

    #[test]
    fn the_parser_takes_each_listed_argument() {
        assert_parsed::<CachedArgs>(CACHED_ARGUMENTS);
        assert_parsed::<InvalidatesArgs>(INVALIDATES_ARGUMENTS);
    }

    #[test]
    fn jitters() {
        let read = |text: &str| jitter(&syn::parse_str(text).unwrap()).ok();
        assert_eq!(read(r#""10%""#), Some(0.1));
        assert_eq!(read(r#""12.5 %""#), Some(0.125));
        assert_eq!(read(r#""0%""#), Some(0.0));
        assert_eq!(read(r#""99%""#), Some(0.99));
        for refused in [
            r#""100%""#,
            r#""150%""#,
            r#""-5%""#,
            r#""10""#,
            r#""abc""#,
            "10",
            "0.1",
        ] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("0s"), Some(0));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
        assert_eq!(parse_duration("1500ms"), None);
        assert_eq!(parse_millis("500ms"), Some(500));
        assert_eq!(parse_millis("1m30s"), Some(90_000));
        assert_eq!(parse_millis("2s500ms"), Some(2500));
        assert_eq!(parse_millis("5"), None);
    }
}
