//! Key rendering: the [`KeyPart`] trait and the escaping scheme that makes keys injective.
//!
//! A key template such as `"user:<id>"` is rendered left to right into one buffer: literal
//! text is copied, each placeholder is written by its [`KeyPart`] impl. String parts escape
//! `\` as `\\`, `:` as `\:`, `{` as `\(` and `}` as `\)`, so a part can never imitate a
//! separator, two different argument tuples never render to the same key, and no argument
//! can write a brace: Redis Cluster hashes only the text between a key's first `{` and the
//! next `}`, and only the template's hash tag (`#{...}`) may choose that text.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

/// Rendered keys longer than this many bytes are replaced by their digest form.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;

/// A value that can stand in a cache key.
///
/// Implementations must be injective (different values write different text) and must not
/// write an unescaped `:`, `{` or `}`, or a `\` other than in the escapes of
/// [`write_escaped`]: write strings through it, and join several fields with `\,`, which no
/// escaped part contains. A brace would let the value choose the key's Redis Cluster hash
/// slot.
///
/// ```
/// use redis_cached::KeyPart;
///
/// struct Slug(String);
///
/// impl KeyPart for Slug {
///     fn write_key(&self, out: &mut String) {
///         redis_cached::write_escaped(&self.0, out);
///     }
/// }
///
/// let mut key = String::new();
/// Slug("a:b".into()).write_key(&mut key);
/// assert_eq!(key, r"a\:b");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rendered into a cache key",
    label = "used in the key template",
    note = "implement `redis_cached::KeyPart` for `{Self}`, or name a field of it that implements it: `<param.field>`"
)]
pub trait KeyPart {
    /// Appends this value's key text to `out`.
    fn write_key(&self, out: &mut String);
}

/// Appends `s` to `out` with `\` escaped as `\\`, `:` as `\:`, `{` as `\(` and `}` as
/// `\)`.
///
/// Every escape starts with `\`, which is itself escaped, so the text can be read back
/// unambiguously. Braces become escapes without braces: Redis Cluster hashes the text between
/// a key's first `{` and the next `}` whatever stands before them, so `\{` would still let
/// the text choose the key's slot.
///
/// ```
/// let mut out = String::new();
/// redis_cached::write_escaped(r"a:b\c{d}", &mut out);
/// assert_eq!(out, r"a\:b\\c\(d\)");
/// ```
pub fn write_escaped(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(at) = rest.find([':', '\\', '{', '}']) {
        out.push_str(&rest[..at]);
        // All four are one byte long.
        out.push_str(match rest.as_bytes()[at] {
            b':' => "\\:",
            b'\\' => "\\\\",
            b'{' => "\\(",
            _ => "\\)",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

macro_rules! display_key_part {
    ($($ty:ty),* $(,)?) => {$(
        impl KeyPart for $ty {
            fn write_key(&self, out: &mut String) {
                // Writing to a String cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

display_key_part!(u128, i128, bool);

/// Integers up to 64 bits, in decimal as `Display` writes them, without the formatting
/// machinery (a key part is rendered on every call, hits included).
macro_rules! unsigned_key_part {
    ($($ty:ty),* $(,)?) => {$(
        impl KeyPart for $ty {
            fn write_key(&self, out: &mut String) {
                write_decimal(false, u64::try_from(*self).unwrap_or(u64::MAX), out);
            }
        }
    )*};
}

macro_rules! signed_key_part {
    ($($ty:ty),* $(,)?) => {$(
        impl KeyPart for $ty {
            fn write_key(&self, out: &mut String) {
                let magnitude = u64::try_from(self.unsigned_abs()).unwrap_or(u64::MAX);
                write_decimal(*self < 0, magnitude, out);
            }
        }
    )*};
}

unsigned_key_part!(u8, u16, u32, u64, usize);
signed_key_part!(i8, i16, i32, i64, isize);

fn write_decimal(negative: bool, mut value: u64, out: &mut String) {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

impl KeyPart for char {
    fn write_key(&self, out: &mut String) {
        write_escaped(self.encode_utf8(&mut [0; 4]), out);
    }
}

impl KeyPart for str {
    fn write_key(&self, out: &mut String) {
        write_escaped(self, out);
    }
}

impl KeyPart for String {
    fn write_key(&self, out: &mut String) {
        write_escaped(self, out);
    }
}

impl KeyPart for Cow<'_, str> {
    fn write_key(&self, out: &mut String) {
        write_escaped(self, out);
    }
}

macro_rules! forward_key_part {
    ($($ty:ty),* $(,)?) => {$(
        impl<T: KeyPart + ?Sized> KeyPart for $ty {
            fn write_key(&self, out: &mut String) {
                (**self).write_key(out);
            }
        }
    )*};
}

forward_key_part!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);

#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl KeyPart for uuid::Uuid {
    fn write_key(&self, out: &mut String) {
        let _ = write!(out, "{}", self.hyphenated());
    }
}

/// The longest hash tag, braces included, that the digest form keeps: a longer one is cut
/// with the rest of the key, and the digest lands in a slot of its own.
const MAX_KEPT_TAG: usize = 256;

/// Renders one key: the cache's prefix, then the template's literal text and parts.
///
/// Generated code drives it; users see only its output.
#[doc(hidden)]
#[derive(Debug)]
pub struct KeyBuilder {
    buf: String,
    /// End of the literal head (prefix and the template's leading text), kept readable in
    /// the digest form.
    head: usize,
    /// The template's hash tag (`#{...}`): where its `{` is, and the end of its `}` once
    /// written (equal to the start until then).
    tag: Option<(usize, usize)>,
    max_len: usize,
}

impl KeyBuilder {
    pub(crate) fn new(prefix: &str, max_len: usize) -> Self {
        let mut buf = String::with_capacity(prefix.len() + 32);
        buf.push_str(prefix);
        Self {
            head: buf.len(),
            buf,
            tag: None,
            max_len,
        }
    }

    /// Appends literal text: a template's, which holds no brace (a hash tag's are written by
    /// [`hash_tag_open`](Self::hash_tag_open) and [`hash_tag_close`](Self::hash_tag_close)),
    /// or a key given to `Cache::invalidate` as it is.
    pub fn literal(&mut self, text: &str) {
        if self.head == self.buf.len() {
            self.head += text.len();
        }
        self.buf.push_str(text);
    }

    /// Appends a placeholder's value.
    pub fn part<P: KeyPart + ?Sized>(&mut self, part: &P) {
        part.write_key(&mut self.buf);
    }

    /// Appends a type parameter's placeholder (`<T>`): `std::any::type_name::<T>()`,
    /// escaped like a string part. The text is the compiler's and may change between
    /// compiler versions; then the new keys are misses, never another type's entries.
    pub fn type_name<T: ?Sized>(&mut self) {
        write_escaped(std::any::type_name::<T>(), &mut self.buf);
    }

    /// Opens the template's hash tag (the `#{` of `#{tenant:<t>}`): writes `{`. A template
    /// has at most one, and no part writes a brace, so this is the key's first `{`.
    pub fn hash_tag_open(&mut self) {
        debug_assert!(self.tag.is_none(), "one hash tag per template");
        let at = self.buf.len();
        self.tag = Some((at, at));
        self.literal("{");
    }

    /// Closes the template's hash tag: writes `}`.
    pub fn hash_tag_close(&mut self) {
        self.literal("}");
        if let Some((_, end)) = &mut self.tag {
            *end = self.buf.len();
        }
    }

    /// The finished key, or its digest form when it is longer than the limit.
    ///
    /// The digest form is the literal head (at most 256 bytes), `\#`, and the hex SHA-256 of
    /// the full key. When the head does not hold the whole hash tag, the tag's text follows
    /// the head (cut before the tag's `{`), so the digest hashes to the same Cluster slot as
    /// the full key; a tag longer than 256 bytes is cut like the rest (the digest's slot is
    /// then its own). No ordinary rendering has `\#` where the digest form has it (parts
    /// write `\` only in `\\`, `\:`, `\(` and `\)`, and templates may not contain `\`),
    /// so the two forms never meet.
    pub(crate) fn finish(self) -> String {
        if self.buf.len() <= self.max_len {
            return self.buf;
        }
        let mut head_len = self.head.min(256);
        while !self.buf.is_char_boundary(head_len) {
            head_len -= 1;
        }
        let (head, tag) = match self.tag {
            Some((start, end)) if end > head_len && end - start <= MAX_KEPT_TAG => {
                (&self.buf[..head_len.min(start)], &self.buf[start..end])
            }
            _ => (&self.buf[..head_len], ""),
        };
        let mut out = String::with_capacity(head.len() + tag.len() + 66);
        out.push_str(head);
        out.push_str(tag);
        out.push_str("\\#");
        for byte in Sha256::digest(self.buf.as_bytes()) {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }
}

/// How keys are rendered: the prefix, and the length above which a digest stands in.
pub(crate) struct Keys {
    pub(crate) prefix: String,
    pub(crate) max_len: usize,
}

impl Keys {
    /// The key `render` writes, after the prefix (its digest form if too long).
    pub(crate) fn render(&self, render: impl FnOnce(&mut KeyBuilder)) -> String {
        let mut key = KeyBuilder::new(&self.prefix, self.max_len);
        render(&mut key);
        key.finish()
    }

    /// The key of the tag `render` writes: the prefix, `\@`, then the tag. No entry's key
    /// contains `\@` (templates have no `\`, and key parts escape it), so tags and entries
    /// never share a key.
    pub(crate) fn render_tag(&self, render: impl FnOnce(&mut KeyBuilder)) -> String {
        self.render(|key| {
            key.literal(TAG_MARK);
            render(key);
        })
    }
}

/// What separates a tag key's prefix from its tag.
pub(crate) const TAG_MARK: &str = "\\@";

/// Whether a rendered key is a tag's: no entry's key holds [`TAG_MARK`] (see
/// [`Keys::render_tag`]). A tag key in digest form keeps it in its head, unless the cache's
/// prefix alone is 255 bytes or longer.
pub(crate) fn is_tag_key(key: &str) -> bool {
    key.contains(TAG_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    fn render(prefix: &str, parts: &[&str]) -> String {
        let mut key = KeyBuilder::new(prefix, DEFAULT_MAX_KEY_LEN);
        key.literal("t:");
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.literal(":");
            }
            key.part(*part);
        }
        key.finish()
    }

    #[test]
    fn integers_render_as_display_does() {
        fn key<P: KeyPart>(part: P) -> String {
            let mut out = String::new();
            part.write_key(&mut out);
            out
        }
        for value in [0, 1, 9, 10, 42, 1_234_567, i64::MAX, i64::MIN, -1, -10] {
            assert_eq!(key(value), value.to_string());
            assert_eq!(key(value as isize), value.to_string());
        }
        for value in [0, 7, 10, 99, 100, u64::MAX] {
            assert_eq!(key(value), value.to_string());
            assert_eq!(key(value as usize), value.to_string());
        }
        assert_eq!(key(u8::MAX), "255");
        assert_eq!(key(i8::MIN), "-128");
        assert_eq!(key(i16::MIN), "-32768");
        assert_eq!(key(i32::MIN), "-2147483648");
        assert_eq!(key(u32::MAX), "4294967295");
    }

    #[test]
    fn escapes_separator_and_escape() {
        assert_eq!(render("", &["a:b", "c"]), r"t:a\:b:c");
        assert_eq!(render("", &["a", "b:c"]), r"t:a:b\:c");
        assert_eq!(render("", &[r"a\", ":c"]), r"t:a\\:\:c");
        assert_eq!(render("p:", &[""]), "p:t:");
    }

    #[test]
    fn escapes_braces_without_braces() {
        assert_eq!(render("", &["{a}"]), r"t:\(a\)");
        assert_eq!(render("", &["}{", "{"]), r"t:\)\(:\(");
        // The escapes themselves, written by a part, are told apart from escaped braces.
        assert_eq!(render("", &[r"\(a\)"]), r"t:\\(a\\)");
        assert_ne!(render("", &["{"]), render("", &[r"\("]));
        assert_ne!(render("", &["}"]), render("", &[r"\)"]));
        assert_eq!(render("", &["ü{✓}"]), r"t:ü\(✓\)");
        let mut out = String::new();
        '{'.write_key(&mut out);
        '}'.write_key(&mut out);
        assert_eq!(out, r"\(\)");
    }

    /// An argument cannot choose a key's Cluster slot: with no brace in the key, Redis
    /// hashes the whole key.
    #[test]
    fn arguments_with_braces_do_not_choose_the_slot() {
        for part in ["{tenant}", "a{b}c", "{x}:{y}", r"\{z}", "}{w}"] {
            let key = render("app:", &[part]);
            assert!(!key.contains(['{', '}']), "{part:?} rendered {key:?}");
            // The slot is not the one of the text between the argument's braces.
            let braced = part.split(['{', '}']).find(|s| !s.is_empty()).unwrap_or("");
            assert_ne!(Slot::for_key(&key), Slot::for_key(braced), "{key:?}");
        }
    }

    /// `"#{tenant:<tenant>}:user:<id>"`, as the macro writes it.
    fn tagged(prefix: &str, max_len: usize, tenant: &str, id: &str) -> String {
        let mut key = KeyBuilder::new(prefix, max_len);
        key.hash_tag_open();
        key.literal("tenant:");
        key.part(tenant);
        key.hash_tag_close();
        key.literal(":user:");
        key.part(id);
        key.finish()
    }

    #[test]
    fn a_hash_tag_writes_its_braces_and_escapes_its_parts() {
        assert_eq!(
            tagged("app:", DEFAULT_MAX_KEY_LEN, "7", "42"),
            "app:{tenant:7}:user:42"
        );
        assert_eq!(
            tagged("", DEFAULT_MAX_KEY_LEN, "a}b{", "{c}"),
            r"{tenant:a\)b\(}:user:\(c\)"
        );
        // Keys of one tenant share a slot: the slot of the tag's text.
        let slot = Slot::for_key("tenant:7");
        for id in ["1", "42", "{x}", "long"] {
            assert_eq!(Slot::for_key(tagged("app:", 1024, "7", id)), slot, "{id}");
        }
    }

    #[test]
    fn long_keys_use_a_digest_with_the_literal_head() {
        let long = "x".repeat(2000);
        let key = render("app:", &[&long]);
        assert!(key.starts_with(r"app:t:\#"), "{key}");
        assert_eq!(key.len(), "app:t:".len() + 2 + 64);
        assert_ne!(key, render("app:", &[&"x".repeat(2001)]));
    }

    /// Whether `key` is `head`, `\#` and 64 lowercase hex digits.
    fn is_digest(key: &str, head: &str) -> bool {
        key.strip_prefix(head)
            .and_then(|rest| rest.strip_prefix(r"\#"))
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// One call of the generated code on a `KeyBuilder`.
    enum Step<'a> {
        Lit(&'a str),
        Part(&'a str),
        Open,
        Close,
    }

    use Step::{Close, Lit, Open, Part};

    /// Builds a key from `steps` twice: under the limit and over it. Returns (full, digested).
    fn both_forms(prefix: &str, steps: &[Step]) -> (String, String) {
        let build = |max_len| {
            let mut key = KeyBuilder::new(prefix, max_len);
            for step in steps {
                match step {
                    Lit(text) => key.literal(text),
                    Part(text) => key.part(*text),
                    Open => key.hash_tag_open(),
                    Close => key.hash_tag_close(),
                }
            }
            key.finish()
        };
        let full = build(usize::MAX);
        let digested = build(0);
        assert!(is_digest(&digested, &digested[..digested.len() - 66]));
        (full, digested)
    }

    #[test]
    fn the_digest_form_keeps_the_hash_tag_and_its_slot() {
        let long = "x".repeat(300);
        let long_literal = "l".repeat(300);
        let cases: [(&str, &[Step], &str); 7] = [
            // The head ends inside the tag: cut before its `{`, then the tag.
            (
                "app:",
                &[
                    Open,
                    Lit("tenant:"),
                    Part("7"),
                    Close,
                    Lit(":user:"),
                    Part(&long),
                ],
                "app:{tenant:7}",
            ),
            // The head holds the whole tag: kept as it is.
            (
                "app:",
                &[
                    Lit("users:"),
                    Open,
                    Lit("all"),
                    Close,
                    Lit(":"),
                    Part(&long),
                ],
                "app:users:{all}:",
            ),
            // A part before the tag: the head, then the tag.
            (
                "app:",
                &[Lit("a:"), Part(&long), Lit(":"), Open, Part("7"), Close],
                "app:a:{7}",
            ),
            // Only a part in the tag, and braces in it escaped.
            (
                "",
                &[Open, Part("t{1}"), Close, Lit(":"), Part(&long)],
                r"{t\(1\)}",
            ),
            // A literal head longer than 256 bytes before the tag: the head is cut at 256.
            (
                "p:",
                &[
                    Lit(&long_literal),
                    Open,
                    Part("7"),
                    Close,
                    Lit(":"),
                    Part(&long),
                ],
                &format!("p:{}{{7}}", &long_literal[..254]),
            ),
            // A literal head longer than 256 bytes that ends inside the tag.
            (
                "",
                &[
                    Lit(&long_literal[..250]),
                    Open,
                    Lit("abcdefghij"),
                    Part("7"),
                    Close,
                    Part(&long),
                ],
                &format!("{}{{abcdefghij7}}", &long_literal[..250]),
            ),
            // The tag's own text is long, but not over 256 bytes with its braces.
            (
                "",
                &[Open, Part(&long[..254]), Close, Lit(":"), Part(&long)],
                &format!("{{{}}}", &long[..254]),
            ),
        ];
        for (prefix, steps, head) in cases {
            let (full, digested) = both_forms(prefix, steps);
            assert!(
                is_digest(&digested, head),
                "{digested:?} does not start {head:?}"
            );
            assert_eq!(
                Slot::for_key(&digested),
                Slot::for_key(&full),
                "{digested:?} left the slot of {full:?}"
            );
        }
    }

    /// A tag of up to 256 bytes (braces included) is kept; a longer one is cut like the rest
    /// of the key, and the digest form's slot is that of its whole text.
    #[test]
    fn tags_up_to_256_bytes_are_kept() {
        let long = "x".repeat(300);
        let tag_of = |len: usize| {
            both_forms(
                "app:",
                &[
                    Open,
                    Lit("t:"),
                    Part(&long[..len - 4]),
                    Close,
                    Lit(":"),
                    Part(&long),
                ],
            )
        };
        let (full, digested) = tag_of(256);
        let tag = format!("{{t:{}}}", &long[..252]);
        assert!(is_digest(&digested, &format!("app:{tag}")), "{digested:?}");
        assert_eq!(Slot::for_key(&digested), Slot::for_key(&full));
        let (full, digested) = tag_of(257);
        assert!(is_digest(&digested, "app:{t:"), "{digested:?}");
        assert_eq!(
            Slot::for_key(&full),
            Slot::for_key(format!("t:{}", &long[..253]))
        );
    }

    #[test]
    fn type_names_are_escaped() {
        struct Users;
        let mut key = KeyBuilder::new("", DEFAULT_MAX_KEY_LEN);
        key.literal("count:");
        key.type_name::<Users>();
        key.literal(":");
        key.type_name::<str>();
        let want = format!(
            "count:{}:str",
            std::any::type_name::<Users>().replace(':', r"\:")
        );
        assert_eq!(key.finish(), want);
    }

    #[test]
    fn integers_and_bools_are_plain() {
        let mut out = String::new();
        42u64.write_key(&mut out);
        (-7i32).write_key(&mut out);
        true.write_key(&mut out);
        ':'.write_key(&mut out);
        assert_eq!(out, r"42-7true\:");
    }
}
