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
                    Some(Unit::Char(_)) => {}
                    Some(Unit::Part) => {
                        reachable[i + 1][j] = true;
                        match key.get(j) {
                            Some('\\') if j + 1 < key.len() => reachable[i][j + 2] = true,
                            Some(&c) if renderable(c) && c != '\\' => reachable[i][j + 1] = true,
                            _ => {}
                        }
                    }
                    None => {}
                }
            }
        }
        reachable[units.len()][key.len()]
    }

    /// A `SCAN ... MATCH` pattern for the keys this template renders under `prefix`: every
    /// such key matches it (others may too: [`matches`](Self::matches) tells them apart).
    // For `Cache::clear_function`, which is still to come.
    #[allow(dead_code)]
    pub(crate) fn glob(&self, prefix: &str) -> String {
        let mut glob = String::new();
        glob_escape(prefix, &mut glob);
        let mut after_part = false;
        for token in self.tokens {
            match token {
                Token::Literal(text) => glob_escape(text, &mut glob),
                Token::Part if after_part => {}
                Token::Part => glob.push('*'),
            }
            after_part = matches!(token, Token::Part);
        }
        glob
    }
}

/// Whether a placeholder can render `c` unescaped.
fn renderable(c: char) -> bool {
    !matches!(c, ':' | '{' | '}')
}

/// Appends `text` to a `MATCH` pattern, matching itself only.
#[allow(dead_code)]
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
        assert_eq!(USER.glob("app:"), "app:user:*");
        assert_eq!(ANY.glob("a*"), r"a\**:*");
        assert_eq!(POSTS.glob(""), "user:*:posts");
    }
}
