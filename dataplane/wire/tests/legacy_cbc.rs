//! The gsfapi-compatible AES-256-CBC data-channel cipher (wire.md §8): round trips, the key
//! index flag, PKCS7, the response length, rotation, and garbage input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use ring::rand::SystemRandom;
use sttp_wire::legacy_cbc::{
    decrypt_buffer_block, decrypt_data_packet, encrypt_buffer_block, encrypt_data_packet,
    CipherKeySet, LegacyError, LegacyKeys, KEY_INDEX_FLAG,
};

fn keys(index: u8) -> LegacyKeys {
    LegacyKeys {
        even: CipherKeySet {
            key: core::array::from_fn(|i| i as u8),
            iv: core::array::from_fn(|i| 100 + i as u8),
        },
        odd: CipherKeySet {
            key: [0xAB; 32],
            iv: [0xCD; 16],
        },
        index,
    }
}

fn response(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![code, 0x02];
    b.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

fn declared_len(body: &[u8]) -> usize {
    i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize
}

/// A compact DataPacket with one measurement: flags 0x02, count 1, one compact measurement.
fn data_packet_payload() -> Vec<u8> {
    let mut p = vec![0x02, 0, 0, 0, 1];
    p.extend_from_slice(&[0x00, 0, 0, 0, 1, 0x42, 0x70, 0, 0]);
    p.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7]);
    p
}

#[test]
fn matches_pycryptodome_vector() {
    // Computed with pycryptodome (`AES.new(k, AES.MODE_CBC, iv).encrypt(pad(pt, 16))`, the
    // cipher the Python subscriber decrypts with) for key 00..1f, IV 64..73, and the payload
    // after the flags byte of `data_packet_payload()`.
    let expected = "ddfd7abc51be0df5555e2eb507d31efe86bd26f2030707f6af87574d8342dee3";
    let body = response(0x82, &data_packet_payload());
    let enc = encrypt_data_packet(&body, &keys(0)).unwrap();
    let hex: String = enc[7..].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
    assert_eq!(enc[6], 0x02, "even set: flags byte unchanged, 0x04 clear");
    assert_eq!(declared_len(&enc), 1 + 32);
    assert_eq!(enc.len(), 6 + 1 + 32);
}

#[test]
fn odd_set_sets_flag_and_decrypts_with_odd_key() {
    let body = response(0x82, &data_packet_payload());
    let enc = encrypt_data_packet(&body, &keys(1)).unwrap();
    assert_eq!(enc[6], 0x02 | KEY_INDEX_FLAG);
    // The subscriber picks the set from the packet flag, not from its idea of the index.
    assert_eq!(decrypt_data_packet(&enc, &keys(0)).unwrap(), body);
    // With the flag flipped the other set is used and the padding check catches it (or, with
    // probability ~1/256, the result is garbage): it must not equal the original.
    let mut wrong = enc.clone();
    wrong[6] ^= KEY_INDEX_FLAG;
    assert_ne!(decrypt_data_packet(&wrong, &keys(0)).ok(), Some(body));
}

#[test]
fn pkcs7_full_block_when_aligned() {
    // 15 bytes after the flags: 16-byte-aligned plaintext gets a whole block of padding.
    let mut payload = vec![0x02];
    payload.extend_from_slice(&[9u8; 16]);
    let body = response(0x82, &payload);
    let enc = encrypt_data_packet(&body, &keys(0)).unwrap();
    assert_eq!(enc.len(), 6 + 1 + 32);
    assert_eq!(decrypt_data_packet(&enc, &keys(0)).unwrap(), body);
}

#[test]
fn bad_padding_is_an_error() {
    let body = response(0x82, &data_packet_payload());
    let mut enc = encrypt_data_packet(&body, &keys(0)).unwrap();
    // Flip a bit of the last block's predecessor: the last plaintext block (padding) changes.
    let n = enc.len();
    enc[n - 17] ^= 0x01;
    assert_eq!(
        decrypt_data_packet(&enc, &keys(0)),
        Err(LegacyError::BadPadding)
    );
}

#[test]
fn malformed_input_errors() {
    let k = keys(0);
    assert!(matches!(
        decrypt_data_packet(&[0x82, 0x02, 0, 0], &k),
        Err(LegacyError::Short { need: 7, have: 4 })
    ));
    assert_eq!(
        decrypt_data_packet(&response(0x80, &[0; 17]), &k),
        Err(LegacyError::WrongCode {
            expected: 0x82,
            found: 0x80
        })
    );
    let mut lying = response(0x82, &[0; 17]);
    lying[5] = 99;
    assert_eq!(
        decrypt_data_packet(&lying, &k),
        Err(LegacyError::LengthMismatch {
            declared: 99,
            actual: 17
        })
    );
    assert_eq!(
        decrypt_data_packet(&response(0x82, &[0; 16]), &k),
        Err(LegacyError::CiphertextLength(15))
    );
    assert_eq!(
        decrypt_data_packet(&response(0x82, &[0]), &k),
        Err(LegacyError::CiphertextLength(0))
    );
    assert!(encrypt_data_packet(&response(0x88, &[0; 9]), &k).is_err());
}

#[test]
fn buffer_block_keeps_sequence_and_flags_clear() {
    let mut payload = vec![0, 0, 0, 7, 0x01]; // seq 7, RequireConfirmation
    payload.extend_from_slice(&[0, 0, 0, 3]); // signal index
    payload.extend_from_slice(b"opaque block bytes");
    let body = response(0x88, &payload);
    let enc = encrypt_buffer_block(&body, &keys(1)).unwrap();
    assert_eq!(&enc[6..10], &[0, 0, 0, 7]);
    assert_eq!(enc[10], 0x01 | KEY_INDEX_FLAG);
    assert_eq!((enc.len() - 11) % 16, 0);
    assert_eq!(declared_len(&enc), enc.len() - 6);
    assert_eq!(decrypt_buffer_block(&enc, &keys(1)).unwrap(), body);
    assert!(decrypt_data_packet(&enc, &keys(1)).is_err());
}

#[test]
fn rotation_regenerates_current_then_flips() {
    let rng = SystemRandom::new();
    let mut k = LegacyKeys::generate(&rng).unwrap();
    assert_eq!(k.index, 0);
    assert_ne!(k.even, k.odd);
    let before = k.clone();
    k.rotate(&rng).unwrap();
    assert_eq!(k.index, 1);
    assert_ne!(
        k.even, before.even,
        "the set at the old index 0 is regenerated"
    );
    assert_eq!(k.odd, before.odd);
    let before = k.clone();
    k.rotate(&rng).unwrap();
    assert_eq!(k.index, 0);
    assert_eq!(k.even, before.even);
    assert_ne!(k.odd, before.odd);
    assert_eq!(k.current(), &k.even);
}

proptest! {
    #[test]
    fn round_trip(
        payload in prop::collection::vec(any::<u8>(), 1..600),
        index in 0u8..2,
        key in any::<[u8; 32]>(),
    ) {
        let mut k = keys(index);
        k.odd.key = key;
        k.even.key = key.map(|b| !b);
        let body = response(0x82, &payload);
        let enc = encrypt_data_packet(&body, &k).unwrap();
        prop_assert_eq!(declared_len(&enc), enc.len() - 6);
        prop_assert_eq!((enc.len() - 7) % 16, 0);
        prop_assert!(enc.len() - 7 > payload.len() - 1);
        prop_assert_eq!(enc[6] & KEY_INDEX_FLAG != 0, index == 1);
        prop_assert_eq!(enc[6] & !KEY_INDEX_FLAG, payload[0] & !KEY_INDEX_FLAG);
        let mut expected = body.clone();
        expected[6] &= !KEY_INDEX_FLAG;
        prop_assert_eq!(decrypt_data_packet(&enc, &k).unwrap(), expected);
    }

    #[test]
    fn garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..100), code in prop::sample::select(vec![0x82u8, 0x88])) {
        let mut b = body;
        if !b.is_empty() {
            b[0] = code;
        }
        let k = keys(0);
        let _ = decrypt_data_packet(&b, &k);
        let _ = decrypt_buffer_block(&b, &k);
        let _ = encrypt_data_packet(&b, &k);
        let _ = encrypt_buffer_block(&b, &k);
    }
}
