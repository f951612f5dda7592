//! Which part of a cached function's return value is stored, read off the declared return
//! type: the whole value, the `Ok` of a `Result`, the `Some` of an `Option`, or both; and the
//! stored type itself, which the expansion checks where it is written.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{GenericArgument, PathArguments, ReturnType, Type, TypeImplTrait};

/// Which part of the return value is stored, by the last segment of its path; the runtime's
/// `__private::{Whole, OkOf, SomeOf, OkSomeOf}`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Whole,
    OkOf,
    SomeOf,
    OkSomeOf,
}

impl Shape {
    pub(crate) fn of(output: &ReturnType) -> Shape {
        let ReturnType::Type(_, ty) = output else {
            return Shape::Whole;
        };
        match last_segment(ty) {
            Some(Segment::Option(_)) => Shape::SomeOf,
            Some(Segment::Result(Some(ok), _))
                if matches!(last_segment(ok), Some(Segment::Option(_))) =>
            {
                Shape::OkSomeOf
            }
            Some(Segment::Result(..)) => Shape::OkOf,
            _ => Shape::Whole,
        }
    }

    /// Whether the stored part is an `Option`, so that `cache_none` applies.
    pub(crate) fn is_option(self) -> bool {
        matches!(self, Shape::SomeOf | Shape::OkSomeOf)
    }

    /// Whether the function returns a `Result`, whose `Err` is not stored.
    pub(crate) fn is_result(self) -> bool {
        matches!(self, Shape::OkOf | Shape::OkSomeOf)
    }
}

/// The stored type as written in the return type, for the check on it.
pub(crate) enum Stored<'a> {
    /// `T` in `T`, `Result<T, E>`, `Option<T>` or `Result<Option<T>, E>`.
    Named(&'a Type),
    /// `()`: the function declares no return type.
    Unit,
    /// Not written as such: read through an alias whose name ends in `Result` (`AppResult<T>`
    /// may stand for something else than `Result<T, E>`), or holding an `impl Trait`, which a
    /// turbofish cannot name. The check then infers it, spanned at what the macro guessed.
    Inferred(Span),
}

impl Stored<'_> {
    pub(crate) fn of(output: &ReturnType) -> Stored<'_> {
        let ReturnType::Type(_, ty) = output else {
            return Stored::Unit;
        };
        let (stored, named) = match last_segment(ty) {
            Some(Segment::Option(Some(some))) => (some, true),
            Some(Segment::Result(Some(ok), exact)) => match last_segment(ok) {
                Some(Segment::Option(Some(some))) => (some, exact),
                _ => (ok, exact),
            },
            _ => (&**ty, true),
        };
        if named && !holds_impl_trait(stored) {
            Stored::Named(stored)
        } else {
            Stored::Inferred(stored.span())
        }
    }

    /// Where the check's errors point: the stored type, or the name for `()`.
    pub(crate) fn span(&self, unit: Span) -> Span {
        match self {
            Stored::Named(ty) => ty.span(),
            Stored::Unit => unit,
            Stored::Inferred(span) => *span,
        }
    }
}

fn holds_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    visit::visit_type(&mut finder, ty);
    finder.0
}

/// `ty` without the groups around it: a type a `macro_rules!` macro passes on as a `ty`
/// fragment comes wrapped in an invisible group (and `(T)` is `T`), so that what it is
/// (`Option<T>`, `Result<T, E>`, `&[T]`, `()`) is read inside them.
pub(crate) fn peeled(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => peeled(&group.elem),
        Type::Paren(paren) => peeled(&paren.elem),
        ty => ty,
    }
}

/// A path type's last segment, when it is an `Option` or a `Result`, with its first type
/// argument.
enum Segment<'a> {
    Option(Option<&'a Type>),
    /// `true` for `Result` itself (`std::io::Result<T>` too: its `T` is its `Ok` type), false
    /// for an alias read by its name.
    Result(Option<&'a Type>, bool),
}

/// The kind of a path type's last segment (`Option`, or `Result` and generic aliases whose
/// name ends in `Result`, such as `AppResult<T>`) and its first type argument. Such an alias
/// of another shape then fails to compile rather than having its errors cached; a plain
/// `SearchResult` struct is stored whole.
fn last_segment(ty: &Type) -> Option<Segment<'_>> {
    let Type::Path(path) = peeled(ty) else {
        return None;
    };
    let segment = path.path.segments.last()?;
    let ident = segment.ident.to_string();
    let first = match &segment.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    };
    if ident == "Option" {
        Some(Segment::Option(first))
    } else if ident == "Result" || (ident.ends_with("Result") && first.is_some()) {
        Some(Segment::Result(first, ident == "Result"))
    } else {
        None
    }
}
