//! What a function's stored type must be, checked in one place: the macro reads the stored
//! type off the return type (`User` in `Result<User, E>`) and calls the check for its shape on
//! it, spanned on those tokens, as in `stored_ok::<User>()`. The check is the only bound on
//! `Serialize`/`Deserialize` (and, for `near_cache = true`, `Clone`) that generated code meets:
//! it returns a [`ValueCodec`], the stored type's encode, decode and near-tier functions, which
//! `cached` takes without bounds of its own. So an unstorable type is reported once, at its
//! own name, in the terms of the user's type rather than of this module's.

use crate::codec::{CodecError, Coder};
use crate::entry::{Entry, Form};
use crate::fingerprint::{self, ShapeCell};
use crate::near::NearValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// How the values of a function's stored type `T` are encoded, decoded and held in the near
/// tier; made by a check (`stored_whole`, `stored_ok`, ..), so only for storable types.
pub struct ValueCodec<T> {
    encode: Encode<T>,
    decode: Decode<T>,
    /// `T`'s name and shape fingerprint, and where the function keeps the fingerprint.
    name: fn() -> &'static str,
    trace: fn() -> u64,
    shape: Option<&'static ShapeCell>,
    /// With `near_cache = true`: the decoded entry is held, and cloned on each near hit.
    clone: Option<Cloning<T>>,
    /// With `ttl_from = <fn>`: each value's TTL (`None`: not positive, not stored).
    ttl_from: Option<fn(&T) -> Option<Duration>>,
}

type Encode<T> = fn(&Coder, Entry<&T>, Form) -> Result<Vec<u8>, CodecError>;
type Decode<T> = fn(&Coder, &[u8], Form) -> Result<Entry<T>, CodecError>;

/// How the near tier holds decoded entries of `T` and clones them back.
struct Cloning<T> {
    hold: fn(Entry<&T>) -> Arc<dyn Any + Send + Sync>,
    value: fn(&(dyn Any + Send + Sync)) -> Option<Entry<T>>,
}

impl<T> Clone for ValueCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ValueCodec<T> {}

impl<T> Clone for Cloning<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Cloning<T> {}

impl<T: Serialize + DeserializeOwned> ValueCodec<T> {
    fn new() -> Self {
        ValueCodec {
            encode: Coder::encode_entry::<T>,
            decode: Coder::decode_entry::<T>,
            name: std::any::type_name::<T>,
            trace: fingerprint::trace::<T>,
            shape: None,
            clone: None,
            ttl_from: None,
        }
    }
}

impl<T> ValueCodec<T> {
    /// The bytes to store for `entry`, written in `form`.
    pub(crate) fn encode(
        &self,
        codec: &Coder,
        entry: Entry<&T>,
        form: Form,
    ) -> Result<Vec<u8>, CodecError> {
        (self.encode)(codec, entry, form)
    }

    /// The entry stored as `bytes`, if written in `form`.
    pub(crate) fn decode(
        &self,
        codec: &Coder,
        bytes: &[u8],
        form: Form,
    ) -> Result<Entry<T>, CodecError> {
        (self.decode)(codec, bytes, form)
    }

    /// The stored type's shape fingerprint (traced on the first call in this process).
    #[inline]
    pub(crate) fn shape(&self) -> u64 {
        match self.shape {
            Some(cell) => cell.get(self.trace, self.name),
            None => fingerprint::traced((self.name)(), self.trace),
        }
    }

    /// The TTL `ttl_from` gives `entry`: `None` without `ttl_from` (or for a stored `None`),
    /// `Some(None)` for one that is not positive.
    pub(crate) fn ttl_of(&self, entry: Entry<&T>) -> Option<Option<Duration>> {
        match (self.ttl_from, entry) {
            (Some(ttl_from), Entry::Value(value)) => Some(ttl_from(value)),
            _ => None,
        }
    }

    /// What the near tier holds for an entry stored as `bytes`: the bytes, decoded on each
    /// hit, or with `near_cache = true` the entry itself, cloned on each hit.
    pub(crate) fn hold(&self, bytes: &[u8], entry: Entry<&T>) -> NearValue {
        match self.clone {
            Some(cloning) => NearValue::Decoded((cloning.hold)(entry)),
            None => NearValue::Bytes(bytes.into()),
        }
    }

    /// The entry the near tier holds, if this function can serve it (`decode` for bytes).
    pub(crate) fn near_value(
        &self,
        held: &NearValue,
        decode: impl FnOnce(&[u8]) -> Option<Entry<T>>,
    ) -> Option<Entry<T>> {
        match (held, self.clone) {
            (NearValue::Bytes(bytes), _) => decode(bytes),
            (NearValue::Decoded(entry), Some(cloning)) => (cloning.value)(&**entry),
            (NearValue::Decoded(_), None) => None,
        }
    }
}

// One check per shape of return type, each with its own note on which part is stored. Each
// bound is implemented by every `Serialize + DeserializeOwned` type; `do_not_recommend` makes
// the compiler report the bound itself (its message names the stored type) rather than the
// serde traits behind it, one error for both.

/// What the stored type of a function of this shape must implement (see [`stored_whole`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "this value is stored in Redis: encoded on a miss, decoded on a hit",
    note = "a function returning `T` stores its whole return value: here `{Self}`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (serde's `derive` feature), or for a type parameter the bounds `serde::Serialize + serde::de::DeserializeOwned`; it must deserialize without borrowing from the input"
)]
pub trait StorableWhole: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> StorableWhole for T {}

/// The check on the stored type of a function returning `T`, stored whole.
pub fn stored_whole<T: StorableWhole>() -> ValueCodec<T> {
    ValueCodec::new()
}

/// What the stored type of a function of this shape must implement (see [`stored_ok`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "this value is stored in Redis: encoded on a miss, decoded on a hit",
    note = "a function returning `Result<T, E>` stores the `T` of its `Ok` values (errors are not cached): here `{Self}`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (serde's `derive` feature), or for a type parameter the bounds `serde::Serialize + serde::de::DeserializeOwned`; it must deserialize without borrowing from the input"
)]
pub trait StorableOk: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> StorableOk for T {}

/// The check on the `T` of a function returning `Result<T, E>`.
pub fn stored_ok<T: StorableOk>() -> ValueCodec<T> {
    ValueCodec::new()
}

/// What the stored type of a function of this shape must implement (see [`stored_some`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "this value is stored in Redis: encoded on a miss, decoded on a hit",
    note = "a function returning `Option<T>` stores the `T` of its `Some` values: here `{Self}`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (serde's `derive` feature), or for a type parameter the bounds `serde::Serialize + serde::de::DeserializeOwned`; it must deserialize without borrowing from the input"
)]
pub trait StorableSome: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> StorableSome for T {}

/// The check on the `T` of a function returning `Option<T>`.
pub fn stored_some<T: StorableSome>() -> ValueCodec<T> {
    ValueCodec::new()
}

/// What the stored type of a function of this shape must implement (see [`stored_ok_some`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "this value is stored in Redis: encoded on a miss, decoded on a hit",
    note = "a function returning `Result<Option<T>, E>` stores the `T` of its `Ok(Some(..))` values: here `{Self}`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (serde's `derive` feature), or for a type parameter the bounds `serde::Serialize + serde::de::DeserializeOwned`; it must deserialize without borrowing from the input"
)]
pub trait StorableOkSome: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> StorableOkSome for T {}

/// The check on the `T` of a function returning `Result<Option<T>, E>`.
pub fn stored_ok_some<T: StorableOkSome>() -> ValueCodec<T> {
    ValueCodec::new()
}

/// Where the function keeps its stored type's shape fingerprint: a `static` of its own.
pub fn shaped<T>(stores: ValueCodec<T>, cell: &'static ShapeCell) -> ValueCodec<T> {
    ValueCodec {
        shape: Some(cell),
        ..stores
    }
}

/// `ttl_from = <fn>`: each value's TTL is `ttl_from(&value)` (see [`IntoTtl`](crate::IntoTtl)).
pub fn ttl_from<T>(stores: ValueCodec<T>, ttl_from: fn(&T) -> Option<Duration>) -> ValueCodec<T> {
    ValueCodec {
        ttl_from: Some(ttl_from),
        ..stores
    }
}

/// What the stored type of a batch function must implement (see [`stored_batch`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::Deserialize`",
    label = "this value is stored in Redis: encoded on a miss, decoded on a hit",
    note = "a batch function returning `HashMap<K, V>` or `Result<HashMap<K, V>, E>` stores each `V` under its id's key: here `{Self}`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}` (serde's `derive` feature), or for a type parameter the bounds `serde::Serialize + serde::de::DeserializeOwned`; it must deserialize without borrowing from the input"
)]
pub trait StorableBatch: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> StorableBatch for T {}

/// The check on the `V` of a batch function returning `HashMap<K, V>` (or in a `Result`).
pub fn stored_batch<T: StorableBatch>() -> ValueCodec<T> {
    ValueCodec::new()
}

/// Implemented by every `Clone + Send + Sync + 'static` type: what `near_cache = true` needs
/// of the stored type.
#[diagnostic::on_unimplemented(
    message = "`near_cache = true` keeps decoded values in the near cache, so `{Self}` must implement `Clone`",
    label = "`near_cache = true` clones this value on each near-cache hit",
    note = "add `#[derive(Clone)]` to `{Self}` (the near cache also needs it to be `Send + Sync + 'static`)",
    note = "for large values return an `Arc<..>` (serde's `rc` feature), which clones cheaply; or leave `near_cache` unset, and stored bytes are decoded on each near hit"
)]
pub trait NearClone: Clone + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Clone + Send + Sync + 'static> NearClone for T {}

/// The check for `near_cache = true` on the stored type: the near tier holds decoded
/// entries and clones them on each hit, rather than decoding the stored bytes.
pub fn near_clone<T: NearClone>(stores: ValueCodec<T>) -> ValueCodec<T> {
    ValueCodec {
        clone: Some(Cloning {
            hold: |entry| {
                let entry = match entry {
                    Entry::Value(value) => Entry::Value(value.clone()),
                    Entry::Absent => Entry::Absent,
                };
                Arc::new(entry)
            },
            value: |held| held.downcast_ref::<Entry<T>>().cloned(),
        }),
        ..stores
    }
}
