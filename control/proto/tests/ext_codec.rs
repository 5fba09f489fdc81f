//! The extension messages and announcement (wire.md §11): round trips, "not ours" vs
//! malformed, direction rules, the connection-string key, the operational-modes bits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sttp_proto::catalog::Catalog;
use sttp_proto::command::Command;
use sttp_proto::connstr::{ConnectionString, SubscriptionSettings};
use sttp_proto::encoding::StringEncoding;
use sttp_proto::ext::{
    request_udp_cipher, requested_udp_cipher, ExtError, ExtMessage, UdpCipher, EXTENSION_BYTE,
    EXTENSION_MODE_BITS, MAGIC, USER_COMMAND, USER_RESPONSE,
};
use sttp_proto::metadata::builder::MetadataBuilder;
use sttp_proto::opmodes::{bits, OperationalModes};
use sttp_proto::response::decode_responses;
use sttp_proto::session::publisher::Phase;
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use uuid::Uuid;

fn message() -> impl Strategy<Value = ExtMessage> {
    prop_oneof![
        (any::<u32>(), any::<[u8; 32]>())
            .prop_map(|(epoch, key)| ExtMessage::KeyAnnounce { epoch, key }),
        any::<u32>().prop_map(|epoch| ExtMessage::KeyConfirm { epoch }),
        prop::collection::vec(Just(UdpCipher::Aes256Gcm), 0..5)
            .prop_map(|udp_ciphers| ExtMessage::Capabilities { udp_ciphers }),
    ]
}

/// The code a message may travel in (Capabilities: either; pick by `flip`).
fn code_for(m: &ExtMessage, flip: bool) -> u8 {
    match m {
        ExtMessage::KeyAnnounce { .. } => USER_RESPONSE,
        ExtMessage::KeyConfirm { .. } => USER_COMMAND,
        ExtMessage::Capabilities { .. } if flip => USER_COMMAND,
        ExtMessage::Capabilities { .. } => USER_RESPONSE,
    }
}

#[test]
fn layouts() {
    let key: [u8; 32] = core::array::from_fn(|i| i as u8);
    let a = ExtMessage::KeyAnnounce {
        epoch: 0x0102_0304,
        key,
    }
    .encode();
    assert_eq!(&a[..8], b"STTPRS\x01\x01");
    assert_eq!(&a[8..12], &[1, 2, 3, 4]);
    assert_eq!(&a[12..], &key);
    assert_eq!(
        ExtMessage::KeyConfirm { epoch: 5 }.encode(),
        b"STTPRS\x01\x02\0\0\0\x05"
    );
    assert_eq!(
        ExtMessage::Capabilities {
            udp_ciphers: vec![UdpCipher::Aes256Gcm]
        }
        .encode(),
        b"STTPRS\x01\x03\x01\x01"
    );
    // Debug output never shows key material.
    let dbg = format!(
        "{:?}",
        ExtMessage::KeyAnnounce {
            epoch: 1,
            key: [0xAB; 32]
        }
    );
    assert!(
        !dbg.contains("171") && !dbg.to_lowercase().contains("ab, "),
        "{dbg}"
    );
}

#[test]
fn framed_forms_parse_as_user_command_and_response() {
    let m = ExtMessage::KeyAnnounce {
        epoch: 9,
        key: [3; 32],
    };
    let mut out = Vec::new();
    m.write_response(&mut out);
    let responses = decode_responses(&out[4..]).unwrap();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].code, USER_RESPONSE);
    assert_eq!(responses[0].command, USER_COMMAND);
    assert_eq!(
        ExtMessage::decode(responses[0].code, responses[0].payload).unwrap(),
        Some(m)
    );

    let c = ExtMessage::KeyConfirm { epoch: 9 };
    let mut out = Vec::new();
    c.write_command(&mut out);
    let cmd = Command::decode(&out[4..], StringEncoding::Utf8).unwrap();
    match cmd {
        Command::User { code, data } => {
            assert_eq!(code, USER_COMMAND);
            assert_eq!(ExtMessage::decode(code, &data).unwrap(), Some(c));
        }
        other => panic!("expected a user command, got {other:?}"),
    }
}

#[test]
fn not_ours_and_malformed() {
    // Another application's user payloads and other codes: None.
    assert_eq!(
        ExtMessage::decode(USER_COMMAND, b"hello world").unwrap(),
        None
    );
    assert_eq!(ExtMessage::decode(USER_RESPONSE, b"").unwrap(), None);
    let confirm = ExtMessage::KeyConfirm { epoch: 1 }.encode();
    assert_eq!(ExtMessage::decode(0xD4, &confirm).unwrap(), None);
    assert_eq!(ExtMessage::decode(0x80, &confirm).unwrap(), None);
    // Ours but wrong: errors naming why.
    let mut v2 = confirm.clone();
    v2[6] = 2;
    assert_eq!(
        ExtMessage::decode(USER_COMMAND, &v2),
        Err(ExtError::UnsupportedVersion(2))
    );
    let mut ty = confirm.clone();
    ty[7] = 9;
    assert_eq!(
        ExtMessage::decode(USER_COMMAND, &ty),
        Err(ExtError::UnknownType(9))
    );
    let mut long = confirm.clone();
    long.push(0);
    assert_eq!(
        ExtMessage::decode(USER_COMMAND, &long),
        Err(ExtError::TrailingBytes {
            offset: 12,
            count: 1
        })
    );
    // Direction: a subscriber cannot announce keys, a publisher cannot confirm them.
    let announce = ExtMessage::KeyAnnounce {
        epoch: 1,
        key: [0; 32],
    }
    .encode();
    assert!(matches!(
        ExtMessage::decode(USER_COMMAND, &announce),
        Err(ExtError::WrongDirection { code: 0xD5, .. })
    ));
    assert!(matches!(
        ExtMessage::decode(USER_RESPONSE, &confirm),
        Err(ExtError::WrongDirection { code: 0xE5, .. })
    ));
    // Unknown cipher ids from a newer peer are skipped, not an error.
    let caps = [&MAGIC[..], &[1, 3, 3, 7, 1, 200]].concat();
    assert_eq!(
        ExtMessage::decode(USER_COMMAND, &caps).unwrap(),
        Some(ExtMessage::Capabilities {
            udp_ciphers: vec![UdpCipher::Aes256Gcm]
        })
    );
}

#[test]
fn connection_string_key() {
    let mut extra = ConnectionString::new();
    assert_eq!(requested_udp_cipher(&extra), None);
    request_udp_cipher(&mut extra, UdpCipher::Aes256Gcm);
    assert_eq!(extra.to_string(), "sttpExt={udpCipher=aes-256-gcm}");
    assert_eq!(requested_udp_cipher(&extra), Some(UdpCipher::Aes256Gcm));

    // Through a whole Subscribe connection string: the publisher keeps it in `extra`.
    let cs = "includeTime=true;filterExpression={FILTER ActiveMeasurements WHERE True};STTPEXT={priority={x=1};UDPCIPHER= AES-256-GCM }";
    let s = SubscriptionSettings::parse(cs).unwrap();
    assert_eq!(requested_udp_cipher(&s.extra), Some(UdpCipher::Aes256Gcm));
    // Other sttpExt settings survive adding the cipher.
    let mut extra = s.extra.clone();
    request_udp_cipher(&mut extra, UdpCipher::Aes256Gcm);
    let inner = ConnectionString::parse(extra.get("sttpExt").unwrap()).unwrap();
    assert_eq!(inner.get("priority"), Some("x=1"));

    for bad in [
        "sttpExt={udpCipher=chacha20}",
        "sttpExt={cipher=aes-256-gcm}",
        "udpCipher=aes-256-gcm",
        "sttpExt=aes-256-gcm",
    ] {
        let cs = ConnectionString::parse(bad).unwrap();
        assert_eq!(requested_udp_cipher(&cs), None, "{bad}");
    }
    let list = ConnectionString::parse("sttpExt={udpCipher=chacha20,aes-256-gcm}").unwrap();
    assert_eq!(requested_udp_cipher(&list), Some(UdpCipher::Aes256Gcm));
}

#[test]
fn extension_bits_are_the_extension_byte() {
    assert_eq!(EXTENSION_MODE_BITS & !bits::EXTENSION_MASK, 0);
    let m = OperationalModes(0xC000_0222 | EXTENSION_MODE_BITS);
    assert_eq!(m.extension(), EXTENSION_BYTE);
    assert_eq!(
        OperationalModes(0xC000_0222).with_extension(EXTENSION_BYTE),
        m
    );
}

#[test]
fn publisher_session_accepts_our_extension_bits() {
    let catalog = Catalog::new(Uuid::from_u128(9), MetadataBuilder::default().build());
    let mut s = PublisherSession::new(PublisherSessionConfig {
        subscriber_id: Uuid::from_u128(7),
        publisher_name: "test".into(),
    });
    let modes = OperationalModes(0xC000_0222 | EXTENSION_MODE_BITS);
    let mut frame = Vec::new();
    Command::DefineOperationalModes(modes).encode(StringEncoding::Utf8, &mut frame);
    s.handle_frame(&frame[4..], &catalog, 0);
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(s.modes().extension(), EXTENSION_BYTE);
    let mut sent = Vec::new();
    while let Some(o) = s.poll_output() {
        if let PublisherOutput::Send(b) = o {
            sent.extend(b);
        }
    }
    let r = decode_responses(&sent[4..]).unwrap();
    assert_eq!((r[0].code, r[0].command), (0x80, 0x06), "Succeeded(0x06)");
}

proptest! {
    #[test]
    fn round_trip(m in message(), flip in any::<bool>()) {
        let code = code_for(&m, flip);
        let bytes = m.encode();
        prop_assert_eq!(ExtMessage::decode(code, &bytes).unwrap(), Some(m.clone()));
        prop_assert!(m.allowed_in(code));
        // Every truncation: inside the magic it is not recognisably ours; after it, an error.
        for cut in 0..bytes.len() {
            let r = ExtMessage::decode(code, &bytes[..cut]);
            if cut < MAGIC.len() {
                prop_assert_eq!(r, Ok(None));
            } else {
                prop_assert!(r.is_err(), "cut {} gave {:?}", cut, r);
            }
        }
    }

    #[test]
    fn wrong_magic_is_not_ours(m in message(), at in 0usize..6, x in 1u8..=255, flip in any::<bool>()) {
        let mut bytes = m.encode();
        bytes[at] ^= x;
        prop_assert_eq!(ExtMessage::decode(code_for(&m, flip), &bytes), Ok(None));
    }

    #[test]
    fn arbitrary_bytes_never_panic(code in any::<u8>(), tail in prop::collection::vec(any::<u8>(), 0..64), magic in any::<bool>()) {
        let bytes = if magic { [&MAGIC[..], &tail].concat() } else { tail };
        if let Ok(Some(m)) = ExtMessage::decode(code, &bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(ExtMessage::decode(code, &m.encode()), Ok(Some(m)));
        }
    }
}

/// The legacy CBC key sets (wire.md §8) travel in the existing UpdateCipherKeys codec.
#[test]
fn legacy_keys_travel_in_update_cipher_keys() {
    use sttp_proto::payloads::CipherKeys;
    use sttp_wire::legacy_cbc::{CipherKeySet, LegacyKeys};
    let keys = LegacyKeys {
        even: CipherKeySet {
            key: [1; 32],
            iv: [2; 16],
        },
        odd: CipherKeySet {
            key: [3; 32],
            iv: [4; 16],
        },
        index: 1,
    };
    let payload = CipherKeys::from_legacy(&keys).encode();
    assert_eq!(payload[0], 1);
    assert_eq!(&payload[1..5], &32i32.to_be_bytes());
    assert_eq!(payload.len(), 1 + 4 * 4 + 2 * 32 + 2 * 16);
    let back = CipherKeys::decode(&payload).unwrap().to_legacy().unwrap();
    assert_eq!(back, keys);
    // The Python subscriber's broken slicing yields key lengths [27, 0, 0, 0] (wire.md §8):
    // such sets are refused rather than used.
    let mut short = CipherKeys::decode(&payload).unwrap();
    short.sets[0].key.truncate(27);
    assert!(short.to_legacy().is_err());
}
