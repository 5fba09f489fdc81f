//! Bodies of the cargo-fuzz targets (test-plan T11), one plain function per target.
//!
//! Each fuzz target in `tests/fuzz/fuzz_targets/<target>.rs` includes this file with
//! `#[path = "../../src/fuzz_bodies.rs"] mod bodies;` and calls `bodies::<target>(data)`; the
//! corpus replay test (`tests/tests/fuzz_corpus.rs`) calls the same functions on every committed
//! corpus file, so a finding replays under plain `cargo test`. Only `sttp_wire` and `sttp_proto`
//! may be used here: the fuzz crate depends on nothing else.
//!
//! Every body feeds arbitrary bytes to a decoder and, where one exists, checks a property
//! (decode → encode → decode stability, outputs within documented bounds). A property failure
//! is a panic, which libFuzzer reports like any other crash.
// Each fuzz binary uses one body; the others are dead code there.
#![allow(dead_code)]

use std::sync::OnceLock;
use sttp_proto::acl::policy::{AccessPolicy, Who};
use sttp_proto::catalog::Catalog;
use sttp_proto::command::Command;
use sttp_proto::connstr::{ConnStrLimits, ConnectionString, SubscriptionSettings};
use sttp_proto::encoding::StringEncoding;
use sttp_proto::error::{ConnStrLimit, ProtoError};
use sttp_proto::filter::{self, EvalContext};
use sttp_proto::framing::FrameDecoder;
use sttp_proto::metadata::{
    schema, xml, DataSet, DataTable, DeviceRecord, MeasurementRecord, MetadataBuilder,
    PhasorRecord, Value,
};
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::payloads::{self, BaseTimes, BufferBlock, CipherKeys, Notification};
use sttp_proto::response::{self, decode_message, decode_responses};
use sttp_proto::session::{
    PublisherOutput, PublisherSession, PublisherSessionConfig, SubscriberOutput, SubscriberSession,
    SubscriberSessionConfig,
};
use sttp_proto::sic::SignalIndexCache;
use sttp_wire::compact::{self, CompactOptions};
use sttp_wire::packet::DataPacketHeader;
use sttp_wire::tssc::{self, AddOutcome};
use sttp_wire::{Guid, Measurement};

/// "Now" for filter evaluation and sessions: 2026-11-21T00:00:00.1230000Z in ticks.
pub const NOW_TICKS: i64 = 639_308_160_001_230_000;

/// Runtime-ID bound used for TSSC decoders in the wire-level targets: small, so that a fuzzed
/// ID does not spend each execution growing a 1<<20-entry point table (the default bound is
/// exercised when the input asks for it, and by the session targets).
pub const SMALL_MAX_ID: i32 = 1023;

/// A measurement placed in output vectors before decoding, to check nothing is lost or added.
const SENTINEL: Measurement = Measurement {
    runtime_id: -1,
    timestamp: 0,
    value: 0.0,
    flags: 0,
};

const ENCODINGS: [StringEncoding; 4] = [
    StringEncoding::Utf16Le,
    StringEncoding::Utf16Be,
    StringEncoding::Utf8,
    StringEncoding::Ansi,
];

/// Splits fuzz input into pieces: a `u8` length then that many bytes; 0xFF means "the rest".
struct Chunks<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.data.split_first()?;
        let len = if len == 0xFF {
            rest.len()
        } else {
            usize::from(len).min(rest.len())
        };
        let (chunk, rest) = rest.split_at(len);
        self.data = rest;
        Some(chunk)
    }
}

/// Like [`Chunks`] with a `u16 BE` length (frames of a session can exceed 255 bytes); 0xFFFF
/// means "the rest".
struct Frames<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.data.split_first_chunk::<2>()?;
        let len = u16::from_be_bytes(*len);
        let len = if len == u16::MAX {
            rest.len()
        } else {
            usize::from(len).min(rest.len())
        };
        let (chunk, rest) = rest.split_at(len);
        self.data = rest;
        Some(chunk)
    }
}

/// Encodes `frames` in the [`Frames`] layout (used by the seed generator).
pub fn frames_input(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let len = u16::try_from(f.len())
            .unwrap_or(u16::MAX - 1)
            .min(u16::MAX - 1);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(f.get(..usize::from(len)).unwrap_or(f));
    }
    out
}

/// Encodes `chunks` in the [`Chunks`] layout (used by the seed generator).
pub fn chunks_input(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let len = c.len().min(0xFE);
        out.push(len as u8);
        out.extend_from_slice(c.get(..len).unwrap_or(c));
    }
    out
}

/// A tiny deterministic generator for split points.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        self.0 >> 16
    }
}

// ------------------------------------------------------------------------------------------
// frame

/// Command-channel framing (wire.md §1) as the publisher reads it: the input (after two
/// control bytes) is pushed into a [`FrameDecoder`] in pseudo-random pieces, and every frame
/// is decoded as a command in UTF-8 and UTF-16LE. Property: the split does not matter — the
/// frames and the error (if any) equal those of pushing everything at once.
pub fn frame(data: &[u8]) {
    let Some((&[limit_sel, split_seed], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_frame = 1 + usize::from(limit_sel & 0x7F) * 4;
    let make = || {
        let d = FrameDecoder::new(max_frame);
        if limit_sel & 0x80 != 0 {
            d.with_first_frame_limit(sttp_proto::framing::FIRST_COMMAND_FRAME_LIMIT.min(16))
        } else {
            d
        }
    };

    // Reference: everything at once.
    let mut whole = make();
    whole.push(stream);
    let mut expected = Vec::new();
    let expected_err = loop {
        match whole.next_frame() {
            Ok(Some(f)) => expected.push(f),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };

    // Pseudo-random pieces, draining after every push.
    let mut dec = make();
    let mut rng = Lcg(u32::from(split_seed));
    let mut rest = stream;
    let mut got = Vec::new();
    let mut got_err = None;
    let mut pushed = 0usize;
    'outer: while !rest.is_empty() {
        let n = (1 + rng.next() as usize % 23).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        dec.push(piece);
        pushed += n;
        assert!(dec.buffered() <= pushed, "buffered more than was pushed");
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= max_frame, "frame above the limit");
                    got.push(f);
                }
                Ok(None) => break,
                Err(e) => {
                    // The error must repeat.
                    assert_eq!(dec.next_frame(), Err(e.clone()));
                    got_err = Some(e);
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(got, expected, "frames depend on how the stream was split");
    assert_eq!(
        got_err, expected_err,
        "frame error depends on how the stream was split"
    );
    assert_eq!(dec.frames_decoded(), got.len() as u64);

    for f in &got {
        for enc in [StringEncoding::Utf8, StringEncoding::Utf16Le] {
            let _ = Command::decode(f, enc);
        }
    }
}

// ------------------------------------------------------------------------------------------
// command

/// `Command::decode` in every encoding; a decoded command re-encodes to a frame that decodes to
/// the same command.
pub fn command(data: &[u8]) {
    for enc in ENCODINGS {
        let Ok(cmd) = Command::decode(data, enc) else {
            continue;
        };
        let mut framed = Vec::new();
        cmd.encode(enc, &mut framed);
        let (prefix, body) = framed
            .split_first_chunk::<4>()
            .unwrap_or_else(|| panic!("encoded frame shorter than its prefix"));
        assert_eq!(
            u32::from_be_bytes(*prefix) as usize,
            body.len(),
            "frame prefix"
        );
        assert_eq!(body.first().copied(), Some(cmd.code()));
        match Command::decode(body, enc) {
            Ok(again) => assert_eq!(
                again, cmd,
                "re-encoded command decodes differently ({enc:?})"
            ),
            Err(e) => panic!("re-encoded command {cmd:?} does not decode ({enc:?}): {e}"),
        }
        let _ = cmd.name();
    }
}

// ------------------------------------------------------------------------------------------
// response

/// Every payload decoder of `sttp_proto::payloads` and `response::decode_message`, with
/// round trips where the format is lossless.
fn payload_decoders(payload: &[u8]) {
    for enc in ENCODINGS {
        let _ = decode_message(payload, enc);
        if let Ok(n) = Notification::decode(payload, enc) {
            let _ = n.encode(enc);
        }
    }
    if let Ok(t) = payloads::decode_data_start_time(payload) {
        assert_eq!(
            payloads::encode_data_start_time(t).as_slice(),
            payload.get(..8).unwrap_or_default()
        );
    }
    if let Ok(b) = BaseTimes::decode(payload) {
        let mut encoded = Vec::new();
        b.encode(&mut encoded);
        assert_eq!(BaseTimes::decode(&encoded), Ok(b));
        assert_eq!(
            encoded.as_slice(),
            payload.get(..compact::BASE_TIMES_LEN).unwrap_or_default()
        );
    }
    if let Ok(b) = BufferBlock::decode(payload) {
        let mut out = Vec::new();
        b.encode(&mut out);
        assert_eq!(out, payload, "BufferBlock re-encodes differently");
        let _ = b.requires_confirmation();
    }
    if let Ok((seq, flags, rest)) = payloads::split_buffer_block(payload) {
        assert_eq!(rest.len() + payloads::BUFFER_BLOCK_CLEAR_LEN, payload.len());
        let _ = (seq, flags);
    }
    if let Ok(k) = CipherKeys::decode(payload) {
        for set in &k.sets {
            assert!(set.key.len() <= payloads::MAX_CIPHER_FIELD);
            assert!(set.iv.len() <= payloads::MAX_CIPHER_FIELD);
        }
        assert_eq!(CipherKeys::decode(&k.encode()), Ok(k));
    }
}

/// `decode_responses` over a response frame body (the inner lengths must account for every
/// byte), then every payload decoder on each payload and on the raw input.
pub fn response(data: &[u8]) {
    if let Ok(responses) = decode_responses(data) {
        let mut again = Vec::with_capacity(data.len());
        for r in &responses {
            again.push(r.code);
            again.push(r.command);
            let len = i32::try_from(r.payload.len()).unwrap_or_else(|_| panic!("payload over i32"));
            again.extend_from_slice(&len.to_be_bytes());
            again.extend_from_slice(r.payload);
            let _ = response::response_name(r.code);
            payload_decoders(r.payload);
        }
        assert_eq!(again, data, "responses do not account for the frame body");
    }
    payload_decoders(data);
}

// ------------------------------------------------------------------------------------------
// connection_string

/// `ConnectionString::parse` (input as lossy UTF-8) and `SubscriptionSettings`; what parses
/// prints to a string that parses to the same pairs, and settings survive
/// `to_connection_string`.
pub fn connection_string(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(cs) = ConnectionString::parse(&text) else {
        return;
    };
    let printed = cs.to_string();
    match ConnectionString::parse(&printed) {
        Ok(again) => assert_eq!(again, cs, "connection string round trip via {printed:?}"),
        Err(e) => panic!("printed connection string {printed:?} does not parse: {e}"),
    }
    let Ok(s) = SubscriptionSettings::from_connection_string(&cs) else {
        return;
    };
    let printed = s.to_connection_string();
    let again = match SubscriptionSettings::parse(&printed) {
        Ok(a) => a,
        Err(e) => panic!("printed settings {printed:?} do not parse: {e}"),
    };
    assert_eq!(again.filter_expression, s.filter_expression);
    assert_eq!(again.include_time, s.include_time);
    assert_eq!(
        again.use_millisecond_resolution,
        s.use_millisecond_resolution
    );
    assert_eq!(again.request_nan_value_filter, s.request_nan_value_filter);
    assert_eq!(again.processing_interval, s.processing_interval);
    assert_eq!(again.throttled, s.throttled);
    assert_eq!(
        again.publish_interval.to_bits(),
        s.publish_interval.to_bits()
    );
    assert_eq!(again.lag_time.to_bits(), s.lag_time.to_bits());
    assert_eq!(again.lead_time.to_bits(), s.lead_time.to_bits());
    assert_eq!(
        again.enable_time_reasonability_check,
        s.enable_time_reasonability_check
    );
    assert_eq!(
        again.use_local_clock_as_real_time,
        s.use_local_clock_as_real_time
    );
    assert_eq!(again.data_channel, s.data_channel);
    assert_eq!(again.start_time_constraint, s.start_time_constraint);
    assert_eq!(again.stop_time_constraint, s.stop_time_constraint);
    assert_eq!(
        again.time_constraint_parameters,
        s.time_constraint_parameters
    );
    assert_eq!(again.assembly_info, s.assembly_info);
    assert_eq!(again.extra, s.extra);
}

// ------------------------------------------------------------------------------------------
// connection_string_limits

/// Depth of `{` nesting reached in `text` (unbalanced `}` ignored).
fn max_brace_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// `ConnectionString::parse_with` under small limits chosen by the first byte (1–16 keys,
/// 1–8 levels of braces, a length cap from the second byte), then `SubscriptionSettings`
/// (docs/limits.md). Checks that what parses is within the limits, that each limit error names
/// the limit that really was crossed at the offset it reports, and that limits only ever
/// refuse: a text the small limits accept parses to the same pairs under the defaults.
pub fn connection_string_limits(data: &[u8]) {
    let [sel, len_sel, rest @ ..] = data else {
        return;
    };
    if rest.len() > 1 << 16 {
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let limits = ConnStrLimits {
        max_keys: 1 + usize::from(sel & 0x0f),
        max_depth: 1 + usize::from((sel >> 4) & 0x07),
        max_len: if sel & 0x80 != 0 {
            usize::from(*len_sel) * 16
        } else {
            usize::MAX
        },
    };
    let lifted = ConnStrLimits {
        max_keys: usize::MAX,
        max_depth: usize::MAX,
        max_len: usize::MAX,
    };
    match ConnectionString::parse_with(&text, &limits) {
        Ok(cs) => {
            assert!(cs.len() <= limits.max_keys, "{} keys", cs.len());
            assert!(text.len() <= limits.max_len);
            assert!(max_brace_depth(&text) <= limits.max_depth);
            assert_eq!(ConnectionString::parse_with(&text, &lifted), Ok(cs.clone()));
            if let Ok(s) = SubscriptionSettings::from_connection_string(&cs) {
                assert!(s.extra.len() <= cs.len());
                let printed = s.to_connection_string();
                assert!(
                    SubscriptionSettings::parse(&printed).is_ok(),
                    "printed settings {printed:?} do not parse under the default limits"
                );
            }
        }
        Err(ProtoError::ConnectionStringLimit { offset, limit, max }) => match limit {
            ConnStrLimit::Length => {
                assert_eq!(max, limits.max_len);
                assert!(text.len() > max);
            }
            ConnStrLimit::Nesting => {
                assert_eq!(max, limits.max_depth);
                assert_eq!(text.as_bytes().get(offset), Some(&b'{'));
                let prefix = text.get(..=offset).expect("offset is an ASCII brace");
                assert_eq!(max_brace_depth(prefix), max + 1, "{prefix:?}");
            }
            ConnStrLimit::Keys => {
                assert_eq!(max, limits.max_keys);
                // Everything before the offending segment parsed, and held exactly `max` pairs
                // (repeats included), so at most `max` distinct keys.
                let before = text.get(..offset).expect("offset is a segment start");
                let cs = ConnectionString::parse_with(before, &lifted)
                    .unwrap_or_else(|e| panic!("prefix {before:?} before the key limit: {e}"));
                assert!(cs.len() <= max);
                assert!(!cs.is_empty());
            }
        },
        Err(other) => {
            // A syntax error: the limits did not hide it, and lifting them finds an error too.
            assert!(
                ConnectionString::parse_with(&text, &lifted).is_err(),
                "{other} under limits but the text parses without them"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// access_policy

/// `AccessPolicy::from_toml` (input as lossy UTF-8, at most 64 KiB) and, when it loads, each
/// identity's allowed points in the small catalog and the identities a few peers resolve to.
/// Allowed sets are within the catalog; `evaluate` grants exactly when `identify` finds an
/// identity, and that identity matches the peer.
pub fn access_policy(data: &[u8]) {
    if data.len() > 1 << 16 {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let Ok(policy) = AccessPolicy::from_toml(&text) else {
        return;
    };
    let catalog = small_catalog();
    let ctx = EvalContext {
        now_ticks: NOW_TICKS,
    };
    let n = catalog.signals().len();
    for identity in &policy.identities {
        let (allowed, _warnings) = policy.allowed_for(identity, catalog, &ctx);
        assert_eq!(allowed.capacity() as usize, n);
        assert!(allowed.len() <= n);
        assert!(allowed.iter().all(|i| (i as usize) < n));
    }
    let fp = "abcdef0123456789".repeat(4);
    let peers = [
        ("127.0.0.1", None, None),
        ("10.20.3.4", Some(fp.as_str()), None),
        ("10.20.3.4", None, Some("cc-b.example.net")),
        ("::1", None, None),
        ("192.168.1.7", Some(fp.as_str()), Some("north")),
    ];
    for (addr, fp, cn) in peers {
        let who = Who {
            addr: addr.parse().expect("literal address"),
            fingerprint_sha256: fp.map(str::to_owned),
            common_name: cn.map(str::to_owned),
        };
        let found = policy.identify(&who).map(|i| i.name.clone());
        if let Some(i) = policy.identify(&who) {
            assert!(i.matches(&who));
        }
        match policy.evaluate(&who, catalog, &ctx) {
            Ok(grant) => {
                assert_eq!(Some(&grant.identity), found.as_ref());
                assert!(grant.allowed.iter().all(|i| (i as usize) < n));
            }
            Err(_) => assert_eq!(found, None),
        }
    }
}

// ------------------------------------------------------------------------------------------
// filter_expression

fn g(n: u128) -> Guid {
    Guid::from_u128(0x5177_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn active_row(table: &DataTable, cells: &[(&str, Value)]) -> Vec<Value> {
    let mut row = vec![Value::Null; table.columns().len()];
    for (name, v) in cells {
        if let Some(slot) = table.column_index(name).and_then(|i| row.get_mut(i)) {
            *slot = v.clone();
        }
    }
    row
}

/// A small ActiveMeasurements table (five rows, a NULL here and there), built once.
pub fn small_active_measurements() -> &'static DataSet {
    static SET: OnceLock<DataSet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut t = schema::active_measurements();
        let s = |v: &str| Value::String(v.to_owned());
        let rows: [&[(&str, Value)]; 5] = [
            &[
                ("SourceNodeID", Value::Guid(g(1))),
                ("ID", s("PPA:1")),
                ("SignalID", Value::Guid(g(10))),
                ("PointTag", s("DEV1.FREQ")),
                ("SignalReference", s("DEV1-FQ")),
                ("Internal", Value::Int32(1)),
                ("Device", s("DEV1")),
                ("DeviceID", Value::Int32(0)),
                ("FramesPerSecond", Value::Int32(30)),
                ("Protocol", s("STTP")),
                ("ProtocolType", s("Measurement")),
                ("SignalType", s("FREQ")),
                ("EngineeringUnits", s("Hz")),
                ("Adder", Value::Double(0.0)),
                ("Multiplier", Value::Double(1.0)),
                ("Longitude", Value::Decimal(-84.1)),
                ("Latitude", Value::Decimal(35.5)),
                ("Description", s("Frequency")),
                ("UpdatedOn", Value::DateTime(NOW_TICKS)),
            ],
            &[
                ("SourceNodeID", Value::Guid(g(1))),
                ("ID", s("PPA:2")),
                ("SignalID", Value::Guid(g(11))),
                ("PointTag", s("DEV1.VA")),
                ("SignalReference", s("DEV1-PA1")),
                ("Internal", Value::Int32(1)),
                ("Device", s("DEV1")),
                ("SignalType", s("VPHA")),
                ("PhasorID", Value::Int32(5)),
                ("PhasorType", s("V")),
                ("Phase", s("+")),
                ("Adder", Value::Double(0.0)),
                ("Multiplier", Value::Double(1.0)),
                ("UpdatedOn", Value::DateTime(0)),
            ],
            &[
                ("SourceNodeID", Value::Guid(g(1))),
                ("ID", s("PPA:3")),
                ("SignalID", Value::Guid(g(12))),
                ("PointTag", s("DEV1.VM")),
                ("Internal", Value::Int32(0)),
                ("Device", s("DEV1")),
                ("SignalType", s("VPHM")),
                ("EngineeringUnits", s("Volts")),
                ("PhasorID", Value::Int32(5)),
                ("Phase", s("+")),
                ("Multiplier", Value::Double(1.5)),
            ],
            &[
                ("ID", s("GPA:15")),
                ("SignalID", Value::Guid(g(13))),
                ("PointTag", s("GPA_SHELBY:IPHA")),
                ("Device", s("SHELBY")),
                ("SignalType", s("IPHA")),
                ("Phase", s("A")),
                ("Description", s("Grüße 𝄞 'q'")),
            ],
            &[("ID", s("STAT:1")), ("SignalType", s("STAT"))],
        ];
        for cells in rows {
            let row = active_row(&t, cells);
            t.push_row(row);
        }
        DataSet {
            name: "DataSet".to_owned(),
            tables: vec![t],
        }
    })
}

/// `filter::parse` (input as lossy UTF-8) and, when it parses, selection over a small
/// ActiveMeasurements table, as primary and as non-primary table.
pub fn filter_expression(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(expr) = filter::parse(&text) else {
        return;
    };
    let _ = (expr.statement_count(), expr.is_empty(), expr.tables());
    let set = small_active_measurements();
    let ctx = EvalContext {
        now_ticks: NOW_TICKS,
    };
    let Some(table) = set.tables.first() else {
        return;
    };
    for primary in [true, false] {
        if let Ok(rows) = expr.select_table(table, primary, &ctx) {
            assert!(
                rows.iter().all(|&r| r < table.len()),
                "row index out of range"
            );
        }
    }
    if let Ok(selections) = expr.select(set, "ActiveMeasurements", &ctx) {
        for sel in selections {
            let len = set.table(&sel.table).map_or(0, DataTable::len);
            assert!(sel.rows.iter().all(|&r| r < len), "row index out of range");
        }
    }
}

// ------------------------------------------------------------------------------------------
// metadata_xml

/// `parse_xml` on the input, `parse_payload` (gzip sniffing, bounded inflation) too; a parsed
/// DataSet written back as XML parses again and writes the same text (a fixpoint, which also
/// holds for NaN cells).
pub fn metadata_xml(data: &[u8]) {
    if let Ok(set) = xml::parse_xml(data) {
        let text = xml::write_xml(&set);
        match xml::parse_xml(text.as_bytes()) {
            Ok(again) => assert_eq!(
                xml::write_xml(&again),
                text,
                "metadata XML is not a fixpoint"
            ),
            Err(e) => panic!("written metadata does not parse: {e}\n{text}"),
        }
    }
    if sttp_proto::gzip::is_gzip(data) {
        let limits = xml::ParseLimits {
            max_bytes: 1 << 20,
            ..xml::ParseLimits::default()
        };
        let _ = xml::parse_payload(data, &limits);
    }
}

// ------------------------------------------------------------------------------------------
// signal_index_cache

/// `SignalIndexCache::decode_payload` for protocol versions 1–3, every string encoding, with
/// and without compression requested (byte 0 chooses); what decodes re-encodes (compressed
/// when the input was) and decodes to the same cache and slot.
pub fn signal_index_cache(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let version = match sel & 3 {
        0 | 1 => 1 + (sel & 1),
        _ => 3,
    };
    let enc = [
        StringEncoding::Utf8,
        StringEncoding::Utf16Le,
        StringEncoding::Utf16Be,
        StringEncoding::Utf8,
    ][usize::from((sel >> 2) & 3)];
    let compressed = sel & 0x10 != 0;
    let Ok((index, cache)) = SignalIndexCache::decode_payload(payload, version, compressed, enc)
    else {
        return;
    };
    assert!(index <= 1, "cache index {index}");
    for e in &cache.entries {
        assert_eq!(
            cache.get(e.runtime_id).map(|x| x.runtime_id),
            Some(e.runtime_id)
        );
    }
    let body_at = usize::from(version > 1);
    let was_gzip = sttp_proto::gzip::is_gzip(payload.get(body_at..).unwrap_or_default());
    let encoded = cache.encode_payload(version, index, was_gzip, enc);
    match SignalIndexCache::decode_payload(&encoded, version, was_gzip, enc) {
        Ok(again) => assert!(again == (index, cache), "signal index cache round trip"),
        Err(e) => panic!("re-encoded signal index cache does not decode: {e}"),
    }
    // A small inflation limit must fail cleanly, never allocate past it.
    let _ = SignalIndexCache::decode_payload_with_limit(payload, version, compressed, enc, 64);
}

// ------------------------------------------------------------------------------------------
// compact

fn fixed_bases() -> compact::BaseTimes {
    compact::BaseTimes {
        index: 0,
        offsets: [NOW_TICKS, NOW_TICKS + 4_200_000_000],
    }
}

/// Decodes compact measurements with the options and base times byte 0 chooses, and checks
/// the count, then re-encodes each decoded measurement and decodes it again to the same bits.
///
/// Byte 0: bit 0 include_time, bit 1 millisecond resolution, bits 2–3 base times (none, fixed
/// `[T0, T0+4.2e9]`, from the next 20 input bytes via `BaseTimes::decode`, zero bases with
/// index 1), bits 4–5 count (next byte, `usize::MAX`, body length / 9, 0).
pub fn compact(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let opts = CompactOptions {
        include_time: sel & 1 != 0,
        millisecond_resolution: sel & 2 != 0,
    };
    let base = match (sel >> 2) & 3 {
        0 => None,
        1 => Some(fixed_bases()),
        2 => {
            let (head, tail) = rest.split_at(rest.len().min(compact::BASE_TIMES_LEN));
            rest = tail;
            compact::BaseTimes::decode(head).ok()
        }
        _ => Some(compact::BaseTimes {
            index: 1,
            offsets: [0, 0],
        }),
    };
    let count = match (sel >> 4) & 3 {
        0 => match rest.split_first() {
            Some((&n, tail)) => {
                rest = tail;
                usize::from(n)
            }
            None => 0,
        },
        1 => usize::MAX,
        2 => rest.len() / compact::FIXED_LEN,
        _ => 0,
    };
    let mut out = vec![SENTINEL; 1];
    match compact::decode(rest, count, opts, base.as_ref(), &mut out) {
        Ok(()) => assert_eq!(out.len() - 1, count, "decoded count"),
        Err(_) => {
            assert_eq!(out.len(), 1, "a failed decode appended measurements");
            return;
        }
    }
    for m in out.iter().skip(1) {
        let mut buf = Vec::new();
        compact::encode(&mut buf, m, opts, base.as_ref());
        assert_eq!(buf.len(), compact::encoded_len(m, opts, base.as_ref()));
        let mut again = Vec::new();
        if let Err(e) = compact::decode(&buf, 1, opts, base.as_ref(), &mut again) {
            panic!("re-encoded {m:?} does not decode: {e}");
        }
        let back = again.first().copied().unwrap_or(SENTINEL);
        if opts.millisecond_resolution {
            // The millisecond offset form drops sub-millisecond ticks (documented), nothing else.
            let lost = m.timestamp.wrapping_sub(back.timestamp);
            assert!(
                (0..10_000).contains(&lost),
                "compact ms round trip: {m:?} -> {back:?}"
            );
            let back = Measurement {
                timestamp: m.timestamp,
                ..back
            };
            assert!(back.bit_eq(m), "compact ms round trip: {m:?} -> {back:?}");
        } else {
            assert!(back.bit_eq(m), "compact round trip: {m:?} -> {back:?}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// tssc

/// Re-encodes decoded TSSC blocks in one fresh encoder session and decodes them in one fresh
/// decoder session: the measurements must come back bit for bit.
fn tssc_round_trip(blocks: &[Vec<Measurement>], max_id: i32) {
    let mut enc = tssc::Encoder::with_max_id(max_id);
    let mut dec = tssc::Decoder::with_max_id(max_id);
    for block in blocks {
        let mut out = Vec::new();
        enc.begin_block(&mut out, tssc::BLOCK_RESERVE + 64 * block.len());
        for m in block {
            let r = enc.add(&mut out, m.runtime_id, m.timestamp, m.flags, m.value);
            assert_eq!(r, AddOutcome::Added, "re-encoding {m:?}");
        }
        let len = enc.finish_block(&mut out);
        assert_eq!(len, out.len());
        let mut back = Vec::new();
        if let Err(e) = dec.decode_block(&out, &mut back) {
            panic!("re-encoded TSSC block does not decode: {e}");
        }
        assert_eq!(back.len(), block.len(), "TSSC round trip count");
        for (a, b) in back.iter().zip(block) {
            assert!(a.bit_eq(b), "TSSC round trip: {b:?} -> {a:?}");
        }
    }
}

/// A sequence of TSSC packets split from the input (`u8` length + bytes, 0xFF = the rest)
/// goes to a `PacketDecoder` (version, sequence, reset rules), and the same pieces minus their
/// 3-byte header to one continuous `Decoder::decode_block` session. Output stays within 8
/// points per stream byte, failures append nothing, and the decoded blocks survive
/// re-encoding. Byte 0 bits 0–1 = 3 give the packet decoder the default runtime-ID bound
/// (1<<20); everything else uses [`SMALL_MAX_ID`].
pub fn tssc(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // The default bound only for the packet decoder: a point table for 1<<20 IDs is ~100 MB,
    // and four of them (packet decoder, session, re-encoder, re-decoder) take over a second.
    let max_id = SMALL_MAX_ID;
    let packet_max_id = if sel & 3 == 3 {
        tssc::DEFAULT_MAX_ID
    } else {
        SMALL_MAX_ID
    };
    let mut packets = tssc::PacketDecoder::with_max_id(packet_max_id);
    let mut session = tssc::Decoder::with_max_id(max_id);
    let mut blocks = Vec::new();
    let mut in_step = true;
    for chunk in (Chunks { data: rest }) {
        let mut out = vec![SENTINEL; 1];
        match packets.decode(chunk, &mut out) {
            Ok(tssc::PacketOutcome::Decoded) => {
                assert!(
                    out.len() - 1 <= 8 * chunk.len(),
                    "more than 8 points per byte"
                );
            }
            Ok(tssc::PacketOutcome::OutOfSequence { .. }) | Err(_) => {
                assert_eq!(out.len(), 1, "a dropped packet appended measurements");
            }
        }
        let _ = packets.expected();

        let stream = chunk.get(3..).unwrap_or_default();
        let mut out = Vec::new();
        match session.decode_block(stream, &mut out) {
            Ok(()) => {
                assert!(out.len() <= 8 * stream.len(), "more than 8 points per byte");
                if in_step {
                    blocks.push(out);
                }
            }
            Err(_) => {
                assert!(out.is_empty(), "a failed block appended measurements");
                in_step = false;
            }
        }
    }
    tssc_round_trip(&blocks, max_id);
}

// ------------------------------------------------------------------------------------------
// data_packet

/// `DataPacketHeader::decode` of a DataPacket payload, then the body to TSSC or compact as the
/// flags say (compact with the stock options, with and without base times, and without time).
pub fn data_packet(data: &[u8]) {
    let Ok((header, body)) = DataPacketHeader::decode(data) else {
        return;
    };
    assert!(header.cache_index() <= 1);
    assert_eq!(
        header.frame_time.is_some(),
        header.flags & sttp_wire::packet::flags::SYNCHRONIZED != 0
    );
    let mut out = Vec::new();
    if header.is_tssc() {
        let mut dec = tssc::PacketDecoder::with_max_id(SMALL_MAX_ID);
        let _ = dec.decode(body, &mut out);
    } else {
        let count = usize::try_from(header.count).unwrap_or(0);
        let bases = fixed_bases();
        for (opts, base) in [
            (CompactOptions::default(), None),
            (CompactOptions::default(), Some(&bases)),
            (
                CompactOptions {
                    include_time: true,
                    millisecond_resolution: true,
                },
                Some(&bases),
            ),
            (
                CompactOptions {
                    include_time: false,
                    millisecond_resolution: false,
                },
                None,
            ),
        ] {
            out.clear();
            if compact::decode(body, count, opts, base, &mut out).is_ok() {
                assert_eq!(out.len(), count);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// sessions

/// A small publisher catalog (one device, four measurements, one disabled), built once.
pub fn small_catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::new(g(1), small_metadata()))
}

/// The metadata behind [`small_catalog`].
pub fn small_metadata() -> DataSet {
    let device = DeviceRecord {
        node_id: g(1),
        unique_id: g(2),
        acronym: "DEV1".into(),
        name: "Device one".into(),
        original_source: None,
        is_concentrator: false,
        access_id: 7,
        parent_acronym: None,
        protocol_name: "STTP".into(),
        frames_per_second: 30,
        company_acronym: Some("GPA".into()),
        vendor_acronym: None,
        vendor_device_name: None,
        longitude: Some(-84.1),
        latitude: Some(35.5),
        interconnection_name: None,
        contact_list: None,
        enabled: true,
        updated_on: NOW_TICKS,
    };
    let m = |n: u32, acronym: &str, phasor: Option<i32>, enabled: bool| MeasurementRecord {
        device_acronym: "DEV1".into(),
        id: format!("PPA:{n}"),
        signal_id: g(10 + u128::from(n)),
        point_tag: format!("DEV1.{acronym}"),
        alternate_tag: None,
        signal_reference: format!("DEV1-{acronym}"),
        signal_acronym: acronym.into(),
        phasor_source_index: phasor,
        description: format!("signal {n}"),
        internal: n % 2 == 1,
        enabled,
        updated_on: NOW_TICKS,
    };
    MetadataBuilder {
        devices: vec![device],
        measurements: vec![
            m(1, "FREQ", None, true),
            m(2, "VPHM", Some(1), true),
            m(3, "VPHA", Some(1), true),
            m(4, "DFDT", None, false),
        ],
        phasors: vec![PhasorRecord {
            id: 5,
            device_acronym: "DEV1".into(),
            label: "Bus A".into(),
            phasor_type: "V".into(),
            phase: "+".into(),
            destination_phasor_id: None,
            source_index: 1,
            base_kv: Some(500),
            updated_on: NOW_TICKS,
        }],
        schema_version: 1,
    }
    .build()
}

/// The operational modes byte 0 of a session input selects: version 1–3, encoding, TSSC and
/// compression bits.
fn modes_for(sel: u8) -> OperationalModes {
    let version = 1 + (sel & 3) % 3;
    let enc = if sel & 4 != 0 {
        StringEncoding::Utf16Le
    } else {
        StringEncoding::Utf8
    };
    let mut m = OperationalModes::subscriber(version, sel & 8 != 0, enc).0;
    if sel & 0x10 == 0 {
        m &= !0xC000_0000;
    }
    OperationalModes(m)
}

/// Checks one publisher output frame: prefix length, exactly one response with a correct inner
/// length, a response code from wire.md §1.2.
fn check_publisher_frame(frame: &[u8]) {
    let (prefix, body) = frame
        .split_first_chunk::<4>()
        .unwrap_or_else(|| panic!("publisher frame shorter than its prefix"));
    assert_eq!(
        u32::from_be_bytes(*prefix) as usize,
        body.len(),
        "publisher frame prefix"
    );
    match decode_responses(body) {
        Ok(rs) => {
            assert_eq!(rs.len(), 1, "one response per frame");
            for r in rs {
                assert!(
                    response::is_known_response_code(r.code),
                    "publisher sent response code 0x{:02X}",
                    r.code
                );
            }
        }
        Err(e) => panic!("publisher sent a malformed response frame: {e}"),
    }
}

/// A `PublisherSession` against [`small_catalog`] fed frames split from the input (`u16 BE`
/// length + body, 0xFFFF = the rest; an empty frame stands for the 5-second keep-alive). Byte 0
/// bit 7 first feeds a valid DefineOperationalModes chosen by bits 0–4, so that most inputs get
/// past the first command. Outputs are drained after every frame and checked.
pub fn publisher_session(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let catalog = small_catalog();
    let mut session = PublisherSession::new(PublisherSessionConfig {
        subscriber_id: g(99),
        publisher_name: "fuzz".into(),
    });
    let drain = |session: &mut PublisherSession| {
        let mut n = 0usize;
        while let Some(o) = session.poll_output() {
            n += 1;
            assert!(n < 10_000, "unbounded publisher output");
            match o {
                PublisherOutput::Send(frame) => check_publisher_frame(&frame),
                PublisherOutput::Activate {
                    routes,
                    cache_index,
                    ..
                } => {
                    assert!(cache_index <= 1);
                    assert!(routes.len() <= catalog.signals().len());
                    for (global, _) in routes {
                        assert!(
                            catalog.signal(global).is_some(),
                            "route to unknown signal {global}"
                        );
                    }
                }
                _ => {}
            }
        }
    };
    if sel & 0x80 != 0 {
        let mut body = vec![sttp_proto::command::code::DEFINE_OPERATIONAL_MODES];
        body.extend_from_slice(&modes_for(sel).0.to_be_bytes());
        session.handle_frame(&body, catalog, NOW_TICKS);
        drain(&mut session);
    }
    for (i, f) in (Frames { data: rest }).enumerate() {
        if f.is_empty() {
            session.handle_keepalive();
        } else {
            session.handle_frame(f, catalog, NOW_TICKS + i as i64);
        }
        drain(&mut session);
        let _ = (session.phase(), session.modes(), session.is_subscribed());
    }
}

/// A `SubscriberSession` configured by byte 0 (version, encoding, TSSC, compression, automatic
/// metadata request and subscribe), started, then fed response frames split from the input
/// (`u16 BE` length + body, 0xFFFF = the rest). Every command it sends must decode.
pub fn subscriber_session(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let modes = modes_for(sel);
    let config = SubscriberSessionConfig {
        version: modes.version(),
        encoding: modes.encoding(),
        tssc: sel & 8 != 0,
        compress_metadata: sel & 0x10 != 0,
        compress_signal_index_cache: sel & 0x10 != 0,
        auto_request_metadata: sel & 0x20 != 0,
        auto_subscribe: sel & 0x40 != 0,
        metadata_filters: if sel & 0x80 != 0 {
            "FILTER MeasurementDetail WHERE SignalAcronym <> 'STAT'".into()
        } else {
            String::new()
        },
        settings: SubscriptionSettings {
            filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
            ..SubscriptionSettings::default()
        },
    };
    let enc = config.encoding;
    let mut session = SubscriberSession::new(config);
    let drain = |session: &mut SubscriberSession| {
        let mut n = 0usize;
        while let Some(o) = session.poll_output() {
            n += 1;
            assert!(n < 100_000, "unbounded subscriber output");
            if let SubscriberOutput::Send(frame) = o {
                let (prefix, body) = frame
                    .split_first_chunk::<4>()
                    .unwrap_or_else(|| panic!("subscriber frame shorter than its prefix"));
                assert_eq!(u32::from_be_bytes(*prefix) as usize, body.len());
                if let Err(e) = Command::decode(body, enc) {
                    panic!("subscriber sent an undecodable command: {e}");
                }
            }
        }
    };
    session.start();
    drain(&mut session);
    for f in (Frames { data: rest }) {
        session.handle_frame(f);
        drain(&mut session);
    }
    let _ = session.stats();
}

// ------------------------------------------------------------------------------------------
// aead_open

/// Keys of the `aead_open` target: the keyring holds epochs 1 and 2 (seeds are sealed with
/// them), epoch 3's key is never installed.
pub const AEAD_KEYS: [[u8; 32]; 3] = [[0x11; 32], [0x22; 32], [0x33; 32]];

/// Key sets of the legacy CBC decryptor run on the same datagrams.
fn fuzz_legacy_keys() -> sttp_wire::legacy_cbc::LegacyKeys {
    use sttp_wire::legacy_cbc::{CipherKeySet, LegacyKeys};
    LegacyKeys {
        even: CipherKeySet {
            key: [0x44; 32],
            iv: [0x55; 16],
        },
        odd: CipherKeySet {
            key: [0x66; 32],
            iv: [0x77; 16],
        },
        index: 0,
    }
}

/// The UDP datagram parser before decryption (test-plan T11): authenticated datagrams
/// (wire.md §11 extension) through a [`sttp_wire::aead::Keyring`], and the legacy CBC decryptor
/// (wire.md §8). Input: a selector byte (low nibble: grace period in 10 ms; high nibble: ms per
/// step), then [`Chunks`]. A chunk whose first byte is odd is a plaintext that is sealed under
/// the newest authenticated epoch and must open to itself; otherwise the rest of the chunk is
/// opened as a received datagram. Properties: an opened datagram is exactly OVERHEAD bytes
/// longer than its plaintext and under an installed epoch; the counters add up.
pub fn aead_open(data: &[u8]) {
    use sttp_wire::aead::{Keyring, SealingKey, OVERHEAD};
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut ring = Keyring::with_grace(u64::from(sel & 0x0F) * 10);
    ring.install(1, &AEAD_KEYS[0], 0)
        .unwrap_or_else(|e| panic!("install epoch 1: {e}"));
    ring.install(2, &AEAD_KEYS[1], 0)
        .unwrap_or_else(|e| panic!("install epoch 2: {e}"));
    // Sequences far above anything a seed uses, so own datagrams never collide with them.
    let mut sealers = [
        SealingKey::starting_at(1, &AEAD_KEYS[0], 1 << 40),
        SealingKey::starting_at(2, &AEAD_KEYS[1], 1 << 40),
    ];
    let legacy = fuzz_legacy_keys();
    let mut now = 0u64;
    let mut attempts = 0u64;
    let mut sealed = Vec::new();
    for chunk in (Chunks { data: rest }) {
        now += u64::from(sel >> 4);
        let Some((&mode, body)) = chunk.split_first() else {
            continue;
        };
        attempts += 1;
        if mode & 1 == 1 {
            let epoch = ring.newest_authenticated().unwrap_or(1);
            let sealer = &mut sealers[usize::from(epoch == 2)];
            sealed.clear();
            sealer
                .seal_into(body, &mut sealed)
                .unwrap_or_else(|e| panic!("seal: {e}"));
            assert_eq!(sealed.len(), body.len() + OVERHEAD);
            match ring.open(&sealed, now) {
                Ok(o) => assert_eq!((o.plaintext, o.epoch), (body, epoch)),
                Err(e) => panic!("own datagram under epoch {epoch} refused: {e}"),
            }
        } else {
            if let Ok(o) = ring.open(body, now) {
                assert_eq!(o.plaintext.len() + OVERHEAD, body.len());
                assert!(
                    o.epoch == 1 || o.epoch == 2,
                    "opened under epoch {}",
                    o.epoch
                );
            }
            let _ = sttp_wire::legacy_cbc::decrypt_data_packet(body, &legacy);
            let _ = sttp_wire::legacy_cbc::decrypt_buffer_block(body, &legacy);
        }
    }
    let s = ring.stats();
    assert_eq!(s.opened + s.rejected(), attempts);
}

// ------------------------------------------------------------------------------------------
// ext_message

/// Extension messages (wire.md §11) as either side reads them. Input: a selector byte choosing
/// the code (0xD5, 0xE5, or the byte itself), then the user command/response payload.
/// Property: what decodes re-encodes to a payload that decodes the same, byte-identical except
/// for Capabilities lists with cipher ids this side does not know. The payload is also read as
/// a connection string for the `sttpExt` helper.
pub fn ext_message(data: &[u8]) {
    use sttp_proto::ext::{requested_udp_cipher, ExtMessage, USER_COMMAND, USER_RESPONSE};
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let code = match sel % 3 {
        0 => USER_COMMAND,
        1 => USER_RESPONSE,
        _ => sel,
    };
    if let Ok(Some(m)) = ExtMessage::decode(code, payload) {
        let again = m.encode();
        assert_eq!(ExtMessage::decode(code, &again), Ok(Some(m.clone())));
        assert!(
            again == payload || matches!(m, ExtMessage::Capabilities { .. }),
            "{m:?} did not re-encode to its own bytes"
        );
        assert!(m.allowed_in(code));
    }
    if let Ok(text) = std::str::from_utf8(payload) {
        if let Ok(cs) = ConnectionString::parse(text) {
            let _ = requested_udp_cipher(&cs);
        }
    }
}
