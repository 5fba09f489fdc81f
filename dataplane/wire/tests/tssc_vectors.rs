//! The TSSC reference vectors of wire.md §4.2: one encoder session, three successive blocks,
//! byte for byte, and the decoder reading them back.
#![allow(clippy::unwrap_used, reason = "test helpers")]

use sttp_wire::tssc::{Decoder, Encoder};
use sttp_wire::Measurement;

const T0: i64 = 638_000_000_000_000_000;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn m(id: i32, timestamp: i64, flags: u32, value: f32) -> Measurement {
    Measurement {
        runtime_id: id,
        timestamp,
        value,
        flags,
    }
}

/// The inputs of the three blocks; in block 3 every flag word is 0 (id 2 falls back from
/// 0x10000 to 0, coded as Quality2).
fn blocks() -> Vec<Vec<Measurement>> {
    let t1 = T0 + 333_333;
    let mut b3 = Vec::new();
    for f in 2..=11i64 {
        let t = T0 + f * 333_333;
        b3.push(m(0, t, 0, (60.0 + 0.001 * f as f64) as f32));
        b3.push(m(1, t, 0, (1.5 + f as f64) as f32));
        b3.push(m(2, t, 0, 0.0));
    }
    vec![
        vec![m(0, T0, 0, 60.0), m(1, T0, 0, 1.5), m(2, T0, 0, -3.25)],
        vec![
            m(0, t1, 0, 60.0),
            m(1, t1, 0, 1.75),
            m(2, t1, 0x10000, -3.25),
        ],
        b3,
    ]
}

const EXPECTED: [&str; 3] = [
    "118080ccb5eab3a8ed081f000070421f0000c03f1f000050c0",
    "01311895ac2ce80000209c80800400",
    "081ac120f10000807f251ae111da0000f0356370b400002069871068000060d56833000020d71e100a00801f355af100001034da10000030355a3000001035381700007000",
];

fn encode(blocks: &[Vec<Measurement>]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new();
    blocks
        .iter()
        .map(|block| {
            let mut out = Vec::new();
            enc.begin_block(&mut out, 32 * 1024);
            for p in block {
                assert!(enc.try_add(&mut out, p.runtime_id, p.timestamp, p.flags, p.value));
            }
            let len = enc.finish_block(&mut out);
            assert_eq!(len, out.len());
            out
        })
        .collect()
}

#[test]
fn encoder_reproduces_reference_vectors() {
    let input = blocks();
    let got = encode(&input);
    for (i, (got, want)) in got.iter().zip(EXPECTED).enumerate() {
        assert_eq!(*got, hex(want), "block {}", i + 1);
    }
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [25, 15, 69]);
}

#[test]
fn decoder_reads_reference_vectors() {
    let input = blocks();
    let mut dec = Decoder::new();
    for (i, (want, bytes)) in input.iter().zip(EXPECTED).enumerate() {
        let mut out = Vec::new();
        dec.decode_block(&hex(bytes), &mut out).unwrap();
        assert_eq!(out.len(), want.len(), "block {}", i + 1);
        for (a, b) in out.iter().zip(want) {
            assert!(a.bit_eq(b), "block {}: {a:?} != {b:?}", i + 1);
        }
    }
}

#[test]
fn block_one_matches_the_hand_decoding() {
    let got = encode(&blocks()[..1]);
    let b = &got[0];
    assert_eq!(b[0], 0x11, "mode-4 8-bit code 17");
    assert_eq!(&b[1..10], hex("8080ccb5eab3a8ed08").as_slice());
    assert_eq!(&b[10..15], [0x1f, 0x00, 0x00, 0x70, 0x42]);
}
