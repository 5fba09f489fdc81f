//! Criterion benches of filter expression evaluation (wire.md §7), in rows/s
//! (`Throughput::Elements` = rows scanned).
//!
//! Workload: a 100,000-row ActiveMeasurements table with the wire.md §7 columns, 10,000 devices
//! of 10 signals each (FREQ, DFDT, VPHM/VPHA ×2 phases, IPHM/IPHA, FLAG), so a third of the
//! rows are phasor angles/magnitudes with phases '+' and 'A'.
//! - `in_and_order`: the typical subscription
//!   `FILTER ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') AND Phase='+' ORDER BY PhasorID`;
//! - `all`: `FILTER ActiveMeasurements WHERE True`;
//! - `like`: `FILTER ActiveMeasurements WHERE PointTag LIKE '%:VPHA' AND Device LIKE 'PMU1%'`;
//! - `guid_list`: 100 bare-GUID identifier statements (hash-indexed lookups);
//! - `parse`: parsing the typical subscription (elements = 1 expression).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sttp_proto::filter::{parse, EvalContext};
use sttp_proto::metadata::{DataSet, Value};
use uuid::Uuid;

const ROWS: usize = 100_000;
const TYPES: [(&str, &str, Option<&str>); 10] = [
    ("FREQ", "Hz", None),
    ("DFDT", "", None),
    ("VPHM", "Volts", Some("+")),
    ("VPHA", "Degrees", Some("+")),
    ("VPHM", "Volts", Some("A")),
    ("VPHA", "Degrees", Some("A")),
    ("IPHM", "Amps", Some("+")),
    ("IPHA", "Degrees", Some("+")),
    ("FLAG", "", None),
    ("ALOG", "", None),
];

fn table() -> DataSet {
    let mut t = sttp_proto::metadata::schema::active_measurements();
    let node = Value::Guid(Uuid::from_u128(1));
    for i in 0..ROWS {
        let dev = i / TYPES.len();
        let (ty, units, phase) = TYPES[i % TYPES.len()];
        let device = format!("PMU{dev}");
        let s = |v: &str| Value::String(v.to_owned());
        t.push_row(vec![
            node.clone(),
            s(&format!("PPA:{}", i + 1)),
            Value::Guid(Uuid::from_u128(0x1_0000_0000 + i as u128)),
            s(&format!("{device}:{ty}{}", i % TYPES.len())),
            s(""),
            s(&format!("{device}-{ty}")),
            Value::Int32(1),
            Value::Int32(0),
            s(&device),
            Value::Int32(dev as i32),
            Value::Int32(30),
            s("STTP"),
            s("Measurement"),
            s(ty),
            s(units),
            if phase.is_some() {
                Value::Int32((i % 7) as i32)
            } else {
                Value::Null
            },
            match phase {
                Some(_) if ty.starts_with('V') => s("V"),
                Some(_) => s("I"),
                None => Value::Null,
            },
            phase.map_or(Value::Null, s),
            Value::Double(0.0),
            Value::Double(1.0),
            s("GPA"),
            Value::Decimal(-89.9),
            Value::Decimal(35.1),
            s(&format!("{device} {ty}")),
            Value::DateTime(638_000_000_000_000_000),
        ]);
    }
    let mut set = DataSet::new("Iaon");
    set.tables.push(t);
    set
}

fn bench(c: &mut Criterion) {
    let set = table();
    let ctx = EvalContext {
        now_ticks: 638_000_000_000_000_000,
    };
    let typical =
        "FILTER ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') AND Phase='+' ORDER BY PhasorID";
    let guids = (0..100)
        .map(|i| Uuid::from_u128(0x1_0000_0000 + i * 997).to_string())
        .collect::<Vec<_>>()
        .join(";");
    let mut g = c.benchmark_group("filter");
    g.sample_size(20);
    g.throughput(Throughput::Elements(ROWS as u64));
    for (name, text) in [
        ("in_and_order", typical.to_owned()),
        ("all", "FILTER ActiveMeasurements WHERE True".to_owned()),
        (
            "like",
            "FILTER ActiveMeasurements WHERE PointTag LIKE '%:VPHA3' AND Device LIKE 'PMU1%'"
                .to_owned(),
        ),
        ("guid_list", guids),
    ] {
        let f = parse(&text).expect("bench filter parses");
        let n = f
            .select(&set, "ActiveMeasurements", &ctx)
            .expect("bench filter evaluates");
        assert!(!n.is_empty());
        g.bench_function(name, |b| {
            b.iter(|| black_box(f.select(black_box(&set), "ActiveMeasurements", &ctx)))
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| black_box(parse(black_box(typical)))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
