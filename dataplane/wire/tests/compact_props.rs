//! Property tests of the compact format and base times (wire.md §4.1, §6): round trips within
//! the lossy flag mapping and the chosen time form, packet building, and decoders that never
//! panic on arbitrary bytes.
#![allow(clippy::unwrap_used, reason = "test helpers")]

use proptest::prelude::*;
use sttp_wire::compact::{
    self, compact_flags, decode, encode, encoded_len, state_flags, BaseTimeSchedule, BaseTimes,
    CompactOptions, PacketEncoder, FIXED_LEN,
};
use sttp_wire::packet::DataPacketHeader;
use sttp_wire::Measurement;

const T0: i64 = 638_000_000_000_000_000;

fn options() -> impl Strategy<Value = CompactOptions> {
    (any::<bool>(), any::<bool>()).prop_map(|(include_time, millisecond_resolution)| {
        CompactOptions {
            include_time,
            millisecond_resolution,
        }
    })
}

fn base() -> impl Strategy<Value = Option<BaseTimes>> {
    prop::option::of(
        (
            0i32..=1,
            prop_oneof![4 => (-10i64..10).prop_map(|d| T0 + d * 1_000_000), 1 => any::<i64>()],
            prop_oneof![4 => (-10i64..10).prop_map(|d| T0 + d * 1_000_000), 1 => any::<i64>()],
        )
            .prop_map(|(index, b0, b1)| BaseTimes {
                index,
                offsets: [b0, b1],
            }),
    )
}

fn measurement() -> impl Strategy<Value = Measurement> {
    (
        any::<i32>(),
        prop_oneof![
            4 => (-100_000_000i64..5_000_000_000).prop_map(|d| T0 + d),
            1 => any::<i64>(),
            1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(T0 | i64::MIN)],
        ],
        any::<u32>().prop_map(f32::from_bits),
        prop_oneof![Just(0u32), any::<u32>()],
    )
        .prop_map(|(runtime_id, timestamp, value, flags)| Measurement {
            runtime_id,
            timestamp,
            value,
            flags,
        })
}

/// What a subscriber should see for `m`, given the time form the encoder chose.
fn expected(m: &Measurement, opts: CompactOptions, base: Option<&BaseTimes>) -> Measurement {
    let len = encoded_len(m, opts, base);
    let timestamp = if !opts.include_time {
        0
    } else if len == FIXED_LEN + 2 {
        let b = base.unwrap();
        let b = b.offsets[usize::from(b.index == 1)];
        b + (m.timestamp - b) / 10_000 * 10_000
    } else {
        m.timestamp
    };
    Measurement {
        runtime_id: m.runtime_id,
        timestamp,
        value: m.value,
        flags: state_flags(compact_flags(m.flags)),
    }
}

fn assert_same(got: &[Measurement], want: &[Measurement]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(g.bit_eq(w), "{g:?} != {w:?}");
    }
}

proptest! {
    #[test]
    fn measurements_round_trip(ms in prop::collection::vec(measurement(), 0..60), opts in options(), base in base()) {
        let mut body = Vec::new();
        let mut total = 0;
        for m in &ms {
            let before = body.len();
            encode(&mut body, m, opts, base.as_ref());
            let len = body.len() - before;
            prop_assert_eq!(len, encoded_len(m, opts, base.as_ref()));
            prop_assert!([9, 11, 13, 17].contains(&len));
            if !opts.include_time {
                prop_assert_eq!(len, 9);
            }
            total += len;
        }
        prop_assert_eq!(body.len(), total);
        let mut out = Vec::new();
        decode(&body, ms.len(), opts, base.as_ref(), &mut out).unwrap();
        let want: Vec<_> = ms.iter().map(|m| expected(m, opts, base.as_ref())).collect();
        assert_same(&out, &want);
    }

    #[test]
    fn flag_mapping_is_a_closure(state in any::<u32>(), c in any::<u8>()) {
        // Encoding the restored masks gives back the same compact bits.
        prop_assert_eq!(compact_flags(state_flags(c)), c & 0x3F);
        let restored = state_flags(compact_flags(state));
        // Every mapped bit survives; only user-defined bits can be lost.
        prop_assert_eq!(state & !0x1F00_0000 & !restored, 0);
    }

    #[test]
    fn base_times_round_trip(index in 0i32..=1, b0 in any::<i64>(), b1 in any::<i64>(), extra in prop::collection::vec(any::<u8>(), 0..4)) {
        let b = BaseTimes { index, offsets: [b0, b1] };
        let mut out = Vec::new();
        b.encode(&mut out);
        prop_assert_eq!(out.len(), compact::BASE_TIMES_LEN);
        out.extend_from_slice(&extra);
        prop_assert_eq!(BaseTimes::decode(&out).unwrap(), b);
    }

    #[test]
    fn packets_round_trip(
        ms in prop::collection::vec(measurement(), 0..200),
        opts in options(),
        base in base(),
        max_payload in 22usize..600,
        extra in prop_oneof![Just(0u8), Just(0x10u8), Just(0x14u8)],
    ) {
        let mut enc = PacketEncoder::new(opts);
        enc.set_base_times(base);
        let mut decoded = Vec::new();
        let mut packet = Vec::new();
        let check = |packet: &mut Vec<u8>, count: u32, decoded: &mut Vec<Measurement>| {
            if count == 0 {
                assert!(packet.is_empty());
                return;
            }
            assert!(packet.len() <= max_payload);
            let (h, body) = DataPacketHeader::decode(packet).unwrap();
            assert_eq!(h.flags, extra | 0x02);
            assert_eq!(h.count as u32, count);
            decode(body, count as usize, opts, base.as_ref(), decoded).unwrap();
            packet.clear();
        };
        enc.begin(&mut packet, extra, max_payload);
        for m in &ms {
            if !enc.try_add(&mut packet, m) {
                let n = enc.finish(&mut packet);
                check(&mut packet, n, &mut decoded);
                enc.begin(&mut packet, extra, max_payload);
                prop_assert!(enc.try_add(&mut packet, m));
            }
        }
        let n = enc.finish(&mut packet);
        check(&mut packet, n, &mut decoded);
        let want: Vec<_> = ms.iter().map(|m| expected(m, opts, base.as_ref())).collect();
        assert_same(&decoded, &want);
    }

    #[test]
    fn decoders_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        count in prop_oneof![0usize..40, Just(usize::MAX), Just(1 << 30)],
        opts in options(),
        base in base(),
    ) {
        let mut out = Vec::new();
        match decode(&bytes, count, opts, base.as_ref(), &mut out) {
            Ok(()) => prop_assert_eq!(out.len(), count),
            Err(_) => prop_assert!(out.is_empty()),
        }
        let _ = BaseTimes::decode(&bytes);
    }

    #[test]
    fn schedule_bases_always_cover_the_next_period(start in 0i64..(1 << 61), steps in prop::collection::vec(0i64..200_000_000, 1..200), ms in any::<bool>()) {
        let mut s = BaseTimeSchedule::new(ms);
        let opts = CompactOptions { include_time: true, millisecond_resolution: ms };
        let mut now = start;
        let mut sent: Option<BaseTimes> = None;
        for step in steps {
            now += step;
            if let Some(b) = s.observe(now) {
                prop_assert!(b.index == 0 || b.index == 1);
                prop_assert_eq!(b.offsets[usize::from(b.index == 1)] <= now, true);
                sent = Some(b);
            }
            prop_assert_eq!(s.current(), sent.as_ref());
            // Shortly after a rotation the active base yields the offset form.
            if let Some(b) = &sent {
                let m = Measurement { runtime_id: 0, timestamp: now + 10_000, value: 0.0, flags: 0 };
                let active = b.offsets[usize::from(b.index == 1)];
                if now + 10_000 - active < 50_000 * 10_000 {
                    prop_assert!(encoded_len(&m, opts, Some(b)) < 17);
                }
            }
        }
    }
}
