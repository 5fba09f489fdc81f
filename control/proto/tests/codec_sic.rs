//! Signal index cache 0x83 (wire.md §5).

use proptest::prelude::*;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::error::ProtoError;
use sttp_proto::gzip;
use sttp_proto::sic::{SignalIndexCache, SignalIndexEntry};
use uuid::Uuid;

fn cache(n: i32, source: &str, unauthorized: usize) -> SignalIndexCache {
    let entries = (0..n)
        .map(|i| SignalIndexEntry {
            runtime_id: i,
            signal_id: Uuid::from_u128(0xABCD_0000 + i as u128),
            source: source.to_owned(),
            key_id: 1000 + i as u64,
        })
        .collect();
    let unauth = (0..unauthorized)
        .map(|i| Uuid::from_u128(0xDEAD_0000 + i as u128))
        .collect();
    SignalIndexCache::new(Uuid::from_u128(0x5151), entries, unauth)
}

const ENCODINGS: [StringEncoding; 3] = [
    StringEncoding::Utf8,
    StringEncoding::Utf16Le,
    StringEncoding::Utf16Be,
];

#[test]
fn round_trip_versions_compression_encodings() {
    let c = cache(50, "PPA 𝄞", 2);
    for enc in ENCODINGS {
        for version in [1u8, 2, 3] {
            for compress in [false, true] {
                for index in [0u8, 1] {
                    let p = c.encode_payload(version, index, compress, enc);
                    assert_eq!(gzip::is_gzip(&p[usize::from(version > 1)..]), compress);
                    // Decoding must not depend on the requested flag (the magic decides).
                    for requested in [false, true] {
                        let (i, d) = SignalIndexCache::decode_payload(&p, version, requested, enc)
                            .unwrap_or_else(|e| panic!("{enc:?} v{version} {compress}: {e}"));
                        assert_eq!(i, if version > 1 { index } else { 0 });
                        assert_eq!(d, c);
                        assert_eq!(d.signal_id(49), Some(Uuid::from_u128(0xABCD_0000 + 49)));
                    }
                }
            }
        }
    }
}

/// The sttpapi publisher's body [verified layout, wire.md §5]: binaryLength excludes itself,
/// no unauthorized block, empty sources, keyID = runtime index.
fn pyapi_body(n: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(Uuid::from_u128(0x77).as_bytes());
    body.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        body.extend_from_slice(&(i as i32).to_be_bytes());
        body.extend_from_slice(Uuid::from_u128(0x100 + u128::from(i)).as_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&u64::from(i).to_be_bytes());
    }
    let len = (body.len() - 4) as u32;
    body[..4].copy_from_slice(&len.to_be_bytes());
    body
}

#[test]
fn pyapi_variant_parses() {
    let body = pyapi_body(3);
    // Compressed, index byte 0.
    let mut p = vec![0u8];
    p.extend_from_slice(&gzip::compress(&body));
    let (i, c) = SignalIndexCache::decode_payload(&p, 2, true, StringEncoding::Utf8).unwrap();
    assert_eq!(i, 0);
    assert_eq!(c.len(), 3);
    assert!(c.unauthorized.is_empty());
    assert_eq!(c.entries[2].source, "");
    assert_eq!(c.entries[2].key_id, 2);
    assert_eq!(c.subscriber_id, Uuid::from_u128(0x77));
    // Uncompressed with the never-overwritten 0xFF placeholder: filed in slot 0.
    let mut p = vec![0xFFu8];
    p.extend_from_slice(&body);
    let (i, c2) = SignalIndexCache::decode_payload(&p, 2, false, StringEncoding::Utf8).unwrap();
    assert_eq!((i, c2), (0, c));
}

#[test]
fn cppapi_layout_without_unauthorized_block_parses() {
    // binaryLength counts itself but the trailing block is absent: offset reaches binaryLength.
    let mut body = cache(2, "X", 0).encode_body(StringEncoding::Utf8);
    body.truncate(body.len() - 4);
    let len = body.len() as u32;
    body[..4].copy_from_slice(&len.to_be_bytes());
    let c = SignalIndexCache::decode_body(&body, StringEncoding::Utf8).unwrap();
    assert_eq!(c.len(), 2);
}

#[test]
fn truncations_are_errors() {
    let c = cache(4, "PPA", 3);
    let body = c.encode_body(StringEncoding::Utf8);
    for cut in 0..body.len() {
        let r = SignalIndexCache::decode_body(&body[..cut], StringEncoding::Utf8);
        assert!(r.is_err(), "cut at {cut} parsed");
    }
    let p = c.encode_payload(2, 0, true, StringEncoding::Utf8);
    for cut in 0..p.len() {
        assert!(
            SignalIndexCache::decode_payload(&p[..cut], 2, true, StringEncoding::Utf8).is_err()
        );
    }
}

#[test]
fn huge_counts_fail_fast() {
    let mut body = cache(1, "", 0).encode_body(StringEncoding::Utf8);
    body[20..24].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    match SignalIndexCache::decode_body(&body, StringEncoding::Utf8) {
        Err(ProtoError::Decode(e)) => assert_eq!(e.need, 0x7FFF_FFFF),
        other => panic!("{other:?}"),
    }
    // Huge unauthorized count.
    let mut body = cache(1, "", 0).encode_body(StringEncoding::Utf8);
    let n = body.len();
    body[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(SignalIndexCache::decode_body(&body, StringEncoding::Utf8).is_err());
    // Huge source length.
    let mut body = cache(1, "", 0).encode_body(StringEncoding::Utf8);
    body[44..48].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(SignalIndexCache::decode_body(&body, StringEncoding::Utf8).is_err());
}

#[test]
fn binary_length_over_body_rejected() {
    let mut body = cache(1, "", 0).encode_body(StringEncoding::Utf8);
    let len = body.len() as u32 + 1;
    body[..4].copy_from_slice(&len.to_be_bytes());
    assert!(SignalIndexCache::decode_body(&body, StringEncoding::Utf8).is_err());
}

#[test]
fn gzip_bomb_bounded() {
    let big = vec![0u8; 4096];
    let mut p = vec![0u8];
    p.extend_from_slice(&gzip::compress(&big));
    let r = SignalIndexCache::decode_payload_with_limit(&p, 2, true, StringEncoding::Utf8, 1024);
    assert!(matches!(
        r,
        Err(ProtoError::Gzip(gzip::GunzipError::TooLarge(1024)))
    ));
}

#[test]
fn sparse_runtime_ids_lookup() {
    let mut c = cache(0, "", 0);
    c.entries = vec![
        SignalIndexEntry {
            runtime_id: 1000,
            signal_id: Uuid::from_u128(1),
            source: "A".into(),
            key_id: 1,
        },
        SignalIndexEntry {
            runtime_id: -4,
            signal_id: Uuid::from_u128(2),
            source: "A".into(),
            key_id: 2,
        },
    ];
    c.reindex();
    let p = c.encode_payload(2, 1, false, StringEncoding::Utf8);
    let (_, d) = SignalIndexCache::decode_payload(&p, 2, false, StringEncoding::Utf8).unwrap();
    assert_eq!(d.signal_id(1000), Some(Uuid::from_u128(1)));
    assert_eq!(d.signal_id(-4), Some(Uuid::from_u128(2)));
    assert_eq!(d.signal_id(0), None);
}

fn entry() -> impl Strategy<Value = SignalIndexEntry> {
    (any::<i32>(), any::<u128>(), "\\PC{0,8}", any::<u64>()).prop_map(|(r, g, s, k)| {
        SignalIndexEntry {
            runtime_id: r,
            signal_id: Uuid::from_u128(g),
            source: s,
            key_id: k,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn encode_decode_identity(
        sub in any::<u128>(),
        entries in prop::collection::vec(entry(), 0..20),
        unauth in prop::collection::vec(any::<u128>(), 0..4),
        version in 1u8..=3,
        index in 0u8..=1,
        compress in any::<bool>(),
        enc in prop::sample::select(ENCODINGS.to_vec()),
    ) {
        let c = SignalIndexCache::new(
            Uuid::from_u128(sub),
            entries,
            unauth.into_iter().map(Uuid::from_u128).collect(),
        );
        let p = c.encode_payload(version, index, compress, enc);
        let (i, d) = SignalIndexCache::decode_payload(&p, version, compress, enc).unwrap();
        prop_assert_eq!(i, if version > 1 { index } else { 0 });
        for e in &c.entries {
            // First entry with an ID wins, as in a scan.
            let first = c.entries.iter().find(|x| x.runtime_id == e.runtime_id).map(|x| x.signal_id);
            prop_assert_eq!(d.signal_id(e.runtime_id), first);
        }
        prop_assert_eq!(d, c);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), version in 1u8..=3) {
        let _ = SignalIndexCache::decode_payload(&bytes, version, true, StringEncoding::Utf8);
        let _ = SignalIndexCache::decode_payload(&bytes, version, false, StringEncoding::Utf16Le);
    }

    #[test]
    fn mutated_valid_payload_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut p = cache(5, "PPA", 1).encode_payload(2, 0, false, StringEncoding::Utf8);
        let i = pos.index(p.len());
        p[i] = byte;
        let _ = SignalIndexCache::decode_payload(&p, 2, false, StringEncoding::Utf8);
    }
}
