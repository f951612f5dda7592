//! Key rendering: the [`KeyPart`] trait and the escaping scheme that makes keys injective.
//!
//! A key template such as `"user:<id>"` is rendered left to right into one buffer: literal
//! text is copied, each placeholder is written by its [`KeyPart`] impl. String parts escape
//! `\` as `\\` and `:` as `\:`, so a part can never imitate a separator and two different
//! argument tuples never render to the same key.

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
/// write an unescaped `:` or a lone `\`: write strings through [`write_escaped`], and join
/// several fields with `\,`, which no escaped part contains.
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

/// Appends `s` to `out` with `\` escaped as `\\` and `:` as `\:`.
///
/// ```
/// let mut out = String::new();
/// redis_cached::write_escaped(r"a:b\c", &mut out);
/// assert_eq!(out, r"a\:b\\c");
/// ```
pub fn write_escaped(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(at) = rest.find([':', '\\']) {
        out.push_str(&rest[..at]);
        out.push('\\');
        out.push_str(&rest[at..=at]);
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

display_key_part!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool
);

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
    max_len: usize,
}

impl KeyBuilder {
    pub(crate) fn new(prefix: &str, max_len: usize) -> Self {
        let mut buf = String::with_capacity(prefix.len() + 32);
        buf.push_str(prefix);
        Self {
            head: buf.len(),
            buf,
            max_len,
        }
    }

    /// Appends literal template text.
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

    /// The finished key, or its digest form when it is longer than the limit.
    ///
    /// The digest form is the literal head, `\#`, and the hex SHA-256 of the full key. No
    /// ordinary rendering contains `\#` (parts escape only `\` and `:`, and templates may
    /// not contain `\`), so the two forms never meet.
    pub(crate) fn finish(self) -> String {
        if self.buf.len() <= self.max_len {
            return self.buf;
        }
        let mut head_len = self.head.min(256);
        while !self.buf.is_char_boundary(head_len) {
            head_len -= 1;
        }
        let head = &self.buf[..head_len];
        let mut out = String::with_capacity(head.len() + 66);
        out.push_str(head);
        out.push_str("\\#");
        for byte in Sha256::digest(self.buf.as_bytes()) {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn escapes_separator_and_escape() {
        assert_eq!(render("", &["a:b", "c"]), r"t:a\:b:c");
        assert_eq!(render("", &["a", "b:c"]), r"t:a:b\:c");
        assert_eq!(render("", &[r"a\", ":c"]), r"t:a\\:\:c");
        assert_eq!(render("p:", &[""]), "p:t:");
    }

    #[test]
    fn long_keys_use_a_digest_with_the_literal_head() {
        let long = "x".repeat(2000);
        let key = render("app:", &[&long]);
        assert!(key.starts_with(r"app:t:\#"), "{key}");
        assert_eq!(key.len(), "app:t:".len() + 2 + 64);
        assert_ne!(key, render("app:", &[&"x".repeat(2001)]));
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
