//! The key template grammar: literal text with `<name>` or `<name.field.subfield>`
//! placeholders, checked against the names the function's parameters bind.

use proc_macro2::Span;
use syn::{Ident, LitStr, Member};

/// A parsed key template.
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
}

pub(crate) enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// `<root.member.member>`: `root` is a parameter binding or `self`.
pub(crate) struct Placeholder {
    pub(crate) root: Ident,
    pub(crate) members: Vec<Member>,
    /// The template literal's span, where errors about fields point.
    pub(crate) span: Span,
}

/// The names a template may use, with the spans they were declared at.
pub(crate) struct Scope {
    pub(crate) bindings: Vec<Ident>,
    pub(crate) receiver: Option<Span>,
}

impl Scope {
    fn resolve(&self, name: &str) -> Option<Ident> {
        if name == "self" {
            return self.receiver.map(|span| Ident::new("self", span));
        }
        self.bindings.iter().find(|ident| *ident == name).cloned()
    }

    fn names(&self) -> String {
        let mut names: Vec<String> = self.bindings.iter().map(|i| format!("`{i}`")).collect();
        if self.receiver.is_some() {
            names.insert(0, "`self`".to_owned());
        }
        if names.is_empty() {
            "this function has no named parameters".to_owned()
        } else {
            format!("the parameters are {}", names.join(", "))
        }
    }
}

impl Template {
    /// Parses `lit` and resolves its placeholders in `scope`; errors point at the literal.
    pub(crate) fn parse(lit: &LitStr, scope: &Scope) -> syn::Result<Template> {
        let text = lit.value();
        let error = |message: String| syn::Error::new_spanned(lit, message);
        let mut segments = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let literal_end = rest.find(['<', '>']).unwrap_or(rest.len());
            let (literal, tail) = rest.split_at(literal_end);
            if literal.contains('\\') {
                return Err(error(
                    "`\\` may not appear in a key template: it is the escape character of rendered keys"
                        .into(),
                ));
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(literal.to_owned()));
            }
            if tail.is_empty() {
                break;
            }
            if tail.starts_with('>') {
                return Err(error(
                    "unmatched `>` in key template: `<` and `>` only delimit placeholders such as `<id>`"
                        .into(),
                ));
            }
            let Some(close) = tail
                .find('>')
                .filter(|close| !tail[1..*close].contains('<'))
            else {
                return Err(error(
                    "unclosed `<` in key template: close the placeholder with `>`, as in `<id>`"
                        .into(),
                ));
            };
            let inner = &tail[1..close];
            segments.push(Segment::Placeholder(placeholder(
                inner,
                scope,
                lit.span(),
                &error,
            )?));
            rest = &tail[close + 1..];
        }
        check_separated(&segments, &error)?;
        Ok(Template { segments })
    }
}

fn placeholder(
    inner: &str,
    scope: &Scope,
    span: Span,
    error: &impl Fn(String) -> syn::Error,
) -> syn::Result<Placeholder> {
    if inner.is_empty() {
        return Err(error(
            "empty placeholder `<>` in key template: name a parameter, as in `<id>`".into(),
        ));
    }
    let mut path = inner.split('.');
    let name = path.next().unwrap_or_default();
    let Some(root) = scope.resolve(name) else {
        let problem = if name == "self" {
            format!("`<{inner}>` needs a method with a `self` receiver")
        } else {
            format!("unknown parameter `{name}` in key template `<{inner}>`")
        };
        return Err(error(format!("{problem}: {}", scope.names())));
    };
    let members = path
        .map(|member| {
            if member.is_empty() {
                return Err(error(format!(
                    "empty field name in `<{inner}>`: write `<{name}.field>`, or `<{name}>` for the whole value"
                )));
            }
            let mut member = syn::parse_str::<Member>(member).map_err(|_| {
                error(format!(
                    "`{member}` in `<{inner}>` is not a field name or tuple index: write `<{name}.field>` or `<{name}.0>`"
                ))
            })?;
            match &mut member {
                Member::Named(ident) => ident.set_span(span),
                Member::Unnamed(index) => index.span = span,
            }
            Ok(member)
        })
        .collect::<syn::Result<Vec<_>>>()?;
    Ok(Placeholder {
        root,
        members,
        span,
    })
}

/// Two placeholders need a `:` between them, or `("a:b", "c")` and `("a", "b:c")` -- or
/// `(1, 23)` and `(12, 3)` -- could render alike.
fn check_separated(segments: &[Segment], error: &impl Fn(String) -> syn::Error) -> syn::Result<()> {
    let mut previous_was_placeholder = false;
    for segment in segments {
        match segment {
            Segment::Placeholder(_) if previous_was_placeholder => {
                return Err(error(
                    "placeholders in a key template must be separated by text containing `:`, \
                     as in `<a>:<b>`, so that different arguments always give different keys"
                        .into(),
                ));
            }
            Segment::Placeholder(_) => previous_was_placeholder = true,
            Segment::Literal(text) if text.contains(':') => previous_was_placeholder = false,
            Segment::Literal(_) => {}
        }
    }
    Ok(())
}
