//! The publisher session state machine, step by step (wire.md §2, §5): what goes out for each
//! command, in which order, and when routes are activated.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sttp_proto::catalog::Catalog;
use sttp_proto::command::Command;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::metadata::builder::{DeviceRecord, MeasurementRecord, MetadataBuilder};
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::response::decode_responses;
use sttp_proto::session::publisher::Phase;
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use sttp_proto::sic::SignalIndexCache;
use uuid::Uuid;

const NOW: i64 = 639_308_160_000_000_000;

fn catalog() -> Catalog {
    let mut b = MetadataBuilder {
        schema_version: 1,
        ..MetadataBuilder::default()
    };
    b.devices.push(DeviceRecord {
        node_id: Uuid::nil(),
        unique_id: Uuid::from_u128(1),
        acronym: "PMU1".into(),
        name: "PMU 1".into(),
        original_source: None,
        is_concentrator: false,
        access_id: 1,
        parent_acronym: None,
        protocol_name: "STTP".into(),
        frames_per_second: 30,
        company_acronym: None,
        vendor_acronym: None,
        vendor_device_name: None,
        longitude: None,
        latitude: None,
        interconnection_name: None,
        contact_list: None,
        enabled: true,
        updated_on: NOW,
    });
    for (i, kind) in ["FREQ", "DFDT", "VPHM", "VPHA", "FREQ"].iter().enumerate() {
        b.measurements.push(MeasurementRecord {
            device_acronym: "PMU1".into(),
            id: format!("PPA:{}", i + 1),
            signal_id: Uuid::from_u128(100 + i as u128),
            point_tag: format!("PMU1:{kind}{i}"),
            alternate_tag: None,
            signal_reference: format!("PMU1-{i}"),
            signal_acronym: (*kind).into(),
            phasor_source_index: None,
            description: String::new(),
            internal: true,
            enabled: true,
            updated_on: NOW,
        });
    }
    Catalog::new(Uuid::from_u128(9), b.build())
}

fn session() -> PublisherSession {
    PublisherSession::new(PublisherSessionConfig {
        subscriber_id: Uuid::from_u128(7),
        publisher_name: "test".into(),
    })
}

/// A session whose operational modes `modes` were accepted.
fn ready(c: &Catalog, modes: u32, version: u8) -> PublisherSession {
    let mut s = session();
    let out = step(
        &mut s,
        c,
        &Command::DefineOperationalModes(OperationalModes(modes)),
        version,
    );
    assert_eq!(out, vec![Out::Resp(0x80, 0x06)]);
    s
}

fn frame(c: &Command, enc: StringEncoding) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(enc, &mut out);
    out.split_off(4)
}

/// One observable output, simplified for comparison.
#[derive(Debug, PartialEq)]
enum Out {
    Resp(u8, u8),
    Cache(u8, usize),
    Activate(u8, Vec<(u32, i32)>),
    Deactivate,
    User(u8),
    Interval(i32),
    Close,
    Rotate,
    LegacyKeys,
}

fn outputs(s: &mut PublisherSession, version: u8) -> Vec<Out> {
    let mut v = Vec::new();
    while let Some(o) = s.poll_output() {
        match o {
            PublisherOutput::Send(bytes) => {
                for r in decode_responses(&bytes[4..]).unwrap() {
                    if r.code == 0x83 {
                        let (idx, cache) = SignalIndexCache::decode_payload(
                            r.payload,
                            version,
                            true,
                            StringEncoding::Utf8,
                        )
                        .unwrap();
                        v.push(Out::Cache(idx, cache.entries.len()));
                    } else {
                        v.push(Out::Resp(r.code, r.command));
                    }
                }
            }
            PublisherOutput::Activate {
                routes,
                cache_index,
                ..
            } => v.push(Out::Activate(cache_index, routes)),
            PublisherOutput::Deactivate => v.push(Out::Deactivate),
            PublisherOutput::UserCommand { code, .. } => v.push(Out::User(code)),
            PublisherOutput::ProcessingInterval(ms) => v.push(Out::Interval(ms)),
            PublisherOutput::Close { .. } => v.push(Out::Close),
            PublisherOutput::RotateCipherKeys => v.push(Out::Rotate),
            PublisherOutput::StartLegacyCipherKeys => v.push(Out::LegacyKeys),
            PublisherOutput::Log(_) => {}
        }
    }
    v
}

fn subscribe(filter: &str) -> Command {
    Command::Subscribe {
        flags: 2,
        connection_string: format!("filterExpression={{{filter}}}"),
    }
}

fn step(s: &mut PublisherSession, c: &Catalog, cmd: &Command, version: u8) -> Vec<Out> {
    s.handle_frame(&frame(cmd, StringEncoding::Utf8), c, NOW);
    outputs(s, version)
}

#[test]
fn modes_are_answered_first_and_other_commands_before_them_fail() {
    let c = catalog();
    let mut s = session();
    assert_eq!(
        step(&mut s, &c, &Command::MetadataRefresh { filters: None }, 2),
        vec![Out::Resp(0x81, 0x01)]
    );
    assert_eq!(s.phase(), Phase::AwaitingModes);
    s.handle_keepalive();
    assert!(
        outputs(&mut s, 2).is_empty(),
        "no NoOP before the 0x06 answer (goapi rule)"
    );
    assert_eq!(
        step(
            &mut s,
            &c,
            &Command::DefineOperationalModes(OperationalModes(0xE000_0262)),
            2
        ),
        vec![Out::Resp(0x80, 0x06)]
    );
    assert_eq!(s.phase(), Phase::Ready);
    s.handle_keepalive();
    assert_eq!(outputs(&mut s, 2), vec![Out::Resp(0xFF, 0x02)]);
}

#[test]
fn unsupported_versions_fail_and_close() {
    for version in [0u32, 4, 9, 31] {
        let c = catalog();
        let mut s = session();
        let out = step(
            &mut s,
            &c,
            &Command::DefineOperationalModes(OperationalModes(0xE000_0260 | version)),
            2,
        );
        assert_eq!(
            out,
            vec![Out::Resp(0x81, 0x06), Out::Close],
            "version {version}"
        );
        assert_eq!(s.phase(), Phase::Closed);
    }
}

#[test]
fn version_2_double_buffers_the_cache_and_queues_the_last_subscription() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0262, 2);
    // First subscription: cache slot 0, nothing routed until confirmed.
    let out = step(
        &mut s,
        &c,
        &subscribe("FILTER ActiveMeasurements WHERE SignalType = 'FREQ'"),
        2,
    );
    assert_eq!(out, vec![Out::Cache(0, 2), Out::Resp(0x80, 0x02)]);
    let out = step(&mut s, &c, &Command::ConfirmUpdateSignalIndexCache, 2);
    assert_eq!(out, vec![Out::Activate(0, vec![(0, 0), (4, 1)])]);
    // Resubscribe: slot 1; two more before the confirm: only the last one is kept.
    assert_eq!(
        step(&mut s, &c, &subscribe("PPA:2"), 2),
        vec![Out::Cache(1, 1), Out::Resp(0x80, 0x02)]
    );
    assert_eq!(
        step(&mut s, &c, &subscribe("PPA:3"), 2),
        vec![Out::Resp(0x80, 0x02)]
    );
    assert_eq!(
        step(&mut s, &c, &subscribe("PPA:4;PPA:1"), 2),
        vec![Out::Resp(0x80, 0x02)]
    );
    // Confirm slot 1: routes for PPA:2, then the queued cache goes to slot 0.
    let out = step(&mut s, &c, &Command::ConfirmUpdateSignalIndexCache, 2);
    assert_eq!(out, vec![Out::Activate(1, vec![(1, 0)]), Out::Cache(0, 2)]);
    let out = step(&mut s, &c, &Command::ConfirmUpdateSignalIndexCache, 2);
    assert_eq!(out, vec![Out::Activate(0, vec![(3, 0), (0, 1)])]);
    // A stray confirm changes nothing.
    assert_eq!(
        step(&mut s, &c, &Command::ConfirmUpdateSignalIndexCache, 2),
        vec![]
    );
    // Unsubscribe.
    assert_eq!(
        step(&mut s, &c, &Command::Unsubscribe, 2),
        vec![Out::Deactivate, Out::Resp(0x80, 0x03)]
    );
    assert!(!s.is_subscribed());
}

#[test]
fn version_1_has_no_index_byte_and_activates_at_once() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0261, 1);
    let out = step(
        &mut s,
        &c,
        &subscribe("FILTER ActiveMeasurements WHERE True"),
        1,
    );
    assert_eq!(
        out,
        vec![
            Out::Cache(0, 5),
            Out::Activate(0, (0..5).map(|i| (i, i as i32)).collect()),
            Out::Resp(0x80, 0x02)
        ]
    );
}

#[test]
fn failures_carry_reasons_and_the_session_survives_them() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0262, 2);
    for bad in [
        subscribe("FILTER ActiveMeasurements WHERE"),
        subscribe("FILTER NoSuchTable WHERE True"),
        Command::Subscribe {
            flags: 2,
            connection_string: "includeTime=perhaps".into(),
        },
        Command::Subscribe {
            flags: 2,
            connection_string: "filterExpression={PPA:1};dataChannel={localport=0}".into(),
        },
        Command::Subscribe {
            flags: 2,
            connection_string: "filterExpression={PPA:1};startTimeConstraint=*-5m".into(),
        },
        Command::Subscribe {
            flags: 1,
            connection_string: "filterExpression={PPA:1}".into(),
        },
        Command::MetadataRefresh {
            filters: Some("FILTER MeasurementDetail WHERE NoSuchColumn = 1".into()),
        },
    ] {
        let code = bad.code();
        s.handle_frame(&frame(&bad, StringEncoding::Utf8), &c, NOW);
        let mut failed = None;
        while let Some(o) = s.poll_output() {
            if let PublisherOutput::Send(b) = o {
                let r = decode_responses(&b[4..]).unwrap()[0];
                failed = Some((
                    r.code,
                    r.command,
                    String::from_utf8_lossy(r.payload).into_owned(),
                ));
            }
        }
        let (rc, cc, text) = failed.expect("an answer");
        assert_eq!((rc, cc), (0x81, code), "{bad:?}");
        assert!(text.len() > 10, "a reason is given: {text:?}");
    }
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(
        step(&mut s, &c, &subscribe("PPA:1"), 2),
        vec![Out::Cache(0, 1), Out::Resp(0x80, 0x02)]
    );
}

#[test]
fn other_commands() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0262, 2);
    assert_eq!(
        step(&mut s, &c, &Command::UpdateProcessingInterval(250), 2),
        vec![Out::Interval(250), Out::Resp(0x80, 0x05)]
    );
    assert_eq!(
        step(
            &mut s,
            &c,
            &Command::User {
                code: 0xD3,
                data: vec![1, 2]
            },
            2
        ),
        vec![Out::User(0xD3)]
    );
    assert_eq!(
        step(&mut s, &c, &Command::RotateCipherKeys, 2),
        vec![Out::Resp(0x81, 0x04)]
    );
    assert_eq!(
        step(&mut s, &c, &Command::GetPrimaryMetadataSchema, 2),
        vec![Out::Resp(0x81, 0x0C)]
    );
    assert_eq!(
        step(&mut s, &c, &Command::ConfirmNotification(5), 2),
        vec![]
    );
    s.send_user_response(0xE3, 0xD3, b"ok");
    assert_eq!(outputs(&mut s, 2), vec![Out::Resp(0xE3, 0xD3)]);
    s.notify_configuration_changed();
    assert_eq!(outputs(&mut s, 2), vec![Out::Resp(0x8A, 0x02)]);
}

#[test]
fn metadata_is_gzipped_when_asked_and_filters_trim_tables() {
    let c = catalog();
    for (modes, gz) in [(0xE000_0262u32, true), (0x6000_0262, false)] {
        let mut s = ready(&c, modes, 2);
        s.handle_frame(
            &frame(
                &Command::MetadataRefresh { filters: None },
                StringEncoding::Utf8,
            ),
            &c,
            NOW,
        );
        let PublisherOutput::Send(b) = s.poll_output().unwrap() else {
            panic!()
        };
        let r = decode_responses(&b[4..]).unwrap()[0];
        assert_eq!((r.code, r.command), (0x80, 0x01));
        assert_eq!(sttp_proto::gzip::is_gzip(r.payload), gz);
        let set = sttp_proto::metadata::xml::parse_payload(r.payload, &Default::default()).unwrap();
        assert_eq!(set.table("MeasurementDetail").unwrap().len(), 5);
    }
    let mut s = ready(&c, 0xE000_0262, 2);
    let f = Command::MetadataRefresh {
        filters: Some("FILTER MeasurementDetail WHERE SignalAcronym = 'FREQ'".into()),
    };
    s.handle_frame(&frame(&f, StringEncoding::Utf8), &c, NOW);
    let PublisherOutput::Send(b) = s.poll_output().unwrap() else {
        panic!()
    };
    let r = decode_responses(&b[4..]).unwrap()[0];
    let set = sttp_proto::metadata::xml::parse_payload(r.payload, &Default::default()).unwrap();
    assert_eq!(set.table("MeasurementDetail").unwrap().len(), 2);
    assert_eq!(set.table("DeviceDetail").unwrap().len(), 1);
}

#[test]
fn utf16_sessions_decode_strings_in_utf16() {
    let c = catalog();
    let mut s = session();
    // 0xC4000002: the gsfapi default (UTF-16LE, no GZip bit).
    step(
        &mut s,
        &c,
        &Command::DefineOperationalModes(OperationalModes(0xC400_0002)),
        2,
    );
    s.handle_frame(
        &frame(&subscribe("PPA:5"), StringEncoding::Utf16Le),
        &c,
        NOW,
    );
    let mut got = Vec::new();
    while let Some(o) = s.poll_output() {
        if let PublisherOutput::Send(b) = o {
            let r = decode_responses(&b[4..]).unwrap()[0];
            got.push(r.code);
            if r.code == 0x80 {
                assert_eq!(r.payload.len() % 2, 0, "message in UTF-16");
                assert_eq!(r.payload[1], 0);
            }
        }
    }
    assert_eq!(got, vec![0x83, 0x80]);
}

#[test]
fn repeated_malformed_commands_close_the_session() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0262, 2);
    let mut closed = false;
    for _ in 0..sttp_proto::session::publisher::MAX_BAD_COMMANDS {
        // Subscribe whose length prefix says more than is there.
        s.handle_frame(&[0x02, 0x02, 0x00, 0x00, 0x10, 0x00, b'x'], &c, NOW);
        closed |= outputs(&mut s, 2).contains(&Out::Close);
    }
    assert!(closed);
    assert_eq!(s.phase(), Phase::Closed);
}

/// Regression (found by the session property test): Unsubscribe while a cache awaits its
/// confirmation used to forget it, so the next Subscribe reused the same slot and the old
/// confirmation activated the new routes before the subscriber had the new cache.
#[test]
fn unsubscribe_keeps_an_unconfirmed_cache_outstanding() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0262, 2);
    assert_eq!(
        step(&mut s, &c, &subscribe("PPA:1"), 2),
        vec![Out::Cache(0, 1), Out::Resp(0x80, 0x02)]
    );
    assert_eq!(
        step(&mut s, &c, &Command::Unsubscribe, 2),
        vec![Out::Deactivate, Out::Resp(0x80, 0x03)]
    );
    // Resubscribing while slot 0 is unconfirmed queues the new cache.
    assert_eq!(
        step(&mut s, &c, &subscribe("PPA:2;PPA:3"), 2),
        vec![Out::Resp(0x80, 0x02)]
    );
    // The confirmation of slot 0 activates what slot 0 holds, then the queued cache goes to slot 1.
    assert_eq!(
        step(&mut s, &c, &Command::ConfirmUpdateSignalIndexCache, 2),
        vec![Out::Activate(0, vec![(0, 0)]), Out::Cache(1, 2)]
    );
    assert_eq!(
        step(&mut s, &c, &Command::ConfirmUpdateSignalIndexCache, 2),
        vec![Out::Activate(1, vec![(1, 0), (2, 1)])]
    );
}

#[test]
fn a_udp_data_channel_is_accepted_in_compact_and_keys_rotate_only_when_in_use() {
    let c = catalog();
    let mut s = ready(&c, 0xE000_0262, 2);
    let sub = Command::Subscribe {
        flags: 2,
        connection_string: "filterExpression={PPA:1};dataChannel={localport=9600}".into(),
    };
    s.handle_frame(&frame(&sub, StringEncoding::Utf8), &c, NOW);
    let mut message = None;
    while let Some(o) = s.poll_output() {
        if let PublisherOutput::Send(b) = o {
            for r in decode_responses(&b[4..]).unwrap() {
                if r.code == 0x80 && r.command == 0x02 {
                    message = Some(String::from_utf8_lossy(r.payload).into_owned());
                }
            }
        }
    }
    let message = message.expect("subscribe succeeded");
    assert!(message.contains("over UDP port 9600"), "{message}");
    assert!(message.contains("TSSC is not used"), "{message}");

    // Without keys in use the rotation request is refused; with keys it reaches the runtime.
    s.handle_frame(
        &frame(&Command::RotateCipherKeys, StringEncoding::Utf8),
        &c,
        NOW,
    );
    assert_eq!(outputs(&mut s, 2), vec![Out::Resp(0x81, 0x04)]);
    s.set_cipher_keys_in_use(true);
    s.handle_frame(
        &frame(&Command::RotateCipherKeys, StringEncoding::Utf8),
        &c,
        NOW,
    );
    assert_eq!(outputs(&mut s, 2), vec![Out::Rotate, Out::Resp(0x80, 0x04)]);
}

#[test]
fn legacy_cipher_keys_go_out_before_the_cache_only_when_offered_and_not_superseded() {
    let c = catalog();
    let udp = |ext: &str| Command::Subscribe {
        flags: 2,
        connection_string: format!(
            "filterExpression={{PPA:1}};dataChannel={{localport=9600}}{ext}"
        ),
    };
    // Not offered (plain TCP): no keys.
    let mut s = ready(&c, 0xE000_0262, 2);
    s.handle_frame(&frame(&udp(""), StringEncoding::Utf8), &c, NOW);
    assert!(!outputs(&mut s, 2).contains(&Out::LegacyKeys));
    // Offered: the keys come first, before the signal index cache.
    let mut s = ready(&c, 0xE000_0262, 2);
    s.set_legacy_cipher_keys_offered(true);
    s.handle_frame(&frame(&udp(""), StringEncoding::Utf8), &c, NOW);
    let out = outputs(&mut s, 2);
    assert_eq!(out.first(), Some(&Out::LegacyKeys), "{out:?}");
    assert!(matches!(out.get(1), Some(Out::Cache(..))), "{out:?}");
    // A subscriber asking for the authenticated extension never gets legacy keys.
    let mut s = ready(&c, 0xE000_0262, 2);
    s.set_legacy_cipher_keys_offered(true);
    s.handle_frame(
        &frame(
            &udp(";sttpExt={udpCipher=aes-256-gcm}"),
            StringEncoding::Utf8,
        ),
        &c,
        NOW,
    );
    assert!(!outputs(&mut s, 2).contains(&Out::LegacyKeys));
}
