//! The subscriber session against publisher byte sequences, including the quirks of the reference
//! publishers (wire.md §1, §5, §9; peers.md P5).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sttp_proto::command::Command;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::response::encode_response;
use sttp_proto::session::{
    SubscriberEvent, SubscriberOutput, SubscriberSession, SubscriberSessionConfig,
};
use sttp_proto::sic::{SignalIndexCache, SignalIndexEntry};
use sttp_wire::{tssc, Measurement};
use uuid::Uuid;

fn body(code: u8, cmd: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    encode_response(&mut f, code, cmd, payload);
    f.split_off(4)
}

fn cache(n: i32) -> SignalIndexCache {
    SignalIndexCache::new(
        Uuid::from_u128(1),
        (0..n)
            .map(|i| SignalIndexEntry {
                runtime_id: i,
                signal_id: Uuid::from_u128(100 + i as u128),
                source: "PPA".into(),
                key_id: i as u64,
            })
            .collect(),
        vec![],
    )
}

/// A started session whose opening commands were already drained.
fn started(config: SubscriberSessionConfig) -> SubscriberSession {
    let mut s = SubscriberSession::new(config);
    s.start();
    drain(&mut s);
    s
}

fn drain(s: &mut SubscriberSession) -> (Vec<Command>, Vec<SubscriberEvent>) {
    let (mut cmds, mut evs) = (Vec::new(), Vec::new());
    while let Some(o) = s.poll_output() {
        match o {
            SubscriberOutput::Send(b) => {
                cmds.push(Command::decode(&b[4..], StringEncoding::Utf8).unwrap())
            }
            SubscriberOutput::Event(e) => evs.push(e),
        }
    }
    (cmds, evs)
}

fn tssc_packet(enc: &mut tssc::PacketEncoder, flags: u8, ms: &[Measurement]) -> Vec<u8> {
    let mut p = Vec::new();
    enc.begin(&mut p, flags, 32_000);
    for m in ms {
        assert!(enc.try_add(&mut p, m));
    }
    enc.finish(&mut p);
    body(0x82, 0x02, &p)
}

fn m(id: i32, v: f32) -> Measurement {
    Measurement {
        runtime_id: id,
        timestamp: 638_000_000_000_000_000,
        value: v,
        flags: 0,
    }
}

fn values(evs: &[SubscriberEvent]) -> Vec<(Uuid, f32)> {
    evs.iter()
        .filter_map(|e| match e {
            SubscriberEvent::Measurements(b) => {
                Some(b.iter().map(|x| (x.signal_id, x.value)).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn start_sends_modes_then_metadata_refresh_and_subscribes_after_metadata() {
    let mut s = SubscriberSession::new(SubscriberSessionConfig::default());
    s.start();
    let (cmds, _) = drain(&mut s);
    assert!(matches!(cmds[0], Command::DefineOperationalModes(m) if m.0 == 0xE000_0262));
    assert!(matches!(
        cmds[1],
        Command::MetadataRefresh { filters: None }
    ));
    // The Python publisher prefixes its message with a 4-byte length (peers.md P5).
    let mut msg = 6u32.to_be_bytes().to_vec();
    msg.extend_from_slice(b"hello!");
    s.handle_frame(&body(0x80, 0x06, &msg));
    let (_, evs) = drain(&mut s);
    assert_eq!(
        evs,
        vec![SubscriberEvent::Succeeded {
            command: 6,
            message: "hello!".into()
        }]
    );
    // Empty metadata still triggers the subscription.
    s.handle_frame(&body(0x80, 0x01, &[]));
    let (cmds, evs) = drain(&mut s);
    assert!(matches!(evs[0], SubscriberEvent::Metadata(_)));
    assert!(
        matches!(&cmds[0], Command::Subscribe { flags: 2, connection_string } if connection_string.contains("filterExpression="))
    );
}

#[test]
fn packets_decode_against_the_slot_they_name_and_the_cache_is_confirmed() {
    let mut s = started(SubscriberSessionConfig {
        auto_request_metadata: false,
        ..SubscriberSessionConfig::default()
    });
    // Slot 0: three signals; slot 1: two different ones.
    s.handle_frame(&body(
        0x83,
        0x02,
        &cache(3).encode_payload(2, 0, true, StringEncoding::Utf8),
    ));
    let (cmds, evs) = drain(&mut s);
    assert_eq!(cmds, vec![Command::ConfirmUpdateSignalIndexCache]);
    assert_eq!(
        evs,
        vec![SubscriberEvent::SubscriptionUpdated {
            cache_index: 0,
            signals: 3
        }]
    );
    let mut c1 = cache(2);
    c1.entries[0].signal_id = Uuid::from_u128(900);
    c1.entries[1].signal_id = Uuid::from_u128(901);
    c1.reindex();
    s.handle_frame(&body(
        0x83,
        0x02,
        &c1.encode_payload(2, 1, false, StringEncoding::Utf8),
    ));
    drain(&mut s);
    let mut e0 = tssc::PacketEncoder::new();
    let mut e1 = tssc::PacketEncoder::new();
    // Interleave packets of both slots, each with its own TSSC stream.
    let mut frames = vec![tssc_packet(&mut e0, 0, &[m(0, 1.0), m(2, 3.0)])];
    frames.push(tssc_packet(&mut e1, 0x10, &[m(1, 9.5)]));
    frames.push(tssc_packet(&mut e0, 0, &[m(1, 2.0)]));
    let both = frames.concat();
    // gsfapi may pack several responses into one frame: deliver them as one frame.
    s.handle_frame(&both);
    let (_, evs) = drain(&mut s);
    assert_eq!(
        values(&evs),
        vec![
            (Uuid::from_u128(100), 1.0),
            (Uuid::from_u128(102), 3.0),
            (Uuid::from_u128(901), 9.5),
            (Uuid::from_u128(101), 2.0)
        ]
    );
    // A packet that skips a sequence number is dropped until a reset (seq 0).
    let _skipped = tssc_packet(&mut e0, 0, &[m(0, 4.0)]);
    s.handle_frame(&tssc_packet(&mut e0, 0, &[m(0, 5.0)]));
    let (_, evs) = drain(&mut s);
    assert!(values(&evs).is_empty());
    assert!(evs
        .iter()
        .any(|e| matches!(e, SubscriberEvent::ProtocolWarning(w) if w.contains("sequence"))));
    e0.reset();
    s.handle_frame(&tssc_packet(&mut e0, 0, &[m(0, 6.0)]));
    let (_, evs) = drain(&mut s);
    assert_eq!(values(&evs), vec![(Uuid::from_u128(100), 6.0)]);
    assert!(s.stats().dropped_packets >= 1);
}

#[test]
fn python_uncompressed_cache_index_0xff_is_slot_0_and_empty_slots_drop_packets() {
    let mut s = started(SubscriberSessionConfig {
        auto_request_metadata: false,
        compress_signal_index_cache: false,
        ..SubscriberSessionConfig::default()
    });
    let mut e = tssc::PacketEncoder::new();
    // Before any cache: dropped with a warning.
    s.handle_frame(&tssc_packet(&mut e, 0, &[m(0, 1.0)]));
    let (_, evs) = drain(&mut s);
    assert!(values(&evs).is_empty());
    assert!(matches!(&evs[0], SubscriberEvent::ProtocolWarning(w) if w.contains("empty")));
    let mut payload = cache(1).encode_payload(2, 0, false, StringEncoding::Utf8);
    payload[0] = 0xFF;
    s.handle_frame(&body(0x83, 0x02, &payload));
    let (_, evs) = drain(&mut s);
    assert_eq!(
        evs,
        vec![SubscriberEvent::SubscriptionUpdated {
            cache_index: 0,
            signals: 1
        }]
    );
    e.reset();
    s.handle_frame(&tssc_packet(&mut e, 0, &[m(0, 7.0)]));
    assert_eq!(values(&drain(&mut s).1), vec![(Uuid::from_u128(100), 7.0)]);
}

#[test]
fn notify_is_confirmed_and_garbage_only_warns() {
    let mut s = started(SubscriberSessionConfig {
        auto_request_metadata: false,
        auto_subscribe: false,
        ..SubscriberSessionConfig::default()
    });
    let mut p = 1234i32.to_be_bytes().to_vec();
    p.extend_from_slice(b"maintenance at noon");
    s.handle_frame(&body(0x89, 0x02, &p));
    let (cmds, evs) = drain(&mut s);
    assert_eq!(cmds, vec![Command::ConfirmNotification(1234)]);
    assert_eq!(
        evs,
        vec![SubscriberEvent::Notification("maintenance at noon".into())]
    );
    for junk in [
        vec![0x82, 0x02, 0, 0, 0, 1, 0x08],
        vec![0x80, 0x02, 0x7F, 0, 0, 0],
        vec![0x84, 0x02, 0, 0, 0, 1, 9],
        vec![0x77, 0x02, 0, 0, 0, 0],
    ] {
        s.handle_frame(&junk);
        let (_, evs) = drain(&mut s);
        assert!(
            evs.iter()
                .all(|e| matches!(e, SubscriberEvent::ProtocolWarning(_))),
            "{junk:?} -> {evs:?}"
        );
        assert!(!evs.is_empty(), "{junk:?} is reported");
    }
}

/// Regression (found while fuzzing the subscriber session): a TSSC packet naming runtime ID
/// 0xFFFFF made every reset allocate a table of 2^20 points. Runtime IDs are now bounded by the
/// slot's cache, so such a packet is rejected before any table grows.
#[test]
fn tssc_ids_beyond_the_cache_are_rejected_not_allocated() {
    let mut s = started(SubscriberSessionConfig {
        auto_request_metadata: false,
        ..SubscriberSessionConfig::default()
    });
    s.handle_frame(&body(
        0x83,
        0x02,
        &cache(1).encode_payload(2, 0, true, StringEncoding::Utf8),
    ));
    drain(&mut s);
    // flags 0x08, count 1, version 0x55, sequence 0, then PointIDXOR32 with XOR 0x000FFFFF.
    let packet = body(
        0x82,
        0x02,
        &[
            0x08, 0, 0, 0, 1, 0x55, 0, 0, 0x07, 0xFF, 0xFF, 0x0F, 0x00, 0x80, 0x00,
        ],
    );
    for _ in 0..24 {
        s.handle_frame(&packet);
        let (_, evs) = drain(&mut s);
        assert!(values(&evs).is_empty());
        assert!(
            evs.iter()
                .any(|e| matches!(e, SubscriberEvent::ProtocolWarning(_))),
            "{evs:?}"
        );
    }
    assert_eq!(s.stats().dropped_packets, 24);
}

#[test]
fn a_cache_naming_one_huge_runtime_id_cannot_make_tssc_resets_expensive() {
    // Regression (fuzz: subscriber_session timeout): a cache whose only entry has runtime ID
    // 0x000FFFFF used to size the TSSC point table to a million points, rebuilt by every
    // sequence-0 packet. The table is now bounded by the cache's size, so the ID is refused.
    let mut s = started(SubscriberSessionConfig {
        auto_request_metadata: false,
        ..SubscriberSessionConfig::default()
    });
    let huge = SignalIndexCache::new(
        Uuid::from_u128(1),
        vec![SignalIndexEntry {
            runtime_id: 0x000F_FFFF,
            signal_id: Uuid::from_u128(100),
            source: "PPA".into(),
            key_id: 1,
        }],
        vec![],
    );
    s.handle_frame(&body(
        0x83,
        0x02,
        &huge.encode_payload(2, 0, true, StringEncoding::Utf8),
    ));
    drain(&mut s);
    // flags 0x08, count 1, version 0x55, sequence 0, then PointIDXOR32 with XOR 0x000FFFFF.
    let packet = body(
        0x82,
        0x02,
        &[
            0x08, 0, 0, 0, 1, 0x55, 0, 0, 0x07, 0xFF, 0xFF, 0x0F, 0x00, 0x80, 0x00,
        ],
    );
    s.handle_frame(&packet);
    let (_, evs) = drain(&mut s);
    assert!(values(&evs).is_empty(), "{evs:?}");
    assert_eq!(s.stats().dropped_packets, 1);
}

// ---- Session failures and timers (docs/subscriber.md) ----

use std::time::{Duration, Instant};
use sttp_proto::gzip::{self, GunzipError};
use sttp_proto::metadata::MetadataError;
use sttp_proto::session::{SessionFailure, SubscriberLimits};

fn failures(evs: &[SubscriberEvent]) -> Vec<SessionFailure> {
    evs.iter()
        .filter_map(|e| match e {
            SubscriberEvent::SessionFailed(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn timed(limits: SubscriberLimits, t0: Instant) -> SubscriberSession {
    let mut s = SubscriberSession::with_limits(SubscriberSessionConfig::default(), limits);
    s.advance(t0);
    s.start();
    drain(&mut s);
    s
}

const SMALL: SubscriberLimits = SubscriberLimits {
    max_metadata_bytes: 1 << 20,
    max_cache_bytes: 1 << 20,
    subscribe_timeout: Some(Duration::from_secs(5)),
    data_loss_timeout: Some(Duration::from_secs(2)),
};

#[test]
fn a_gzip_bomb_fails_the_session_at_the_limit_and_never_subscribes() {
    let t0 = Instant::now();
    let mut s = timed(SMALL, t0);
    // 64 MiB of zeros, ~64 KB compressed, against a 1 MiB limit.
    let bomb = gzip::compress(&vec![0u8; 64 << 20]);
    s.handle_frame(&body(0x80, 0x01, &bomb));
    let (cmds, evs) = drain(&mut s);
    assert_eq!(
        failures(&evs),
        vec![SessionFailure::Metadata(MetadataError::TooLarge {
            size: (1 << 20) + 1,
            limit: 1 << 20
        })]
    );
    assert!(cmds.is_empty(), "no Subscribe after bad metadata: {cmds:?}");
    assert!(s.is_failed());
    // Later input is ignored; no second failure.
    s.handle_frame(&body(0x80, 0x01, &[]));
    s.advance(t0 + Duration::from_secs(60));
    assert_eq!(drain(&mut s), (vec![], vec![]));
}

#[test]
fn truncated_gzip_and_malformed_xml_fail_the_session() {
    let xml =
        b"<DataSet><xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'/></DataSet>".to_vec();
    let z = gzip::compress(&xml);
    let mut s = timed(SMALL, Instant::now());
    s.handle_frame(&body(0x80, 0x01, &z[..z.len() - 6]));
    let f = failures(&drain(&mut s).1);
    assert!(
        matches!(
            &f[..],
            [SessionFailure::Metadata(MetadataError::Gzip(
                GunzipError::Invalid(_)
            ))]
        ),
        "{f:?}"
    );
    let mut s = timed(SMALL, Instant::now());
    s.handle_frame(&body(0x80, 0x01, b"<DataSet><unclosed"));
    let f = failures(&drain(&mut s).1);
    assert!(matches!(&f[..], [SessionFailure::Metadata(_)]), "{f:?}");
    assert!(f[0].kind().contains("metadata"));
}

#[test]
fn a_malformed_or_oversized_cache_fails_the_session() {
    let mut s = timed(SMALL, Instant::now());
    s.handle_frame(&body(0x80, 0x01, &[]));
    drain(&mut s);
    // Index byte 0, then a body claiming 1000 entries with none present.
    let mut bad = vec![0u8];
    bad.extend_from_slice(&28u32.to_be_bytes());
    bad.extend_from_slice(&[0; 16]);
    bad.extend_from_slice(&1000u32.to_be_bytes());
    s.handle_frame(&body(0x83, 0x02, &bad));
    let f = failures(&drain(&mut s).1);
    assert!(
        matches!(&f[..], [SessionFailure::SignalIndexCache(_)]),
        "{f:?}"
    );
    // A gzip bomb as a cache.
    let mut s = timed(SMALL, Instant::now());
    let mut bomb = vec![0u8];
    bomb.extend_from_slice(&gzip::compress(&vec![0u8; 8 << 20]));
    s.handle_frame(&body(0x83, 0x02, &bomb));
    let f = failures(&drain(&mut s).1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind(), "signal index cache too large");
}

#[test]
fn a_refusal_of_the_connection_or_the_subscription_fails_the_session_but_metadata_refusal_does_not()
{
    for command in [0x00u8, 0x02, 0x06] {
        let mut s = timed(SMALL, Instant::now());
        s.handle_frame(&body(
            0x81,
            command,
            b"too many connections from this address\x1b[2J",
        ));
        let f = failures(&drain(&mut s).1);
        assert!(
            matches!(&f[..], [SessionFailure::Refused { command: c, .. }] if *c == command),
            "{f:?}"
        );
        // The display escapes the peer's control characters.
        let shown = f[0].to_string();
        assert!(
            !shown.contains('\x1b') && shown.contains("\\u{1b}"),
            "{shown}"
        );
    }
    // MetadataRefresh refused: the subscription goes ahead without metadata.
    let mut s = timed(SMALL, Instant::now());
    s.handle_frame(&body(0x81, 0x01, b"no metadata for you"));
    let (cmds, evs) = drain(&mut s);
    assert!(failures(&evs).is_empty());
    assert!(matches!(cmds[..], [Command::Subscribe { .. }]), "{cmds:?}");
}

#[test]
fn the_subscribe_timer_runs_from_start_and_stops_at_the_acknowledgement() {
    let t0 = Instant::now();
    // A publisher that never answers: the timer fires at exactly 5 s.
    let mut s = timed(SMALL, t0);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(5)));
    s.advance(t0 + Duration::from_millis(4_999));
    assert!(failures(&drain(&mut s).1).is_empty());
    s.advance(t0 + Duration::from_secs(5));
    assert_eq!(
        failures(&drain(&mut s).1),
        vec![SessionFailure::SubscribeTimeout {
            waited: Duration::from_secs(5)
        }]
    );
    assert_eq!(s.next_deadline(), None);

    // Metadata then Subscribe, still not acknowledged: the same connect-relative deadline.
    let mut s = timed(SMALL, t0);
    s.advance(t0 + Duration::from_secs(3));
    s.handle_frame(&body(0x80, 0x01, &[]));
    drain(&mut s);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(5)));
    // Acknowledged at 4 s: now the data-loss timer runs, from the acknowledgement.
    s.advance(t0 + Duration::from_secs(4));
    s.handle_frame(&body(0x80, 0x02, b"subscribed"));
    drain(&mut s);
    assert!(s.is_acknowledged());
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(6)));
}

#[test]
fn the_data_loss_timer_fires_without_any_data_and_is_fed_by_data() {
    let t0 = Instant::now();
    let mut s = timed(
        SubscriberLimits {
            subscribe_timeout: None,
            ..SMALL
        },
        t0,
    );
    s.handle_frame(&body(0x80, 0x01, &[]));
    let payload = cache(2).encode_payload(2, 0, false, StringEncoding::Utf8);
    s.handle_frame(&body(0x83, 0x02, &payload));
    s.handle_frame(&body(0x80, 0x02, b"ok"));
    drain(&mut s);
    // Data at 1.5 s moves the deadline to 3.5 s.
    let mut enc = tssc::PacketEncoder::new();
    s.advance(t0 + Duration::from_millis(1_500));
    s.handle_frame(&tssc_packet(&mut enc, 0, &[m(0, 1.0)]));
    assert_eq!(values(&drain(&mut s).1).len(), 1);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_millis(3_500)));
    s.advance(t0 + Duration::from_millis(3_400));
    assert!(failures(&drain(&mut s).1).is_empty());
    s.advance(t0 + Duration::from_millis(3_600));
    assert_eq!(
        failures(&drain(&mut s).1),
        vec![SessionFailure::DataLoss {
            silent_for: Duration::from_millis(2_100)
        }]
    );
}

#[test]
fn no_timers_without_advance_and_none_while_unsubscribed() {
    // The old driving style (no advance) never fails on time.
    let s = started(SubscriberSessionConfig::default());
    assert_eq!(s.next_deadline(), None);
    // Unsubscribed on purpose: no subscribe or data-loss timer.
    let t0 = Instant::now();
    let mut s = timed(SMALL, t0);
    s.unsubscribe();
    drain(&mut s);
    assert_eq!(s.next_deadline(), None);
    s.advance(t0 + Duration::from_secs(3600));
    assert!(failures(&drain(&mut s).1).is_empty());
}
