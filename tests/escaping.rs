//! The escaping of string key parts, without Redis: `write_escaped` leaves no bare `:`, no
//! brace and no lone `\`, can be undone, and makes `a:b` joins injective. Property tests
//! over arbitrary strings (empty, separators, escapes, braces, `%`, unicode) and an
//! exhaustive check over short strings of the dangerous characters.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use redis_cached::{KeyPart, write_escaped};
use std::borrow::Cow;

fn escaped(s: &str) -> String {
    let mut out = String::new();
    write_escaped(s, &mut out);
    out
}

/// `a` and `b` as a template `<a>:<b>` renders them.
fn joined(a: &str, b: &str) -> String {
    let mut out = escaped(a);
    out.push(':');
    write_escaped(b, &mut out);
    out
}

/// Undoes `write_escaped`; `None` for text it cannot have written (a bare `:`, a brace, a
/// lone `\`, or `\` before anything but `\`, `:`, `(` and `)`).
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ':')) => out.push(escaped),
                Some('(') => out.push('{'),
                Some(')') => out.push('}'),
                _ => return None,
            },
            ':' | '{' | '}' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

/// Splits a joined key at its one unescaped `:` and unescapes both sides.
fn split_joined(key: &str) -> Option<(String, String)> {
    let bytes = key.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b':' => return Some((unescape(&key[..at])?, unescape(&key[at + 1..])?)),
            _ => at += 1,
        }
    }
    None
}

/// Whether every `:` in `s` is escaped, every `\` starts an escape pair, and no brace is
/// left (Redis Cluster would hash the text between braces, escaped or not).
fn only_escaped_separators(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.next(), Some('\\' | ':' | '(' | ')')) => {}
            '\\' | ':' | '{' | '}' => return false,
            _ => {}
        }
    }
    true
}

/// Mostly short strings of separators, escapes, braces, `%` and a few non-ASCII characters,
/// so that pairs often collide under a faulty scheme; sometimes any string at all.
fn key_text() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => proptest::string::string_regex(r"[:\\%a#é✓\x00 {}()]{0,6}").expect("a valid regex"),
        2 => proptest::collection::vec(
            prop::sample::select(vec![
                ":", "\\", "\\:", "\\\\", "%3A", "a", "", "é", "{", "}", "\\(", "\\)", "(",
            ]),
            0..5
        )
        .prop_map(|parts| parts.concat()),
        3 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn escaped_text_has_no_bare_separator(s in key_text()) {
        let out = escaped(&s);
        prop_assert!(only_escaped_separators(&out), "{:?} escaped to {:?}", s, out);
        // Only `:`, `\` and the braces grow, by one byte each.
        let specials = s.chars().filter(|c| matches!(c, ':' | '\\' | '{' | '}')).count();
        prop_assert_eq!(out.len(), s.len() + specials);
    }

    #[test]
    fn escaping_round_trips(s in key_text()) {
        let out = escaped(&s);
        prop_assert_eq!(unescape(&out), Some(s.clone()), "escaped form {:?}", out);
        // The `KeyPart` impls of text types write exactly this.
        let mut via_string = String::new();
        s.write_key(&mut via_string);
        let mut via_str = String::new();
        s.as_str().write_key(&mut via_str);
        let mut via_cow = String::new();
        Cow::Borrowed(s.as_str()).write_key(&mut via_cow);
        prop_assert_eq!(&via_string, &out);
        prop_assert_eq!(&via_str, &out);
        prop_assert_eq!(&via_cow, &out);
        // Escaping appends: what `out` held before is kept.
        let mut appended = String::from(r"head:\\");
        write_escaped(&s, &mut appended);
        prop_assert_eq!(appended, format!(r"head:\\{out}"));
    }

    #[test]
    fn chars_escape_like_strings(c in any::<char>()) {
        let mut out = String::new();
        c.write_key(&mut out);
        prop_assert_eq!(out, escaped(&c.to_string()));
    }

    #[test]
    fn joined_pairs_are_injective(
        (a, b) in (key_text(), key_text()),
        (c, d) in (key_text(), key_text()),
    ) {
        let left = joined(&a, &b);
        prop_assert_eq!(split_joined(&left), Some((a.clone(), b.clone())), "{:?}", left);
        if left == joined(&c, &d) {
            prop_assert!(a == c && b == d, "({:?}, {:?}) and ({:?}, {:?}) both render {:?}", a, b, c, d, left);
        }
    }
}

/// Every string of up to three characters from `a`, `:`, `\`, `{`, `}`, `(`.
fn short_strings() -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..3 {
        last = last
            .iter()
            .flat_map(|s| ['a', ':', '\\', '{', '}', '('].map(|c| format!("{s}{c}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

#[test]
fn joins_of_short_strings_are_exhaustively_injective() {
    let strings = short_strings();
    assert_eq!(strings.len(), 1 + 6 + 36 + 216);
    let mut seen = std::collections::HashMap::new();
    for a in &strings {
        for b in &strings {
            let key = joined(a, b);
            assert!(only_escaped_separators(&escaped(a)), "{a:?}");
            assert_eq!(split_joined(&key), Some((a.clone(), b.clone())), "{key:?}");
            if let Some(other) = seen.insert(key.clone(), (a, b)) {
                panic!("{other:?} and {:?} both render {key:?}", (a, b));
            }
        }
    }
    assert_eq!(seen.len(), strings.len() * strings.len());
}

#[test]
fn known_escapes() {
    assert_eq!(escaped(""), "");
    assert_eq!(escaped(":"), r"\:");
    assert_eq!(escaped(r"\"), r"\\");
    assert_eq!(escaped(r"\:"), r"\\\:");
    assert_eq!(escaped("%3A%"), "%3A%");
    assert_eq!(escaped("ü:✓"), r"ü\:✓");
    assert_eq!(escaped("{tenant:7}"), r"\(tenant\:7\)");
    assert_eq!(escaped("}{"), r"\)\(");
    assert_eq!(escaped(r"\(x)"), r"\\(x)");
    assert_eq!(joined("{a", "b}"), r"\(a:b\)");
    assert_eq!(joined("a:b", "c"), r"a\:b:c");
    assert_eq!(joined("a", "b:c"), r"a:b\:c");
    assert_eq!(unescape(r"a\b"), None);
    assert_eq!(unescape(r"a\"), None);
    assert_eq!(unescape("a:b"), None);
    assert_eq!(unescape("{a}"), None);
    assert_eq!(unescape(r"\(a\)"), Some("{a}".into()));
}
