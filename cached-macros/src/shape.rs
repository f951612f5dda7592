//! Which part of a cached function's return value is stored, read off the declared return
//! type: the whole value, the `Ok` of a `Result`, the `Some` of an `Option`, or both.

use syn::{GenericArgument, PathArguments, ReturnType, Type};

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
            Some(("Option", _)) => Shape::SomeOf,
            Some(("Result", Some(ok))) if matches!(last_segment(ok), Some(("Option", _))) => {
                Shape::OkSomeOf
            }
            Some(("Result", _)) => Shape::OkOf,
            _ => Shape::Whole,
        }
    }

    /// Whether the stored part is an `Option`, so that `cache_none` applies.
    pub(crate) fn is_option(self) -> bool {
        matches!(self, Shape::SomeOf | Shape::OkSomeOf)
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
