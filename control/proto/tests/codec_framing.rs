//! Command-channel framing (wire.md §1).

use proptest::prelude::*;
use sttp_proto::command::Command;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::error::ProtoError;
use sttp_proto::framing::{FrameDecoder, FIRST_COMMAND_FRAME_LIMIT};
use sttp_proto::opmodes::OperationalModes;

fn stream(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in bodies {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn drain(d: &mut FrameDecoder) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        match d.next_frame() {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return out,
            Err(e) => panic!("unexpected framing error: {e}"),
        }
    }
}

#[test]
fn python_session_start_under_first_frame_limit() {
    let mut bytes = Vec::new();
    Command::DefineOperationalModes(OperationalModes(0xE000_0262))
        .encode(StringEncoding::Utf8, &mut bytes);
    Command::MetadataRefresh { filters: None }.encode(StringEncoding::Utf8, &mut bytes);
    let mut d = FrameDecoder::new(1 << 20).with_first_frame_limit(FIRST_COMMAND_FRAME_LIMIT);
    d.push(&bytes);
    let frames = drain(&mut d);
    assert_eq!(frames, vec![vec![0x06, 0xE0, 0x00, 0x02, 0x62], vec![0x01]]);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn oversize_rejected_before_body_arrives() {
    let mut d = FrameDecoder::new(1024);
    d.push(&[0, 0, 4, 1]);
    assert_eq!(
        d.next_frame(),
        Err(ProtoError::FrameTooLarge {
            len: 1025,
            limit: 1024
        })
    );
    let mut d = FrameDecoder::new(1024);
    d.push(&[0, 0, 4, 0]);
    d.push(&[7; 1023]);
    assert_eq!(d.next_frame(), Ok(None));
    d.push(&[7]);
    assert_eq!(d.next_frame().unwrap().map(|f| f.len()), Some(1024));
    let mut d = FrameDecoder::new(usize::MAX);
    d.push(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        d.next_frame(),
        Ok(None),
        "a 4 GiB frame is awaited, not allocated"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_splits_yield_same_frames(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let bytes = stream(&bodies);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut d = FrameDecoder::new(300);
        let mut got = Vec::new();
        for w in points.windows(2) {
            d.push(&bytes[w[0]..w[1]]);
            got.extend(drain(&mut d));
        }
        prop_assert_eq!(got, bodies);
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8)) {
        let mut d = FrameDecoder::new(64).with_first_frame_limit(8);
        for c in &chunks {
            d.push(c);
            while let Ok(Some(f)) = d.next_frame() {
                prop_assert!(!f.is_empty() && f.len() <= 64);
            }
        }
    }
}
