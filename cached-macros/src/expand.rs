//! Code generation: the user's function, kept as written, with its body run through the
//! runtime's cache-aside (`cached`) or invalidation (`invalidate`) helper.

use crate::args::{CachedArgs, InvalidatesArgs};
use crate::generics::{self, Use};
use crate::template::{Placeholder, RootKind, Scope, Segment, Template};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    AttrStyle, Expr, FnArg, GenericArgument, GenericParam, Ident, ItemFn, LitBool, Pat,
    PathArguments, ReturnType, Type,
};

/// `#[redis_cached]`: render the key at entry, then look up, or run the body and store.
pub(crate) fn cached(args: CachedArgs, function: ItemFn) -> syn::Result<TokenStream> {
    check_async(&function, "redis_cached")?;
    let scope = scope(&function);
    let template = Template::parse(&args.key, &scope)?;
    let key_ignores = args.key_ignores.as_ref().map(|list| list.0.as_slice());
    generics::check(
        &function,
        &[(&args.key, &template)],
        key_ignores,
        Use::Cached,
    )?;
    let shape = shape(&function.sig.output);
    if let Some(flag) = &args.cache_none
        && !matches!(shape, Shape::SomeOf | Shape::OkSomeOf)
    {
        return Err(syn::Error::new_spanned(
            flag,
            "`cache_none` only applies to functions returning `Option<T>` or `Result<Option<T>, E>`",
        ));
    }

    let cache = cache_source(args.cache.as_ref());
    let name = function_name(&function);
    let render = render(&template);
    let ttl = args.ttl.map(|seconds| quote!(.ttl(#seconds)));
    let refresh = args
        .refresh
        .map(|expr| quote_spanned!(expr.span()=> .refresh(#expr)));
    let cache_none = args.cache_none.map(|flag| quote!(.cache_none(#flag)));
    let output_span = output_span(&function);
    // `near_cache = true` holds decoded values in the near tier (the value type must be
    // `Clone`); otherwise the tier, if any, holds the stored bytes.
    let near_mode = if args.near_cache.as_ref().is_some_and(LitBool::value) {
        quote_spanned!(output_span=> ::redis_cached::__private::CloneValue)
    } else {
        quote_spanned!(output_span=> ::redis_cached::__private::DecodeEach)
    };
    let near = args.near_cache.map(|flag| quote!(.near(#flag)));
    let shape = shape.tokens(output_span);
    let body = body(&function);
    // Spanned on the return type: an unstorable value type is reported there.
    let cached = quote_spanned! {output_span=>
        ::redis_cached::__private::cached::<#shape, #near_mode, _, _>(
            __redis_cached_call,
            __redis_cached_body,
        )
    };
    Ok(rewrite(
        function,
        quote! {
            let __redis_cached_call = ::redis_cached::__private::Call::new(#cache, #name, #render)
                #ttl #refresh #cache_none #near;
            // Pinned here, in the function's own future, so that the runtime's futures hold
            // a pointer to the body rather than copies of it.
            let __redis_cached_body = ::redis_cached::__private::pin!(#body);
            #cached
        },
        output_span,
    ))
}

/// `#[invalidates]`: render every key at entry, run the body, then delete them all.
pub(crate) fn invalidates(args: InvalidatesArgs, function: ItemFn) -> syn::Result<TokenStream> {
    check_async(&function, "invalidates")?;
    let scope = scope(&function);
    let templates = args
        .keys
        .iter()
        .map(|key| Template::parse(key, &scope))
        .collect::<syn::Result<Vec<_>>>()?;
    let keys: Vec<_> = args.keys.iter().zip(&templates).collect();
    let key_ignores = args.key_ignores.as_ref().map(|list| list.0.as_slice());
    generics::check(&function, &keys, key_ignores, Use::Invalidation)?;
    let cache = cache_source(args.cache.as_ref());
    let name = function_name(&function);
    let count = templates.len();
    let renders = templates.iter().map(render);
    let output_span = output_span(&function);
    let body = body(&function);
    Ok(rewrite(
        function,
        quote! {
            let __redis_cached_invalidation =
                ::redis_cached::__private::Invalidation::new(#cache, #name, #count)
                    #(.key(#renders))*;
            let __redis_cached_body = ::redis_cached::__private::pin!(#body);
            ::redis_cached::__private::invalidate(__redis_cached_invalidation, __redis_cached_body)
        },
        output_span,
    ))
}

fn check_async(function: &ItemFn, macro_name: &str) -> syn::Result<()> {
    if function.sig.asyncness.is_some() {
        return Ok(());
    }
    Err(syn::Error::new_spanned(
        function.sig.fn_token,
        format!("#[{macro_name}] only applies to `async fn`: add `async` before `fn`"),
    ))
}

/// The declared return type's span (the name's, for `()`).
fn output_span(function: &ItemFn) -> Span {
    match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => function.sig.ident.span(),
    }
}

/// The user's attributes, visibility and signature, around a new body.
fn rewrite(function: ItemFn, statements: TokenStream, output_span: Span) -> TokenStream {
    let ItemFn {
        attrs, vis, sig, ..
    } = function;
    let (outer, inner): (Vec<_>, Vec<_>) = attrs
        .into_iter()
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
fn body(function: &ItemFn) -> TokenStream {
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
fn cache_source(cache: Option<&Expr>) -> TokenStream {
    match cache {
        None => quote!(::redis_cached::__private::global()),
        // Borrowed, so that `cache = cache` does not move a parameter the body uses.
        Some(expr) => quote_spanned!(expr.span()=> ::redis_cached::__private::named(&(#expr))),
    }
}

/// `"my_crate::module::function"`, the label of metrics and log lines.
fn function_name(function: &ItemFn) -> TokenStream {
    let name = function.sig.ident.to_string();
    quote!(
        ::redis_cached::__private::concat!(::redis_cached::__private::module_path!(), "::", #name)
    )
}

/// A closure that writes the template into the key builder.
fn render(template: &Template) -> TokenStream {
    let steps = template.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(__redis_cached_key.literal(#text);),
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
            } else if members.is_empty() {
                quote_spanned!(root.span()=> __redis_cached_key.part(&#root);)
            } else {
                let root = Ident::new(&root.to_string(), *span);
                quote_spanned!(*span=> __redis_cached_key.part(&#root #(.#members)*);)
            }
        }
    });
    quote! {
        |__redis_cached_key: &mut ::redis_cached::__private::KeyBuilder| { #(#steps)* }
    }
}

/// Every name the parameters bind (through patterns such as `Path(id): Path<u64>` too), the
/// receiver, and the function's own type and const parameters.
fn scope(function: &ItemFn) -> Scope {
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
    }
}

pub(crate) fn collect_bindings(pat: &Pat, out: &mut Vec<syn::Ident>) {
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

/// Which part of the return value is stored, by the last segment of its path.
enum Shape {
    Whole,
    OkOf,
    SomeOf,
    OkSomeOf,
}

impl Shape {
    fn tokens(&self, span: Span) -> TokenStream {
        match self {
            Shape::Whole => quote_spanned!(span=> ::redis_cached::__private::Whole),
            Shape::OkOf => quote_spanned!(span=> ::redis_cached::__private::OkOf),
            Shape::SomeOf => quote_spanned!(span=> ::redis_cached::__private::SomeOf),
            Shape::OkSomeOf => quote_spanned!(span=> ::redis_cached::__private::OkSomeOf),
        }
    }
}

fn shape(output: &ReturnType) -> Shape {
    let ReturnType::Type(_, ty) = output else {
        return Shape::Whole;
    };
    match last_segment(ty) {
        Some(("Option", _)) => Shape::SomeOf,
        Some(("Result", Some(ok))) if matches!(last_segment(ok), Some(("Option", _))) => {
            Shape::OkSomeOf
        }
        Some(("Result", _)) => Shape::OkOf,
        _ => Shape::Whole,
    }
}

/// The kind of a path type's last segment (`Option`, or `Result` and generic aliases whose
/// name ends in `Result`, such as `AppResult<T>`) and its first type argument. Such an alias
/// of another shape then fails to compile rather than having its errors cached; a plain
/// `SearchResult` struct is stored whole.
fn last_segment(ty: &Type) -> Option<(&'static str, Option<&Type>)> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    let ident = segment.ident.to_string();
    let first = match &segment.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    };
    let name = if ident == "Option" {
        "Option"
    } else if ident == "Result" || (ident.ends_with("Result") && first.is_some()) {
        "Result"
    } else {
        return None;
    };
    Some((name, first))
}
