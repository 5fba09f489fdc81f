//! Fuzz corpus replay (test-plan T11): every committed input under `tests/fuzz/corpus/<target>/`
//! runs through the target's body in `sttp_tests::fuzz_bodies`, so seeds, minimised corpora and
//! named regression inputs (`regression-*`) are checked by plain `cargo test` on stable.
//!
//! The seeds themselves come from `generate_seed_corpus` below (ignored; run it with
//! `cargo test -p sttp-tests --test fuzz_corpus -- --ignored generate_seed_corpus` after a
//! format change, then re-minimise with `cargo +nightly fuzz cmin`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use sttp_proto::command::Command;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::metadata::xml;
use sttp_proto::payloads::{BaseTimes, BufferBlock, CipherKeys, KeyIv, Notification};
use sttp_proto::response::{code as rsp, encode_response};
use sttp_proto::session::{
    PublisherOutput, PublisherSession, PublisherSessionConfig, SubscriberOutput, SubscriberSession,
    SubscriberSessionConfig,
};
use sttp_proto::sic::{SignalIndexCache, SignalIndexEntry};
use sttp_tests::fuzz_bodies::{self as bodies, chunks_input, frames_input, NOW_TICKS};
use sttp_wire::tssc;
use sttp_wire::{compact, Guid, Measurement};

/// The body of fuzz target `name`; `None` for a directory no target claims.
fn body(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "frame" => bodies::frame,
        "command" => bodies::command,
        "response" => bodies::response,
        "connection_string" => bodies::connection_string,
        "filter_expression" => bodies::filter_expression,
        "metadata_xml" => bodies::metadata_xml,
        "signal_index_cache" => bodies::signal_index_cache,
        "compact" => bodies::compact,
        "tssc" => bodies::tssc,
        "data_packet" => bodies::data_packet,
        "publisher_session" => bodies::publisher_session,
        "subscriber_session" => bodies::subscriber_session,
        "aead_open" => bodies::aead_open,
        "ext_message" => bodies::ext_message,
        "connection_string_limits" => bodies::connection_string_limits,
        "access_policy" => bodies::access_policy,
        _ => return None,
    })
}

fn fuzz_dir() -> PathBuf {
    sttp_tests::repo_root().join("tests/fuzz")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn every_fuzz_target_has_a_body_and_a_corpus() {
    for t in sorted_entries(&fuzz_dir().join("fuzz_targets")) {
        let name = t.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            body(&name).is_some(),
            "fuzz target {name} has no body in fuzz_corpus.rs::body"
        );
        let corpus = fuzz_dir().join("corpus").join(&name);
        assert!(
            corpus.is_dir() && fs::read_dir(&corpus).unwrap().next().is_some(),
            "fuzz target {name} has no seed corpus in {}",
            corpus.display()
        );
    }
}

#[test]
fn replay_fuzz_corpora() {
    let mut total = 0usize;
    for dir in sorted_entries(&fuzz_dir().join("corpus")) {
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(run) = body(&name) else {
            panic!(
                "corpus directory {name} matches no fuzz body: wire it into fuzz_corpus.rs::body"
            );
        };
        for file in sorted_entries(&dir) {
            let data = fs::read(&file).unwrap();
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(
                result.is_ok(),
                "fuzz body {name} panicked on {}",
                file.display()
            );
            total += 1;
        }
    }
    assert!(total > 0, "no corpus files found");
    eprintln!("replayed {total} corpus files");
}

// ------------------------------------------------------------------------------------------
// Seed generation

/// The Python default connection string (wire.md §3, 372 bytes, verified).
const PY_CONNECTION_STRING: &str = "throttled=False;publishInterval=1.000000;includeTime=True;enableTimeReasonabilityCheck=False;lagTime=10.000000;leadTime=5.000000;useLocalClockAsRealTime=False;processingInterval=-1;useMillisecondResolution=False;requestNaNValueFilter=False;assemblyInfo={source=STTP Python Library;version=0.7.6;updatedOn=2026-07-13};filterExpression={FILTER ActiveMeasurements WHERE True}";

/// Access-policy files: the full example of `control/proto/tests/acl_policy.rs`, a group by
/// filter, an address-only identity, a deny-everything identity, and a syntax error.
const ACCESS_POLICY_SEEDS: [(&str, &str); 5] = [
    (
        "full",
        r#"
[groups.north]
points = ["PMU1:FREQ", "{6f1ad81d-9bd4-4d3c-884e-cf2174462a71}"]
filter = "Device LIKE 'NORTH%'"

[[identity]]
name = "cc-b"
fingerprints = ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"]
common_names = ["cc-b.example.net"]
addresses = ["10.20.0.0/16"]
allow_groups = ["north"]
deny_points = ["PMU1:STATUS"]
allow_filters = ["SignalType = 'FREQ'"]
"#,
    ),
    (
        "group-filter",
        r#"
[groups.freq]
filter = "SignalType = 'FREQ' AND Enabled <> 0"

[[identity]]
name = "local"
addresses = ["127.0.0.0/8", "::1/128"]
allow_groups = ["freq"]
"#,
    ),
    (
        "address-only",
        r#"
[[identity]]
name = "lab"
addresses = ["192.168.0.0/16"]
allow_points = ["DEV1:FREQ", "DEV1:VPHM"]
deny_filters = ["SignalType = 'VPHA'"]
"#,
    ),
    (
        "deny-all",
        r#"
[[identity]]
name = "anyone"
allow_filters = ["True"]
deny_filters = ["True"]
"#,
    ),
    ("syntax-error", "[[identity]\nname = 3\n"),
];

/// wire.md §4.2 TSSC test vectors: three successive blocks of one encoder session.
const TSSC_BLOCKS: [&str; 3] = [
    "118080ccb5eab3a8ed081f000070421f0000c03f1f000050c0",
    "01311895ac2ce80000209c80800400",
    "081ac120f10000807f251ae111da0000f0356370b400002069871068000060d56833000020d71e100a00801f355af100001034da10000030355a3000001035381700007000",
];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn command_body(c: &Command, enc: StringEncoding) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(enc, &mut out);
    out.split_off(4)
}

fn command_frame(c: &Command, enc: StringEncoding) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(enc, &mut out);
    out
}

fn response_body(code: u8, command: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(&mut out, code, command, payload);
    out.split_off(4)
}

fn subscribe(cs: &str) -> Command {
    Command::Subscribe {
        flags: 0x02,
        connection_string: cs.to_owned(),
    }
}

fn sample_cache() -> SignalIndexCache {
    let entries = (0..3)
        .map(|i| SignalIndexEntry {
            runtime_id: i,
            signal_id: Guid::from_u128(0x1000 + i as u128),
            source: "PPA".into(),
            key_id: 15 + i as u64,
        })
        .collect();
    SignalIndexCache::new(Guid::from_u128(7), entries, vec![Guid::from_u128(99)])
}

fn measurements(n: usize) -> Vec<Measurement> {
    (0..n)
        .map(|i| Measurement {
            runtime_id: (i % 3) as i32,
            timestamp: NOW_TICKS + (i / 3) as i64 * 333_333,
            value: 60.0 + i as f32 * 0.25,
            flags: [0, 0x1000, 0x0040_0000][i % 3],
        })
        .collect()
}

fn tssc_packets(ms: &[Measurement], per_packet: usize, extra_flags: u8) -> Vec<Vec<u8>> {
    let mut enc = tssc::PacketEncoder::new();
    ms.chunks(per_packet)
        .map(|chunk| {
            let mut out = Vec::new();
            enc.begin(&mut out, extra_flags, 32_768);
            for m in chunk {
                assert!(enc.try_add(&mut out, m));
            }
            enc.finish(&mut out);
            out
        })
        .collect()
}

fn compact_packet(ms: &[Measurement], base: Option<compact::BaseTimes>, ms_res: bool) -> Vec<u8> {
    let mut enc = compact::PacketEncoder::new(compact::CompactOptions {
        include_time: true,
        millisecond_resolution: ms_res,
    });
    enc.set_base_times(base);
    let mut out = Vec::new();
    enc.begin(&mut out, 0, 32_768);
    for m in ms {
        assert!(enc.try_add(&mut out, m));
    }
    enc.finish(&mut out);
    out
}

/// Runs a stock-configured subscriber against a publisher session over the small catalog and
/// returns (frames the subscriber sent, frames the publisher sent), as bodies without prefix.
fn conversation(modes_sel: u8) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let catalog = bodies::small_catalog();
    let mut sub = SubscriberSession::new(SubscriberSessionConfig {
        version: 2,
        tssc: modes_sel & 8 != 0,
        compress_metadata: modes_sel & 0x10 != 0,
        compress_signal_index_cache: modes_sel & 0x10 != 0,
        auto_request_metadata: true,
        auto_subscribe: true,
        settings: SubscriptionSettings {
            filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
            ..SubscriptionSettings::default()
        },
        ..SubscriberSessionConfig::default()
    });
    let mut publ = PublisherSession::new(PublisherSessionConfig {
        subscriber_id: Guid::from_u128(99),
        publisher_name: "seed".into(),
    });
    let (mut to_pub, mut to_sub) = (Vec::new(), Vec::new());
    sub.start();
    for _ in 0..6 {
        let mut sent = Vec::new();
        while let Some(o) = sub.poll_output() {
            if let SubscriberOutput::Send(f) = o {
                sent.push(f[4..].to_vec());
            }
        }
        for f in &sent {
            publ.handle_frame(f, catalog, NOW_TICKS);
        }
        to_pub.extend(sent);
        let mut back = Vec::new();
        while let Some(o) = publ.poll_output() {
            if let PublisherOutput::Send(f) = o {
                back.push(f[4..].to_vec());
            }
        }
        for f in &back {
            sub.handle_frame(f);
        }
        to_sub.extend(back);
    }
    (to_pub, to_sub)
}

#[test]
#[ignore = "writes the seed corpora into tests/fuzz/corpus; run by hand"]
fn generate_seed_corpus() {
    let utf8 = StringEncoding::Utf8;
    let utf16 = StringEncoding::Utf16Le;
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let modes = hex("06E0000262");
    let settings_cs = SubscriptionSettings {
        filter_expression: "FILTER TOP 20 ActiveMeasurements WHERE SignalType='FREQ'".into(),
        ..SubscriptionSettings::default()
    }
    .to_connection_string();

    // frame: [limit selector, split seed] + stream of command frames.
    let stream = cat(&[
        &hex("0000000506E0000262"),
        &command_frame(&Command::MetadataRefresh { filters: None }, utf8),
        &command_frame(&subscribe(PY_CONNECTION_STRING), utf8),
        &command_frame(&Command::ConfirmUpdateSignalIndexCache, utf8),
    ]);
    seeds.push((
        "frame",
        "python-session".to_string(),
        cat(&[&[0x7F, 7], &stream]),
    ));
    seeds.push((
        "frame",
        "first-frame-limit".to_string(),
        cat(&[&[0xFF, 3], &stream]),
    ));
    let stream16 = cat(&[
        &hex("0000000506C4000002"),
        &command_frame(&subscribe("filterExpression={PPA:1;PPA:2}"), utf16),
        &hex("00000000"),
    ]);
    seeds.push((
        "frame",
        "utf16-then-empty-frame".to_string(),
        cat(&[&[0x40, 1], &stream16]),
    ));

    // command: frame bodies.
    let commands: Vec<(&str, Vec<u8>)> = vec![
        ("define-modes", modes.clone()),
        ("metadata-refresh", hex("01")),
        (
            "metadata-refresh-filter",
            command_body(
                &Command::MetadataRefresh {
                    filters: Some("FILTER MeasurementDetail WHERE SignalAcronym <> 'STAT'".into()),
                },
                utf8,
            ),
        ),
        (
            "subscribe-python",
            command_body(&subscribe(PY_CONNECTION_STRING), utf8),
        ),
        (
            "subscribe-utf16",
            command_body(&subscribe(&settings_cs), utf16),
        ),
        (
            "processing-interval",
            command_body(&Command::UpdateProcessingInterval(-1), utf8),
        ),
        (
            "confirm-notification",
            command_body(&Command::ConfirmNotification(0x1234_5678), utf8),
        ),
        (
            "confirm-buffer-block",
            command_body(&Command::ConfirmBufferBlock(42), utf8),
        ),
        ("confirm-cache", hex("0A")),
        ("publish-command-measurements-09", hex("0900000003613D62")),
        ("user-command", hex("D3DEADBEEF")),
    ];
    for (n, b) in commands {
        seeds.push(("command", n.to_string(), b));
    }

    // response: frame bodies.
    let cipher = CipherKeys {
        cipher_index: 1,
        sets: [
            KeyIv {
                key: vec![1; 32],
                iv: vec![2; 16],
            },
            KeyIv {
                key: vec![3; 32],
                iv: vec![4; 16],
            },
        ],
    };
    let mut block = Vec::new();
    BufferBlock {
        sequence: 3,
        flags: 0x01,
        signal_index: 2,
        payload: b"opaque",
    }
    .encode(&mut block);
    let base = BaseTimes {
        index: 1,
        offsets: [NOW_TICKS, NOW_TICKS + 4_200_000_000],
    };
    let mut base_payload = Vec::new();
    base.encode(&mut base_payload);
    let py_msg = cat(&[&hex("00000048"), &[b'x'; 0x48]]);
    let responses: Vec<(&str, Vec<u8>)> = vec![
        (
            "succeeded-modes",
            response_body(rsp::SUCCEEDED, 0x06, b"STTP v2 client connection accepted"),
        ),
        (
            "succeeded-python-prefixed",
            response_body(rsp::SUCCEEDED, 0x06, &py_msg),
        ),
        (
            "failed-utf16",
            response_body(rsp::FAILED, 0x02, &utf16.encode("no such table")),
        ),
        (
            "base-times",
            response_body(rsp::UPDATE_BASE_TIMES, 0x02, &base_payload),
        ),
        (
            "data-start-time",
            response_body(rsp::DATA_START_TIME, 0x02, &NOW_TICKS.to_be_bytes()),
        ),
        (
            "notify",
            response_body(
                rsp::NOTIFY,
                0x02,
                &Notification {
                    hash: 77,
                    message: "hello".into(),
                }
                .encode(utf8),
            ),
        ),
        (
            "buffer-block",
            response_body(rsp::BUFFER_BLOCK, 0x02, &block),
        ),
        (
            "cipher-keys",
            response_body(rsp::UPDATE_CIPHER_KEYS, 0x02, &cipher.encode()),
        ),
        (
            "two-in-one-gsfapi",
            cat(&[
                &response_body(rsp::NO_OP, 0x02, &[]),
                &response_body(rsp::CONFIGURATION_CHANGED, 0x02, &[]),
            ]),
        ),
    ];
    for (n, b) in responses {
        seeds.push(("response", n.to_string(), b));
    }

    // connection_string.
    seeds.push((
        "connection_string",
        "python-default".to_string(),
        PY_CONNECTION_STRING.into(),
    ));
    seeds.push((
        "connection_string",
        "rust-default".to_string(),
        settings_cs.clone().into_bytes(),
    ));
    seeds.push((
        "connection_string",
        "tails".to_string(),
        b"includeTime=0; dataChannel={localport=9600};startTimeConstraint=*-5m;stopTimeConstraint={2026-11-21 10:00:00.000};timeConstraintParameters={a={b;c}};useMillisecondResolution=1;extra = { spaced }".to_vec(),
    ));

    // connection_string_limits: [limits selector, length selector] + text.
    for (name, sel, len_sel, text) in [
        ("python-default", 0x7fu8, 0u8, PY_CONNECTION_STRING),
        ("rust-default", 0xffu8, 0x20u8, settings_cs.as_str()),
        ("key-limit", 0x02, 0, "a=1;b=2;c=3;d=4;a=5"),
        ("nesting-limit", 0x10, 0, "a={{{x}}};b={y}"),
        (
            "length-limit",
            0x8f,
            1,
            "filterExpression={FILTER ActiveMeasurements WHERE True}",
        ),
        ("syntax-error", 0x0f, 0, "a=1;b={x;c"),
        (
            "data-channel",
            0x3f,
            0,
            "dataChannel={localport=9600};includeTime=0",
        ),
    ] {
        let mut data = vec![sel, len_sel];
        data.extend_from_slice(text.as_bytes());
        seeds.push(("connection_string_limits", name.to_string(), data));
    }

    // access_policy: policy files as the tests and docs write them.
    for (name, text) in ACCESS_POLICY_SEEDS {
        seeds.push(("access_policy", name.to_string(), text.as_bytes().to_vec()));
    }

    // filter_expression.
    let filters = [
        ("all", "FILTER ActiveMeasurements WHERE True"),
        ("top-freq", "FILTER TOP 20 ActiveMeasurements WHERE SignalType='FREQ'"),
        (
            "in-order-by",
            "FILTER ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') AND Phase='+' ORDER BY PhasorID DESC, BINARY PointTag",
        ),
        ("keys", "PPA:1;PPA:2;\"DEV1.VM\""),
        ("guids", "{51770000-0000-4000-8000-00000000000a}; '51770000000040008000000000000000b'"),
        (
            "functions",
            "FILTER ActiveMeasurements WHERE Len(PointTag) > 3 AND PointTag LIKE 'dev%' AND RegExMatch('^PPA', ID) AND IsNull(PhasorID, -1) < 10 /* c */ -- x\n",
        ),
        (
            "arith",
            "FILTER ActiveMeasurements WHERE (DeviceID * 3 + 0x10) % 7 >= -1 OR Convert(Multiplier, 'System.Int32') << 2 = 4 OR UpdatedOn > #2020-01-01#",
        ),
        ("bare-expression", "SignalType = 'STAT' || NOT Internal <> 0"),
    ];
    for (n, f) in filters {
        seeds.push(("filter_expression", n.to_string(), f.as_bytes().to_vec()));
    }

    // metadata_xml.
    let meta = xml::write_xml(&bodies::small_metadata());
    seeds.push((
        "metadata_xml",
        "small-dataset".to_string(),
        meta.clone().into_bytes(),
    ));
    seeds.push((
        "metadata_xml",
        "active-measurements".to_string(),
        xml::write_xml(bodies::small_active_measurements()).into_bytes(),
    ));
    seeds.push((
        "metadata_xml",
        "small-dataset-gzip".to_string(),
        sttp_proto::gzip::compress(meta.as_bytes()),
    ));
    seeds.push((
        "metadata_xml",
        "bom-empty-newdataset".to_string(),
        b"\xEF\xBB\xBF<?xml version=\"1.0\" standalone=\"yes\"?><NewDataSet><xs:schema id=\"NewDataSet\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:msdata=\"urn:schemas-microsoft-com:xml-msdata\"><xs:element name=\"NewDataSet\"><xs:complexType><xs:choice minOccurs=\"0\" maxOccurs=\"unbounded\"><xs:element name=\"T\"><xs:complexType><xs:sequence><xs:element name=\"G\" msdata:DataType=\"System.Guid, mscorlib\" type=\"xs:string\" minOccurs=\"0\"/><xs:element name=\"D\" type=\"xs:dateTime\" minOccurs=\"0\"/></xs:sequence></xs:complexType></xs:element></xs:choice></xs:complexType></xs:element></xs:schema><T><G>01234567-89ab-cdef-0123-456789abcdef</G><D>2026-11-21T10:00:00.5+01:00</D></T><T/></NewDataSet>".to_vec(),
    ));

    // signal_index_cache: selector byte + payload.
    let cache = sample_cache();
    seeds.push((
        "signal_index_cache",
        "v2-utf8".to_string(),
        cat(&[&[0x01], &cache.encode_payload(2, 0, false, utf8)]),
    ));
    seeds.push((
        "signal_index_cache",
        "v2-utf8-gzip".to_string(),
        cat(&[&[0x11], &cache.encode_payload(2, 1, true, utf8)]),
    ));
    seeds.push((
        "signal_index_cache",
        "v1-utf16le".to_string(),
        cat(&[&[0x04], &cache.encode_payload(1, 0, false, utf16)]),
    ));
    seeds.push((
        "signal_index_cache",
        "v3-utf16le-gzip".to_string(),
        cat(&[&[0x16], &cache.encode_payload(3, 0, true, utf16)]),
    ));
    // pyapi: binaryLength without itself, no unauthorized count, index 0xFF.
    let mut py = cache.encode_body(utf8);
    py.truncate(py.len() - 4 - 16);
    let len = (py.len() - 4) as u32;
    py[..4].copy_from_slice(&len.to_be_bytes());
    seeds.push((
        "signal_index_cache",
        "pyapi-ff-index".to_string(),
        cat(&[&[0x01, 0xFF], &py]),
    ));

    // compact: selector (+ count byte when bits 4-5 = 0) + measurements.
    seeds.push((
        "compact",
        "captured-full-time".to_string(),
        cat(&[
            &hex("0101"),
            &hex("00"),
            &hex("00000001"),
            &hex("42700000"),
            &hex("08df47b9742f6780"),
        ]),
    ));
    seeds.push((
        "compact",
        "worked-example-ticks".to_string(),
        cat(&[
            &hex("0501"),
            &hex("40"),
            &hex("00000005"),
            &hex("42700000"),
            &hex("0012d687"),
        ]),
    ));
    seeds.push((
        "compact",
        "worked-example-ms".to_string(),
        cat(&[
            &hex("0701"),
            &hex("40"),
            &hex("00000005"),
            &hex("42700000"),
            &hex("04d2"),
        ]),
    ));
    seeds.push((
        "compact",
        "time-index-1".to_string(),
        cat(&[
            &hex("0501"),
            &hex("C0"),
            &hex("00000005"),
            &hex("42700000"),
            &hex("0012d687"),
        ]),
    ));
    let base = compact::BaseTimes {
        index: 0,
        offsets: [NOW_TICKS, NOW_TICKS + 4_200_000_000],
    };
    let mut with_base = vec![0x09];
    base.encode(&mut with_base);
    with_base.push(6);
    with_base.extend_from_slice(&compact_packet(&measurements(6), Some(base), false)[5..]);
    seeds.push(("compact", "packet-own-bases".to_string(), with_base));
    seeds.push((
        "compact",
        "no-time".to_string(),
        cat(&[&[0x20], &hex("3000000002bf800000")]),
    ));

    // tssc: selector + chunks of [version, sequence, stream].
    let vectors: Vec<Vec<u8>> = TSSC_BLOCKS
        .iter()
        .enumerate()
        .map(|(i, b)| cat(&[&[0x55, 0, i as u8], &hex(b)]))
        .collect();
    seeds.push((
        "tssc",
        "wire-md-vectors".to_string(),
        cat(&[&[0x00], &chunks_input(&vectors)]),
    ));
    let packets: Vec<Vec<u8>> = tssc_packets(&measurements(60), 20, 0)
        .into_iter()
        .map(|p| p[5..].to_vec())
        .collect();
    seeds.push((
        "tssc",
        "encoder-3-packets".to_string(),
        cat(&[&[0x03], &chunks_input(&packets)]),
    ));
    let mut restarted = packets.clone();
    restarted.swap(0, 1);
    seeds.push((
        "tssc",
        "out-of-sequence".to_string(),
        cat(&[&[0x00], &chunks_input(&restarted)]),
    ));

    // data_packet: DataPacket payloads.
    seeds.push((
        "data_packet",
        "tssc-vector-1".to_string(),
        cat(&[
            &cat(&[&hex("08"), &hex("00000003"), &hex("55"), &hex("0000")]),
            &hex(TSSC_BLOCKS[0]),
        ]),
    ));
    seeds.push((
        "data_packet",
        "compact-captured".to_string(),
        cat(&[
            &hex("02"),
            &hex("00000001"),
            &hex("00"),
            &hex("00000001"),
            &hex("42700000"),
            &hex("08df47b9742f6780"),
        ]),
    ));
    seeds.push((
        "data_packet",
        "compact-encoder".to_string(),
        compact_packet(&measurements(9), Some(base), true),
    ));
    seeds.push((
        "data_packet",
        "tssc-encoder-cache1".to_string(),
        tssc_packets(&measurements(30), 30, 0x10).remove(0),
    ));
    seeds.push((
        "data_packet",
        "synchronized".to_string(),
        cat(&[&hex("03"), &hex("0000000000000001"), &hex("00000000")]),
    ));

    // sessions: a stock conversation, both ways.
    for (sel, name) in [(0x19u8, "tssc-gzip"), (0x01, "compact-plain")] {
        let (to_pub, mut to_sub) = conversation(sel);
        seeds.push((
            "publisher_session",
            name.to_string(),
            cat(&[&[sel], &frames_input(&to_pub)]),
        ));
        let mut pub_frames = to_pub.clone();
        pub_frames.push(command_body(&Command::UpdateProcessingInterval(10), utf8));
        pub_frames.push(Vec::new());
        pub_frames.push(hex("03"));
        pub_frames.push(hex("06C0000222"));
        pub_frames.push(hex("42"));
        seeds.push((
            "publisher_session",
            format!("{name}-then-more"),
            cat(&[&[sel], &frames_input(&pub_frames)]),
        ));
        // Data after the subscription: cache slot 0 is in force.
        let data: Vec<Vec<u8>> = if sel & 8 != 0 {
            tssc_packets(&measurements(30), 10, 0)
        } else {
            vec![compact_packet(&measurements(6), None, false)]
        };
        for p in data {
            to_sub.push(response_body(rsp::DATA_PACKET, 0x02, &p));
        }
        to_sub.push(response_body(rsp::UPDATE_BASE_TIMES, 0x02, &{
            let mut b = Vec::new();
            base.encode(&mut b);
            b
        }));
        to_sub.push(response_body(rsp::NOTIFY, 0x02, &hex("0000000168")));
        let sub_sel = 0x60 | sel;
        seeds.push((
            "subscriber_session",
            name.to_string(),
            cat(&[&[sub_sel], &frames_input(&to_sub)]),
        ));
    }
    seeds.push((
        "publisher_session",
        "premodes-metadata-filter".to_string(),
        cat(&[
            &[0x80 | 0x19],
            &frames_input(&[
                command_body(
                    &Command::MetadataRefresh {
                        filters: Some("FILTER MeasurementDetail WHERE SignalAcronym <> 'STAT'; FILTER DeviceDetail WHERE True".into()),
                    },
                    utf8,
                ),
                command_body(&subscribe("filterExpression={PPA:1;PPA:3};includeTime=false"), utf8),
                hex("0A"),
                command_body(&subscribe("filterExpression={FILTER ActiveMeasurements WHERE SignalType='VPHM'}"), utf8),
                command_body(&subscribe("filterExpression={PPA:2}"), utf8),
                hex("0A"),
                hex("0A"),
            ]),
        ]),
    ));

    aead_and_ext_seeds(&mut seeds);

    let root = fuzz_dir().join("corpus");
    for (target, name, data) in &seeds {
        assert!(body(target).is_some(), "seed for unknown target {target}");
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        // Every seed must pass its own body.
        (body(target).unwrap())(data);
    }
    eprintln!("wrote {} seeds", seeds.len());
}

/// Seeds of `aead_open` (selector + chunks of `mode byte ‖ datagram or plaintext`) and
/// `ext_message` (selector + payload).
fn aead_and_ext_seeds(seeds: &mut Vec<(&'static str, String, Vec<u8>)>) {
    use sttp_proto::ext::{ExtMessage, UdpCipher};
    use sttp_wire::aead::SealingKey;
    let body = response_body(
        rsp::DATA_PACKET,
        0x02,
        &hex("020000000100000000014270000008df47b9742f6780"),
    );
    let seal = |key: &mut SealingKey, p: &[u8]| {
        let mut d = vec![0u8]; // mode byte: open as received
        key.seal_into(p, &mut d).unwrap();
        d
    };
    let mut e1 = SealingKey::new(1, &bodies::AEAD_KEYS[0]);
    let mut e2 = SealingKey::new(2, &bodies::AEAD_KEYS[1]);
    let mut e3 = SealingKey::new(3, &bodies::AEAD_KEYS[2]);
    let d1: Vec<Vec<u8>> = (0..3).map(|_| seal(&mut e1, &body)).collect();
    let d2 = seal(&mut e2, &body);
    let d3 = seal(&mut e3, &body);
    let mut own = vec![1u8];
    own.extend_from_slice(&body);
    seeds.push((
        "aead_open",
        "rotation-replay-reorder".to_string(),
        cat(&[
            &[0x15],
            &chunks_input(&[
                d1[0].clone(),
                d1[2].clone(),
                d1[1].clone(),
                d1[1].clone(),
                d2.clone(),
                d1[0].clone(),
                own.clone(),
                d3,
            ]),
        ]),
    ));
    let mut flipped = d2.clone();
    flipped[20] ^= 0x40;
    seeds.push((
        "aead_open",
        "tamper-truncate-legacy".to_string(),
        cat(&[
            &[0x00],
            &chunks_input(&[flipped, d2[..30].to_vec(), cat(&[&[0], &body]), own, d2]),
        ]),
    ));

    let messages = [
        (0u8, "key-confirm", ExtMessage::KeyConfirm { epoch: 7 }),
        (
            1,
            "key-announce",
            ExtMessage::KeyAnnounce {
                epoch: 8,
                key: [0x5A; 32],
            },
        ),
        (
            0,
            "capabilities",
            ExtMessage::Capabilities {
                udp_ciphers: vec![UdpCipher::Aes256Gcm],
            },
        ),
    ];
    for (sel, name, m) in messages {
        seeds.push(("ext_message", name.to_string(), cat(&[&[sel], &m.encode()])));
    }
    seeds.push((
        "ext_message",
        "connection-string".to_string(),
        cat(&[&[2], b"sttpExt={udpCipher=aes-256-gcm;priority={x=1}}"]),
    ));
}
