//! Whether a key tells a generic function's instantiations apart. Each type or const
//! parameter of the function must appear in the type of an argument the template renders
//! (`fn get<S: KeyPart>(name: S)` with `<name>`), or be named itself (`<T>`); an
//! `impl Trait` argument, an anonymous type parameter, must be rendered. Otherwise
//! `count_rows::<Users>(1)` and `count_rows::<Orders>(1)` would share one entry.
//!
//! `key_ignores = [E]` exempts the parameters (and `impl Trait` arguments, by binding)
//! whose choice does not change the result, such as a database executor; it may list only
//! those, and none that the key tells apart already, so the list is always true.
//!
//! Only the function's own generics are in view: an `impl` block's are not.

use crate::errors::Errors;
use crate::model::{Key, collect_bindings};
use crate::template::{RootKind, Segment, Template};
use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{FnArg, GenericParam, Ident, ItemFn, LitStr, Path, Type, TypeImplTrait};

/// Which attribute the templates belong to, for the wording of the errors.
#[derive(Clone, Copy)]
pub(crate) enum Use {
    Cached,
    Invalidation,
}

/// Checks the keys against `function`'s generics, leaving out what `key_ignores` lists, and
/// checks that list; every problem goes to `errors`.
pub(crate) fn check(
    function: &ItemFn,
    keys: &[Key],
    key_ignores: Option<&[Ident]>,
    usage: Use,
    errors: &mut Errors,
) {
    let generics = Generics::of(function);
    let coverages: Vec<Coverage> = keys
        .iter()
        .map(|key| generics.coverage(&key.template))
        .collect();
    for ident in key_ignores.unwrap_or_default() {
        if !generics.contains(ident) {
            errors.push(syn::Error::new(ident.span(), generics.not_listable(ident)));
        } else if let Some(how) = already_in_key(&generics, &coverages, ident) {
            let (where_, how) = match (usage, keys) {
                (Use::Cached, _) => ("the key".to_owned(), how.text(ident)),
                // The key is quoted: `<T>` is in sight.
                (Use::Invalidation, [key]) => (
                    format!("the key `{}`", key.lit.value()),
                    how.through_text(ident),
                ),
                // Each key may hold it differently.
                (Use::Invalidation, _) => ("every key".to_owned(), String::new()),
            };
            errors.push(syn::Error::new(
                ident.span(),
                format!("`{ident}` is in {where_} already{how}; remove it from `key_ignores`"),
            ));
        }
    }
    for (key, coverage) in keys.iter().zip(&coverages) {
        unkeyed(
            function,
            &generics,
            coverage,
            &key.lit,
            key_ignores,
            usage,
            errors,
        );
    }
}

/// Errors for what tells calls apart but is neither in the key `lit` nor in `key_ignores`.
fn unkeyed(
    function: &ItemFn,
    generics: &Generics,
    coverage: &Coverage,
    lit: &LitStr,
    key_ignores: Option<&[Ident]>,
    usage: Use,
    errors: &mut Errors,
) {
    let ignored = |ident: &Ident| key_ignores.is_some_and(|list| list.contains(ident));
    let function_name = &function.sig.ident;
    let consequence = match usage {
        Use::Cached => "would share entries",
        Use::Invalidation => "would delete the same key",
    };
    let the_key = match usage {
        Use::Cached => "the key".to_owned(),
        Use::Invalidation => format!("the key `{}`", lit.value()),
    };
    // The way out when the choice of `ident` does not matter; `examples` of such types.
    let or_ignore = |ident: &Ident, examples: &str| {
        let doesnt_depend = match usage {
            Use::Cached => format!("the result does not depend on `{ident}`"),
            Use::Invalidation => format!("the keys to delete do not depend on `{ident}`"),
        };
        let add = if key_ignores.is_some() {
            format!("add `{ident}` to `key_ignores`")
        } else {
            format!("add `key_ignores = [{ident}]`")
        };
        format!("; or, if {doesnt_depend}{examples}, {add}")
    };
    let executors = " (an executor, a connection)";

    for (index, argument) in generics.impl_arguments.iter().enumerate() {
        if coverage
            .impl_arguments
            .iter()
            .any(|(covered, _)| *covered == index)
            || argument.bindings.iter().any(&ignored)
        {
            continue;
        }
        let remedy = match argument.bindings.first() {
            Some(binding) => format!(
                "render the argument in the key (`<{binding}>`), or replace `impl ...` by a \
                 named type parameter and name that in the key, as in `<T>`{}",
                or_ignore(binding, executors)
            ),
            None => "replace `impl ...` by a named type parameter and name that in the key, \
                     as in `<T>`"
                .to_owned(),
        };
        errors.push(syn::Error::new_spanned(
            argument.impl_trait,
            format!(
                "this `impl Trait` argument is an anonymous type parameter that {the_key} does \
                 not render, so calls passing different types for it {consequence}: {remedy}"
            ),
        ));
    }

    for &(ident, kind) in &generics.params {
        if coverage.params.iter().any(|(covered, _)| *covered == ident) || ignored(ident) {
            continue;
        }
        let calls = if kind == Kind::Type && generics.type_count() == 1 {
            format!("`{function_name}::<A>` and `{function_name}::<B>`")
        } else {
            format!("calls differing only in `{ident}`")
        };
        let also = match usage {
            Use::Cached => "",
            Use::Invalidation => " (and in the cached function's key)",
        };
        let or_ignore = match kind {
            Kind::Type => or_ignore(ident, executors),
            Kind::Const => or_ignore(ident, ""),
        };
        errors.push(syn::Error::new_spanned(
            ident,
            format!(
                "{} parameter `{ident}` does not appear in any argument {the_key} renders, \
                 so {calls} {consequence}: name it in the key{also}, as in `{}`{or_ignore}",
                kind.word(),
                suggestion(&lit.value(), ident)
            ),
        ));
    }
}

/// How the first key covers `ident`, if every key does.
fn already_in_key(generics: &Generics, coverages: &[Coverage], ident: &Ident) -> Option<How> {
    let mut hows = coverages
        .iter()
        .map(|coverage| coverage.how(generics, ident));
    let first = hows.next()??;
    hows.all(|how| how.is_some()).then_some(first)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Type,
    Const,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Type => "type",
            Kind::Const => "const",
        }
    }
}

/// An argument whose type has an `impl Trait`, and the names its pattern binds.
struct ImplArgument<'a> {
    bindings: Vec<Ident>,
    impl_trait: &'a TypeImplTrait,
}

/// What tells a generic function's instantiations apart: its own type and const
/// parameters, and its `impl Trait` arguments; and, to find what a key renders, the
/// names every typed argument binds with its type.
struct Generics<'a> {
    params: Vec<(&'a Ident, Kind)>,
    impl_arguments: Vec<ImplArgument<'a>>,
    arguments: Vec<(Vec<Ident>, &'a Type)>,
}

/// What one key tells apart: parameters, each with how (`<T>`, or the binding of a
/// rendered argument whose type has it), and `impl Trait` arguments by index, each with
/// the binding rendered.
struct Coverage<'a> {
    params: Vec<(&'a Ident, How)>,
    impl_arguments: Vec<(usize, Ident)>,
}

/// How a key covers a parameter or an `impl Trait` argument.
#[derive(Clone)]
enum How {
    /// `<T>`, or `<db>` for an `impl Trait` argument.
    Named(Ident),
    /// `<name>` renders an argument whose type has the parameter.
    Through(Ident),
}

impl How {
    /// To follow "`T` is in the key already".
    fn text(&self, ident: &Ident) -> String {
        match self {
            How::Named(placeholder) => format!(" (`<{placeholder}>`)"),
            How::Through(_) => self.through_text(ident),
        }
    }

    /// Only what a quoted key does not show.
    fn through_text(&self, ident: &Ident) -> String {
        match self {
            How::Named(_) => String::new(),
            How::Through(binding) => {
                format!(": `<{binding}>` renders an argument whose type has `{ident}`")
            }
        }
    }
}

impl Coverage<'_> {
    /// Whether the key covers `ident` (a parameter, or an `impl Trait` argument's
    /// binding), and how.
    fn how(&self, generics: &Generics, ident: &Ident) -> Option<How> {
        if let Some((_, how)) = self.params.iter().find(|(param, _)| *param == ident) {
            return Some(how.clone());
        }
        self.impl_arguments.iter().find_map(|(index, rendered)| {
            let argument = &generics.impl_arguments[*index];
            let named = || How::Named(rendered.clone());
            argument.bindings.contains(ident).then(named)
        })
    }
}

impl<'a> Generics<'a> {
    fn of(function: &'a ItemFn) -> Generics<'a> {
        let params = function
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => Some((&param.ident, Kind::Type)),
                GenericParam::Const(param) => Some((&param.ident, Kind::Const)),
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        let (mut impl_arguments, mut arguments) = (Vec::new(), Vec::new());
        for input in &function.sig.inputs {
            let FnArg::Typed(typed) = input else {
                // A receiver's type is `Self` or wraps it: the function's generics are not
                // in it.
                continue;
            };
            let mut bindings = Vec::new();
            collect_bindings(&typed.pat, &mut bindings);
            let mut finder = ImplTraitFinder(None);
            finder.visit_type(&typed.ty);
            if let Some(impl_trait) = finder.0 {
                impl_arguments.push(ImplArgument {
                    bindings: bindings.clone(),
                    impl_trait,
                });
            }
            arguments.push((bindings, &*typed.ty));
        }
        Generics {
            params,
            impl_arguments,
            arguments,
        }
    }

    fn type_count(&self) -> usize {
        let types = self.params.iter().filter(|(_, kind)| *kind == Kind::Type);
        types.count()
    }

    /// What `template` tells apart.
    fn coverage(&self, template: &Template) -> Coverage<'a> {
        let (mut rendered, mut named) = (Vec::new(), Vec::new());
        for segment in &template.segments {
            if let Segment::Placeholder(placeholder) = segment {
                match placeholder.kind {
                    RootKind::Value => rendered.push(&placeholder.root),
                    RootKind::Type | RootKind::Const => named.push(&placeholder.root),
                    // The result's type is not checked for the parameters: name them.
                    RootKind::Result => {}
                }
            }
        }
        let rendered_arguments: Vec<(&Ident, &Type)> = self
            .arguments
            .iter()
            .filter_map(|(bindings, ty)| {
                let binding = bindings.iter().find(|binding| rendered.contains(binding))?;
                Some((binding, *ty))
            })
            .collect();
        let params = self
            .params
            .iter()
            .filter_map(|&(ident, _)| {
                if named.contains(&ident) {
                    return Some((ident, How::Named(ident.clone())));
                }
                let (binding, _) = rendered_arguments
                    .iter()
                    .find(|(_, ty)| mentions(ty, ident))?;
                Some((ident, How::Through((*binding).clone())))
            })
            .collect();
        let impl_arguments = (self.impl_arguments.iter().enumerate())
            .filter_map(|(index, argument)| {
                let bindings = &argument.bindings;
                let binding = bindings.iter().find(|binding| rendered.contains(binding))?;
                Some((index, binding.clone()))
            })
            .collect();
        Coverage {
            params,
            impl_arguments,
        }
    }

    /// Whether `key_ignores` may list `ident`.
    fn contains(&self, ident: &Ident) -> bool {
        self.params.iter().any(|(param, _)| *param == ident)
            || self
                .impl_arguments
                .iter()
                .any(|argument| argument.bindings.contains(ident))
    }

    /// Why `key_ignores` may not list `ident`, naming what it may list.
    fn not_listable(&self, ident: &Ident) -> String {
        let names = |kind: Kind| -> Vec<String> {
            let params = self.params.iter().filter(|(_, k)| *k == kind);
            params.map(|(param, _)| format!("`{param}`")).collect()
        };
        let impls: Vec<String> = self
            .impl_arguments
            .iter()
            .filter_map(|argument| argument.bindings.first())
            .map(|binding| format!("`{binding}`"))
            .collect();
        let lists = [
            ("type parameter", "type parameters", names(Kind::Type)),
            ("const parameter", "const parameters", names(Kind::Const)),
            ("`impl Trait` argument", "`impl Trait` arguments", impls),
        ];
        let present: Vec<_> = lists
            .iter()
            .filter(|(.., names)| !names.is_empty())
            .collect();
        // `db` for `db: E`: list `E`.
        if let Some((_, ty)) = self
            .arguments
            .iter()
            .find(|(bindings, _)| bindings.contains(ident))
        {
            let mentioned: Vec<String> = self
                .params
                .iter()
                .filter(|(param, _)| mentions(ty, param))
                .map(|(param, _)| format!("`{param}`"))
                .collect();
            let instead = match mentioned.as_slice() {
                [] => None,
                [one] => Some(format!("list the parameter in its type, {one}, instead")),
                many => Some(format!(
                    "list the parameters in its type instead: {}",
                    many.join(", ")
                )),
            };
            if let Some(instead) = instead {
                return format!(
                    "`{ident}` in `key_ignores` is an argument, not a parameter of this \
                     function: {instead}"
                );
            }
        }
        if present.is_empty() {
            return format!(
                "`{ident}` in `key_ignores` is not a type parameter of this function: it has no \
                 type or const parameters and no `impl Trait` arguments, so remove `key_ignores`"
            );
        }
        let what: Vec<String> = present
            .iter()
            .map(|(one, ..)| {
                let article = if one.starts_with('`') { "an" } else { "a" };
                format!("{article} {one}")
            })
            .collect();
        let what = match what.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, init)) => format!("{} or {last}", init.join(", ")),
            None => String::new(),
        };
        let listed: Vec<String> = present
            .iter()
            .map(|(one, many, names)| match names.as_slice() {
                [name] => format!("the {one} is {name}"),
                names => format!("the {many} are {}", names.join(", ")),
            })
            .collect();
        format!(
            "`{ident}` in `key_ignores` is not {what} of this function: {}",
            listed.join("; ")
        )
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
