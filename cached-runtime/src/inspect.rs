//! Key inspection, for operators: what one key holds, read as the cache reads it, and which
//! functions it belongs to. The byte layouts are read by the modules that write them
//! (`entry.rs`, `freshness.rs`, `store/tags.rs`, `store/lease.rs`); this module only puts
//! their readers in order, outermost envelope first.

use crate::cache::Cache;
use crate::codec::Coder;
use crate::entry::{self, Stored};
use crate::error::Error;
use crate::freshness;
use crate::key::TAG_MARK;
use crate::registry::functions;
use crate::store::lease::Lease;
use crate::store::{Peeked, tags};
use crate::tombstone::Tombstone;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::time::Duration;

/// What a key holds, as [`Cache::inspect_key`] read it. Serializes (serde) to the JSON the
/// inspection page's `key.json` returns.
///
/// Holds the stored value itself, decoded: show it only to those allowed to see the data.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KeyState {
    /// The key as asked for: as the template renders it, without the cache's prefix.
    pub key: String,
    /// The key in the store: the cache's prefix, then [`key`](Self::key).
    pub stored_key: String,
    /// What the bytes under the key are.
    pub state: KeyKind,
    /// How long the key has left before it expires, in milliseconds; `None` when it is
    /// absent or never expires. An entry with `stale` or `stale_if_error` is kept past its
    /// TTL: see [`EntryInfo::fresh_until_ms`] for when it turns stale.
    pub ttl_ms: Option<u64>,
    /// The stored size in bytes, envelopes and trailer included (0 when absent, or for a key
    /// of another Redis type).
    pub size: usize,
    /// For [`KeyKind::Value`] and [`KeyKind::StoredNone`]: what the entry says about
    /// itself.
    pub entry: Option<EntryInfo>,
    /// For [`KeyKind::Value`]: the value decoded as JSON (JSON bytes as they are,
    /// MessagePack converted), whatever the function's type. For [`KeyKind::TagVersion`]:
    /// the version, in hexadecimal. For [`KeyKind::Tombstone`]: when (`at_unix_ms`, ms since
    /// the UNIX epoch), by which function (`by`) and in which trace (`trace`, a W3C
    /// `traceparent`, or null) the key was invalidated. `None` otherwise, or when it does not
    /// decode.
    pub value: Option<serde_json::Value>,
    /// Why the value did not decode, if it did not.
    pub decode_error: Option<String>,
    /// For [`KeyKind::OtherType`]: the Redis type (`hash`, `list`, ...).
    pub redis_type: Option<String>,
    /// The `#[redis_cached]` functions whose key template renders this key, by path.
    pub functions: Vec<&'static str>,
    /// The `#[invalidates]` functions with a key template that renders this key, by path.
    pub invalidated_by: Vec<&'static str>,
    /// A likely mistake in the key asked for: an absent key that starts with the cache's
    /// prefix (copied from `redis-cli`), to which the prefix was added again. For a
    /// [`KeyKind::Tombstone`]: which function invalidated the key, and how long ago.
    pub hint: Option<String>,
}

/// What the bytes under a key are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyKind {
    /// No such key: never stored, expired, evicted or invalidated.
    Absent,
    /// A fill lease: a caller missed and is running the body; callers of the key wait for
    /// it (or take it over once it expires).
    Lease,
    /// A stored value.
    Value,
    /// The stored `None` of a function with `cache_none`.
    StoredNone,
    /// A tag's version key (the prefix, `\@`, then the tag): entries of the tag hold this
    /// version in their envelope until the tag is invalidated.
    TagVersion,
    /// An invalidation's tombstone (see
    /// [`CacheBuilder::tombstones`](crate::CacheBuilder::tombstones)): read as absent, it
    /// names the write that made the key stale. [`KeyState::value`] holds it as
    /// `{"at_unix_ms": .., "by": "..", "trace": ..}`, and the hint says who and how long ago.
    Tombstone,
    /// A key of another Redis type than a string: no cached function wrote it.
    OtherType,
    /// Bytes this version of the library does not write: stored by hand, by another
    /// program, or by a version from before entries carried their trailer.
    Unknown,
}

/// What a stored entry says about itself: its trailer and envelopes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The `version` of the function that stored it: a function of another version reads
    /// it as a miss.
    pub version: u32,
    /// The fingerprint of the stored type's shape (0: not fingerprinted), in JSON as
    /// 16 hexadecimal digits: a function whose type changed shape reads it as a miss.
    #[serde(serialize_with = "hex")]
    pub shape: u64,
    /// With `stale`, `stale_if_error` or `refresh_ahead`: until when it is fresh, in ms
    /// since the UNIX epoch; past it, it is served stale (or refreshed).
    pub fresh_until_ms: Option<u64>,
    /// With a freshness envelope: how long the body that computed it ran, in ms.
    pub body_ms: Option<u64>,
    /// With a freshness envelope: until when a caller's claim to refresh it holds, in ms
    /// since the UNIX epoch; `None` when unclaimed.
    pub claimed_until_ms: Option<u64>,
    /// For a tagged function: the versions of its tags when it was stored (in JSON, 16
    /// hexadecimal digits each), in the order of the attribute's tags. A tag whose version
    /// key holds another version now was invalidated since: the entry is a miss.
    #[serde(serialize_with = "hexes")]
    pub tag_versions: Vec<u64>,
}

impl Cache {
    /// Reads what `key` holds, for an operator: whether a value, a fill lease, a stored
    /// `None` or nothing; its remaining TTL and size; the value decoded as JSON; the
    /// versions, freshness and tags its entry records; and the registered functions whose
    /// templates render it.
    ///
    /// `key` is the key as a template renders it (`user:42`; a placeholder's text escaped
    /// as `write_escaped` does), without the cache's prefix, which is put in front of it.
    /// A key too long for the cache's key length limit is stored under a digest form,
    /// which matches no template.
    ///
    /// One atomic read (on Redis: a script of `TYPE`, `PTTL` and `GET`), routed to the
    /// key's server on a Cluster, made even while the circuit breaker is open; it changes
    /// nothing. The value is decoded with this cache's codec.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis fails or does not answer within the cache's timeout.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// use redis_cached::KeyKind;
    ///
    /// #[redis_cached::redis_cached(key = "inspect-doc:<id>", ttl = 60, cache = cache)]
    /// async fn inspect_doc_name(cache: &redis_cached::Cache, id: u64) -> String {
    ///     format!("user {id}")
    /// }
    ///
    /// let cache = redis_cached::Cache::builder("mem://").prefix("app:").build().await?;
    /// assert_eq!(cache.inspect_key("inspect-doc:7").await?.state, KeyKind::Absent);
    ///
    /// inspect_doc_name(&cache, 7).await;
    /// let state = cache.inspect_key("inspect-doc:7").await?;
    /// assert_eq!(state.stored_key, "app:inspect-doc:7");
    /// assert_eq!(state.state, KeyKind::Value);
    /// assert_eq!(state.value, Some(serde_json::json!("user 7")));
    /// assert!(state.ttl_ms.is_some_and(|ttl| ttl <= 60_000));
    /// assert!(state.functions[0].ends_with("::inspect_doc_name"));
    /// # Ok(()) }
    /// ```
    pub async fn inspect_key(&self, key: &str) -> Result<KeyState, Error> {
        let stored_key = format!("{}{key}", self.prefix());
        let peeked = self.inner.store.peek(&stored_key).await?;
        let registered = functions();
        let mut state = KeyState {
            key: key.to_owned(),
            stored_key,
            state: KeyKind::Absent,
            ttl_ms: None,
            size: 0,
            entry: None,
            value: None,
            decode_error: None,
            redis_type: None,
            functions: (registered.cached.iter())
                .filter(|function| function.key.matches(key))
                .map(|function| function.path)
                .collect(),
            invalidated_by: (registered.invalidating.iter())
                .filter(|function| function.keys.iter().any(|template| template.matches(key)))
                .map(|function| function.path)
                .collect(),
            hint: None,
        };
        let millis = |ttl: Duration| freshness::millis(ttl);
        match peeked {
            Peeked::Absent => {}
            Peeked::Other(kind, ttl) => {
                state.state = KeyKind::OtherType;
                state.redis_type = Some(kind);
                state.ttl_ms = ttl.map(millis);
            }
            Peeked::Bytes(bytes, ttl) => {
                state.ttl_ms = ttl.map(millis);
                state.size = bytes.len();
                read(&mut state, &bytes, &self.inner.codec);
            }
        }
        let prefix = self.prefix();
        if state.state == KeyKind::Absent && !prefix.is_empty() && key.starts_with(prefix) {
            state.hint = Some(format!(
                "the key starts with the cache's prefix `{prefix}`, which is put in front of \
                 it: give the key without it"
            ));
        }
        Ok(state)
    }
}

/// Fills in what `bytes` are, peeling the envelopes outermost first: tags, then freshness,
/// then the entry and its trailer (see `Store::fill` and `freshness::wrap`).
fn read(state: &mut KeyState, bytes: &[u8], codec: &Coder) {
    if Lease::is_marker(bytes) {
        state.state = KeyKind::Lease;
        return;
    }
    if let Some(tombstone) = Tombstone::decode(bytes) {
        let ago = tombstone.age_ms();
        state.state = KeyKind::Tombstone;
        state.hint = Some(format!(
            "invalidated by {} {:.1} s ago (at {} ms since the epoch); the next call is a miss",
            tombstone.by,
            ago as f64 / 1000.0,
            tombstone.at_unix_ms,
        ));
        state.value = Some(serde_json::json!({
            "at_unix_ms": tombstone.at_unix_ms,
            "by": tombstone.by,
            "trace": tombstone.trace,
        }));
        return;
    }
    if state.key.starts_with(TAG_MARK) && bytes.len() == tags::VERSION_LEN {
        state.state = KeyKind::TagVersion;
        state.value = Some(serde_json::Value::String(hex_bytes(bytes)));
        return;
    }
    let (versions, rest) = tags::open(bytes).unwrap_or((&[], bytes));
    let (header, rest) = match freshness::open(rest) {
        Some((header, rest)) => (Some(header), rest),
        None => (None, rest),
    };
    let Some((form, tag, stored)) = entry::open(rest, codec.max_len) else {
        state.state = KeyKind::Unknown;
        return;
    };
    state.state = match stored {
        Stored::Value(value) => {
            if let Cow::Owned(decompressed) = &value {
                state.hint = Some(format!(
                    "stored compressed (LZ4): {} bytes decompressed",
                    decompressed.len()
                ));
            }
            if !entry::reads(codec, tag, &value) {
                state.decode_error = Some(format!(
                    "written by another codec ({tag:?}) than this cache's ({:?})",
                    codec.tag()
                ));
            } else {
                match codec.to_json(&value) {
                    Ok(value) => state.value = Some(value),
                    Err(error) => state.decode_error = Some(error.to_string()),
                }
            }
            KeyKind::Value
        }
        Stored::Absent => KeyKind::StoredNone,
        Stored::Marker => {
            state.state = KeyKind::Unknown;
            return;
        }
    };
    state.entry = Some(EntryInfo {
        version: form.version,
        shape: form.shape,
        fresh_until_ms: header.as_ref().map(|header| header.fresh_until),
        body_ms: header.as_ref().map(|header| header.delta),
        claimed_until_ms: header
            .as_ref()
            .map(|header| header.claimed_until)
            .filter(|until| *until > 0),
        tag_versions: versions
            .chunks_exact(tags::VERSION_LEN)
            .map(|version| u64::from_be_bytes(version.try_into().unwrap_or_default()))
            .collect(),
    });
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hex<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{value:016x}"))
}

fn hexes<S: Serializer>(values: &[u64], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(|value| format!("{value:016x}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Json;
    use crate::entry::{Entry, Form};
    use crate::store::tags::{Stamp, fresh_version};

    fn state(key: &str, bytes: &[u8]) -> KeyState {
        let mut state = KeyState {
            key: key.into(),
            stored_key: key.into(),
            state: KeyKind::Absent,
            ttl_ms: None,
            size: bytes.len(),
            entry: None,
            value: None,
            decode_error: None,
            redis_type: None,
            functions: vec![],
            invalidated_by: vec![],
            hint: None,
        };
        read(&mut state, bytes, &Coder::of(Json));
        state
    }

    const FORM: Form = Form {
        version: 3,
        shape: 0xfeed,
    };

    #[test]
    fn values_come_out_of_their_envelopes() {
        let encoded = Coder::of(Json)
            .encode_entry(Entry::Value(&serde_json::json!({"a": 1})), FORM)
            .unwrap();
        let plain = state("k", &encoded);
        assert_eq!(plain.state, KeyKind::Value);
        assert_eq!(plain.value, Some(serde_json::json!({"a": 1})));
        let entry = plain.entry.unwrap();
        assert_eq!((entry.version, entry.shape), (3, 0xfeed));
        assert_eq!(entry.fresh_until_ms, None);

        let fresh = freshness::wrap(&encoded, 1_700_000_000_123, Duration::from_millis(42));
        let version = fresh_version();
        let tagged = Stamp(version.to_vec()).wrap(&fresh);
        let wrapped = state("k", &tagged);
        assert_eq!(wrapped.value, Some(serde_json::json!({"a": 1})));
        let entry = wrapped.entry.unwrap();
        assert_eq!(entry.fresh_until_ms, Some(1_700_000_000_123));
        assert_eq!(entry.body_ms, Some(42));
        assert_eq!(entry.claimed_until_ms, None);
        assert_eq!(entry.tag_versions, vec![u64::from_be_bytes(version)]);
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn message_pack_values_decode_as_json() {
        let value = serde_json::json!({"name": "a", "ids": [1, 2], "ok": true});
        let msgpack = Coder::of(crate::codec::MessagePack);
        let encoded = msgpack.encode_entry(Entry::Value(&value), FORM).unwrap();
        let mut state = state("k", b"");
        read(&mut state, &encoded, &msgpack);
        assert_eq!(state.value, Some(value));
    }

    #[test]
    fn compressed_values_show_decompressed_and_other_codecs_say_so() {
        let value = serde_json::json!({"names": vec!["Ada Lovelace"; 50]});
        let mut compressing = Coder::of(Json);
        compressing.compress_above = Some(64);
        let encoded = compressing
            .encode_entry(Entry::Value(&value), FORM)
            .unwrap();
        let shown = state("k", &encoded);
        assert_eq!(shown.value, Some(value.clone()));
        assert!(shown.size < 200, "{}", shown.size);
        assert_eq!(
            shown.hint.as_deref(),
            Some("stored compressed (LZ4): 761 bytes decompressed")
        );

        let other = Coder::of(crate::codec::Named("other"));
        let mut shown = state("k", b"");
        read(&mut shown, &encoded, &other);
        assert_eq!(shown.value, None);
        assert!(
            shown
                .decode_error
                .unwrap()
                .starts_with("written by another codec")
        );
        let encoded = other.encode_entry(Entry::Value(&value), FORM).unwrap();
        let mut shown = state("k", b"");
        read(&mut shown, &encoded, &other);
        assert_eq!(shown.value, Some(value));
    }

    #[test]
    fn markers_and_strangers_are_named() {
        assert_eq!(state("k", Lease::new().as_bytes()).state, KeyKind::Lease);
        let none = Coder::of(Json)
            .encode_entry::<u8>(Entry::Absent, FORM)
            .unwrap();
        assert_eq!(state("k", &none).state, KeyKind::StoredNone);
        assert_eq!(state("k", b"hello").state, KeyKind::Unknown);
        let tombstone = Tombstone {
            at_unix_ms: freshness::now(),
            by: "app::update_user".into(),
            trace: None,
        };
        let stone = state("k", &tombstone.encode());
        assert_eq!(stone.state, KeyKind::Tombstone);
        assert!(
            stone
                .hint
                .unwrap()
                .starts_with("invalidated by app::update_user 0.")
        );
        assert_eq!(stone.value.unwrap()["by"], "app::update_user");
        let tag = state("\\@team:1", &fresh_version());
        assert_eq!(tag.state, KeyKind::TagVersion);
        let json = serde_json::to_value(state("k", &none)).unwrap();
        assert_eq!(json["state"], "stored_none");
        assert_eq!(json["entry"]["shape"], "000000000000feed");
    }
}
