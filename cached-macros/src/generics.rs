//! Whether a key tells a generic function's instantiations apart. Each type or const
//! parameter of the function must appear in the type of an argument the template renders
//! (`fn get<S: AsRef<str>>(name: S)` with `<name>`), or be named itself (`<T>`); an
//! `impl Trait` argument, an anonymous type parameter, must be rendered. Otherwise
//! `count_rows::<Users>(1)` and `count_rows::<Orders>(1)` would share one entry.
//!
//! Only the function's own generics are in view: an `impl` block's are not.

use crate::expand::collect_bindings;
use crate::template::{RootKind, Segment, Template};
use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{FnArg, GenericParam, Ident, ItemFn, LitStr, Path, Type, TypeImplTrait};

/// Which attribute the template belongs to, for the wording of the errors.
#[derive(Clone, Copy)]
pub(crate) enum Use {
    Cached,
    Invalidation,
}

/// Checks `template` (written as `lit`) against `function`'s generics; all problems are
/// reported together.
pub(crate) fn check(
    function: &ItemFn,
    template: &Template,
    lit: &LitStr,
    usage: Use,
) -> syn::Result<()> {
    let (mut rendered, mut named) = (Vec::new(), Vec::new());
    for segment in &template.segments {
        if let Segment::Placeholder(placeholder) = segment {
            match placeholder.kind {
                RootKind::Value => rendered.push(&placeholder.root),
                RootKind::Type | RootKind::Const => named.push(&placeholder.root),
            }
        }
    }
    let function_name = &function.sig.ident;
    let consequence = match usage {
        Use::Cached => "would share entries",
        Use::Invalidation => "would delete the same key",
    };
    let the_key = match usage {
        Use::Cached => "the key".to_owned(),
        Use::Invalidation => format!("the key `{}`", lit.value()),
    };
    let mut errors = Vec::new();

    // The types of the rendered arguments; an unrendered `impl Trait` argument is an error.
    let mut rendered_types: Vec<&Type> = Vec::new();
    for input in &function.sig.inputs {
        let FnArg::Typed(typed) = input else {
            // A receiver's type is `Self` or wraps it: the function's generics are not in it.
            continue;
        };
        let mut bindings = Vec::new();
        collect_bindings(&typed.pat, &mut bindings);
        if bindings.iter().any(|binding| rendered.contains(&binding)) {
            rendered_types.push(&typed.ty);
            continue;
        }
        let mut finder = ImplTraitFinder(None);
        finder.visit_type(&typed.ty);
        let Some(impl_trait) = finder.0 else {
            continue;
        };
        let render = match bindings.first() {
            Some(binding) => format!(
                "render the argument in the key (`<{binding}>`), or replace `impl ...` by a \
                 named type parameter and name that in the key, as in `<T>`"
            ),
            None => "replace `impl ...` by a named type parameter and name that in the key, \
                     as in `<T>`"
                .to_owned(),
        };
        errors.push(syn::Error::new_spanned(
            impl_trait,
            format!(
                "this `impl Trait` argument is an anonymous type parameter that {the_key} does \
                 not render, so calls passing different types for it {consequence}: {render}"
            ),
        ));
    }

    let generics: Vec<(&Ident, &str)> = function
        .sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some((&param.ident, "type")),
            GenericParam::Const(param) => Some((&param.ident, "const")),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    for &(ident, what) in &generics {
        if named.contains(&ident) || rendered_types.iter().any(|ty| mentions(ty, ident)) {
            continue;
        }
        let calls = if what == "type" && generics.len() == 1 {
            format!("`{function_name}::<A>` and `{function_name}::<B>`")
        } else {
            format!("calls differing only in `{ident}`")
        };
        let also = match usage {
            Use::Cached => "",
            Use::Invalidation => " (and in the cached function's key)",
        };
        errors.push(syn::Error::new_spanned(
            ident,
            format!(
                "{what} parameter `{ident}` does not appear in any argument {the_key} renders, \
                 so {calls} {consequence}: name it in the key{also}, as in `{}`",
                suggestion(&lit.value(), ident)
            ),
        ));
    }

    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            errors.for_each(|error| first.combine(error));
            Err(first)
        }
    }
}

/// `template` with `<ident>` added: before the first placeholder, or at the end.
fn suggestion(template: &str, ident: &Ident) -> String {
    match template.find('<') {
        Some(at) => format!("{}<{ident}>:{}", &template[..at], &template[at..]),
        None if template.is_empty() || template.ends_with(':') => format!("{template}<{ident}>"),
        None => format!("{template}:<{ident}>"),
    }
}

/// Whether `ty` names `ident` as a path's first segment (`T`, `Vec<T>`, `T::Item`,
/// `[u8; N]`), or has it anywhere in a macro's tokens.
fn mentions(ty: &Type, ident: &Ident) -> bool {
    let mut finder = IdentFinder {
        ident,
        found: false,
    };
    finder.visit_type(ty);
    finder.found
}

struct IdentFinder<'a> {
    ident: &'a Ident,
    found: bool,
}

impl<'ast> Visit<'ast> for IdentFinder<'_> {
    fn visit_path(&mut self, path: &'ast Path) {
        if path.leading_colon.is_none()
            && path
                .segments
                .first()
                .is_some_and(|segment| segment.ident == *self.ident)
        {
            self.found = true;
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // A macro's expansion is out of sight: assume it uses the parameter if it names it.
        self.found |= has_ident(mac.tokens.clone(), self.ident);
        visit::visit_macro(self, mac);
    }
}

fn has_ident(tokens: TokenStream, ident: &Ident) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(found) => found == *ident,
        TokenTree::Group(group) => has_ident(group.stream(), ident),
        _ => false,
    })
}

/// The first `impl Trait` in a type (`impl Trait`, `&impl Trait`, `Vec<impl Trait>`).
struct ImplTraitFinder<'ast>(Option<&'ast TypeImplTrait>);

impl<'ast> Visit<'ast> for ImplTraitFinder<'ast> {
    fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
        self.0.get_or_insert(impl_trait);
    }
}
