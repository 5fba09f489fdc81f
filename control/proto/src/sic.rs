//! The signal index cache carried by UpdateSignalIndexCache 0x83 (wire.md §5): runtime ID ↔
//! signal GUID ↔ measurement key, with the v2 cache-index byte and optional gzip.

use crate::encoding::StringEncoding;
use crate::error::ProtoError;
use crate::gzip;
use std::collections::HashMap;
use sttp_wire::cursor::{DecodeError, Reader};
use uuid::Uuid;

/// Bytes of the fixed part of an entry: i32 runtime ID, GUID, u32 source length, u64 key ID.
pub const ENTRY_FIXED_LEN: usize = 4 + 16 + 4 + 8;
/// Bytes of the fixed header: binaryLength, subscriber ID, reference count.
pub const HEADER_LEN: usize = 4 + 16 + 4;
/// Default bound on an inflated cache: 1 M signals with 60-byte sources is ~92 MB.
pub const DEFAULT_INFLATE_LIMIT: usize = 128 * 1024 * 1024;
/// The placeholder index byte the pyapi publisher leaves in uncompressed caches (wire.md §5).
pub const PYAPI_UNSET_CACHE_INDEX: u8 = 0xFF;

/// One signal of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalIndexEntry {
    /// The 32-bit ID data packets use for this signal.
    pub runtime_id: i32,
    /// The signal's GUID.
    pub signal_id: Uuid,
    /// Measurement-key source, e.g. `PPA` (empty from pyapi).
    pub source: String,
    /// Measurement-key numeric ID.
    pub key_id: u64,
}

/// Runtime ID → entry position. Dense when `entries[i].runtime_id == i` for all `i` (cppapi's
/// numbering), which needs no extra memory; otherwise a hash map.
#[derive(Debug, Clone, Default)]
enum Lookup {
    #[default]
    Dense,
    Sparse(HashMap<i32, usize>),
}

/// A decoded or to-be-sent signal index cache.
///
/// The fields are public for construction and inspection; [`SignalIndexCache::signal_id`] stays
/// correct after direct edits of `entries` (it verifies its index and falls back to a scan), but
/// call [`SignalIndexCache::reindex`] after editing to keep it O(1).
#[derive(Debug, Clone, Default)]
pub struct SignalIndexCache {
    /// The subscriber ID assigned by the publisher.
    pub subscriber_id: Uuid,
    /// The signals, in runtime-ID order as published.
    pub entries: Vec<SignalIndexEntry>,
    /// GUIDs the publisher refused by access control (gsfapi).
    pub unauthorized: Vec<Uuid>,
    lookup: Lookup,
}

impl PartialEq for SignalIndexCache {
    fn eq(&self, other: &Self) -> bool {
        self.subscriber_id == other.subscriber_id
            && self.entries == other.entries
            && self.unauthorized == other.unauthorized
    }
}

impl SignalIndexCache {
    /// A cache with its runtime-ID index built.
    pub fn new(
        subscriber_id: Uuid,
        entries: Vec<SignalIndexEntry>,
        unauthorized: Vec<Uuid>,
    ) -> Self {
        let mut c = Self {
            subscriber_id,
            entries,
            unauthorized,
            lookup: Lookup::Dense,
        };
        c.reindex();
        c
    }

    /// Rebuilds the runtime-ID index after `entries` changed.
    pub fn reindex(&mut self) {
        let dense = self
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| usize::try_from(e.runtime_id).ok() == Some(i));
        self.lookup = if dense {
            Lookup::Dense
        } else {
            let mut map = HashMap::with_capacity(self.entries.len());
            for (i, e) in self.entries.iter().enumerate() {
                // First occurrence wins, like a scan would.
                map.entry(e.runtime_id).or_insert(i);
            }
            Lookup::Sparse(map)
        };
    }

    /// The entry for `runtime_id`, in O(1).
    pub fn get(&self, runtime_id: i32) -> Option<&SignalIndexEntry> {
        let at = match &self.lookup {
            Lookup::Dense => usize::try_from(runtime_id).ok(),
            Lookup::Sparse(map) => map.get(&runtime_id).copied(),
        };
        match at.and_then(|i| self.entries.get(i)) {
            Some(e) if e.runtime_id == runtime_id => Some(e),
            // Index stale (entries edited without reindex) or ID absent: scan, so the answer
            // is right either way; the common path never gets here for known IDs.
            _ => self.entries.iter().find(|e| e.runtime_id == runtime_id),
        }
    }

    /// The signal GUID for `runtime_id`, in O(1).
    pub fn signal_id(&self, runtime_id: i32) -> Option<Uuid> {
        self.get(runtime_id).map(|e| e.signal_id)
    }

    /// Number of signals.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no signals.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The uncompressed body (wire.md §5). `binaryLength` counts the whole body including its
    /// own 4 bytes, as cppapi and gsfapi write it; the unauthorized count is always written.
    pub fn encode_body(&self, enc: StringEncoding) -> Vec<u8> {
        let sources: Vec<Vec<u8>> = self.entries.iter().map(|e| enc.encode(&e.source)).collect();
        let size = HEADER_LEN
            + sources
                .iter()
                .map(|s| ENTRY_FIXED_LEN + s.len())
                .sum::<usize>()
            + 4
            + 16 * self.unauthorized.len();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&u32_len(size).to_be_bytes());
        out.extend_from_slice(self.subscriber_id.as_bytes());
        out.extend_from_slice(&u32_len(self.entries.len()).to_be_bytes());
        for (e, src) in self.entries.iter().zip(&sources) {
            out.extend_from_slice(&e.runtime_id.to_be_bytes());
            out.extend_from_slice(e.signal_id.as_bytes());
            out.extend_from_slice(&u32_len(src.len()).to_be_bytes());
            out.extend_from_slice(src);
            out.extend_from_slice(&e.key_id.to_be_bytes());
        }
        out.extend_from_slice(&u32_len(self.unauthorized.len()).to_be_bytes());
        for g in &self.unauthorized {
            out.extend_from_slice(g.as_bytes());
        }
        out
    }

    /// The full 0x83 payload: the cache-index byte when `version > 1`, then the body, gzipped
    /// when `compress` (wire.md §5).
    pub fn encode_payload(
        &self,
        version: u8,
        cache_index: u8,
        compress: bool,
        enc: StringEncoding,
    ) -> Vec<u8> {
        let body = self.encode_body(enc);
        let body = if compress {
            gzip::compress(&body)
        } else {
            body
        };
        let mut out = Vec::with_capacity(body.len() + 1);
        if version > 1 {
            out.push(cache_index);
        }
        out.extend_from_slice(&body);
        out
    }

    /// Parses a 0x83 payload with [`DEFAULT_INFLATE_LIMIT`]; see
    /// [`SignalIndexCache::decode_payload_with_limit`].
    pub fn decode_payload(
        payload: &[u8],
        version: u8,
        compressed_requested: bool,
        enc: StringEncoding,
    ) -> Result<(u8, SignalIndexCache), ProtoError> {
        Self::decode_payload_with_limit(
            payload,
            version,
            compressed_requested,
            enc,
            DEFAULT_INFLATE_LIMIT,
        )
    }

    /// Parses a 0x83 payload, returning `(cache_index, cache)`.
    ///
    /// - Cache index: absent for v1 (returned as 0). For v≥2, 0 or 1; the pyapi publisher's
    ///   never-overwritten placeholder 0xFF (uncompressed caches, wire.md §5) is mapped to **0**,
    ///   the only slot its data packets ever name. Other values are errors.
    /// - Gzip: decided by the magic `1F 8B`, whatever `compressed_requested` says. A raw body
    ///   cannot start with those bytes unless its binaryLength were ≥ 0x1F8B0000 (≈ 529 MB),
    ///   so sniffing is exact, and it copes both with publishers that compress without being
    ///   asked and with those (gsfapi without the GZip bit) that do not compress when asked.
    ///   The inflated size is bounded by `inflate_limit`.
    pub fn decode_payload_with_limit(
        payload: &[u8],
        version: u8,
        compressed_requested: bool,
        enc: StringEncoding,
        inflate_limit: usize,
    ) -> Result<(u8, SignalIndexCache), ProtoError> {
        let _ = compressed_requested; // see the doc comment: the magic decides
        let mut r = Reader::new(payload);
        let index = if version > 1 {
            match r.u8("signal index cache index")? {
                i @ (0 | 1) => i,
                PYAPI_UNSET_CACHE_INDEX => 0,
                _ => return Err(DecodeError::invalid("signal index cache index", 0).into()),
            }
        } else {
            0
        };
        let rest = r.rest();
        let cache = if gzip::is_gzip(rest) {
            Self::decode_body(&gzip::decompress(rest, inflate_limit)?, enc)?
        } else {
            Self::decode_body(rest, enc)?
        };
        Ok((index, cache))
    }

    /// Parses an uncompressed body, with the tolerance of wire.md §5: `binaryLength` may count
    /// itself (cppapi/gsfapi) or not (pyapi) — only `len ≥ binaryLength` is checked; the
    /// unauthorized block is read only while the offset is below `binaryLength`. Counts are
    /// checked against the bytes present before anything is allocated.
    pub fn decode_body(body: &[u8], enc: StringEncoding) -> Result<SignalIndexCache, ProtoError> {
        let mut r = Reader::new(body);
        let binary_length = r.u32("signal index cache binaryLength")? as usize;
        if binary_length > body.len() {
            return Err(DecodeError::too_large(
                "signal index cache binaryLength",
                0,
                binary_length,
                body.len(),
            )
            .into());
        }
        let subscriber_id = r.guid("subscriber ID")?;
        let at = r.position();
        let count = r.u32("signal index cache reference count")? as usize;
        let max = r.remaining() / ENTRY_FIXED_LEN;
        if count > max {
            return Err(DecodeError::too_large(
                "signal index cache reference count",
                at,
                count,
                max,
            )
            .into());
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let runtime_id = r.i32("runtime ID")?;
            let signal_id = r.guid("signal ID")?;
            let source = r.u32_prefixed("measurement key source", usize::MAX)?;
            let key_id = r.u64("measurement key ID")?;
            entries.push(SignalIndexEntry {
                runtime_id,
                signal_id,
                source: enc.decode(source)?,
                key_id,
            });
        }
        let mut unauthorized = Vec::new();
        if r.position() < binary_length {
            let at = r.position();
            let n = r.u32("unauthorized signal count")? as usize;
            let max = r.remaining() / 16;
            if n > max {
                return Err(DecodeError::too_large("unauthorized signal count", at, n, max).into());
            }
            unauthorized.reserve_exact(n);
            for _ in 0..n {
                unauthorized.push(r.guid("unauthorized signal ID")?);
            }
        }
        Ok(Self::new(subscriber_id, entries, unauthorized))
    }
}

/// Lengths are bounded by frame sizes far below 4 GiB; saturate rather than wrap if not.
fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignalIndexCache {
        let entries = (0..3)
            .map(|i| SignalIndexEntry {
                runtime_id: i,
                signal_id: Uuid::from_u128(0x1000 + i as u128),
                source: "PPA".into(),
                key_id: 15 + i as u64,
            })
            .collect();
        SignalIndexCache::new(Uuid::from_u128(7), entries, vec![Uuid::from_u128(99)])
    }

    #[test]
    fn binary_length_counts_itself() {
        let c = sample();
        let body = c.encode_body(StringEncoding::Utf8);
        assert_eq!(body.len(), 28 + 3 * (32 + 3) + 16);
        assert_eq!(
            u32::from_be_bytes(body[..4].try_into().unwrap()) as usize,
            body.len()
        );
    }

    #[test]
    fn lookup_dense_and_sparse() {
        let mut c = sample();
        assert_eq!(c.signal_id(2), Some(Uuid::from_u128(0x1002)));
        assert_eq!(c.signal_id(3), None);
        assert_eq!(c.signal_id(-1), None);
        c.entries[0].runtime_id = 40;
        assert_eq!(
            c.signal_id(40),
            Some(Uuid::from_u128(0x1000)),
            "stale index falls back"
        );
        c.reindex();
        assert!(matches!(c.lookup, Lookup::Sparse(_)));
        assert_eq!(c.signal_id(40), Some(Uuid::from_u128(0x1000)));
        assert_eq!(c.signal_id(0), None);
    }

    #[test]
    fn index_byte_rules() {
        let c = sample();
        let mut p = c.encode_payload(2, 1, false, StringEncoding::Utf8);
        assert_eq!(
            SignalIndexCache::decode_payload(&p, 2, false, StringEncoding::Utf8)
                .unwrap()
                .0,
            1
        );
        p[0] = 0xFF;
        assert_eq!(
            SignalIndexCache::decode_payload(&p, 2, false, StringEncoding::Utf8)
                .unwrap()
                .0,
            0
        );
        p[0] = 2;
        assert!(SignalIndexCache::decode_payload(&p, 2, false, StringEncoding::Utf8).is_err());
    }

    #[test]
    fn huge_count_fails_fast() {
        let mut body = Vec::new();
        body.extend_from_slice(&28u32.to_be_bytes());
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        let e = SignalIndexCache::decode_body(&body, StringEncoding::Utf8).unwrap_err();
        assert!(matches!(e, ProtoError::Decode(d) if d.need == u32::MAX as usize && d.have == 0));
    }
}
