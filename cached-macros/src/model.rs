//! The typed view of a function under `#[redis_cached]` or `#[invalidates]`: read once from
//! the syntax, so that `valid` checks it and `expand` writes tokens without looking at the
//! syntax again.
//!
//! Reading reports, all together, what makes a view impossible: a function that is not
//! `async`, a TTL that is no duration, a missing key, a template that does not parse or
//! names what the function does not have. The rules between the parts (the generics and
//! the keys, `cache_none` and the return type) are `valid`'s.

use crate::args::{self, CachedArgs, InvalidatesArgs, Ttl};
use crate::batch::{self, BatchParam};
use crate::errors::Errors;
use crate::shape::{Shape, Stored, peeled};
use crate::template::{ResultScope, RootKind, Scope, Template};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, GenericParam, Ident, ItemFn, LitBool, LitStr, Pat, ReturnType, Type};

/// `#[redis_cached(...)]` on `function`.
pub(crate) struct CachedFn<'a> {
    pub(crate) function: &'a ItemFn,
    pub(crate) key: Key,
    /// Whole seconds (at least one) or an expression; `None` for the cache's default.
    pub(crate) ttl: Option<Ttl>,
    /// `ttl_from = <fn>`: each value's TTL.
    pub(crate) ttl_from: Option<Expr>,
    /// `jitter = "N%"`, as a fraction in `[0, 1)`.
    pub(crate) jitter: Option<f64>,
    /// Past the TTL: `stale` and `stale_if_error` (whole seconds), and `refresh_ahead`'s beta.
    pub(crate) windows: Windows,
    pub(crate) refresh: Option<Expr>,
    pub(crate) cache: CacheSource,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) near_cache: Option<LitBool>,
    pub(crate) shape: Shape,
    /// The stored part of the return type, as written.
    pub(crate) stored: Stored<'a>,
    /// `None` when not given, which the error messages tell from an empty list.
    pub(crate) key_ignores: Option<Vec<Ident>>,
    /// The tags its entries carry (same grammar as keys).
    pub(crate) tags: Vec<Key>,
    /// With `batch = ids`: the batch form.
    pub(crate) batch: Option<BatchParam<'a>>,
    /// `timeout`: the longest the body may run, in milliseconds.
    pub(crate) timeout: Option<(Ident, u64)>,
    /// `soft_timeout`: how long a caller waits for the body while a stored value may be
    /// served, in milliseconds.
    pub(crate) soft_timeout: Option<(Ident, u64)>,
    /// `version`: entries of other versions are misses (1 unless given).
    pub(crate) version: u32,
}

/// How entries outlive their TTL, each argument with its name (for errors).
#[derive(Default)]
pub(crate) struct Windows {
    pub(crate) stale: Option<(Ident, u64)>,
    pub(crate) stale_if_error: Option<(Ident, u64)>,
    pub(crate) refresh_ahead: Option<(Ident, f64)>,
    /// `revalidate = "background"`: claimed refreshes run in a task of their own.
    pub(crate) background: Option<Ident>,
}

impl Windows {
    /// The first argument given, for errors about the combination.
    pub(crate) fn first(&self) -> Option<&Ident> {
        (self.stale.as_ref().map(|(name, _)| name))
            .or(self.stale_if_error.as_ref().map(|(name, _)| name))
            .or(self.refresh_ahead.as_ref().map(|(name, _)| name))
    }
}

/// `#[invalidates(...)]` on `function`.
pub(crate) struct InvalidatingFn<'a> {
    pub(crate) function: &'a ItemFn,
    /// With `tags`, at least one.
    pub(crate) keys: Vec<Key>,
    pub(crate) cache: CacheSource,
    pub(crate) key_ignores: Option<Vec<Ident>>,
    /// The tags whose entries it makes stale.
    pub(crate) tags: Vec<Key>,
    /// Which part of the result `<return>` names.
    pub(crate) shape: Shape,
    /// `each = ids`, as written in the attribute: the collection parameter (`&[K]` or
    /// `Vec<K>`, checked) whose templates are rendered once per element.
    pub(crate) each: Option<Ident>,
}

/// A key template as written, and parsed against the function's names.
pub(crate) struct Key {
    pub(crate) lit: LitStr,
    pub(crate) template: Template,
}

/// Which cache a call uses.
pub(crate) enum CacheSource {
    /// The process-wide one.
    Global,
    /// `cache = <expr>`.
    Explicit(Expr),
}

impl<'a> CachedFn<'a> {
    pub(crate) fn from_syn(args: CachedArgs, function: &'a ItemFn) -> syn::Result<Self> {
        let scope = scope(function, ResultScope::Unavailable);
        let mut errors = Errors::default();
        let ttl = errors.track(args.ttl.as_ref().map(args::ttl).transpose());
        let jitter = errors.track(args.jitter.as_ref().map(args::jitter).transpose());
        let key = errors.track(match &args.key {
            Some(lit) => Key::parse(lit.clone(), &scope),
            None => Err(syn::Error::new(
                Span::call_site(),
                "missing `key = \"...\"`: name the key template, as in \
                 #[redis_cached(key = \"user:<id>\", ttl = 3600)]",
            )),
        });
        check_async(function, "redis_cached", &mut errors);
        let tags = parse_all(tag_templates(&args.tags), &scope, &mut errors);
        let windows = errors.track(windows(&args));
        let millis = |arg: &Option<(Ident, Expr)>, label: &str| {
            (arg.as_ref())
                .map(|(name, expr)| {
                    args::duration_millis(expr, label).map(|millis| (name.clone(), millis))
                })
                .transpose()
        };
        let timeout = errors.track(millis(&args.timeout, "timeout"));
        let soft_timeout = errors.track(millis(&args.soft_timeout, "soft_timeout"));
        let version = errors.track(args.version.as_ref().map(args::version).transpose());
        let batch = errors.track(
            (args.batch.as_ref())
                .map(|ids| BatchParam::read(ids, function))
                .transpose(),
        );
        errors.check()?;
        Ok(CachedFn {
            function,
            key: key?,
            ttl: ttl?,
            ttl_from: args.ttl_from.map(|(_, expr)| expr),
            jitter: jitter?,
            windows: windows?,
            refresh: args.refresh,
            cache: CacheSource::from(args.cache),
            cache_none: args.cache_none,
            near_cache: args.near_cache,
            shape: Shape::of(&function.sig.output),
            stored: Stored::of(&function.sig.output),
            key_ignores: args.key_ignores.map(|list| list.0),
            tags,
            batch: batch?,
            timeout: timeout?,
            soft_timeout: soft_timeout?,
            version: version?.unwrap_or(1),
        })
    }

    /// Whether the near tier holds decoded values (`near_cache = true`, the value type must
    /// then be `Clone`) rather than the stored bytes.
    pub(crate) fn near_holds_values(&self) -> bool {
        self.near_cache.as_ref().is_some_and(LitBool::value)
    }
}

/// `stale`, `stale_if_error` and `refresh_ahead`, checked.
fn windows(args: &CachedArgs) -> syn::Result<Windows> {
    let seconds = |arg: &Option<(Ident, Expr)>, label: &str| {
        arg.as_ref()
            .map(|(name, expr)| {
                args::duration_seconds(expr, label).map(|seconds| (name.clone(), seconds))
            })
            .transpose()
    };
    let mut errors = Errors::default();
    let stale = errors.track(seconds(&args.stale, "stale"));
    let stale_if_error = errors.track(seconds(&args.stale_if_error, "stale_if_error"));
    let refresh_ahead = errors.track(
        args.refresh_ahead
            .as_ref()
            .map(|(name, lit)| args::beta(lit).map(|beta| beta.map(|beta| (name.clone(), beta))))
            .transpose()
            .map(Option::flatten),
    );
    let background = errors.track(
        args.revalidate
            .as_ref()
            .map(|(name, mode)| match mode.value().as_str() {
                "background" => Ok(Some(name.clone())),
                "inline" => Ok(None),
                _ => Err(syn::Error::new_spanned(
                    mode,
                    "`revalidate` is `\"inline\"` (the default: the caller that claims a \
                     refresh runs it) or `\"background\"` (a spawned task runs it; the body \
                     must own its arguments)",
                )),
            })
            .transpose()
            .map(Option::flatten),
    );
    errors.check()?;
    let (stale, refresh_ahead, background) = (stale?, refresh_ahead?, background?);
    if let (Some(name), None, None) = (&background, &stale, &refresh_ahead) {
        return Err(syn::Error::new(
            name.span(),
            "`revalidate` says where the refreshes of `stale` and `refresh_ahead` run: add one \
             of them, or remove it",
        ));
    }
    Ok(Windows {
        stale,
        stale_if_error: stale_if_error?,
        refresh_ahead,
        background,
    })
}

impl<'a> InvalidatingFn<'a> {
    pub(crate) fn from_syn(args: InvalidatesArgs, function: &'a ItemFn) -> syn::Result<Self> {
        let shape = Shape::of(&function.sig.output);
        let scope = scope(function, result_scope(&function.sig.output, shape));
        let mut errors = Errors::default();
        if args.keys.is_empty() && args.tags.is_none() {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[invalidates] needs at least one key template or tag, as in \
                 #[invalidates(\"user:<id>\")] or #[invalidates(tags = [\"department:<name>\"])]",
            ));
        }
        let keys = parse_all(&args.keys, &scope, &mut errors);
        check_async(function, "invalidates", &mut errors);
        let tags = parse_all(tag_templates(&args.tags), &scope, &mut errors);
        let each = errors.track(
            (args.each.as_ref())
                .map(|ids| batch::parameter(ids, function, "each").map(|_| ids.clone()))
                .transpose(),
        );
        errors.check()?;
        Ok(InvalidatingFn {
            function,
            keys,
            cache: CacheSource::from(args.cache),
            key_ignores: args.key_ignores.map(|list| list.0),
            tags,
            shape,
            each: each?,
        })
    }

    /// Whether some key or tag names the result, so that the expansion renders after the
    /// body.
    pub(crate) fn names_result(&self) -> bool {
        (self.keys.iter().chain(&self.tags)).any(|key| key.template.names_result())
    }
}

impl Key {
    /// A template naming the function's parameters only (rendered before the body runs).
    pub(crate) fn of_arguments(lit: LitStr, function: &ItemFn) -> syn::Result<Key> {
        Key::parse(lit, &scope(function, ResultScope::Unavailable))
    }

    fn parse(lit: LitStr, scope: &Scope) -> syn::Result<Key> {
        let template = Template::parse(&lit, scope)?;
        Ok(Key { lit, template })
    }
}

/// The templates that parse against the function's names; the others' errors go to
/// `errors`.
fn parse_all(templates: &[LitStr], scope: &Scope, errors: &mut Errors) -> Vec<Key> {
    (templates.iter())
        .filter_map(|lit| errors.track(Key::parse(lit.clone(), scope)).ok())
        .collect()
}

/// The tag templates, none when `tags` is not given.
fn tag_templates(tags: &Option<args::Tags>) -> &[LitStr] {
    tags.as_ref().map_or(&[], |tags| &tags.0)
}

impl From<Option<Expr>> for CacheSource {
    fn from(cache: Option<Expr>) -> Self {
        cache.map_or(CacheSource::Global, CacheSource::Explicit)
    }
}

fn check_async(function: &ItemFn, macro_name: &str, errors: &mut Errors) {
    if function.sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            function.sig.fn_token,
            format!("#[{macro_name}] only applies to `async fn`: add `async` before `fn`"),
        ));
    }
}

/// The declared return type's span (the name's, for `()`): where errors about the stored
/// value point.
pub(crate) fn output_span(function: &ItemFn) -> Span {
    match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => function.sig.ident.span(),
    }
}

/// What `<return>` names in an `#[invalidates]` template of a function returning `output`:
/// the part `shape` stores, unless that is `()`.
fn result_scope(output: &ReturnType, shape: Shape) -> ResultScope {
    let is_unit = |ty: &Type| matches!(peeled(ty), Type::Tuple(tuple) if tuple.elems.is_empty());
    let returns = match Stored::of(output) {
        Stored::Unit => "`()`",
        Stored::Named(ty) if is_unit(ty) => match shape {
            Shape::Whole => "`()`",
            Shape::OkOf => "a `Result` whose `Ok` is `()`",
            Shape::SomeOf => "an `Option` whose `Some` is `()`",
            Shape::OkSomeOf => "a `Result<Option<_>, _>` whose `Ok(Some)` is `()`",
        },
        _ => return ResultScope::Value,
    };
    ResultScope::Nothing(returns.to_owned())
}

/// Every name the parameters bind (through patterns such as `Path(id): Path<u64>` too), the
/// receiver, the function's own type and const parameters, and what `<return>` is.
fn scope(function: &ItemFn, result: ResultScope) -> Scope {
    let mut bindings = Vec::new();
    let mut receiver = None;
    for input in &function.sig.inputs {
        match input {
            FnArg::Receiver(recv) => receiver = Some(recv.self_token.span),
            FnArg::Typed(typed) => collect_bindings(&typed.pat, &mut bindings),
        }
    }
    let generics = function
        .sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some((param.ident.clone(), RootKind::Type)),
            GenericParam::Const(param) => Some((param.ident.clone(), RootKind::Const)),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    Scope {
        bindings,
        receiver,
        generics,
        result,
    }
}

/// The names `pat` binds, in order.
pub(crate) fn collect_bindings(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(binding) => {
            out.push(binding.ident.clone());
            if let Some((_, sub)) = &binding.subpat {
                collect_bindings(sub, out);
            }
        }
        Pat::Reference(reference) => collect_bindings(&reference.pat, out),
        Pat::Paren(paren) => collect_bindings(&paren.pat, out),
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Struct(strukt) => strukt
            .fields
            .iter()
            .for_each(|field| collect_bindings(&field.pat, out)),
        Pat::Slice(slice) => slice.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Type(typed) => collect_bindings(&typed.pat, out),
        _ => {}
    }
}
