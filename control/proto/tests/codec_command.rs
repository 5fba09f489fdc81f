//! Commands (wire.md §1.1) and operational modes (wire.md §2).

use proptest::prelude::*;
use sttp_proto::command::{code, is_known_command_code, Command, SUBSCRIBE_FLAG_COMPACT};
use sttp_proto::encoding::StringEncoding;
use sttp_proto::opmodes::OperationalModes;

#[test]
fn verified_first_command_bytes() {
    // wire.md §2 [verified]: 00 00 00 05 | 06 | E0 00 02 62
    let wire = [0x00, 0x00, 0x00, 0x05, 0x06, 0xE0, 0x00, 0x02, 0x62];
    let cmd = Command::decode(&wire[4..], StringEncoding::Utf8).unwrap();
    let Command::DefineOperationalModes(m) = cmd.clone() else {
        panic!("{cmd:?}")
    };
    assert_eq!(m, OperationalModes(0xE000_0262));
    assert_eq!(
        m,
        OperationalModes::subscriber(2, true, StringEncoding::Utf8)
    );
    let mut out = Vec::new();
    cmd.encode(StringEncoding::Utf8, &mut out);
    assert_eq!(out, wire);
}

#[test]
fn python_subscribe_layout() {
    let cs = "filterExpression={FILTER ActiveMeasurements WHERE True}";
    let cmd = Command::Subscribe {
        flags: SUBSCRIBE_FLAG_COMPACT,
        connection_string: cs.into(),
    };
    let mut out = Vec::new();
    cmd.encode(StringEncoding::Utf8, &mut out);
    // u32 frame length, 02, flags 02, i32 len, string.
    let n = cs.len();
    assert_eq!(&out[..4], &((n + 6) as u32).to_be_bytes());
    assert_eq!(&out[4..6], &[0x02, 0x02]);
    assert_eq!(&out[6..10], &(n as i32).to_be_bytes());
    assert_eq!(&out[10..], cs.as_bytes());
}

#[test]
fn every_code_decodes_to_its_variant() {
    for c in 0u8..=255 {
        let body = [c];
        let Ok(cmd) = Command::decode(&body, StringEncoding::Utf8) else {
            // Only codes with mandatory payloads fail on an empty payload.
            assert!(matches!(c, 0x02 | 0x05..=0x08), "{c:#04x}");
            continue;
        };
        assert_eq!(cmd.code(), c);
        let known = is_known_command_code(c);
        let unknown = matches!(cmd, Command::Unknown { .. });
        assert_eq!(unknown, !known || c == code::CONNECT, "{c:#04x}");
    }
}

#[test]
fn trailing_bytes_after_fixed_payloads_ignored() {
    let c = Command::decode(&[0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0x99], StringEncoding::Utf8).unwrap();
    assert_eq!(c, Command::UpdateProcessingInterval(-1));
    let c = Command::decode(&[0x08, 0, 0, 0, 7, 1], StringEncoding::Utf8).unwrap();
    assert_eq!(c, Command::ConfirmBufferBlock(7));
}

#[test]
fn bad_strings_are_errors() {
    // Length prefix says 4 bytes, 3 present.
    assert!(Command::decode(
        &[0x02, 0x02, 0, 0, 0, 4, b'a', b'=', b'1'],
        StringEncoding::Utf8
    )
    .is_err());
    // Invalid UTF-8.
    assert!(Command::decode(&[0x02, 0x02, 0, 0, 0, 1, 0xFF], StringEncoding::Utf8).is_err());
    // Odd UTF-16.
    assert!(Command::decode(&[0x01, 0, 0, 0, 1, b'a'], StringEncoding::Utf16Le).is_err());
}

fn command() -> impl Strategy<Value = Command> {
    let s = "\\PC{0,40}";
    prop_oneof![
        any::<u32>().prop_map(|m| Command::DefineOperationalModes(OperationalModes(m))),
        prop::option::of(s).prop_map(|filters| Command::MetadataRefresh { filters }),
        (any::<u8>(), s).prop_map(|(flags, connection_string)| Command::Subscribe {
            flags,
            connection_string
        }),
        Just(Command::Unsubscribe),
        Just(Command::RotateCipherKeys),
        any::<i32>().prop_map(Command::UpdateProcessingInterval),
        any::<i32>().prop_map(Command::ConfirmNotification),
        any::<u32>().prop_map(Command::ConfirmBufferBlock),
        Just(Command::ConfirmUpdateBaseTimes),
        Just(Command::ConfirmUpdateSignalIndexCache),
        Just(Command::ConfirmUpdateCipherKeys),
        Just(Command::GetPrimaryMetadataSchema),
        Just(Command::GetSignalSelectionSchema),
        (0xD0u8..=0xDF, prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(code, data)| Command::User { code, data }),
        (
            prop_oneof![Just(0u8), 0x0Eu8..=0xCF, 0xE0u8..=0xFF],
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(code, data)| Command::Unknown { code, data }),
        prop::collection::vec(any::<u8>(), 1..16)
            .prop_map(|data| Command::Unknown { code: 0x09, data }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_decode_identity(
        cmd in command(),
        enc in prop::sample::select(vec![
            StringEncoding::Utf8, StringEncoding::Utf16Le, StringEncoding::Utf16Be, StringEncoding::Ansi,
        ]),
    ) {
        let mut out = Vec::new();
        cmd.encode(enc, &mut out);
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        prop_assert_eq!(len, out.len() - 4);
        prop_assert_eq!(Command::decode(&out[4..], enc).unwrap(), cmd);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for enc in [StringEncoding::Utf8, StringEncoding::Utf16Le, StringEncoding::Utf16Be, StringEncoding::Ansi] {
            let _ = Command::decode(&bytes, enc);
        }
    }

    #[test]
    fn opmodes_accessors_total(m in any::<u32>()) {
        let m = OperationalModes(m);
        prop_assert!(m.version() <= 0x1F);
        prop_assert_eq!(m.with_extension(m.extension()), m);
        prop_assert_eq!(m.encoding().bits(), m.0 & 0x300);
        let _ = m.to_string();
    }
}
