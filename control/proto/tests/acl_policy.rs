//! The access policy file parser (precise errors) and the precedence rule on hand-picked cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use sttp_proto::acl::{AccessPolicy, PointRef, Who};
use sttp_proto::catalog::Catalog;
use sttp_proto::filter::EvalContext;
use sttp_proto::metadata::builder::{DeviceRecord, MeasurementRecord, MetadataBuilder};
use uuid::Uuid;

const NOW: i64 = 639_308_160_000_000_000;
const CTX: EvalContext = EvalContext { now_ticks: NOW };

fn err(text: &str) -> String {
    AccessPolicy::from_toml(text).unwrap_err().to_string()
}

#[test]
fn errors_name_line_column_and_cause() {
    assert_eq!(
        err("[[identity]]\nname = \"a\"\naddresses = [\"10.0.0.0/8\"]\ndeny_point = [\"X\"]\n"),
        "line 4, column 1: unknown field `deny_point`, expected one of `name`, `fingerprints`, `common_names`, `addresses`, `allow_points`, `deny_points`, `allow_groups`, `deny_groups`, `allow_filters`, `deny_filters`"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\naddresses = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\n"),
        "line 3, column 28: address range: \"10.1.2.3/8\" has host bits set below the /8 prefix (did you mean 10.0.0.0/8?)"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\naddresses = [\"::1\"]\nallow_groups = [\"north\"]\n"),
        "line 4, column 17: group \"north\" is not defined in [groups]"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\n"),
        "line 1, column 1: identity \"a\" matches nobody: give fingerprints, common_names or addresses (addresses = [\"0.0.0.0/0\", \"::/0\"] means anyone)"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\nfingerprints = [\"ab:cd\"]\n"),
        "line 3, column 17: fingerprint \"ab:cd\" is not a SHA-256 fingerprint (64 hex digits, ':' separators allowed)"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\naddresses = [\"::1\"]\n[[identity]]\nname = \"a\"\naddresses = [\"::1\"]\n"),
        "line 5, column 8: identity \"a\" is defined twice"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\naddresses = [\"::1\"]\nallow_filters = [\"SignalType = \"]\n"),
        "line 4, column 18: filter \"SignalType = \": filter expression error at offset 13: expected a value, found end of expression"
    );
    assert_eq!(
        err("[groups.empty]\n"),
        "line 1, column 1: group \"empty\" has neither points nor a filter"
    );
    assert_eq!(
        err("[[identity]]\nname = \"a\"\naddresses = [\"::1\"]\nallow_points = [\" \"]\n"),
        "line 4, column 17: a point must be a GUID or a point tag, not empty"
    );
    // TOML syntax errors keep the toml crate's message, with our position.
    assert!(err("[[identity]\n").starts_with("line 1, column "));
    assert!(err("allow = 3").contains("unknown field `allow`"));
}

#[test]
fn a_full_file_parses() {
    let p = AccessPolicy::from_toml(
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
    )
    .unwrap();
    let g = &p.groups["north"];
    assert_eq!(g.points[0], PointRef::Tag("PMU1:FREQ".into()));
    assert_eq!(
        g.points[1],
        PointRef::Guid("6f1ad81d-9bd4-4d3c-884e-cf2174462a71".parse().unwrap())
    );
    let id = &p.identities[0];
    assert_eq!(id.fingerprints[0], "abcdef0123456789".repeat(4));
    assert_eq!(id.allow.groups, vec!["north".to_owned()]);
    assert_eq!(id.deny.points, vec![PointRef::Tag("PMU1:STATUS".into())]);
    let who = |addr: &str, fp: Option<&str>, cn: Option<&str>| Who {
        addr: addr.parse().unwrap(),
        fingerprint_sha256: fp.map(str::to_owned),
        common_name: cn.map(str::to_owned),
    };
    let fp = "abcdef0123456789".repeat(4);
    assert!(id.matches(&who("10.20.3.4", Some(&fp), None)));
    assert!(id.matches(&who("10.20.3.4", None, Some("CC-B.example.net"))));
    assert!(
        !id.matches(&who("10.21.3.4", Some(&fp), None)),
        "right certificate, wrong network"
    );
    assert!(
        !id.matches(&who("10.20.3.4", None, None)),
        "right network, no certificate"
    );
}

/// PMU1 with FREQ, DFDT, VPHM, VPHA, STAT; PMU2 with FREQ.
fn catalog() -> Arc<Catalog> {
    let mut b = MetadataBuilder {
        schema_version: 1,
        ..MetadataBuilder::default()
    };
    for (d, name) in ["PMU1", "PMU2"].iter().enumerate() {
        b.devices.push(DeviceRecord {
            node_id: Uuid::nil(),
            unique_id: Uuid::from_u128(d as u128 + 1),
            acronym: (*name).into(),
            name: (*name).into(),
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
    }
    let points = [
        ("PMU1", "FREQ"),
        ("PMU1", "DFDT"),
        ("PMU1", "VPHM"),
        ("PMU1", "VPHA"),
        ("PMU1", "STAT"),
        ("PMU2", "FREQ"),
    ];
    for (i, (dev, kind)) in points.iter().enumerate() {
        b.measurements.push(MeasurementRecord {
            device_acronym: (*dev).into(),
            id: format!("PPA:{}", i + 1),
            signal_id: Uuid::from_u128(100 + i as u128),
            point_tag: format!("{dev}.{kind}"),
            alternate_tag: None,
            signal_reference: format!("{dev}-{i}"),
            signal_acronym: (*kind).into(),
            phasor_source_index: None,
            description: String::new(),
            internal: true,
            enabled: true,
            updated_on: NOW,
        });
    }
    Arc::new(Catalog::new(Uuid::from_u128(9), b.build()))
}

fn allowed_tags(policy: &str) -> Vec<String> {
    let p = AccessPolicy::from_toml(policy).unwrap();
    let c = catalog();
    let who = Who {
        addr: "127.0.0.1".parse().unwrap(),
        fingerprint_sha256: None,
        common_name: None,
    };
    let g = p.evaluate(&who, &c, &CTX).unwrap();
    g.allowed
        .iter()
        .map(|i| c.signal(i).unwrap().point_tag.clone())
        .collect()
}

const WHO: &str = "[[identity]]\nname = \"me\"\naddresses = [\"127.0.0.1\"]\n";

#[test]
fn precedence_point_then_group_then_filter_then_group_filter() {
    // Deny by default.
    assert!(allowed_tags(WHO).is_empty());
    // Filter implicit deny beaten by an explicit point allow.
    assert_eq!(
        allowed_tags(&format!(
            "{WHO}allow_filters = [\"Device = 'PMU1'\"]\ndeny_filters = [\"SignalType = 'STAT'\"]\n"
        )),
        ["PMU1.FREQ", "PMU1.DFDT", "PMU1.VPHM", "PMU1.VPHA"]
    );
    assert_eq!(
        allowed_tags(&format!(
            "{WHO}allow_points = [\"pmu1.stat\"]\ndeny_filters = [\"True\"]\n"
        )),
        ["PMU1.STAT"]
    );
    // An explicit group member beats a filter; a group's filter member loses to a filter.
    let groups = "[groups.g]\npoints = [\"PMU2.FREQ\"]\nfilter = \"SignalType = 'VPHM'\"\n";
    assert_eq!(
        allowed_tags(&format!(
            "{groups}{WHO}allow_groups = [\"g\"]\ndeny_filters = [\"True\"]\n"
        )),
        ["PMU2.FREQ"]
    );
    assert_eq!(
        allowed_tags(&format!(
            "{groups}{WHO}deny_groups = [\"g\"]\nallow_filters = [\"SignalType = 'FREQ' OR SignalType = 'VPHM'\"]\n"
        )),
        ["PMU1.FREQ", "PMU1.VPHM"],
        "filter allow beats the group's implicit deny of VPHM, loses to its explicit deny of PMU2.FREQ"
    );
    // Same level: deny wins. Explicit point deny beats a group allow.
    assert_eq!(
        allowed_tags(&format!(
            "{groups}{WHO}allow_groups = [\"g\"]\ndeny_points = [\"00000000-0000-0000-0000-000000000069\"]\n"
        )),
        ["PMU1.VPHM"]
    );
    assert!(allowed_tags(&format!(
        "{WHO}allow_points = [\"PMU2.FREQ\"]\ndeny_points = [\"PMU2.FREQ\"]\n"
    ))
    .is_empty());
}

#[test]
fn identities_are_tried_in_order_and_unknown_peers_are_refused() {
    let p = AccessPolicy::from_toml(
        "[[identity]]\nname = \"lan\"\naddresses = [\"10.0.0.0/8\"]\nallow_filters = [\"True\"]\n\
         [[identity]]\nname = \"host\"\naddresses = [\"10.1.1.1\"]\n",
    )
    .unwrap();
    let c = catalog();
    let who = |a: &str| Who {
        addr: a.parse().unwrap(),
        fingerprint_sha256: None,
        common_name: None,
    };
    let g = p.evaluate(&who("10.1.1.1"), &c, &CTX).unwrap();
    assert_eq!(g.identity, "lan", "first match wins");
    assert_eq!(g.allowed.len(), 6);
    let refused = p.evaluate(&who("192.168.1.1"), &c, &CTX).unwrap_err();
    assert_eq!(
        refused.reason,
        "no access policy identity matches this peer (address 192.168.1.1, certificate none)"
    );
}

#[test]
fn a_filter_that_cannot_be_evaluated_grants_nothing() {
    let p = AccessPolicy::from_toml(&format!(
        "{WHO}allow_points = [\"PMU1.FREQ\", \"NOPE\"]\ndeny_filters = [\"NoSuchColumn = 1\"]\n"
    ))
    .unwrap();
    let c = catalog();
    let who = Who {
        addr: "127.0.0.1".parse().unwrap(),
        fingerprint_sha256: None,
        common_name: None,
    };
    let g = p.evaluate(&who, &c, &CTX).unwrap();
    assert!(g.allowed.is_empty());
    assert!(
        g.warnings
            .iter()
            .any(|w| w
                .starts_with("identity \"me\" gets no points: filter \"NoSuchColumn = 1\" failed")),
        "{:?}",
        g.warnings
    );
    assert!(g
        .warnings
        .contains(&"identity \"me\": point \"NOPE\" is not in the metadata".to_owned()));
}

#[test]
fn restricted_catalog_keeps_global_indices_and_hides_the_rest() {
    let c = catalog();
    let allowed = [1u32, 5].into_iter().collect();
    let view = c.restricted(&allowed);
    assert_eq!(view.signal_index(&Uuid::from_u128(105)), Some(5));
    assert_eq!(view.signal_index(&Uuid::from_u128(100)), None);
    assert!(view.signal(0).is_none());
    assert_eq!(view.signal(1).unwrap().point_tag, "PMU1.DFDT");
    let split = view
        .select_signals_split("FILTER ActiveMeasurements WHERE SignalType = 'FREQ'", &CTX)
        .unwrap();
    assert_eq!(split.allowed, vec![5]);
    assert_eq!(split.refused, vec![0]);
    assert_eq!(view.active_measurements().len(), 2);
    let md = view.metadata().table("MeasurementDetail").unwrap();
    assert_eq!(md.len(), 2);
    assert_eq!(view.metadata().table("DeviceDetail").unwrap().len(), 2);
    let (xml, _) = view.metadata_xml();
    assert!(!xml.contains("PMU1.FREQ") && xml.contains("PMU2.FREQ"));
    // Restricting again intersects.
    let narrower = Arc::new(view).restricted(&[5u32, 0].into_iter().collect());
    assert_eq!(
        narrower.allowed().unwrap().iter().collect::<Vec<_>>(),
        vec![5]
    );
    assert_eq!(narrower.metadata().table("DeviceDetail").unwrap().len(), 1);
}
