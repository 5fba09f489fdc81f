//! Bounded work per command (docs/limits.md, issue 16): the hostile inputs a black-box probe
//! found — a 100,000-key connection string, a ~250-byte filter nesting `Replace`, 14,000
//! `ORDER BY` statements, deep nesting — are refused by a named limit or finish inside the step
//! and byte budgets, while the filters real subscribers send (stock `SignalType = 'FREQ'`,
//! thousands of GUIDs in an IN list, tens of thousands of `SOURCE:N` statements) still select.
//!
//! Assertions are on error kinds and budget counters, never on time; each case prints the CPU
//! time it cost (this thread's, from /proc/thread-self/schedstat; wall time where that is
//! missing). Run with `--release --nocapture` for meaningful figures.

use std::time::Instant;
use sttp_proto::catalog::Catalog;
use sttp_proto::connstr::{
    ConnStrLimits, ConnectionString, SubscriptionSettings, MAX_CONNECTION_STRING_DEPTH,
    MAX_CONNECTION_STRING_KEYS,
};
use sttp_proto::error::{ConnStrLimit, ProtoError};
use sttp_proto::filter::{
    self, EvalContext, EvalLimits, EvalUsage, FilterError, FilterLimit, MAX_DEPTH,
    MAX_EXPRESSION_NODES, MAX_FILTER_LENGTH, MAX_SCAN_STATEMENTS,
};
use sttp_proto::metadata::builder::{DeviceRecord, MeasurementRecord, MetadataBuilder};
use uuid::Uuid;

const NODE: Uuid = Uuid::from_u128(0x5e7f_0000_2664_4000_8000_0000_0000_0001);
const CTX: EvalContext = EvalContext { now_ticks: 0 };
/// The demo source's signal types per PMU slot: FREQ, DFDT, three voltage and three current
/// phasors (magnitude, angle), a status word.
fn acronym(slot: u32) -> &'static str {
    match slot {
        0 => "FREQ",
        1 => "DFDT",
        2..=7 if slot.is_multiple_of(2) => "VPHM",
        2..=7 => "VPHA",
        8..=13 if slot.is_multiple_of(2) => "IPHM",
        8..=13 => "IPHA",
        _ => "DIGI",
    }
}

fn guid(i: u32) -> Uuid {
    Uuid::from_u128(0x1234_5678_0000_4000_8000_0000_0000_0000 | u128::from(i))
}

/// A catalog shaped like the demo source's: 15 signals per PMU device, stock signal types.
fn catalog(signals: u32) -> Catalog {
    let mut b = MetadataBuilder {
        schema_version: 1,
        ..MetadataBuilder::default()
    };
    for d in 0..signals.div_ceil(15).max(1) {
        b.devices.push(DeviceRecord {
            node_id: NODE,
            unique_id: Uuid::from_u128(0xd000_0000_0000_4000_8000_0000_0000_0000 | u128::from(d)),
            acronym: format!("PMU{d:05}"),
            name: format!("PMU {d}"),
            original_source: None,
            is_concentrator: false,
            access_id: d as i32 + 1,
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
            updated_on: 0,
        });
    }
    for i in 0..signals {
        let device = format!("PMU{:05}", i / 15);
        b.measurements.push(MeasurementRecord {
            device_acronym: device.clone(),
            id: format!("DEMO:{}", i + 1),
            signal_id: guid(i),
            point_tag: format!("{device}:S{i}"),
            alternate_tag: None,
            signal_reference: format!("{device}-S{i}"),
            signal_acronym: acronym(i % 15).into(),
            phasor_source_index: None,
            description: format!("signal {i} of {device}"),
            internal: true,
            enabled: true,
            updated_on: 0,
        });
    }
    Catalog::new(NODE, b.build())
}

/// This thread's CPU time in ns (wall time when the kernel does not say).
fn cpu_ns() -> u128 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_nanos()
        })
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = cpu_ns();
    let out = f();
    let ms = (cpu_ns() - t0) as f64 / 1e6;
    println!("CPU {ms:9.2} ms  {what}");
    out
}

/// Runs `text` as a Subscribe filter against `cat` under the default budget.
fn select(cat: &Catalog, text: &str) -> (Result<usize, FilterError>, EvalUsage) {
    let expr = match filter::parse(text) {
        Ok(e) => e,
        Err(e) => return (Err(e), EvalUsage::default()),
    };
    // The table the publisher's Subscribe selects from (Catalog::select_signals).
    let am = cat.active_measurements();
    let (r, usage) = expr.select_table_measured(am, true, &CTX, &EvalLimits::DEFAULT);
    (r.map(|rows| rows.len()), usage)
}

fn within_budget(u: &EvalUsage) {
    let l = EvalLimits::DEFAULT;
    // Refused charges are not counted, so the counters never pass the limits.
    assert!(u.steps <= l.max_steps, "{u:?}");
    assert!(u.bytes <= l.max_bytes, "{u:?}");
}

fn limit_of(r: &Result<usize, FilterError>) -> Option<FilterLimit> {
    r.as_ref().err().and_then(FilterError::limit)
}

fn keys(n: usize) -> String {
    (0..n)
        .map(|i| format!("k{i}=1"))
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn connection_string_with_100k_keys_is_refused_at_the_key_limit() {
    let text = keys(100_000);
    assert!(text.len() > 800_000 && text.len() < 1 << 20);
    let e = timed("connstr: 100,000 keys, default limits (refused)", || {
        ConnectionString::parse(&text).unwrap_err()
    });
    let ProtoError::ConnectionStringLimit { offset, limit, max } = e.clone() else {
        panic!("{e:?}")
    };
    assert_eq!(
        (limit, max),
        (ConnStrLimit::Keys, MAX_CONNECTION_STRING_KEYS)
    );
    // The offset is where the first key over the limit starts.
    assert!(text[offset..].starts_with(&format!("k{}=", MAX_CONNECTION_STRING_KEYS)));
    assert!(e.failed_message().contains("key count limit of 1024 keys"));
    // Control: exactly at the limit parses.
    let ok = ConnectionString::parse(&keys(MAX_CONNECTION_STRING_KEYS)).unwrap();
    assert_eq!(ok.len(), MAX_CONNECTION_STRING_KEYS);
}

#[test]
fn connection_string_parse_is_linear_without_the_key_limit() {
    // With the limit lifted, the parse itself must still be cheap: the old per-key scan made
    // 100,000 keys cost 35 s. Counted, not timed: every key present, lookups hit the index.
    let lifted = ConnStrLimits {
        max_keys: usize::MAX,
        ..ConnStrLimits::DEFAULT
    };
    for n in [12_500usize, 25_000, 50_000, 100_000] {
        let text = keys(n);
        let cs = timed(&format!("connstr: {n} keys, key limit lifted"), || {
            ConnectionString::parse_with(&text, &lifted).unwrap()
        });
        assert_eq!(cs.len(), n);
        assert_eq!(cs.get(&format!("K{}", n - 1)), Some("1"));
        let s = timed(&format!("settings: {n} keys into extra"), || {
            SubscriptionSettings::from_connection_string(&cs).unwrap()
        });
        assert_eq!(s.extra.len(), n);
    }
}

#[test]
fn connection_string_nesting_is_limited() {
    let nest = |d: usize| format!("a={}x{}", "{".repeat(d), "}".repeat(d));
    assert!(ConnectionString::parse(&nest(MAX_CONNECTION_STRING_DEPTH)).is_ok());
    let e = ConnectionString::parse(&nest(MAX_CONNECTION_STRING_DEPTH + 1)).unwrap_err();
    assert_eq!(
        e,
        ProtoError::ConnectionStringLimit {
            offset: 2 + MAX_CONNECTION_STRING_DEPTH,
            limit: ConnStrLimit::Nesting,
            max: MAX_CONNECTION_STRING_DEPTH
        }
    );
    // 500,000 open braces: refused at the 33rd, not after scanning.
    let e = timed("connstr: 1 MB of nested braces", || {
        ConnectionString::parse(&nest(500_000)).unwrap_err()
    });
    assert!(matches!(
        e,
        ProtoError::ConnectionStringLimit {
            limit: ConnStrLimit::Nesting,
            ..
        }
    ));
    let e = ConnectionString::parse(&"x".repeat((1 << 20) + 1)).unwrap_err();
    assert!(matches!(
        e,
        ProtoError::ConnectionStringLimit {
            limit: ConnStrLimit::Length,
            ..
        }
    ));
}

/// `Replace` nested `levels` deep, each multiplying the string by 4: ~20 bytes per level.
fn nested_replace(levels: usize) -> String {
    let mut e = "'aaaa'".to_owned();
    for _ in 0..levels {
        e = format!("Replace({e},'a','aaaa')");
    }
    format!("FILTER ActiveMeasurements WHERE Len({e}) > 0")
}

#[test]
fn nested_replace_is_refused_by_the_string_limits() {
    let text = nested_replace(11);
    assert!(text.len() <= 270, "{}", text.len());
    for (name, cat) in [("demo", catalog(150)), ("100k", catalog(100_000))] {
        let (r, usage) = timed(
            &format!("filter: {} B of nested Replace, {name} catalog", text.len()),
            || select(&cat, &text),
        );
        assert!(
            matches!(
                limit_of(&r),
                Some(FilterLimit::StringLength | FilterLimit::Bytes)
            ),
            "{r:?}"
        );
        within_budget(&usage);
    }
    // Control: three levels (256 bytes per row) is an ordinary filter and selects every row.
    let cat = catalog(150);
    assert_eq!(select(&cat, &nested_replace(3)).0, Ok(150));
}

#[test]
fn string_growth_across_rows_hits_the_byte_budget() {
    // Each row's string is small (~8 KB), but 100,000 rows of them is 800 MB of work.
    let big = "x".repeat(8_000);
    let text = format!("FILTER ActiveMeasurements WHERE Len(Replace(PointTag, 'S', '{big}')) > 0");
    let cat = catalog(100_000);
    let (r, usage) = timed("filter: 8 KB Replace per row over 100k rows", || {
        select(&cat, &text)
    });
    assert_eq!(limit_of(&r), Some(FilterLimit::Bytes), "{r:?}");
    within_budget(&usage);
    // Scanning a long literal on every row is string work too.
    let text = format!("FILTER ActiveMeasurements WHERE Contains('{big}', SignalType)");
    let (r, usage) = timed(
        "filter: Contains over an 8 KB literal per row, 100k rows",
        || select(&cat, &text),
    );
    assert_eq!(limit_of(&r), Some(FilterLimit::Bytes), "{r:?}");
    within_budget(&usage);
}

fn order_by_statements(n: usize) -> String {
    (0..n)
        .map(|i| format!("FILTER ActiveMeasurements WHERE ID <> 'X{i}' ORDER BY PointTag DESC"))
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn fourteen_thousand_order_by_statements_are_refused_at_parse() {
    let text = order_by_statements(14_000);
    assert!(text.len() > 900_000 && text.len() <= MAX_FILTER_LENGTH);
    let cat = catalog(150);
    let (r, usage) = timed("filter: 14,000 ORDER BY statements (1 MB)", || {
        select(&cat, &text)
    });
    assert_eq!(limit_of(&r), Some(FilterLimit::Statements), "{r:?}");
    assert_eq!(usage, EvalUsage::default(), "refused before evaluating");
}

#[test]
fn the_most_statements_allowed_stay_within_the_step_budget() {
    let text = order_by_statements(MAX_SCAN_STATEMENTS);
    // Demo catalog: 1,024 scans and sorts of 150 rows fit the budget and select every row once.
    let demo = catalog(150);
    let (r, usage) = timed("filter: 1,024 ORDER BY statements, demo catalog", || {
        select(&demo, &text)
    });
    assert_eq!(r, Ok(150));
    within_budget(&usage);
    assert!(
        usage.steps > 1_024 * 150 * 5,
        "every row of every statement charged: {usage:?}"
    );
    // 100k catalog: the step budget stops it.
    let big = catalog(100_000);
    let (r, usage) = timed("filter: 1,024 ORDER BY statements, 100k catalog", || {
        select(&big, &text)
    });
    assert_eq!(limit_of(&r), Some(FilterLimit::Steps), "{r:?}");
    within_budget(&usage);
    // One ORDER BY over all 100k rows is an ordinary request and passes; its sort is charged.
    let one = "FILTER ActiveMeasurements WHERE True ORDER BY PointTag";
    let (r, usage) = timed("filter: one ORDER BY over 100k rows", || select(&big, one));
    assert_eq!(r, Ok(100_000));
    assert!(usage.steps >= 100_000 * 17, "n·log2 n charged: {usage:?}");
}

#[test]
fn deep_nesting_and_too_many_nodes_are_parse_errors() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = timed("filter: 100,000 nested parentheses", || {
        filter::parse(&deep).unwrap_err()
    });
    assert_eq!(e.limit(), Some(FilterLimit::Depth), "{e}");
    let ok = format!(
        "{}1{} = 1",
        "(".repeat(MAX_DEPTH - 2),
        ")".repeat(MAX_DEPTH - 2)
    );
    assert!(filter::parse(&ok).is_ok());
    // 300,000 one-character IN items in 600 KB.
    let items = vec!["1"; 300_000].join(",");
    let text = format!("ID IN ({items})");
    assert!(text.len() <= MAX_FILTER_LENGTH);
    let e = timed("filter: IN list of 300,000 items", || {
        filter::parse(&text).unwrap_err()
    });
    assert_eq!(e.limit(), Some(FilterLimit::Nodes), "{e}");
    assert!(e
        .to_string()
        .contains(&format!("more than {MAX_EXPRESSION_NODES} nodes")));
    // Control: just under the node limit parses.
    let items = vec!["1"; MAX_EXPRESSION_NODES - 10].join(",");
    assert!(filter::parse(&format!("ID IN ({items})")).is_ok());
}

#[test]
fn real_subscriber_filters_pass_on_a_large_catalog() {
    let cat = catalog(100_000);
    let stock = "FILTER ActiveMeasurements WHERE SignalType='FREQ'";
    let (r, usage) = timed("filter: stock SignalType='FREQ', 100k catalog", || {
        select(&cat, stock)
    });
    assert_eq!(r, Ok(100_000 / 15 + 1));
    assert!(
        usage.steps < EvalLimits::DEFAULT.max_steps / 10,
        "{usage:?}"
    );

    // A subscriber naming points by GUID: as many as fit in 1 MiB, in an IN list.
    let n = 26_000u32;
    let list = (0..n)
        .map(|i| format!("'{}'", guid(i * 3)))
        .collect::<Vec<_>>()
        .join(",");
    let text = format!("FILTER ActiveMeasurements WHERE SignalID IN ({list})");
    assert!(text.len() <= MAX_FILTER_LENGTH);
    let (r, usage) = timed("filter: IN list of 26,000 GUIDs, 100k catalog", || {
        select(&cat, &text)
    });
    assert_eq!(r, Ok(n as usize));
    within_budget(&usage);

    // … as an OR chain (rewritten to a hash lookup: O(1) per row), …
    let text = (0..15_000u32)
        .map(|i| format!("SignalID = {{{}}}", guid(i * 5)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let (r, usage) = timed("filter: OR chain of 15,000 GUIDs, 100k catalog", || {
        select(&cat, &text)
    });
    assert_eq!(r, Ok(15_000));
    assert!(usage.steps < 1_000_000, "{usage:?}");
    // Control: the same chain with one term on another column cannot be rewritten and is
    // refused by the step budget instead of running 45,000 nodes per row.
    let mixed = format!("{text} OR PointTag = 'x'");
    assert_eq!(limit_of(&select(&cat, &mixed).0), Some(FilterLimit::Steps));

    // … and as identifier statements, `{GUID};{GUID};…`.
    let text = (0..n)
        .map(|i| format!("{{{}}}", guid(i * 3)))
        .collect::<Vec<_>>()
        .join(";");
    let (r, _) = timed("filter: 26,000 GUID statements, 100k catalog", || {
        select(&cat, &text)
    });
    assert_eq!(r, Ok(n as usize));

    // 80,000 measurement keys, `DEMO:1;DEMO:2;…` (as many as fit in 1 MiB).
    let text = (1..=80_000)
        .map(|i| format!("DEMO:{i}"))
        .collect::<Vec<_>>()
        .join(";");
    assert!(text.len() <= MAX_FILTER_LENGTH);
    let (r, usage) = timed("filter: 80,000 SOURCE:N statements, 100k catalog", || {
        select(&cat, &text)
    });
    assert_eq!(r, Ok(80_000));
    within_budget(&usage);
    // Through the catalog, as the publisher session calls it.
    let sel = cat.select_signals(stock, &CTX).unwrap();
    assert_eq!(sel.len(), 100_000 / 15 + 1);
}

#[test]
fn worst_single_filter_costs() {
    // The most expensive shapes we know of, each either selecting inside the budget or refused
    // by a limit. The printed CPU figures are the "worst single command" numbers in
    // docs/limits.md.
    let big = catalog(100_000);
    let demo = catalog(150);
    let wide_or = (0..20_000)
        .map(|i| format!("PointTag = 'T{i}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let nested_funcs = format!(
        "FILTER ActiveMeasurements WHERE {}",
        (0..2_000)
            .map(|_| "Len(Lower(Upper(Trim(Description)))) > 3")
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let like = format!(
        "FILTER ActiveMeasurements WHERE Description + '{}' LIKE '{}b'",
        "a".repeat(2_000),
        "%a".repeat(2_000)
    );
    let regex = "FILTER ActiveMeasurements WHERE RegExMatch(PointTag + '(a|b)*c', Description)";
    let sorts = (0..MAX_SCAN_STATEMENTS)
        .map(|_| "FILTER ActiveMeasurements WHERE True ORDER BY Description, PointTag DESC")
        .collect::<Vec<_>>()
        .join(";");
    for (name, text) in [
        ("20,000-term OR chain", wide_or.as_str()),
        ("2,000 nested string calls", nested_funcs.as_str()),
        ("LIKE with 2,000 wildcards", like.as_str()),
        ("regex compiled per row", regex),
        ("1,024 two-term sorts", sorts.as_str()),
        ("nested Replace", nested_replace(11).as_str()),
    ] {
        for (cname, cat) in [("demo", &demo), ("100k", &big)] {
            let (r, usage) = timed(&format!("worst: {name}, {cname} catalog"), || {
                select(cat, text)
            });
            println!("      -> {:?} {usage:?}", r.as_ref().map_err(|e| e.limit()));
            within_budget(&usage);
            if let Err(e) = &r {
                assert!(
                    e.limit().is_some() || e.message().contains("regular expression"),
                    "{name}: {e}"
                );
            }
        }
    }
}
