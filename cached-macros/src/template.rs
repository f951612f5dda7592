//! The key template grammar: literal text with `<name>` or `<name.field.subfield>`
//! placeholders, checked against the names the function's parameters bind and its own type
//! and const parameters (`<T>`, `<N>`), and at most one Redis Cluster hash tag `#{...}`
//! around part of it (`"#{tenant:<tenant>}:user:<id>"` renders `{tenant:7}:user:42`).
//! An `#[invalidates]` template may also name the function's result, `<return>` or
//! `<return.field>`: `return` is a keyword, so no parameter can have that name.

use proc_macro2::Span;
use syn::{Ident, LitStr, Member};

/// A parsed key template.
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
}

pub(crate) enum Segment {
    /// Never holds `\\`, `{` or `}`.
    Literal(String),
    Placeholder(Placeholder),
    /// The `#{` that opens the hash tag; renders `{`.
    TagOpen,
    /// The `}` that closes it.
    TagClose,
}

/// `<root.member.member>`: `root` is a parameter binding, `self` or `return`; or `<T>`, a
/// type or const parameter of the function.
pub(crate) struct Placeholder {
    /// `return` (spanned on the template) for the result.
    pub(crate) root: Ident,
    pub(crate) kind: RootKind,
    /// Always empty for type and const parameters.
    pub(crate) members: Vec<Member>,
    /// The template literal's span, where errors about fields point.
    pub(crate) span: Span,
}

/// What a placeholder's root names, which decides how it renders.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootKind {
    /// A parameter binding or `self`: its `KeyPart` impl.
    Value,
    /// A type parameter: its type's name (`std::any::type_name`).
    Type,
    /// A const parameter: its value's `KeyPart` impl.
    Const,
    /// `return`: the stored part of the function's result, rendered after the body.
    Result,
}

/// The names a template may use, with the spans they were declared at.
pub(crate) struct Scope {
    pub(crate) bindings: Vec<Ident>,
    pub(crate) receiver: Option<Span>,
    /// The function's own type and const parameters (`RootKind::Type` or `Const`).
    pub(crate) generics: Vec<(Ident, RootKind)>,
    /// Whether `<return>` names something here.
    pub(crate) result: ResultScope,
}

/// What `<return>` means in a template.
#[derive(Clone)]
pub(crate) enum ResultScope {
    /// An `#[invalidates]` template of a function returning a value: its stored part.
    Value,
    /// An `#[invalidates]` template of a function whose result holds nothing to render;
    /// the text says what it returns (`()`, `Result<(), E>`...).
    Nothing(String),
    /// A `#[redis_cached]` key or tag: rendered before the body, to look the entry up.
    Unavailable,
}

impl Scope {
    fn resolve(&self, name: &str) -> Option<(Ident, RootKind)> {
        if name == "self" {
            return self
                .receiver
                .map(|span| (Ident::new("self", span), RootKind::Value));
        }
        let binding = self.bindings.iter().find(|ident| *ident == name);
        match binding {
            Some(ident) => Some((ident.clone(), RootKind::Value)),
            None => self.generic(name).cloned(),
        }
    }

    fn generic(&self, name: &str) -> Option<&(Ident, RootKind)> {
        self.generics.iter().find(|(ident, _)| ident == name)
    }

    fn names(&self) -> String {
        let mut names: Vec<String> = self.bindings.iter().map(|i| format!("`{i}`")).collect();
        if self.receiver.is_some() {
            names.insert(0, "`self`".to_owned());
        }
        let mut text = if names.is_empty() {
            "this function has no named parameters".to_owned()
        } else {
            format!("the parameters are {}", names.join(", "))
        };
        for (kind, label) in [(RootKind::Type, "type"), (RootKind::Const, "const")] {
            let generics: Vec<String> = self
                .generics
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(ident, _)| format!("`{ident}`"))
                .collect();
            if !generics.is_empty() {
                text.push_str(&format!(
                    "; the {label} parameters are {}",
                    generics.join(", ")
                ));
            }
        }
        text
    }
}

/// Where the parser is with respect to the template's one hash tag.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    NotYet,
    Open,
    Closed,
}

impl Template {
    /// Parses `lit` and resolves its placeholders in `scope`; errors point at the literal.
    pub(crate) fn parse(lit: &LitStr, scope: &Scope) -> syn::Result<Template> {
        let text = lit.value();
        let error = |message: String| syn::Error::new_spanned(lit, message);
        let mut segments = Vec::new();
        let mut tag = Tag::NotYet;
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let literal_end = rest.find(['<', '>', '{', '}']).unwrap_or(rest.len());
            let (mut literal, tail) = rest.split_at(literal_end);
            if literal.contains('\\') {
                return Err(error(
                    "`\\` may not appear in a key or tag template: it is the escape character of rendered keys"
                        .into(),
                ));
            }
            // The `#` of `#{` is not written.
            let opens_tag = tail.starts_with('{') && literal.ends_with('#');
            if opens_tag {
                literal = &literal[..literal.len() - 1];
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(literal.to_owned()));
            }
            let Some(next) = tail.chars().next() else {
                break;
            };
            match next {
                '{' | '}' => {
                    tag = hash_tag(tail, opens_tag, tag, &mut segments, scope, &error)?;
                    rest = &tail[1..];
                    continue;
                }
                '>' => {
                    return Err(error(
                        "unmatched `>` in key or tag template: `<` and `>` only delimit placeholders such as `<id>`"
                            .into(),
                    ));
                }
                _ => {}
            }
            let Some(close) = tail
                .find('>')
                .filter(|close| !tail[1..*close].contains('<'))
            else {
                return Err(error(
                    "unclosed `<` in key or tag template: close the placeholder with `>`, as in `<id>`"
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
        if tag == Tag::Open {
            return Err(error(
                "unclosed hash tag in key or tag template: close `#{` with `}`, as in \
                 `#{tenant:<tenant>}:user:<id>`"
                    .into(),
            ));
        }
        check_separated(&segments, &error)?;
        Ok(Template { segments })
    }

    /// Whether it names the function's result (`<return...>`), so renders after the body.
    pub(crate) fn names_result(&self) -> bool {
        self.segments.iter().any(|segment| {
            matches!(segment, Segment::Placeholder(placeholder) if placeholder.kind == RootKind::Result)
        })
    }
}

/// Takes the brace `text` starts with: the hash tag's `#{` (`opens_tag`) or `}`, or an error.
/// Returns where the parser is then.
fn hash_tag(
    text: &str,
    opens_tag: bool,
    tag: Tag,
    segments: &mut Vec<Segment>,
    scope: &Scope,
    error: &impl Fn(String) -> syn::Error,
) -> syn::Result<Tag> {
    let open = text.starts_with('{');
    match (tag, open) {
        (Tag::Open, true) => Err(error(
            "a hash tag may not contain `{`: tags do not nest, and Redis Cluster hashes only the \
             text up to the first `}`"
                .into(),
        )),
        (Tag::Open, false) if matches!(segments.last(), Some(Segment::TagOpen)) => Err(error(
            "empty hash tag `#{}` in key or tag template: Redis Cluster ignores an empty tag; put in it \
             what the keys to keep in one slot share, as in `#{tenant:<tenant>}`"
                .into(),
        )),
        (Tag::Open, false) => {
            segments.push(Segment::TagClose);
            Ok(Tag::Closed)
        }
        (Tag::Closed, true) if opens_tag => Err(error(
            "a key or tag template may have only one hash tag `#{...}`: Redis Cluster hashes only the \
             first, so put everything that chooses the slot in one tag"
                .into(),
        )),
        (Tag::NotYet, true) if opens_tag => {
            segments.push(Segment::TagOpen);
            Ok(Tag::Open)
        }
        _ => Err(error(braces(text, scope))),
    }
}

/// The error for a brace in literal text that is not part of a hash tag (`text` starts at
/// it): `{id}` is taken for a `format!` placeholder when it holds a name in scope.
fn braces(text: &str, scope: &Scope) -> String {
    let held = text
        .strip_prefix('{')
        .and_then(|rest| rest.split_once('}'))
        .map(|(inner, _)| inner)
        .filter(|inner| !inner.contains('{'));
    if let Some(inner) = held {
        let root = inner.split('.').next().unwrap_or_default();
        if scope.resolve(root).is_some() {
            return format!(
                "`{{{inner}}}` in a key or tag template is literal text, not a placeholder: write \
                 `<{inner}>` (or `#{{<{inner}>}}` to make it the key's Redis Cluster hash tag)"
            );
        }
    }
    if text.starts_with('}') {
        return "unmatched `}` in key or tag template: braces only enclose the key's Redis Cluster hash \
                tag, opened with `#{` as in `#{tenant:<tenant>}:user:<id>`"
            .to_owned();
    }
    "`{` and `}` may appear in a key or tag template only around its Redis Cluster hash tag, written \
     `#{...}` as in `#{tenant:<tenant>}:user:<id>`: Cluster hashes only the text between them \
     to choose a key's slot, so keys with the same tag share a slot"
        .to_owned()
}

fn placeholder(
    inner: &str,
    scope: &Scope,
    span: Span,
    error: &impl Fn(String) -> syn::Error,
) -> syn::Result<Placeholder> {
    if inner.is_empty() {
        return Err(error(
            "empty placeholder `<>` in key or tag template: name a parameter, as in `<id>`".into(),
        ));
    }
    let mut path = inner.split('.');
    let name = path.next().unwrap_or_default();
    let resolved = if name == "return" {
        Some((result_root(inner, scope, span, error)?, RootKind::Result))
    } else {
        scope.resolve(name)
    };
    let Some((root, kind)) = resolved else {
        let problem = if name == "self" {
            format!("`<{inner}>` needs a method with a `self` receiver")
        } else {
            format!("unknown parameter `{name}` in key or tag template `<{inner}>`")
        };
        let mut message = format!("{problem}: {}", scope.names());
        // In a method, `<tenant>` is most likely meant as a field of `self`.
        let is_ident = syn::parse_str::<Ident>(name).is_ok_and(|ident| ident == name);
        if scope.receiver.is_some() && name != "self" && is_ident {
            message.push_str(&format!("; did you mean `<self.{inner}>`?"));
        }
        return Err(error(message));
    };
    if kind == RootKind::Value
        && let Some((_, generic)) = scope.generic(name)
    {
        let what = generic_label(*generic);
        return Err(error(format!(
            "`<{inner}>` is ambiguous: `{name}` names both a parameter and a {what} of this \
             function; rename one of them"
        )));
    }
    if matches!(kind, RootKind::Type | RootKind::Const) && inner.contains('.') {
        let renders = match kind {
            RootKind::Type => "renders as its type's name",
            _ => "renders as its value",
        };
        return Err(error(format!(
            "`{name}` in `<{inner}>` is a {}, which {renders} and takes no field path: write `<{name}>`",
            generic_label(kind)
        )));
    }
    let members = path
        .map(|member| {
            if member.is_empty() {
                return Err(error(format!(
                    "empty field name in `<{inner}>`: write `<{name}.field>`, or `<{name}>` for the whole value"
                )));
            }
            // Only the canonical spelling: `syn` alone would also take `x `, `0x1` or `1_0`.
            let parsed = if member.starts_with(|c: char| c.is_ascii_digit()) {
                let canonical = member.chars().all(|c| c.is_ascii_digit())
                    && (member == "0" || !member.starts_with('0'));
                canonical
                    .then(|| syn::parse_str::<Member>(member).ok())
                    .flatten()
            } else {
                syn::parse_str::<Ident>(member)
                    .ok()
                    .filter(|ident| ident == member)
                    .map(Member::Named)
            };
            let mut member = parsed.ok_or_else(|| {
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
        kind,
        members,
        span,
    })
}

/// The root of `<return...>`, where the scope has a result to render.
fn result_root(
    inner: &str,
    scope: &Scope,
    span: Span,
    error: &impl Fn(String) -> syn::Error,
) -> syn::Result<Ident> {
    match &scope.result {
        ResultScope::Value => Ok(Ident::new("return", span)),
        ResultScope::Nothing(returns) => Err(error(format!(
            "`<{inner}>` names the function's result, but this function returns {returns}, \
             which holds no value to render: return the value the key needs (the created \
             row, say), or name parameters only"
        ))),
        ResultScope::Unavailable => Err(error(format!(
            "`<{inner}>` names the function's result, which a `#[redis_cached]` key or tag \
             cannot use: it is rendered before the body runs, to look the entry up; only \
             `#[invalidates]` templates may name the result"
        ))),
    }
}

fn generic_label(kind: RootKind) -> &'static str {
    match kind {
        RootKind::Const => "const parameter",
        _ => "type parameter",
    }
}

/// Two placeholders need a `:` between them, or `("a:b", "c")` and `("a", "b:c")` -- or
/// `(1, 23)` and `(12, 3)` -- could render alike.
fn check_separated(segments: &[Segment], error: &impl Fn(String) -> syn::Error) -> syn::Result<()> {
    let mut previous_was_placeholder = false;
    for segment in segments {
        match segment {
            Segment::Placeholder(_) if previous_was_placeholder => {
                return Err(error(
                    "placeholders in a key or tag template must be separated by text containing `:`, \
                     as in `<a>:<b>`, so that different arguments always give different keys"
                        .into(),
                ));
            }
            Segment::Placeholder(_) => previous_was_placeholder = true,
            Segment::Literal(text) if text.contains(':') => previous_was_placeholder = false,
            // A tag's braces do not separate: `#{<a>}<b>` needs a `:` as `<a><b>` does.
            Segment::Literal(_) | Segment::TagOpen | Segment::TagClose => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;
