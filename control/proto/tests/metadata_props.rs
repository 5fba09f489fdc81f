//! Property tests for the metadata XML codec (wire.md §7): the parser never panics on peer bytes,
//! and write → parse is the identity for any well-typed dataset.

use proptest::prelude::*;
use sttp_proto::metadata::xml::{format_datetime, parse_datetime, parse_xml, write_xml, MAX_TICKS};
use sttp_proto::metadata::{Column, DataSet, DataTable, DataType, Value};
use uuid::Uuid;

const TYPES: [DataType; 15] = [
    DataType::String,
    DataType::Boolean,
    DataType::DateTime,
    DataType::Single,
    DataType::Double,
    DataType::Decimal,
    DataType::Guid,
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::UInt8,
    DataType::UInt16,
    DataType::UInt32,
    DataType::UInt64,
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~\t\r\n<>&\"']{0,24}",
        "\\PC{0,12}",
        Just(String::new()),
        Just("]]>&amp;&#xD;".to_owned()),
    ]
}

/// A value of the canonical `Value` variant for `ty` (see `xml::parse_value`), NaN excluded
/// because NaN ≠ NaN.
fn value(ty: DataType) -> BoxedStrategy<Value> {
    let v: BoxedStrategy<Value> = match ty {
        DataType::String => text().prop_map(Value::String).boxed(),
        DataType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        DataType::DateTime => (0..=MAX_TICKS).prop_map(Value::DateTime).boxed(),
        DataType::Single => any::<f32>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Value::Single)
            .boxed(),
        DataType::Double => any::<f64>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Value::Double)
            .boxed(),
        DataType::Decimal => prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            (-1_000_000_000i64..1_000_000_000, 0u32..8)
                .prop_map(|(m, e)| m as f64 / 10f64.powi(e as i32)),
        ]
        .prop_map(Value::Decimal)
        .boxed(),
        DataType::Guid => any::<u128>()
            .prop_map(|u| Value::Guid(Uuid::from_u128(u)))
            .boxed(),
        DataType::Int8 => any::<i8>().prop_map(|v| Value::Int32(v.into())).boxed(),
        DataType::Int16 => any::<i16>().prop_map(|v| Value::Int32(v.into())).boxed(),
        DataType::Int32 => any::<i32>().prop_map(Value::Int32).boxed(),
        DataType::Int64 => any::<i64>().prop_map(Value::Int64).boxed(),
        DataType::UInt8 => any::<u8>().prop_map(|v| Value::Int64(v.into())).boxed(),
        DataType::UInt16 => any::<u16>().prop_map(|v| Value::Int64(v.into())).boxed(),
        DataType::UInt32 => any::<u32>().prop_map(|v| Value::Int64(v.into())).boxed(),
        DataType::UInt64 => any::<u64>().prop_map(Value::UInt64).boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 4 => v].boxed()
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,8}"
}

fn table() -> impl Strategy<Value = DataTable> {
    (
        name(),
        prop::collection::vec((name(), prop::sample::select(TYPES.to_vec())), 1..7),
    )
        .prop_map(|(tname, mut cols)| {
            let mut seen = std::collections::HashSet::new();
            cols.retain(|(n, _)| seen.insert(n.to_ascii_lowercase()));
            (tname, cols)
        })
        .prop_flat_map(|(tname, cols)| {
            let row = cols.iter().map(|(_, t)| value(*t)).collect::<Vec<_>>();
            let columns: Vec<Column> = cols.iter().map(|(n, t)| Column::new(n, *t)).collect();
            prop::collection::vec(row, 0..5).prop_map(move |rows| {
                let mut t = DataTable::new(&tname, columns.clone());
                for r in rows {
                    t.push_row(r);
                }
                t
            })
        })
}

fn dataset() -> impl Strategy<Value = DataSet> {
    (name(), prop::collection::vec(table(), 0..4)).prop_map(|(n, tables)| {
        let mut set = DataSet::new(&n);
        let mut seen = std::collections::HashSet::new();
        set.tables = tables
            .into_iter()
            .filter(|t| seen.insert(t.name.to_ascii_lowercase()))
            .collect();
        set
    })
}

fn seed_document() -> String {
    let mut t = DataTable::new(
        "MeasurementDetail",
        vec![
            Column::new("SignalID", DataType::Guid),
            Column::new("PointTag", DataType::String),
            Column::new("N", DataType::Int32),
            Column::new("UpdatedOn", DataType::DateTime),
        ],
    );
    t.push_row(vec![
        Value::Guid(Uuid::from_u128(7)),
        Value::String("A&B <c>".into()),
        Value::Int32(-5),
        Value::DateTime(638_000_000_000_000_000),
    ]);
    t.push_row(vec![Value::Null, Value::String(String::new())]);
    let mut set = DataSet::new("DataSet");
    set.tables.push(t);
    write_xml(&set)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, &'static str),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop::sample::select(vec![
        "<",
        ">",
        "</",
        "/>",
        "&",
        "&amp;",
        "&#0;",
        "&#xD800;",
        "\"",
        "'",
        "xs:",
        "ext:",
        ":",
        "<xs:element name=\"X\" type=\"xs:int\"/>",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?x?>",
        "<!DOCTYPE d [<!ENTITY e \"x\">]>",
        "&e;",
        "\u{FEFF}",
        "\u{0}",
        "\u{FFFF}",
        "\u{1F600}",
        "<MeasurementDetail>",
        "<N>99999999999</N>",
        "xmlns:xs=\"urn:x\"",
        "xmlns=\"urn:y\"",
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), tokens).prop_map(|(i, t)| Mutation::Insert(i, t)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    let len = doc.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            let i = i % len;
            if let Some(x) = doc.get_mut(i) {
                *x ^= b | 1;
            }
        }
        Mutation::Delete(i, n) => {
            let i = i % len;
            let end = (i + n).min(doc.len());
            if i < end {
                doc.drain(i..end);
            }
        }
        Mutation::Insert(i, t) => {
            let i = i % (doc.len() + 1);
            doc.splice(i..i, t.bytes());
        }
        Mutation::Truncate(i) => doc.truncate(i % len),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_xml(&bytes);
    }

    #[test]
    fn parse_never_panics_on_xmlish_text(s in "[<>/a-zA-Z:=\" &;#x0-9!\\[\\]?-]{0,400}") {
        let _ = parse_xml(s.as_bytes());
    }

    #[test]
    fn parse_never_panics_on_mutated_documents(muts in prop::collection::vec(mutation(), 1..8)) {
        let mut doc = seed_document().into_bytes();
        for m in &muts {
            apply(&mut doc, m);
        }
        let _ = parse_xml(&doc);
    }

    #[test]
    fn write_parse_is_identity(set in dataset()) {
        let text = write_xml(&set);
        let back = parse_xml(text.as_bytes());
        prop_assert_eq!(back, Ok(set), "document:\n{}", text);
    }

    #[test]
    fn datetime_text_round_trips(t in 0..=MAX_TICKS) {
        let s = format_datetime(t);
        prop_assert_eq!(s.len(), 28);
        prop_assert_eq!(parse_datetime(&s), Ok(t));
    }

    #[test]
    fn datetime_offsets_are_applied(t in 864_000_000_000i64..(MAX_TICKS - 864_000_000_000), minutes in -840i64..=840) {
        // Rewrite the UTC text as local time at `minutes` east of UTC.
        let local = format_datetime(t + minutes * 600_000_000);
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.abs();
        let with_offset = format!("{}{}{:02}:{:02}", local.trim_end_matches('Z'), sign, m / 60, m % 60);
        prop_assert_eq!(parse_datetime(&with_offset), Ok(t));
    }

    #[test]
    fn datetime_parse_never_panics(s in "\\PC{0,40}") {
        let _ = parse_datetime(&s);
    }
}
