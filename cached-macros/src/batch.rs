//! The batch form, `#[redis_cached(key = "employee:<ids>", batch = ids)]`: the parameter
//! holding the ids (`&[K]` or `Vec<K>`) and the map the function returns
//! (`HashMap<K, V>` or `Result<HashMap<K, V>, E>`). Read in `model`; its rules with the
//! other parts (the key names the ids, no option of `args::NOT_WITH_BATCH`) are `valid`'s;
//! expanded by `expand::batch`.
//!
//! `#[invalidates("employee:<ids>", each = ids)]` takes the same parameter types
//! ([`parameter`]): its templates that name the parameter are rendered once per element.

use crate::errors::Errors;
use crate::shape::peeled;
use crate::template::{Placeholder, Segment, Template};
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Token, Type};

/// The batch parameter of a function, and the value type of its map.
pub(crate) struct BatchParam<'a> {
    pub(crate) ident: Ident,
    pub(crate) mutability: Option<Token![mut]>,
    /// `Vec<K>` (rebound to a `Vec` of the missing ids) rather than `&[K]` (to a slice).
    pub(crate) owned: bool,
    /// `V` in the returned `HashMap<K, V>`: what is stored under each id's key.
    pub(crate) value: &'a Type,
}

impl<'a> BatchParam<'a> {
    /// The parameter `name` names, and the map's value type; the errors of both.
    pub(crate) fn read(name: &Ident, function: &'a ItemFn) -> syn::Result<BatchParam<'a>> {
        let mut errors = Errors::default();
        let parameter = errors.track(parameter(name, function, "batch"));
        let value = errors.track(map_value(function));
        errors.check()?;
        let (ident, mutability, owned) = parameter?;
        Ok(BatchParam {
            ident,
            mutability,
            owned,
            value: value?,
        })
    }
}

/// The parameter `name` of `argument = name` (`batch`, `each`), by a plain binding, of type
/// `&[K]` or `Vec<K>`: its binding, `mut` and whether it is a `Vec`.
pub(crate) fn parameter(
    name: &Ident,
    function: &ItemFn,
    argument: &str,
) -> syn::Result<(Ident, Option<Token![mut]>, bool)> {
    let found = function.sig.inputs.iter().find_map(|input| match input {
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(binding) if binding.ident == *name => Some((binding, &*typed.ty)),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    });
    let Some((binding, ty)) = found else {
        return Err(syn::Error::new_spanned(
            name,
            format!(
                "`{argument} = {name}` names no parameter of `{}`: name the parameter that holds \
                 the ids, as in `{argument} = ids` for `ids: &[i64]`",
                function.sig.ident
            ),
        ));
    };
    let owned = match peeled(ty) {
        Type::Reference(reference)
            if reference.mutability.is_none()
                && matches!(peeled(&reference.elem), Type::Slice(_)) =>
        {
            false
        }
        ty if generic_args(ty, "Vec").is_some_and(|args| args.len() == 1) => true,
        _ => {
            return Err(syn::Error::new_spanned(
                ty,
                format!(
                    "the {argument} parameter `{name}` must be a slice `&[K]` or a `Vec<K>` of \
                     ids, as in `{name}: &[i64]`"
                ),
            ));
        }
    };
    if binding.by_ref.is_some() || binding.subpat.is_some() {
        return Err(syn::Error::new_spanned(
            binding,
            format!("bind the {argument} parameter by name alone, as in `{name}: &[i64]`"),
        ));
    }
    Ok((binding.ident.clone(), binding.mutability, owned))
}

/// Whether `template` names the parameter `ids` (`<ids>`, `<ids.field>`): then it is
/// rendered once per id.
pub(crate) fn names(template: &Template, ids: &Ident) -> bool {
    template.segments.iter().any(
        |segment| matches!(segment, Segment::Placeholder(Placeholder { root, .. }) if root == ids),
    )
}

/// `V` of a return type `HashMap<K, V>` or `Result<HashMap<K, V>, E>`.
fn map_value(function: &ItemFn) -> syn::Result<&Type> {
    let expected = "a batch function returns `HashMap<K, V>` or `Result<HashMap<K, V>, E>`: \
                    the ids found (`K`, the batch parameter's element) and their values";
    let ReturnType::Type(_, ty) = &function.sig.output else {
        return Err(syn::Error::new_spanned(&function.sig.ident, expected));
    };
    let map = match generic_args(ty, "Result") {
        Some(args) => args.first().copied().unwrap_or(ty),
        None => ty,
    };
    match generic_args(map, "HashMap").as_deref() {
        Some([_, value, ..]) => Ok(value),
        _ => Err(syn::Error::new_spanned(ty, expected)),
    }
}

/// The type arguments of `ty` when its path's last segment is `name`.
fn generic_args<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a Type>> {
    let Type::Path(path) = peeled(ty) else {
        return None;
    };
    let segment = path.path.segments.last()?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
    )
}
