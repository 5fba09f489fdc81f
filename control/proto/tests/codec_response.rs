//! Responses (wire.md §1.2) and the small response payloads (wire.md §6, §8, §9).

use proptest::prelude::*;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::payloads::{
    decode_data_start_time, split_buffer_block, BaseTimes, BufferBlock, CipherKeys, Notification,
};
use sttp_proto::response::{
    code, decode_message, decode_responses, encode_response, is_known_command_code,
    is_known_response_code,
};

#[test]
fn verified_python_succeeded_message_prefix() {
    // wire.md §1 [verified]: 80 06 0000004c 00000048 "STTP v2 client…" (72 message bytes).
    let msg = "STTP v2 client connection accepted: ".to_owned() + &"x".repeat(72 - 36);
    assert_eq!(msg.len(), 72);
    let mut payload = 72u32.to_be_bytes().to_vec();
    payload.extend_from_slice(msg.as_bytes());
    let mut frame = Vec::new();
    encode_response(&mut frame, code::SUCCEEDED, 0x06, &payload);
    assert_eq!(&frame[4..10], &[0x80, 0x06, 0, 0, 0, 0x4C]);
    let rs = decode_responses(&frame[4..]).unwrap();
    assert_eq!(rs.len(), 1);
    assert_eq!(decode_message(rs[0].payload, StringEncoding::Utf8), msg);
}

#[test]
fn packed_responses_in_one_frame() {
    let mut body = Vec::new();
    for (c, p) in [
        (0x83u8, &b"cache"[..]),
        (0x80, b""),
        (0x86, &[0, 0, 0, 0, 0, 0, 0, 9][..]),
    ] {
        body.extend_from_slice(&[c, 0x02]);
        body.extend_from_slice(&(p.len() as i32).to_be_bytes());
        body.extend_from_slice(p);
    }
    let rs = decode_responses(&body).unwrap();
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        [0x83, 0x80, 0x86]
    );
    assert_eq!(decode_data_start_time(rs[2].payload).unwrap(), 9);
    // The last response claiming one byte more than remains is rejected.
    let n = body.len();
    body[n - 9] = 9;
    assert!(decode_responses(&body).is_err());
}

#[test]
fn utf16_messages() {
    let p = StringEncoding::Utf16Le.encode("Client subscribed.");
    assert_eq!(
        decode_message(&p, StringEncoding::Utf16Le),
        "Client subscribed."
    );
}

#[test]
fn known_code_tables_match_wire_md() {
    let responses: Vec<u8> = (0..=255u8).filter(|&c| is_known_response_code(c)).collect();
    let mut expected: Vec<u8> = (0x80..=0x8A).chain(0xE0..=0xEF).collect();
    expected.push(0xFF);
    assert_eq!(responses, expected);
    let commands: Vec<u8> = (0..=255u8).filter(|&c| is_known_command_code(c)).collect();
    let expected: Vec<u8> = (0x00..=0x0D).chain(0xD0..=0xDF).collect();
    assert_eq!(commands, expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn responses_round_trip(rs in prop::collection::vec(
        (any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 1..6)
    ) {
        let mut body = Vec::new();
        for (c, cmd, p) in &rs {
            let mut frame = Vec::new();
            encode_response(&mut frame, *c, *cmd, p);
            body.extend_from_slice(&frame[4..]);
        }
        let got = decode_responses(&body).unwrap();
        prop_assert_eq!(got.len(), rs.len());
        for (g, (c, cmd, p)) in got.iter().zip(&rs) {
            prop_assert_eq!((g.code, g.command, g.payload), (*c, *cmd, &p[..]));
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let _ = decode_responses(&bytes);
        let _ = decode_message(&bytes, StringEncoding::Utf8);
        let _ = decode_message(&bytes, StringEncoding::Utf16Be);
        let _ = decode_data_start_time(&bytes);
        let _ = BaseTimes::decode(&bytes);
        let _ = Notification::decode(&bytes, StringEncoding::Utf16Le);
        let _ = BufferBlock::decode(&bytes);
        let _ = split_buffer_block(&bytes);
        let _ = CipherKeys::decode(&bytes);
    }

    #[test]
    fn message_prefix_only_stripped_when_exact(text in "\\PC{0,30}") {
        let mut p = (text.len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(text.as_bytes());
        prop_assert_eq!(decode_message(&p, StringEncoding::Utf8), text.clone());
        prop_assert_eq!(decode_message(text.as_bytes(), StringEncoding::Utf8), text);
    }

    #[test]
    fn payload_round_trips(idx in 0i32..=1, b0 in any::<i64>(), b1 in any::<i64>(), hash in any::<i32>(),
                           msg in "\\PC{0,20}", seq in any::<u32>(), flags in any::<u8>(), sig in any::<i32>(),
                           data in prop::collection::vec(any::<u8>(), 0..20)) {
        let bt = BaseTimes { index: idx, offsets: [b0, b1] };
        let mut bytes = Vec::new();
        bt.encode(&mut bytes);
        prop_assert_eq!(BaseTimes::decode(&bytes).unwrap(), bt);
        let n = Notification { hash, message: msg };
        prop_assert_eq!(Notification::decode(&n.encode(StringEncoding::Utf8), StringEncoding::Utf8).unwrap(), n);
        let bb = BufferBlock { sequence: seq, flags, signal_index: sig, payload: &data };
        let mut p = Vec::new();
        bb.encode(&mut p);
        prop_assert_eq!(BufferBlock::decode(&p).unwrap(), bb);
    }
}
