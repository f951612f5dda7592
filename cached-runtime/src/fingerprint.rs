//! The stored type's shape, fingerprinted: what serde reads and writes for it (field names,
//! their types, enum variants, recursively), traced once per type and process with
//! `serde-reflection` and hashed to 8 bytes. Each entry carries the fingerprint of the type
//! that wrote it (see `entry.rs`), and an entry of another shape is a miss: a struct that
//! gained a `#[serde(default)]` field, or renamed or retyped one, never decodes an old entry
//! into a wrong value.
//!
//! Tracing deserializes the type from placeholder values. A type whose `Deserialize`
//! rejects them all (say, a struct with both a `Uuid` and a timestamp parsed from text) is
//! fingerprinted by its name alone, which a change of its fields does not change: for such
//! types the function's `version` is what tells builds apart.

use serde::de::DeserializeOwned;
use serde_reflection::{Tracer, TracerConfig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Text placeholders tried in turn: most text-parsed types accept one of them.
const TEXT: [&str; 3] = [
    "",
    "00000000-0000-0000-0000-000000000000",
    "1970-01-01T00:00:00Z",
];

/// The fingerprint of `T`'s shape, traced once per process for each function's stored type
/// (in that function's [`ShapeCell`]), never 0.
pub(crate) fn trace<T: DeserializeOwned>() -> u64 {
    let traced = TEXT.iter().find_map(|text| {
        let config = TracerConfig::default()
            .is_human_readable(true)
            .default_borrowed_str_value(text)
            .default_string_value((*text).to_owned());
        // A `Deserialize` that panics on a placeholder (rather than returning an error) is
        // fingerprinted by name, not allowed to fail the call.
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut tracer = Tracer::new(config);
            let (format, _) = tracer.trace_simple_type::<T>().ok()?;
            let registry = tracer.registry().ok()?;
            serde_json::to_vec(&(format, registry)).ok()
        }))
        .ok()
        .flatten()
    });
    match traced {
        Some(shape) => digest(&shape),
        None => by_name::<T>(),
    }
}

/// The fallback: the type's name.
fn by_name<T>() -> u64 {
    digest(&[b"name:", std::any::type_name::<T>().as_bytes()].concat())
}

fn digest(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first).max(1)
}

/// Where a function keeps its stored type's fingerprint: a `static` in the generated code,
/// so that a hit reads it with one atomic load. The address of the type's `trace` is kept
/// with it: a function in a generic `impl` shares one `static` between its instances, and
/// those whose type is not the first one's look theirs up in a map by the type's name.
#[doc(hidden)]
pub struct ShapeCell(OnceLock<(usize, u64)>);

impl ShapeCell {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        ShapeCell(OnceLock::new())
    }

    /// The fingerprint of the type `trace` traces, which `name` names.
    #[inline]
    pub(crate) fn get(&self, trace: fn() -> u64, name: fn() -> &'static str) -> u64 {
        match self.0.get() {
            Some(&(held, shape)) if held == trace as usize => shape,
            _ => self.init(trace, name),
        }
    }

    #[cold]
    fn init(&self, trace: fn() -> u64, name: fn() -> &'static str) -> u64 {
        let shape = traced(name(), trace);
        let _ = self.0.set((trace as usize, shape));
        shape
    }
}

/// `trace`'s result for the type named `name`, computed once per process.
pub(crate) fn traced(name: &'static str, trace: fn() -> u64) -> u64 {
    static SHAPES: Mutex<Option<HashMap<&'static str, u64>>> = Mutex::new(None);
    let known = SHAPES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_default()
        .get(name)
        .copied();
    known.unwrap_or_else(|| {
        // Traced outside the lock: a type's `Deserialize` may itself make cached calls.
        let shape = trace();
        SHAPES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_default()
            .insert(name, shape);
        shape
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    mod before {
        #[derive(serde::Deserialize)]
        pub struct User {
            pub _id: u64,
            pub _name: String,
        }
    }

    mod added {
        #[derive(serde::Deserialize)]
        pub struct User {
            pub _id: u64,
            pub _name: String,
            #[serde(default)]
            pub _email: String,
        }
    }

    mod retyped {
        #[derive(serde::Deserialize)]
        pub struct User {
            pub _id: i64,
            pub _name: String,
        }
    }

    #[derive(Deserialize)]
    enum Status {
        _Active,
        _Gone { _since: u64 },
    }

    #[derive(Deserialize)]
    enum MoreStatus {
        _Active,
        _Gone { _since: u64 },
        _Paused,
    }

    #[test]
    fn each_change_of_shape_changes_the_fingerprint() {
        let user = trace::<before::User>();
        assert_eq!(user, trace::<before::User>());
        assert_ne!(user, trace::<added::User>());
        assert_ne!(user, trace::<retyped::User>());
        assert_ne!(trace::<Status>(), trace::<MoreStatus>());
        assert_ne!(trace::<Vec<u8>>(), trace::<Vec<u16>>());
    }

    /// Text that must look like a UUID, as `Uuid`'s `Deserialize` wants.
    struct Id;

    impl<'de> Deserialize<'de> for Id {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let text = String::deserialize(deserializer)?;
            match text.len() {
                36 => Ok(Id),
                _ => Err(serde::de::Error::custom("not a UUID")),
            }
        }
    }

    #[test]
    fn text_parsed_types_are_traced() {
        #[derive(Deserialize)]
        struct Account {
            _id: Id,
        }
        assert_ne!(trace::<Account>(), by_name::<Account>());
        // What no placeholder satisfies falls back to the name.
        assert_eq!(trace::<std::net::IpAddr>(), by_name::<std::net::IpAddr>());
    }
}
