//! Connection strings and Subscribe settings (wire.md §3).

use proptest::prelude::*;
use sttp_proto::connstr::{parse_bool, ConnectionString, DataChannel, SubscriptionSettings};
use sttp_proto::error::ProtoError;

/// The sttpapi 0.7.6 default Subscribe string, verbatim from wire.md §3 [verified].
const PYTHON_DEFAULT: &str = "throttled=False;publishInterval=1.000000;includeTime=True;enableTimeReasonabilityCheck=False;lagTime=10.000000;leadTime=5.000000;useLocalClockAsRealTime=False;processingInterval=-1;useMillisecondResolution=False;requestNaNValueFilter=False;assemblyInfo={source=STTP Python Library;version=0.7.6;updatedOn=2026-07-13};filterExpression={FILTER ActiveMeasurements WHERE True}";

#[test]
fn python_default_string_parses_every_key() {
    assert_eq!(PYTHON_DEFAULT.len(), 372);
    let cs = ConnectionString::parse(PYTHON_DEFAULT).unwrap();
    assert_eq!(cs.len(), 12);
    let s = SubscriptionSettings::from_connection_string(&cs).unwrap();
    assert!(!s.throttled);
    assert_eq!(s.publish_interval, 1.0);
    assert!(s.include_time);
    assert!(!s.enable_time_reasonability_check);
    assert_eq!(s.lag_time, 10.0);
    assert_eq!(s.lead_time, 5.0);
    assert!(!s.use_local_clock_as_real_time);
    assert_eq!(s.processing_interval, -1);
    assert!(!s.use_millisecond_resolution);
    assert!(!s.request_nan_value_filter);
    let info = s.assembly_info.as_ref().unwrap();
    assert_eq!(info.get("source"), Some("STTP Python Library"));
    assert_eq!(info.get("version"), Some("0.7.6"));
    assert_eq!(info.get("updatedOn"), Some("2026-07-13"));
    assert_eq!(s.filter_expression, "FILTER ActiveMeasurements WHERE True");
    assert_eq!(s.data_channel, None);
    assert_eq!(s.start_time_constraint, None);
    assert_eq!(s.stop_time_constraint, None);
    assert_eq!(s.time_constraint_parameters, None);
    assert!(s.extra.is_empty());
    // Re-emitting gives the same string apart from the assemblyInfo we carried over.
    assert_eq!(s.to_connection_string(), PYTHON_DEFAULT);
}

#[test]
fn default_settings_look_like_python_with_rust_assembly_info() {
    let s = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    let text = s.to_connection_string();
    assert!(text.starts_with("throttled=False;publishInterval=1.000000;includeTime=True;"));
    assert!(text.contains(";assemblyInfo={source=STTP Rust Library;version="));
    assert!(text.ends_with(";filterExpression={FILTER ActiveMeasurements WHERE True}"));
    assert_eq!(SubscriptionSettings::parse(&text).unwrap(), s);
}

#[test]
fn optional_tails_round_trip() {
    let mut s = SubscriptionSettings {
        filter_expression: "FILTER TOP 5 ActiveMeasurements WHERE SignalType = 'FREQ'; X".into(),
        data_channel: Some(DataChannel { local_port: 9600 }),
        start_time_constraint: Some("*-5m".into()),
        stop_time_constraint: Some("2026-01-01 00:00:00.000".into()),
        time_constraint_parameters: Some("a=b;c={d}".into()),
        throttled: true,
        publish_interval: 0.25,
        processing_interval: 33,
        use_millisecond_resolution: true,
        ..SubscriptionSettings::default()
    };
    s.extra
        .insert("sttpExt", "priority={x=3;y=1};reliability=1");
    s.extra.insert("bufferBlockRetransmissionTimeout", "5.0");
    let text = s.to_connection_string();
    assert!(text.contains(";dataChannel={localport=9600};startTimeConstraint=*-5m;"));
    assert_eq!(SubscriptionSettings::parse(&text).unwrap(), s);
}

#[test]
fn case_insensitive_and_unknown_keys_kept() {
    let s = SubscriptionSettings::parse(
        "FILTEREXPRESSION={FILTER ActiveMeasurements WHERE True};INCLUDETIME=0;Throttled=1;\
         DataChannel={PORT=7000};myKey={a;b};other=1",
    )
    .unwrap();
    assert_eq!(s.filter_expression, "FILTER ActiveMeasurements WHERE True");
    assert!(!s.include_time);
    assert!(s.throttled);
    assert_eq!(s.data_channel, Some(DataChannel { local_port: 7000 }));
    assert_eq!(s.extra.get("MYKEY"), Some("a;b"));
    assert_eq!(s.extra.get("other"), Some("1"));
    assert_eq!(s.extra.len(), 2);
    // Absent enableTimeReasonabilityCheck means cppapi's default, true.
    assert!(s.enable_time_reasonability_check);
}

#[test]
fn bad_values_name_the_key() {
    for (text, key) in [
        ("includeTime=maybe", "includeTime"),
        ("LAGTIME=ten", "LAGTIME"),
        ("leadTime=NaN", "leadTime"),
        ("processingInterval=1.5", "processingInterval"),
        ("processingInterval=99999999999", "processingInterval"),
        ("dataChannel={localport=70000}", "dataChannel"),
        ("dataChannel={interface=0.0.0.0}", "dataChannel"),
        ("throttled=yes", "throttled"),
    ] {
        match SubscriptionSettings::parse(text) {
            Err(ProtoError::BadValue { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    let e = SubscriptionSettings::parse("lagTime=x").unwrap_err();
    assert!(e.failed_message().contains("lagTime"));
}

#[test]
fn empty_values_keep_defaults() {
    let s = SubscriptionSettings::parse("includeTime=;lagTime=;startTimeConstraint=").unwrap();
    assert!(s.include_time);
    assert_eq!(s.lag_time, 10.0);
    assert_eq!(s.start_time_constraint, None);
}

#[test]
fn malformed_assembly_info_is_kept_not_fatal() {
    let s = SubscriptionSettings::parse("assemblyInfo=no equals here").unwrap();
    assert_eq!(s.assembly_info, None);
    assert_eq!(s.extra.get("assemblyInfo"), Some("no equals here"));
}

#[test]
fn nested_braces_deep() {
    let cs = ConnectionString::parse("a={b={c={d=1;e=2};f=3}};g=4").unwrap();
    assert_eq!(cs.get("a"), Some("b={c={d=1;e=2};f=3}"));
    let inner = ConnectionString::parse(cs.get("a").unwrap()).unwrap();
    assert_eq!(inner.get("B"), Some("c={d=1;e=2};f=3"));
    assert_eq!(cs.get("g"), Some("4"));
}

#[test]
fn parse_bool_cases() {
    assert_eq!(parse_bool(" TRUE "), Some(true));
    assert_eq!(parse_bool("tRuE"), Some(true));
    assert_eq!(parse_bool("00"), Some(false));
    assert_eq!(parse_bool("1.0"), None);
}

/// Text whose braces are balanced (every prefix closes no more than it opened).
fn balanced_value() -> impl Strategy<Value = String> {
    let leaf = "[ a-zA-Z0-9;=:.'*<>é𝄞_-]{0,12}";
    leaf.prop_recursive(3, 24, 3, |inner| {
        (inner.clone(), inner.clone(), inner).prop_map(|(a, b, c)| format!("{a}{{{b}}}{c}"))
    })
}

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_]{0,10}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn connection_string_round_trip(pairs in prop::collection::vec((key(), balanced_value()), 0..8)) {
        let mut cs = ConnectionString::new();
        for (k, v) in &pairs {
            cs.insert(k.clone(), v.clone());
        }
        let parsed = ConnectionString::parse(&cs.to_string()).unwrap();
        prop_assert_eq!(parsed, cs);
    }

    #[test]
    fn settings_round_trip(
        filter in balanced_value(),
        flags in prop::array::uniform6(any::<bool>()),
        interval in any::<i32>(),
        secs in prop::array::uniform3(-1e12f64..1e12),
        port in prop::option::of(any::<u16>()),
        start in prop::option::of(balanced_value()),
        extra in prop::collection::vec((key(), balanced_value()), 0..3),
    ) {
        let mut s = SubscriptionSettings {
            filter_expression: filter,
            include_time: flags[0],
            use_millisecond_resolution: flags[1],
            request_nan_value_filter: flags[2],
            throttled: flags[3],
            enable_time_reasonability_check: flags[4],
            use_local_clock_as_real_time: flags[5],
            processing_interval: interval,
            publish_interval: secs[0],
            lag_time: secs[1],
            lead_time: secs[2],
            data_channel: port.map(|local_port| DataChannel { local_port }),
            start_time_constraint: start.filter(|v| !v.trim().is_empty()),
            ..SubscriptionSettings::default()
        };
        for (k, v) in extra {
            // Extra keys must not shadow the interpreted ones.
            s.extra.insert(format!("x_{k}"), v);
        }
        let parsed = SubscriptionSettings::parse(&s.to_connection_string()).unwrap();
        prop_assert_eq!(parsed, s);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,64}") {
        if let Ok(cs) = ConnectionString::parse(&text) {
            let _ = SubscriptionSettings::from_connection_string(&cs);
            // Whatever parsed, its rendering parses to the same map.
            prop_assert_eq!(ConnectionString::parse(&cs.to_string()).unwrap(), cs);
        }
    }
}
