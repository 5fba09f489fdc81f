//! Property tests of the publisher session over random command sequences (design.md habit 3):
//! whatever the subscriber sends, the session never panics, answers DefineOperationalModes before
//! anything else, keeps at most one signal index cache unconfirmed, and activates exactly the
//! cache slot it sent last.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use sttp_proto::catalog::Catalog;
use sttp_proto::command::Command;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::metadata::builder::{MeasurementRecord, MetadataBuilder};
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::response::decode_responses;
use sttp_proto::session::publisher::Phase;
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use uuid::Uuid;

fn catalog() -> Catalog {
    let mut b = MetadataBuilder::default();
    for i in 0..6u128 {
        b.measurements.push(MeasurementRecord {
            device_acronym: "DEV".into(),
            id: format!("PPA:{}", i + 1),
            signal_id: Uuid::from_u128(100 + i),
            point_tag: format!("TAG{i}"),
            alternate_tag: None,
            signal_reference: format!("REF{i}"),
            signal_acronym: if i % 2 == 0 { "FREQ" } else { "VPHM" }.into(),
            phasor_source_index: None,
            description: String::new(),
            internal: true,
            enabled: true,
            updated_on: 0,
        });
    }
    Catalog::new(Uuid::nil(), b.build())
}

#[derive(Debug, Clone)]
enum Step {
    Command(Command),
    Keepalive,
    Raw(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    let filters = prop::sample::select(vec![
        "FILTER ActiveMeasurements WHERE True",
        "FILTER ActiveMeasurements WHERE SignalType = 'FREQ'",
        "PPA:2",
        "FILTER ActiveMeasurements WHERE",
        "",
    ]);
    prop_oneof![
        (prop::sample::select(vec![
            0xE000_0262u32,
            0xE000_0261,
            0xE000_0263,
            0xC000_0222,
            0xE000_0269
        ]))
        .prop_map(|m| Step::Command(Command::DefineOperationalModes(OperationalModes(m)))),
        filters.prop_map(|f| Step::Command(Command::Subscribe {
            flags: 2,
            connection_string: format!("filterExpression={{{f}}}")
        })),
        Just(Step::Command(Command::ConfirmUpdateSignalIndexCache)),
        Just(Step::Command(Command::Unsubscribe)),
        Just(Step::Command(Command::MetadataRefresh { filters: None })),
        Just(Step::Command(Command::UpdateProcessingInterval(10))),
        Just(Step::Keepalive),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Step::Raw),
    ]
}

proptest! {
    #[test]
    fn random_command_sequences_keep_the_session_invariants(steps in prop::collection::vec(step(), 1..40)) {
        let cat = catalog();
        let mut s = PublisherSession::new(PublisherSessionConfig { subscriber_id: Uuid::nil(), publisher_name: "p".into() });
        let mut first_response: Option<(u8, u8)> = None;
        let mut outstanding: Option<u8> = None;
        for st in steps {
            // A confirmation consumes the outstanding cache, activated or not (unsubscribed).
            let is_confirm = match &st {
                Step::Command(c) => matches!(c, Command::ConfirmUpdateSignalIndexCache),
                Step::Raw(b) => matches!(
                    Command::decode(b, s.modes().encoding()),
                    Ok(Command::ConfirmUpdateSignalIndexCache)
                ),
                Step::Keepalive => false,
            };
            let confirmed = if is_confirm && s.phase() == Phase::Ready {
                outstanding.take()
            } else {
                None
            };
            match &st {
                Step::Command(c) => {
                    let mut f = Vec::new();
                    c.encode(StringEncoding::Utf8, &mut f);
                    s.handle_frame(&f[4..], &cat, 0);
                }
                Step::Keepalive => s.handle_keepalive(),
                Step::Raw(b) => s.handle_frame(b, &cat, 0),
            }
            while let Some(o) = s.poll_output() {
                match o {
                    PublisherOutput::Send(bytes) => {
                        for r in decode_responses(&bytes[4..]).unwrap() {
                            if first_response.is_none() && r.code != 0x81 {
                                first_response = Some((r.code, r.command));
                                prop_assert_eq!((r.code, r.command), (0x80, 0x06), "first success answers 0x06");
                            }
                            if r.code == 0x83 && s.modes().version() > 1 {
                                prop_assert!(outstanding.is_none(), "two caches awaiting confirmation");
                                outstanding = Some(r.payload[0]);
                            }
                        }
                    }
                    PublisherOutput::Activate { cache_index, .. } if s.modes().version() > 1 => {
                        prop_assert_eq!(Some(cache_index), confirmed, "activates the slot just confirmed");
                    }
                    _ => {}
                }
            }
            if s.phase() == Phase::Closed {
                break;
            }
        }
    }
}
