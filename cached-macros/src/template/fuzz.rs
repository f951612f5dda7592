//! Deterministic fuzzing of [`Template::parse`] (no crates: an xorshift generator):
//! 200,000 random templates over an alphabet rich in the grammar's own characters. The
//! parser never panics, and what it accepts keeps the grammar's promises: literals
//! without `\`, `{` or `}`, at most one hash tag `#{...}` (closed, not empty, holding no
//! brace), placeholders separated by text containing `:`, known roots (type and const
//! parameters without field paths), and the segments re-forming the input.

use super::{Placeholder, ResultScope, RootKind, Scope, Segment, Template};
use proc_macro2::Span;
use syn::{Ident, LitStr, Member};

const CASES: usize = 200_000;
const MAX_CHARS: usize = 16;

/// xorshift64*: deterministic, so a failure reproduces from its case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Single characters of the grammar (repeated to weigh them), names in scope, and a few
/// things the member parser (`syn`) might treat specially.
const PIECES: &[&str] = &[
    "<", "<", "<", "<", ">", ">", ">", ">", ".", ".", ".", ":", ":", ":", ":", "\\", "\\", "id",
    "id", "id", "name", "name", "self", "self", "a", "x", "Z", "field", "_", "0", "1", "9", "01",
    "0x1", "1_0", "1u8", "r#", "r#type", " ", " ", "\t", "\n", "é", "ü", "✓", "λ", "日", "\u{0}",
    "\"", "'", "#", "/", "*", "(", ")", "-", "%", "//", "/*", "*/", "{", "}", "{id}", "T", "N",
    "#{", "#{", "#{", "}", "}", "#", "#{id}", "#{<id>}", "#{}",
];

/// Placeholder roots: the names in scope, and near misses.
const ROOTS: &[&str] = &[
    "id", "id", "name", "name", "self", "T", "N", "return", "nope", "", " id", "Id", "é", "t",
    "r#return",
];

/// Field paths' members: canonical ones, and spellings `syn` might accept as well.
const MEMBERS: &[&str] = &[
    "x",
    "field",
    "é",
    "_x",
    "0",
    "1",
    "12",
    "r#type",
    "",
    "_",
    "self",
    "type",
    "01",
    "0x1",
    "0b1",
    "1_0",
    "1u8",
    "4294967296",
    " x",
    "x ",
    "\tx",
    "/**/x",
    "r#",
    "x y",
    "0.1",
];

/// Literal text between placeholders, mostly without `<`, `>`.
const LITERALS: &[&str] = &[
    ":", ":", ":", "a", "x", "-", " ", "%", "é", "✓", ".", "\\", "{", "}", "#",
];

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len())]
}

/// Half the cases: any sequence of pieces. The other half: literals and placeholders
/// built from the grammar's parts, with roots and members that may be wrong or oddly
/// spelled, and now and then a `>` dropped or a piece of noise put in; a third of those
/// get a hash tag `#{...}` around a run of their tokens.
fn template(rng: &mut Rng) -> String {
    let target = rng.below(MAX_CHARS + 1);
    let mut tokens: Vec<String> = Vec::new();
    let mut chars = 0;
    let structured = rng.below(2) == 0;
    while chars < target {
        let token = if !structured {
            pick(rng, PIECES).to_owned()
        } else {
            match rng.below(8) {
                0..=2 => pick(rng, LITERALS).to_owned(),
                3..=6 => {
                    let mut token = format!("<{}", pick(rng, ROOTS));
                    for _ in 0..rng.below(3) {
                        token.push('.');
                        token.push_str(pick(rng, MEMBERS));
                    }
                    if rng.below(12) != 0 {
                        token.push('>');
                    }
                    token
                }
                _ => pick(rng, PIECES).to_owned(),
            }
        };
        chars += token.chars().count();
        tokens.push(token);
    }
    if structured && !tokens.is_empty() && rng.below(3) == 0 {
        let open = rng.below(tokens.len());
        let close = open + 1 + rng.below(tokens.len() - open);
        tokens.insert(close, "}".to_owned());
        tokens.insert(open, "#{".to_owned());
    }
    tokens.concat()
}

fn scope(receiver: bool) -> Scope {
    Scope {
        bindings: vec![
            Ident::new("id", Span::call_site()),
            Ident::new("name", Span::call_site()),
        ],
        receiver: receiver.then(Span::call_site),
        generics: vec![
            (Ident::new("T", Span::call_site()), RootKind::Type),
            (Ident::new("N", Span::call_site()), RootKind::Const),
        ],
        result: ResultScope::Value,
    }
}

fn parse(text: &str, scope: &Scope) -> syn::Result<Template> {
    Template::parse(&LitStr::new(text, Span::call_site()), scope)
}

fn member_text(member: &Member) -> String {
    match member {
        Member::Named(ident) => ident.to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    }
}

/// `<root.member...>` as the parsed placeholder spells it.
fn placeholder_text(placeholder: &Placeholder) -> String {
    let mut text = format!("<{}", placeholder.root);
    for member in &placeholder.members {
        text.push('.');
        text.push_str(&member_text(member));
    }
    text.push('>');
    text
}

/// The template re-formed from its segments.
fn reformed(template: &Template) -> String {
    template
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text.clone(),
            Segment::Placeholder(placeholder) => placeholder_text(placeholder),
            Segment::TagOpen => "#{".to_owned(),
            Segment::TagClose => "}".to_owned(),
        })
        .collect()
}

#[derive(Debug)]
enum Piece<'a> {
    Literal(&'a str),
    /// What is between `<` and `>`.
    Placeholder(&'a str),
    /// `#{`.
    TagOpen,
    /// `}`.
    TagClose,
}

/// The input cut at `<`, `>`, `#{` and `}`: literal text, `<...>` and the braces, or `None`
/// when `<` and `>` do not pair up or a `{` has no `#` before it.
fn split(text: &str) -> Option<Vec<Piece<'_>>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let at = rest.find(['<', '>', '{', '}']).unwrap_or(rest.len());
        let mut literal = &rest[..at];
        rest = &rest[at..];
        let opens_tag = rest.starts_with('{');
        if opens_tag {
            literal = literal.strip_suffix('#')?;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix(['{', '}']) {
            pieces.push(if opens_tag {
                Piece::TagOpen
            } else {
                Piece::TagClose
            });
            rest = after;
            continue;
        }
        let inner = rest.strip_prefix('<')?;
        let close = inner.find(['<', '>'])?;
        if !inner[close..].starts_with('>') {
            return None;
        }
        pieces.push(Piece::Placeholder(&inner[..close]));
        rest = &inner[close + 1..];
    }
    Some(pieces)
}

/// Rust's keywords, strict and reserved (not field names).
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "Self", "self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// A field name or tuple index in its one canonical spelling: an ASCII identifier, or a
/// decimal index without leading zeros.
fn canonical_member(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some('0') => text == "0",
        Some('1'..='9') => text.len() < 10 && chars.all(|c| c.is_ascii_digit()),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            text != "_"
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !KEYWORDS.contains(&text)
        }
        _ => false,
    }
}

/// Whether `text` is a template in the documented grammar, spelled canonically: the
/// parser must accept every such template.
fn canonical(text: &str, receiver: bool) -> bool {
    let Some(pieces) = split(text) else {
        return false;
    };
    let mut separated = true;
    // Tags opened and closed so far, and whether the open one holds anything yet.
    let (mut opened, mut closed, mut holds) = (0, 0, false);
    for piece in &pieces {
        match piece {
            Piece::TagOpen if opened == 0 => (opened, holds) = (1, false),
            Piece::TagClose if opened == 1 && closed == 0 && holds => closed = 1,
            Piece::TagOpen | Piece::TagClose => return false,
            Piece::Literal(literal) => {
                if literal.contains('\\') {
                    return false;
                }
                separated |= literal.contains(':');
                holds = true;
            }
            Piece::Placeholder(inner) => {
                let mut path = inner.split('.');
                let root = path.next().unwrap_or_default();
                let generic = matches!(root, "T" | "N");
                let known = matches!(root, "id" | "name" | "return")
                    || (receiver && root == "self")
                    || (generic && !inner.contains('.'));
                if !separated || !known || !path.all(canonical_member) {
                    return false;
                }
                separated = false;
                holds = true;
            }
        }
    }
    opened == closed
}

/// Checks one accepted template against its input; returns whether the segments
/// re-form the input exactly.
fn check_accepted(text: &str, template: &Template, receiver: bool) -> bool {
    let pieces =
        split(text).unwrap_or_else(|| panic!("{text:?}: accepted with unpaired `<` or `>`"));
    assert!(!text.contains('\\'), "{text:?}: accepted with a `\\`");
    let tag: Vec<usize> = (template.segments.iter().enumerate())
        .filter(|(_, segment)| matches!(segment, Segment::TagOpen | Segment::TagClose))
        .map(|(at, _)| at)
        .collect();
    match tag[..] {
        [] => {}
        [open, close] => {
            assert!(
                matches!(template.segments[open], Segment::TagOpen)
                    && matches!(template.segments[close], Segment::TagClose),
                "{text:?}: a tag closed before it opened"
            );
            assert!(close > open + 1, "{text:?}: an empty tag");
        }
        _ => panic!("{text:?}: accepted with an unpaired brace or two tags"),
    }
    assert_eq!(
        text.matches('{').count(),
        text.matches("#{").count(),
        "{text:?}: accepted with a `{{` not opening a tag"
    );
    assert_eq!(
        pieces.len(),
        template.segments.len(),
        "{text:?}: segments do not follow the input"
    );
    let mut separated = true;
    for (piece, segment) in pieces.iter().zip(&template.segments) {
        match (piece, segment) {
            (Piece::Literal(input), Segment::Literal(literal)) => {
                assert_eq!(input, literal, "{text:?}: a literal changed");
                assert!(
                    !literal.contains(['\\', '{', '}']),
                    "{text:?}: `\\` or a brace in a literal"
                );
                separated |= literal.contains(':');
            }
            (Piece::TagOpen, Segment::TagOpen) | (Piece::TagClose, Segment::TagClose) => {}
            (Piece::Placeholder(inner), Segment::Placeholder(placeholder)) => {
                assert!(
                    separated,
                    "{text:?}: two placeholders without a `:` between them"
                );
                separated = false;
                let root = placeholder.root.to_string();
                let (expected, generic) = match root.as_str() {
                    "id" | "name" => (RootKind::Value, false),
                    "self" if receiver => (RootKind::Value, false),
                    "T" => (RootKind::Type, true),
                    "N" => (RootKind::Const, true),
                    "return" => (RootKind::Result, false),
                    _ => panic!("{text:?}: resolved to unknown root `{root}`"),
                };
                assert!(
                    placeholder.kind == expected,
                    "{text:?}: `{root}` resolved to the wrong kind"
                );
                assert!(
                    !generic || placeholder.members.is_empty(),
                    "{text:?}: a field path on the type or const parameter `{root}`"
                );
                let parts: Vec<&str> = inner.split('.').collect();
                assert_eq!(parts[0], root, "{text:?}: the root is spelled otherwise");
                assert_eq!(
                    parts.len() - 1,
                    placeholder.members.len(),
                    "{text:?}: members do not follow the input"
                );
                for (part, member) in parts[1..].iter().zip(&placeholder.members) {
                    if canonical_member(part) {
                        assert_eq!(*part, member_text(member), "{text:?}: a member changed");
                    }
                }
            }
            _ => panic!("{text:?}: segments {piece:?} do not follow the input"),
        }
    }
    reformed(template) == text
}

/// Runs the parser on every case; returns the accepted templates that do not re-form
/// their input exactly (all of them spelled non-canonically).
fn run(cases: usize) -> Vec<(String, String)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (with_self, without_self) = (scope(true), scope(false));
    let (mut accepted, mut with_fields, mut with_tags) = (0, 0, 0);
    let mut not_reformed = Vec::new();
    for case in 0..cases {
        let text = template(&mut rng);
        let receiver = case % 2 == 0;
        let scope = if receiver { &with_self } else { &without_self };
        match parse(&text, scope) {
            Ok(template) => {
                accepted += 1;
                with_fields += usize::from(template.segments.iter().any(
                    |segment| matches!(segment, Segment::Placeholder(p) if !p.members.is_empty()),
                ));
                with_tags += usize::from(
                    (template.segments.iter()).any(|segment| matches!(segment, Segment::TagOpen)),
                );
                if !check_accepted(&text, &template, receiver) {
                    assert!(
                        !canonical(&text, receiver),
                        "{text:?} (case {case}) re-forms as {:?}",
                        reformed(&template)
                    );
                    not_reformed.push((text, reformed(&template)));
                }
            }
            Err(error) => {
                assert!(
                    !canonical(&text, receiver),
                    "case {case}: the valid template {text:?} was rejected: {error}"
                );
                assert!(!error.to_string().is_empty());
                let _ = error.to_compile_error();
            }
        }
    }
    // The generator reaches the accepting paths, not just the errors.
    assert!(accepted > cases / 10, "only {accepted} of {cases} accepted");
    assert!(
        with_fields > cases / 100,
        "only {with_fields} of {cases} accepted with a field path"
    );
    assert!(
        with_tags > cases / 100,
        "only {with_tags} of {cases} accepted with a hash tag"
    );
    not_reformed
}

#[test]
fn random_templates_never_panic_and_keep_the_grammar() {
    run(CASES);
}

#[test]
fn known_templates() {
    let with_self = scope(true);
    for valid in [
        "",
        "k",
        "<id>",
        "user:<id>",
        "<id>:<name>",
        "a<id>b:c<name.field.0>d",
        "<self.x>:<id.r#type>",
        "é:<id.é>",
        "count:<T>:<id>",
        "<N>:<T>",
        "#{tenant:<id>}:user:<name>",
        "#{<id>}",
        "#{<id>}:<name>",
        "<id>:#{<name>}",
        "a:#{b}:<id>",
        "##{x}#",
        "#{<id>:<name>}",
        "#{#}",
        "#{<T>}:<N>",
        "e:<return>",
        "<return.id>:<return.department.0>",
        "#{<return.tenant>}:<id>",
    ] {
        let template = parse(valid, &with_self).unwrap_or_else(|e| panic!("{valid:?}: {e}"));
        assert_eq!(reformed(&template), valid);
    }
    for invalid in [
        "<",
        ">",
        "<>",
        "<<id>>",
        "<id",
        "id>",
        "<id><name>",
        "<id>-<name>",
        r"a\b",
        r"<id>:\",
        "<id.>",
        "<.id>",
        "<id..x>",
        "<nope>",
        "<id.1u8>",
        "<id.self>",
        "<id.r#>",
        "<id.(>",
        "<id.'>",
        "<id.\">",
        "<id.//>",
        "<id./*>",
        "< id>",
        "user:{id}",
        "{<id>}",
        "a}",
        "{",
        "<T.x>",
        "<N.0>",
        "<t>",
        "{x}",
        "}",
        "#}",
        "#{}",
        "#{",
        "#{<id>",
        "#{a}#{b}",
        "#{a}:#{<id>}",
        "#{a{b}}",
        "#{a#{b}}",
        "#{a}}",
        "#{a}{",
        "a}#{b}",
        "# {a}",
        "#{<id>}<name>",
        "<id>#{<name>}",
        "#{<id><name>}",
        "#{a\\b}",
        "<return.>",
        "<return><id>",
        "<r#return>",
        "<return.T>x<id>",
    ] {
        assert!(
            parse(invalid, &with_self).is_err(),
            "{invalid:?} was accepted"
        );
    }
    assert!(parse("<self>", &scope(false)).is_err());
    assert!(parse("<self.x>:<id>", &scope(false)).is_err());
    // `<return>` only where the scope has a result to render.
    for result in [
        ResultScope::Unavailable,
        ResultScope::Nothing("`()`".to_owned()),
    ] {
        let scope = Scope {
            result,
            ..scope(true)
        };
        assert!(parse("e:<return>", &scope).is_err());
        assert!(parse("e:<id>", &scope).is_ok());
    }
}

/// The documented grammar (the keys guide) is `<name.field.subfield>`; member text goes through
/// `syn::parse_str::<Member>`, which skips whitespace and comments and reads tuple
/// indices as integer literals of any spelling.
#[test]
fn accepted_templates_reform_their_input_exactly() {
    let with_self = scope(true);
    let mut lenient: Vec<(String, String)> = [
        "<id. x>",
        "<id.x\t>",
        "<id./**/x>",
        "<id.01>",
        "<id.0x1>",
        "<id.0b1>",
        "<id.1_0>",
    ]
    .into_iter()
    .filter_map(|text| Some((text.to_owned(), reformed(&parse(text, &with_self).ok()?))))
    .collect();
    let fuzzed = run(CASES);
    let from_fuzzing = fuzzed.len();
    lenient.extend(fuzzed.into_iter().take(10));
    assert!(
        lenient.is_empty(),
        "accepted templates that do not re-form their input ({from_fuzzing} of them \
         from fuzzing), as (input, re-formed): {lenient:?}"
    );
}
