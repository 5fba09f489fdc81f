//! T8 (test-plan.md): filtered points never leak. Random metadata, a random access policy
//! (explicit point allows/denies, groups by list and by filter, filter rules) written as a policy
//! file, a random subscription filter; an oracle written straight from the precedence rule
//! computes allowed ∩ requested, and a `PublisherSession` serving the restricted catalog must put
//! exactly that set in its signal index cache and routes, list exactly the refused rest as
//! unauthorized, say how many were refused, and return no metadata row of a denied point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use sttp_proto::acl::{AccessPolicy, Who};
use sttp_proto::catalog::Catalog;
use sttp_proto::command::Command;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::filter::EvalContext;
use sttp_proto::metadata::builder::{
    DeviceRecord, MeasurementRecord, MetadataBuilder, PhasorRecord,
};
use sttp_proto::metadata::xml::parse_payload;
use sttp_proto::metadata::ParseLimits;
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::response::decode_responses;
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use sttp_proto::sic::SignalIndexCache;
use uuid::Uuid;

const NOW: i64 = 639_308_160_000_000_000;
const KINDS: [&str; 6] = ["FREQ", "DFDT", "VPHM", "VPHA", "IPHM", "STAT"];
const DEVICES: [&str; 3] = ["DEV0", "DEV1", "DEV2"];

/// One generated measurement.
#[derive(Debug, Clone)]
struct M {
    device: usize,
    kind: usize,
    enabled: bool,
}

impl M {
    fn guid(i: usize) -> Uuid {
        Uuid::from_u128(0x5177_0000 + i as u128)
    }
    fn tag(&self, i: usize) -> String {
        format!("{}:{}{i}", DEVICES[self.device], KINDS[self.kind])
    }
}

/// Filter expressions with the predicate they mean, so the oracle never runs the filter engine.
/// What a filter means for a measurement and its point tag.
type Meaning = fn(&M, &str) -> bool;

const FILTERS: [(&str, Meaning); 7] = [
    ("SignalType = 'FREQ'", |m, _| KINDS[m.kind] == "FREQ"),
    ("SignalType IN ('VPHM', 'VPHA')", |m, _| {
        matches!(KINDS[m.kind], "VPHM" | "VPHA")
    }),
    ("Device = 'dev1'", |m, _| m.device == 1),
    ("PointTag LIKE '%1'", |_, tag| tag.ends_with('1')),
    (
        "FILTER ActiveMeasurements WHERE SignalType <> 'STAT'",
        |m, _| KINDS[m.kind] != "STAT",
    ),
    ("True", |_, _| true),
    ("Device = 'DEV2' AND SignalType = 'STAT'", |m, _| {
        m.device == 2 && KINDS[m.kind] == "STAT"
    }),
];

/// A point reference as written in the policy: measurement index, by tag (lowercased or not)
/// or by GUID.
#[derive(Debug, Clone)]
struct Ref {
    index: usize,
    how: u8,
}

impl Ref {
    fn text(&self, ms: &[M]) -> String {
        let i = self.index % ms.len();
        match self.how % 3 {
            0 => M::guid(i).to_string(),
            1 => ms[i].tag(i),
            _ => ms[i].tag(i).to_lowercase(),
        }
    }
}

#[derive(Debug, Clone)]
struct GroupSpec {
    points: Vec<Ref>,
    filter: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct Side {
    points: Vec<Ref>,
    groups: Vec<usize>,
    filters: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Sub {
    /// A filter from FILTERS with an optional TOP.
    Filter { filter: usize, top: Option<usize> },
    /// Identifier statements: GUIDs or measurement keys.
    Ids(Vec<Ref>),
}

#[derive(Debug, Clone)]
struct Case {
    ms: Vec<M>,
    groups: Vec<GroupSpec>,
    allow: Side,
    deny: Side,
    sub: Sub,
}

fn refs() -> impl Strategy<Value = Vec<Ref>> {
    prop::collection::vec(
        (0usize..64, 0u8..3).prop_map(|(index, how)| Ref { index, how }),
        0..5,
    )
}

fn side(groups: usize) -> impl Strategy<Value = Side> {
    (
        refs(),
        prop::collection::vec(0..groups.max(1), 0..3),
        prop::collection::vec(0..FILTERS.len(), 0..3),
    )
        .prop_map(move |(points, g, filters)| Side {
            points,
            groups: if groups == 0 { Vec::new() } else { g },
            filters,
        })
}

fn case() -> impl Strategy<Value = Case> {
    let ms = prop::collection::vec(
        (0..DEVICES.len(), 0..KINDS.len(), prop::bool::weighted(0.9)).prop_map(
            |(device, kind, enabled)| M {
                device,
                kind,
                enabled,
            },
        ),
        1..28,
    );
    let groups = prop::collection::vec(
        (refs(), prop::option::of(0..FILTERS.len()))
            .prop_map(|(points, filter)| GroupSpec { points, filter })
            .prop_filter("a group needs members", |g| {
                !g.points.is_empty() || g.filter.is_some()
            }),
        0..4,
    );
    let sub = prop_oneof![
        (0..FILTERS.len(), prop::option::of(0usize..10))
            .prop_map(|(filter, top)| Sub::Filter { filter, top }),
        refs().prop_map(Sub::Ids),
    ];
    (ms, groups, sub).prop_flat_map(|(ms, groups, sub)| {
        let n = groups.len();
        (side(n), side(n)).prop_map(move |(allow, deny)| Case {
            ms: ms.clone(),
            groups: groups.clone(),
            allow,
            deny,
            sub: sub.clone(),
        })
    })
}

fn metadata(ms: &[M]) -> MetadataBuilder {
    let mut b = MetadataBuilder {
        schema_version: 1,
        ..MetadataBuilder::default()
    };
    for (d, acronym) in DEVICES.iter().enumerate() {
        b.devices.push(DeviceRecord {
            node_id: Uuid::nil(),
            unique_id: Uuid::from_u128(d as u128 + 1),
            acronym: (*acronym).into(),
            name: format!("Device {d}"),
            original_source: None,
            is_concentrator: false,
            access_id: d as i32,
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
        for source_index in 1..=3 {
            b.phasors.push(PhasorRecord {
                id: (d * 10 + source_index) as i32,
                device_acronym: (*acronym).into(),
                label: format!("{acronym} phasor {source_index}"),
                phasor_type: "V".into(),
                phase: "+".into(),
                destination_phasor_id: None,
                source_index: source_index as i32,
                base_kv: None,
                updated_on: NOW,
            });
        }
    }
    for (i, m) in ms.iter().enumerate() {
        let phasor = matches!(KINDS[m.kind], "VPHM" | "VPHA" | "IPHM");
        b.measurements.push(MeasurementRecord {
            device_acronym: DEVICES[m.device].into(),
            id: format!("PPA:{}", i + 1),
            signal_id: M::guid(i),
            point_tag: m.tag(i),
            alternate_tag: None,
            signal_reference: format!("{}-{i}", DEVICES[m.device]),
            signal_acronym: KINDS[m.kind].into(),
            phasor_source_index: phasor.then_some((i % 3 + 1) as i32),
            description: String::new(),
            internal: true,
            enabled: m.enabled,
            updated_on: NOW,
        });
    }
    b
}

fn quoted(list: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = list.map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// The policy file: a decoy identity (another network, allowed everything) first, then ours.
fn policy_text(c: &Case) -> String {
    let mut t = String::new();
    for (g, spec) in c.groups.iter().enumerate() {
        t += &format!("[groups.g{g}]\n");
        if !spec.points.is_empty() {
            t += &format!(
                "points = {}\n",
                quoted(spec.points.iter().map(|r| r.text(&c.ms)))
            );
        }
        if let Some(f) = spec.filter {
            t += &format!("filter = \"{}\"\n", FILTERS[f].0);
        }
    }
    t += "[[identity]]\nname = \"decoy\"\naddresses = [\"10.0.0.0/8\"]\nallow_filters = [\"True\"]\n";
    t += "[[identity]]\nname = \"sub\"\naddresses = [\"127.0.0.0/8\", \"::1\"]\n";
    for (name, s) in [("allow", &c.allow), ("deny", &c.deny)] {
        t += &format!(
            "{name}_points = {}\n{name}_groups = {}\n{name}_filters = {}\n",
            quoted(s.points.iter().map(|r| r.text(&c.ms))),
            quoted(s.groups.iter().map(|g| format!("g{g}"))),
            quoted(s.filters.iter().map(|f| FILTERS[*f].0.to_owned())),
        );
    }
    t
}

/// The precedence rule, from the issue text: point explicit, group explicit, filter implicit,
/// group implicit; deny beats allow within a level; deny by default.
fn oracle_allowed(c: &Case, i: usize) -> bool {
    let m = &c.ms[i];
    let tag = m.tag(i);
    let names = |refs: &[Ref]| refs.iter().any(|r| r.index % c.ms.len() == i);
    let level = |s: &Side, l: u8| -> bool {
        match l {
            1 => names(&s.points),
            2 => s.groups.iter().any(|g| names(&c.groups[*g].points)),
            3 => s.filters.iter().any(|f| (FILTERS[*f].1)(m, &tag)),
            _ => s
                .groups
                .iter()
                .any(|g| c.groups[*g].filter.is_some_and(|f| (FILTERS[f].1)(m, &tag))),
        }
    };
    for l in 1..=4 {
        if level(&c.deny, l) {
            return false;
        }
        if level(&c.allow, l) {
            return true;
        }
    }
    false
}

/// The subscription filter text and the measurement indices it requests.
fn subscription(c: &Case) -> (String, BTreeSet<usize>) {
    let active: Vec<usize> = (0..c.ms.len()).filter(|i| c.ms[*i].enabled).collect();
    match &c.sub {
        Sub::Filter { filter, top } => {
            let (text, pred) = FILTERS[*filter];
            let mut hits = active
                .into_iter()
                .filter(|i| pred(&c.ms[*i], &c.ms[*i].tag(*i)));
            let text = format!(
                "FILTER {}ActiveMeasurements WHERE {}",
                top.map(|n| format!("TOP {n} ")).unwrap_or_default(),
                text.trim_start_matches("FILTER ActiveMeasurements WHERE ")
            );
            let set = match top {
                Some(n) => hits.by_ref().take(*n).collect(),
                None => hits.collect(),
            };
            (text, set)
        }
        Sub::Ids(refs) => {
            let mut statements = Vec::new();
            let mut set = BTreeSet::new();
            for r in refs {
                let i = r.index % c.ms.len();
                statements.push(if r.how % 3 == 0 {
                    M::guid(i).to_string()
                } else {
                    // Measurement key (`"TAG"` statements allow no ':' in tags).
                    format!("PPA:{}", i + 1)
                });
                if c.ms[i].enabled {
                    set.insert(i);
                }
            }
            (statements.join(";"), set)
        }
    }
}

fn frame(c: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(StringEncoding::Utf8, &mut out);
    out.split_off(4)
}

/// Everything the session sent or did, decoded.
#[derive(Default)]
struct Seen {
    caches: Vec<SignalIndexCache>,
    succeeded: Vec<(u8, Vec<u8>)>,
    failed: Vec<String>,
    routes: Vec<Vec<(u32, i32)>>,
}

fn drain(s: &mut PublisherSession, seen: &mut Seen) {
    while let Some(o) = s.poll_output() {
        match o {
            PublisherOutput::Send(bytes) => {
                for r in decode_responses(&bytes[4..]).unwrap() {
                    match r.code {
                        0x83 => {
                            let (_, cache) = SignalIndexCache::decode_payload(
                                r.payload,
                                2,
                                false,
                                StringEncoding::Utf8,
                            )
                            .unwrap();
                            seen.caches.push(cache);
                        }
                        0x80 => seen.succeeded.push((r.command, r.payload.to_vec())),
                        0x81 => seen
                            .failed
                            .push(String::from_utf8_lossy(r.payload).into_owned()),
                        _ => {}
                    }
                }
            }
            PublisherOutput::Activate { routes, .. } => seen.routes.push(routes),
            _ => {}
        }
    }
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    let text = policy_text(c);
    let policy =
        AccessPolicy::from_toml(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    let full = Arc::new(Catalog::new(Uuid::from_u128(9), metadata(&c.ms).build()));
    let who = Who {
        addr: "127.0.0.1".parse().unwrap(),
        fingerprint_sha256: None,
        common_name: None,
    };
    let grant = policy
        .evaluate(&who, &full, &EvalContext { now_ticks: NOW })
        .map_err(|e| TestCaseError::fail(e.reason))?;
    prop_assert_eq!(&grant.identity, "sub");
    let view = full.restricted(&grant.allowed);

    let allowed: BTreeSet<usize> = (0..c.ms.len())
        .filter(|i| c.ms[*i].enabled && oracle_allowed(c, *i))
        .collect();
    let allowed_guids: BTreeSet<Uuid> = allowed.iter().map(|i| M::guid(*i)).collect();
    let (filter, requested) = subscription(c);
    let expect: BTreeSet<Uuid> = requested
        .intersection(&allowed)
        .map(|i| M::guid(*i))
        .collect();
    let expect_refused: BTreeSet<Uuid> = requested
        .difference(&allowed)
        .map(|i| M::guid(*i))
        .collect();

    let mut s = PublisherSession::new(PublisherSessionConfig {
        subscriber_id: Uuid::from_u128(7),
        publisher_name: "test".into(),
    });
    let mut seen = Seen::default();
    let modes = OperationalModes::subscriber(2, false, StringEncoding::Utf8);
    for cmd in [
        Command::DefineOperationalModes(modes),
        Command::MetadataRefresh { filters: None },
        Command::Subscribe {
            flags: 2,
            connection_string: format!("filterExpression={{{filter}}}"),
        },
        Command::ConfirmUpdateSignalIndexCache,
    ] {
        s.handle_frame(&frame(&cmd), &view, NOW);
        drain(&mut s, &mut seen);
    }
    prop_assert!(seen.failed.is_empty(), "failed: {:?}", seen.failed);

    // Metadata: exactly the allowed measurements, only their devices and phasors.
    let (_, xml) = seen
        .succeeded
        .iter()
        .find(|(cmd, _)| *cmd == 0x01)
        .expect("metadata reply");
    let set = parse_payload(xml, &ParseLimits::default()).unwrap();
    let md = set.table("MeasurementDetail").unwrap();
    let rows: BTreeSet<Uuid> = (0..md.len())
        .map(|r| md.value_by_name(r, "SignalID").as_guid().unwrap())
        .collect();
    prop_assert_eq!(&rows, &allowed_guids, "MeasurementDetail rows");
    let devices: BTreeSet<String> = allowed
        .iter()
        .map(|i| DEVICES[c.ms[*i].device].to_owned())
        .collect();
    let dd = set.table("DeviceDetail").unwrap();
    let dev_rows: BTreeSet<String> = (0..dd.len())
        .map(|r| dd.value_by_name(r, "Acronym").as_str().unwrap().to_owned())
        .collect();
    prop_assert_eq!(dev_rows, devices, "DeviceDetail rows");
    let pd = set.table("PhasorDetail").unwrap();
    for r in 0..pd.len() {
        let dev = pd.value_by_name(r, "DeviceAcronym").as_str().unwrap();
        let idx = pd.value_by_name(r, "SourceIndex").as_i64().unwrap();
        prop_assert!(
            allowed.iter().any(|i| DEVICES[c.ms[*i].device] == dev
                && matches!(KINDS[c.ms[*i].kind], "VPHM" | "VPHA" | "IPHM")
                && (i % 3 + 1) as i64 == idx),
            "phasor {dev}/{idx} of no allowed measurement"
        );
    }
    let am = view.active_measurements();
    let am_rows: BTreeSet<Uuid> = (0..am.len())
        .map(|r| am.value_by_name(r, "SignalID").as_guid().unwrap())
        .collect();
    prop_assert_eq!(&am_rows, &allowed_guids, "ActiveMeasurements rows");

    // The subscription: cache, unauthorized list, routes, message.
    prop_assert_eq!(seen.caches.len(), 1);
    let cache = &seen.caches[0];
    let got: BTreeSet<Uuid> = cache.entries.iter().map(|e| e.signal_id).collect();
    prop_assert_eq!(got.len(), cache.entries.len(), "duplicate cache entries");
    prop_assert_eq!(
        &got,
        &expect,
        "cache = allowed ∩ requested; filter {}",
        filter
    );
    let unauthorized: BTreeSet<Uuid> = cache.unauthorized.iter().copied().collect();
    prop_assert_eq!(&unauthorized, &expect_refused, "unauthorized list");
    prop_assert_eq!(seen.routes.len(), 1);
    let routed: BTreeSet<Uuid> = seen.routes[0]
        .iter()
        .map(|(g, _)| full.signal(*g).unwrap().signal_id)
        .collect();
    prop_assert_eq!(&routed, &expect, "routes");
    let (_, msg) = seen
        .succeeded
        .iter()
        .find(|(cmd, _)| *cmd == 0x02)
        .expect("subscribe reply");
    let msg = String::from_utf8_lossy(msg);
    let n = expect_refused.len();
    let note = match n {
        0 => None,
        1 => Some("1 requested point was refused by access control.".to_owned()),
        n => Some(format!(
            "{n} requested points were refused by access control."
        )),
    };
    match note {
        Some(note) => prop_assert!(msg.ends_with(&note), "message {msg:?} lacks {note:?}"),
        None => prop_assert!(!msg.contains("refused"), "message {msg:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("ACL_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn subscribers_receive_exactly_allowed_and_requested(c in case()) {
        run(&c)?;
    }
}
