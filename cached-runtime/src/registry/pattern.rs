//! Key templates as the registry holds them, and what can be read off two of them: whether
//! they can render the same key, and whether a stored key is one a template renders.
//!
//! A placeholder renders escaped text (see `key.rs`): any characters but `\`, `:`, `{` and
//! `}`, and escapes (`\` and one character). Template literals never hold `\`, so where a
//! placeholder meets another template's literal, it can only match characters other than
//! `:`, `{` and `}`.

use std::fmt;

/// A key or tag template, as written in an attribute (`"user:<id>"`).
#[derive(Debug)]
pub struct Template {
    text: &'static str,
    tokens: &'static [Token],
}

/// One step of a template: literal text (a hash tag's braces included), or a placeholder.
#[doc(hidden)]
#[derive(Debug)]
pub enum Token {
    Literal(&'static str),
    Part,
}

/// A template's characters, with each placeholder one [`Unit::Part`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Char(char),
    Part,
}

impl Template {
    /// Made by generated code: the template as written and its steps.
    #[doc(hidden)]
    pub const fn new(text: &'static str, tokens: &'static [Token]) -> Self {
        Template { text, tokens }
    }

    /// The template as written, as in `"user:<id>"`.
    pub fn text(&self) -> &'static str {
        self.text
    }

    fn units(&self) -> Vec<Unit> {
        let mut units = Vec::new();
        for token in self.tokens {
            match token {
                Token::Literal(text) => units.extend(text.chars().map(Unit::Char)),
                Token::Part => units.push(Unit::Part),
            }
        }
        units
    }

    /// Whether some arguments make the two templates render the same key.
    pub fn overlaps(&self, other: &Template) -> bool {
        let (a, b) = (self.units(), other.units());
        // reachable[i][j]: a[..i] and b[..j] can render the same text.
        let mut reachable = vec![vec![false; b.len() + 1]; a.len() + 1];
        reachable[0][0] = true;
        for i in 0..=a.len() {
            for j in 0..=b.len() {
                if !reachable[i][j] {
                    continue;
                }
                let (x, y) = (a.get(i).copied(), b.get(j).copied());
                // A placeholder may render nothing.
                if x == Some(Unit::Part) {
                    reachable[i + 1][j] = true;
                }
                if y == Some(Unit::Part) {
                    reachable[i][j + 1] = true;
                }
                match (x, y) {
                    (Some(Unit::Char(c)), Some(Unit::Char(d))) if c == d => {
                        reachable[i + 1][j + 1] = true
                    }
                    // A placeholder takes one more character of the other's literal, and
                    // may take more (it stays at `i`).
                    (Some(Unit::Part), Some(Unit::Char(c))) if renderable(c) => {
                        reachable[i][j + 1] = true
                    }
                    (Some(Unit::Char(c)), Some(Unit::Part)) if renderable(c) => {
                        reachable[i + 1][j] = true
                    }
                    _ => {}
                }
            }
        }
        reachable[a.len()][b.len()]
    }

    /// Whether `key` (without the cache's prefix) is one this template renders.
    pub(crate) fn matches(&self, key: &str) -> bool {
        let units = self.units();
        let key: Vec<char> = key.chars().collect();
        // reachable[i][j]: units[..i] render key[..j].
        let mut reachable = vec![vec![false; key.len() + 1]; units.len() + 1];
        reachable[0][0] = true;
        for i in 0..=units.len() {
            for j in 0..=key.len() {
                if !reachable[i][j] {
                    continue;
                }
                match units.get(i) {
                    Some(Unit::Char(c)) if key.get(j) == Some(c) => {
                        reachable[i + 1][j + 1] = true;
                    }
                    Some(Unit::Part) => {
                        reachable[i + 1][j] = true;
                        match key.get(j) {
                            Some('\\') if j + 1 < key.len() => reachable[i][j + 2] = true,
                            Some(&c) if renderable(c) && c != '\\' => reachable[i][j + 1] = true,
                            _ => {}
                        }
                    }
                    Some(Unit::Char(_)) | None => {}
                }
            }
        }
        reachable[units.len()][key.len()]
    }

    /// The literal text before the first placeholder: what a key's digest form keeps.
    fn head(&self) -> String {
        let mut head = String::new();
        for token in self.tokens {
            match token {
                Token::Literal(text) => head.push_str(text),
                Token::Part => break,
            }
        }
        head
    }

    /// A `SCAN ... MATCH` pattern for every key this template renders under `prefix`, digest
    /// forms included: the prefix and the template's literal head (all a digest form keeps,
    /// see `key.rs`), then `*`; [`matches`](Self::matches) and
    /// [`may_have_digested`](Self::may_have_digested) tell the keys apart.
    pub(crate) fn scan_glob(&self, prefix: &str) -> String {
        let mut glob = String::new();
        glob_escape(prefix, &mut glob);
        glob_escape(&self.head(), &mut glob);
        glob.push('*');
        glob
    }

    /// Whether `key` (without the cache's prefix) is a digest form (`key.rs`: a readable
    /// head, a hash tag maybe, `\#` and 64 hex digits) this template may have rendered: its
    /// readable part and the template's literal head agree (one may be cut). Templates with
    /// one literal head share their digest keys: each takes the others' too, which costs a
    /// miss, never a stale read. Parts never render `\#`, so no other key has it.
    pub(crate) fn may_have_digested(&self, key: &str) -> bool {
        let Some((readable, digest)) = key.rsplit_once("\\#") else {
            return false;
        };
        if digest.len() != 64 || !digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return false;
        }
        let head = self.head();
        readable.starts_with(&head) || head.starts_with(readable)
    }
}

/// Whether a placeholder can render `c` unescaped.
fn renderable(c: char) -> bool {
    !matches!(c, ':' | '{' | '}')
}

/// Appends `text` to a `MATCH` pattern, matching itself only.
pub(crate) fn glob_escape(text: &str, glob: &mut String) {
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            glob.push('\\');
        }
        glob.push(c);
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Token::{Literal, Part};

    const USER: Template = Template::new("user:<id>", &[Literal("user:"), Part]);
    const POSTS: Template = Template::new(
        "user:<id>:posts",
        &[Literal("user:"), Part, Literal(":posts")],
    );
    const TYPO: Template = Template::new("usr:<id>", &[Literal("usr:"), Part]);
    const ANY: Template = Template::new("<a>:<b>", &[Part, Literal(":"), Part]);
    const JOINED: Template = Template::new("user<id>", &[Literal("user"), Part]);

    #[test]
    fn templates_overlap_where_some_arguments_render_one_key() {
        assert!(USER.overlaps(&USER));
        assert!(USER.overlaps(&ANY));
        assert!(!POSTS.overlaps(&ANY));
        // `user` and `<id>` = `:1`? A placeholder cannot render `:`.
        assert!(!USER.overlaps(&POSTS));
        assert!(!USER.overlaps(&TYPO));
        assert!(!JOINED.overlaps(&USER));
        assert!(JOINED.overlaps(&Template::new("use<x>", &[Literal("use"), Part])));
    }

    #[test]
    fn a_key_matches_the_template_that_renders_it() {
        assert!(USER.matches("user:42"));
        assert!(USER.matches(r"user:a\:b"));
        assert!(USER.matches("user:"));
        assert!(!USER.matches("user:42:posts"));
        assert!(POSTS.matches(r"user:4\:2:posts"));
        assert!(!TYPO.matches("user:42"));
    }

    #[test]
    fn the_scan_pattern_escapes_the_literals() {
        assert_eq!(USER.scan_glob("app:"), "app:user:*");
        assert_eq!(ANY.scan_glob("a*"), r"a\**");
        assert_eq!(POSTS.scan_glob(""), "user:*");
    }

    #[test]
    fn the_wide_scan_pattern_stops_at_the_first_placeholder() {
        assert_eq!(USER.scan_glob("app:"), "app:user:*");
        assert_eq!(POSTS.scan_glob("a*"), r"a\*user:*");
        assert_eq!(
            Template::new("all", &[Literal("all")]).scan_glob(""),
            "all*"
        );
    }

    #[test]
    fn digest_forms_are_recognised_by_their_head() {
        let digest = "0123456789abcdef".repeat(4);
        assert!(POSTS.may_have_digested(&format!(r"user:\#{digest}")));
        assert!(USER.may_have_digested(&format!(r"user:\#{digest}")));
        assert!(POSTS.may_have_digested(&format!(r"us\#{digest}")));
        assert!(!TYPO.may_have_digested(&format!(r"user:\#{digest}")));
        assert!(!POSTS.may_have_digested(r"user:\#0123"));
        assert!(!POSTS.may_have_digested("user:42:posts"));
    }
}
