//! Property tests of TSSC (wire.md §4.2): lossless round trips through the block codec and the
//! packet layer under small block sizes, extreme timestamps, NaN payloads, flag changes and
//! many signals; sequence handling; and decoders that never panic on arbitrary bytes.
#![allow(clippy::unwrap_used, reason = "test helpers")]

use proptest::prelude::*;
use sttp_wire::tssc::{
    next_sequence, Decoder, Encoder, PacketDecoder, PacketEncoder, PacketOutcome, HEADER_LEN,
};
use sttp_wire::Measurement;

const T0: i64 = 638_000_000_000_000_000;

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => (0i64..64).prop_map(|f| T0 + f * 333_333),
        2 => (-1_000i64..1_000).prop_map(|d| T0 + d),
        1 => any::<i64>(),
        1 => prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            Just(T0 | i64::MIN),                            // leap second in progress
            Just(T0 | i64::MIN | 0x4000_0000_0000_0000),    // … negative leap second
        ],
    ]
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => (0u32..100).prop_map(|i| 60.0 + 0.01 * i as f32),
        2 => any::<u32>().prop_map(f32::from_bits), // includes NaN payloads and subnormals
        1 => prop_oneof![
            Just(0.0f32),
            Just(-0.0f32),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(f32::NAN),
            Just(f32::from_bits(0x7FC0_0001)),
            Just(f32::MIN_POSITIVE),
        ],
    ]
}

fn flags() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => Just(0u32),
        2 => prop_oneof![Just(0x1_0000u32), Just(0x2), Just(0x8000_0000)],
        1 => any::<u32>(),
    ]
}

fn id() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0i32..16, 2 => 0i32..3000, 1 => Just(0)]
}

fn measurement() -> impl Strategy<Value = Measurement> {
    (id(), timestamp(), value(), flags()).prop_map(|(runtime_id, timestamp, value, flags)| {
        Measurement {
            runtime_id,
            timestamp,
            value,
            flags,
        }
    })
}

/// Frames of consecutive IDs sharing one timestamp, with occasional repeats: the realistic
/// shape that exercises the "no code" paths and delta codes.
fn frames() -> impl Strategy<Value = Vec<Measurement>> {
    (
        1usize..40,
        1usize..12,
        prop::collection::vec(value(), 1..8),
        flags(),
    )
        .prop_map(|(signals, frames, values, flag)| {
            let mut out = Vec::new();
            for f in 0..frames {
                for s in 0..signals {
                    out.push(Measurement {
                        runtime_id: s as i32,
                        timestamp: T0 + f as i64 * 333_333,
                        value: values[(s * 7 + f) % values.len()],
                        flags: if (s + f) % 5 == 0 { flag } else { 0 },
                    });
                }
            }
            out
        })
}

fn stream() -> impl Strategy<Value = Vec<Measurement>> {
    prop_oneof![
        prop::collection::vec(measurement(), 0..300),
        frames(),
        (frames(), prop::collection::vec(measurement(), 0..50)).prop_map(|(mut a, b)| {
            a.extend(b);
            a
        }),
    ]
}

fn assert_same(got: &[Measurement], want: &[Measurement]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.bit_eq(w), "#{i}: {g:?} != {w:?}");
    }
}

/// Encodes `points` into blocks of at most `max_len` bytes, decoding each block as it closes.
fn block_round_trip(points: &[Measurement], max_len: usize) -> Vec<Measurement> {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let mut decoded = Vec::new();
    let mut out = Vec::new();
    enc.begin_block(&mut out, max_len);
    let mut in_block = 0;
    for p in points {
        if !enc.try_add(&mut out, p.runtime_id, p.timestamp, p.flags, p.value) {
            assert!(in_block > 0, "an empty block must accept a point");
            let len = enc.finish_block(&mut out);
            assert!(len <= max_len, "block of {len} bytes exceeds {max_len}");
            dec.decode_block(&out, &mut decoded).unwrap();
            out.clear();
            enc.begin_block(&mut out, max_len);
            in_block = 0;
            assert!(enc.try_add(&mut out, p.runtime_id, p.timestamp, p.flags, p.value));
        }
        in_block += 1;
    }
    let len = enc.finish_block(&mut out);
    assert!(len <= max_len);
    dec.decode_block(&out, &mut decoded).unwrap();
    decoded
}

proptest! {
    #[test]
    fn blocks_round_trip(points in stream(), max_len in prop_oneof![100usize..160, 160usize..2000, Just(32 * 1024)]) {
        let decoded = block_round_trip(&points, max_len);
        assert_same(&decoded, &points);
    }

    #[test]
    fn packets_round_trip(
        points in stream(),
        max_payload in prop_oneof![108usize..200, 200usize..1500],
        reset_at in prop::option::of(0usize..300),
        extra in prop_oneof![Just(0u8), Just(0x10u8), Just(0x14u8)],
    ) {
        let mut enc = PacketEncoder::new();
        let mut dec = PacketDecoder::new();
        let mut decoded = Vec::new();
        let mut expected_seq = 0u16;
        let mut packet = Vec::new();
        let mut flush = |enc: &mut PacketEncoder, packet: &mut Vec<u8>, decoded: &mut Vec<Measurement>, expected_seq: &mut u16| {
            let count = enc.finish(packet);
            if count == 0 {
                assert!(packet.is_empty());
                return;
            }
            assert!(packet.len() <= max_payload);
            assert_eq!(packet[0], extra | 0x08);
            assert_eq!(u32::from_be_bytes(packet[1..5].try_into().unwrap()), count);
            assert_eq!(u16::from_be_bytes([packet[6], packet[7]]), *expected_seq);
            let before = decoded.len();
            assert_eq!(dec.decode(&packet[5..], decoded).unwrap(), PacketOutcome::Decoded);
            assert_eq!(decoded.len() - before, count as usize);
            *expected_seq = next_sequence(*expected_seq);
            packet.clear();
        };
        enc.begin(&mut packet, extra, max_payload);
        for (i, p) in points.iter().enumerate() {
            if Some(i) == reset_at {
                flush(&mut enc, &mut packet, &mut decoded, &mut expected_seq);
                enc.reset();
                expected_seq = 0;
                enc.begin(&mut packet, extra, max_payload);
            }
            if !enc.try_add(&mut packet, p) {
                flush(&mut enc, &mut packet, &mut decoded, &mut expected_seq);
                enc.begin(&mut packet, extra, max_payload);
                assert!(enc.try_add(&mut packet, p));
            }
        }
        flush(&mut enc, &mut packet, &mut decoded, &mut expected_seq);
        assert_same(&decoded, &points);
        prop_assert!(packet.len() <= HEADER_LEN + max_payload);
    }

    #[test]
    fn block_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), warm in any::<bool>()) {
        let mut dec = Decoder::with_max_id(4096);
        let mut out = Vec::new();
        if warm {
            let mut enc = Encoder::new();
            let mut block = Vec::new();
            enc.begin_block(&mut block, 4096);
            for i in 0..50 {
                enc.try_add(&mut block, i % 7, T0 + i64::from(i) * 333_333, 0, i as f32);
            }
            enc.finish_block(&mut block);
            dec.decode_block(&block, &mut out).unwrap();
            out.clear();
        }
        let before = out.len();
        match dec.decode_block(&bytes, &mut out) {
            Ok(()) => prop_assert!(out.len() <= 8 * bytes.len()),
            Err(_) => prop_assert_eq!(out.len(), before),
        }
        for m in &out {
            prop_assert!((0..=4096).contains(&m.runtime_id));
        }
    }

    #[test]
    fn packet_decoder_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        seq in prop_oneof![Just(0u16), any::<u16>()],
        version in prop_oneof![Just(85u8), any::<u8>()],
    ) {
        let mut body = vec![version];
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(&bytes);
        let mut dec = PacketDecoder::with_max_id(1000);
        let mut out = Vec::new();
        let _ = dec.decode(&body, &mut out);
        let _ = dec.decode(&bytes, &mut out);
        if version != 85 {
            prop_assert!(dec.decode(&body, &mut out).is_err());
        }
    }
}

#[test]
fn sequence_wraps_to_one_and_gaps_wait_for_reset() {
    let mut enc = PacketEncoder::new();
    let mut dec = PacketDecoder::new();
    let mut out = Vec::new();
    let mut packets = Vec::new();
    for i in 0..65_537u32 {
        let mut p = Vec::new();
        enc.begin(&mut p, 0, 200);
        let m = Measurement {
            runtime_id: (i % 3) as i32,
            timestamp: T0 + i64::from(i),
            value: i as f32,
            flags: 0,
        };
        assert!(enc.try_add(&mut p, &m));
        assert_eq!(enc.finish(&mut p), 1);
        packets.push(p);
    }
    let seq = |p: &Vec<u8>| u16::from_be_bytes([p[6], p[7]]);
    assert_eq!(seq(&packets[0]), 0);
    assert_eq!(seq(&packets[65_535]), 65_535);
    assert_eq!(seq(&packets[65_536]), 1, "65535 is followed by 1, never 0");
    for p in &packets {
        assert_eq!(
            dec.decode(&p[5..], &mut out).unwrap(),
            PacketOutcome::Decoded
        );
    }
    assert_eq!(out.len(), 65_537);

    // A gap: later packets are dropped until a reset arrives.
    let mut enc = PacketEncoder::new();
    let mut dec = PacketDecoder::new();
    let mk = |enc: &mut PacketEncoder, v: f32| {
        let mut p = Vec::new();
        enc.begin(&mut p, 0, 200);
        let m = Measurement {
            runtime_id: 1,
            timestamp: T0,
            value: v,
            flags: 0,
        };
        assert!(enc.try_add(&mut p, &m));
        enc.finish(&mut p);
        p
    };
    let p0 = mk(&mut enc, 1.0);
    let _lost = mk(&mut enc, 2.0);
    let p2 = mk(&mut enc, 3.0);
    let mut out = Vec::new();
    assert_eq!(
        dec.decode(&p2[5..], &mut out).unwrap(),
        PacketOutcome::OutOfSequence {
            expected: 0,
            got: 2
        }
    );
    assert_eq!(
        dec.decode(&p0[5..], &mut out).unwrap(),
        PacketOutcome::Decoded
    );
    assert_eq!(
        dec.decode(&p2[5..], &mut out).unwrap(),
        PacketOutcome::OutOfSequence {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(out.len(), 1);
    enc.reset();
    let r0 = mk(&mut enc, 4.0);
    assert_eq!(
        dec.decode(&r0[5..], &mut out).unwrap(),
        PacketOutcome::Decoded
    );
    assert_eq!(out[1].value, 4.0);
    let mut bad = r0.clone();
    bad[5] = 84;
    assert!(dec.decode(&bad[5..], &mut out).is_err());
}

#[test]
fn out_of_range_ids_are_skipped_not_counted() {
    let mut enc = PacketEncoder::with_max_id(10);
    let mut p = Vec::new();
    enc.begin(&mut p, 0, 1000);
    let m = |id| Measurement {
        runtime_id: id,
        timestamp: T0,
        value: 1.0,
        flags: 0,
    };
    assert!(enc.try_add(&mut p, &m(-1)));
    assert!(enc.try_add(&mut p, &m(11)));
    assert!(enc.try_add(&mut p, &m(10)));
    assert_eq!(enc.finish(&mut p), 1);
    let mut out = Vec::new();
    PacketDecoder::new().decode(&p[5..], &mut out).unwrap();
    assert_eq!(out, [m(10)]);
    // The decoder rejects an ID above its bound.
    let mut out = Vec::new();
    assert!(PacketDecoder::with_max_id(9)
        .decode(&p[5..], &mut out)
        .is_err());
    assert!(out.is_empty());
}

#[test]
fn packet_header_layout() {
    // wire.md §4.2 capture: 08 | 00000003 | 55 | 0000 | stream.
    let mut enc = PacketEncoder::new();
    let mut p = Vec::new();
    enc.begin(&mut p, 0x02, 32 * 1024);
    for id in 0..3 {
        let m = Measurement {
            runtime_id: id,
            timestamp: T0,
            value: 60.0,
            flags: 0,
        };
        assert!(enc.try_add(&mut p, &m));
    }
    assert_eq!(enc.finish(&mut p), 3);
    assert_eq!(p[..8], [0x08, 0, 0, 0, 3, 0x55, 0, 0]);
    assert_eq!(p[8], 0x11);
}
