//! Compression of large values (`CacheBuilder::compress_above`), inside the entry: the
//! compressed value replaces the codec's output, and the trailer stays as it is, at the end
//! (the scripts and `written_by_later` read it there).
//!
//! Layout: `MARKER`, `Z`, the algorithm (`4`: LZ4's block format), the decompressed length
//! (4 bytes, little-endian), then the compressed block. It starts with `MARKER` as every
//! marker and envelope does, and with a kind byte none of them uses, so no script takes it for
//! a lease, a tombstone or an envelope; envelopes (freshness, tags) wrap the whole entry,
//! compressed or not. Bytes from Redis are untrusted: a block that does not decompress to
//! exactly its stated length, or states a length over the cache's size cap, is a miss.

use crate::codec::CodecError;

/// The second byte of a compressed value.
pub(crate) const KIND: u8 = b'Z';

/// The third byte: LZ4 (block format, through `lz4_flex`).
const LZ4: u8 = b'4';

/// `MARKER`, `Z` (the `marked` prefix the entry gives), the algorithm, the decompressed
/// length.
const HEADER_LEN: usize = 7;

/// `value` compressed, after its header (`marked`: `MARKER`, `Z`, which the entry's marker
/// scheme gives); `None` when that is not shorter than `value`.
pub(crate) fn compress(marked: [u8; 2], value: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(value.len()).ok()?;
    let mut out = vec![0; HEADER_LEN + lz4_flex::block::get_maximum_output_size(value.len())];
    out[..3].copy_from_slice(&[marked[0], marked[1], LZ4]);
    out[3..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
    let written = lz4_flex::block::compress_into(value, &mut out[HEADER_LEN..]).ok()?;
    out.truncate(HEADER_LEN + written);
    (out.len() < value.len()).then_some(out)
}

/// The value in `stored` (a compressed value after its `MARKER`, `Z`), at most `max_len`
/// bytes long.
pub(crate) fn decompress(stored: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
    let [LZ4, l0, l1, l2, l3, block @ ..] = stored else {
        return Err(CodecError::Compressed);
    };
    let len = usize::try_from(u32::from_le_bytes([*l0, *l1, *l2, *l3]))
        .map_err(|_| CodecError::Compressed)?;
    if len > max_len {
        return Err(CodecError::Compressed);
    }
    match lz4_flex::block::decompress(block, len) {
        Ok(value) if value.len() == len => Ok(value),
        _ => Err(CodecError::Compressed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry's prefix (`entry::MARKER`, `Z`).
    const MARKED: [u8; 2] = [0xC1, KIND];

    #[test]
    fn values_round_trip_and_only_when_smaller() {
        let value = br#"{"name":"Ada","name2":"Ada","name3":"Ada","name4":"Ada"}"#.repeat(20);
        let compressed = compress(MARKED, &value).unwrap();
        assert!(compressed.len() < value.len() / 4, "{}", compressed.len());
        assert_eq!(&compressed[..3], &[MARKED[0], MARKED[1], LZ4]);
        assert_eq!(decompress(&compressed[2..], value.len()).unwrap(), value);
        assert_eq!(compress(MARKED, b"{\"a\":1}"), None);
    }

    #[test]
    fn untrusted_blocks_are_refused() {
        let value = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(10);
        let compressed = compress(MARKED, &value).unwrap();
        let stored = &compressed[2..];
        // Over the cap: refused before anything is allocated.
        assert!(decompress(stored, value.len() - 1).is_err());
        // A length that lies, a cut block, another algorithm.
        let mut lying = stored.to_vec();
        lying[1..5].copy_from_slice(&(u32::MAX).to_le_bytes());
        assert!(decompress(&lying, 1 << 20).is_err());
        let mut longer = stored.to_vec();
        longer[1..5].copy_from_slice(&(value.len() as u32 + 1).to_le_bytes());
        assert!(decompress(&longer, usize::MAX).is_err());
        assert!(decompress(&stored[..stored.len() - 3], usize::MAX).is_err());
        assert!(decompress(b"x\0\0\0\0", usize::MAX).is_err());
        assert!(decompress(&[LZ4], usize::MAX).is_err());
    }
}
