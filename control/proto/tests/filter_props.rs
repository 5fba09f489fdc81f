//! Property tests for the filter expression language (wire.md §7): peers send these bytes, so
//! parsing and evaluation must never panic or hang, whatever the input.

use proptest::prelude::*;
use sttp_proto::filter::{parse, EvalContext};
use sttp_proto::metadata::{Column, DataSet, DataTable, DataType, Value};
use uuid::Uuid;

fn table() -> DataSet {
    use DataType::*;
    let mut t = DataTable::new(
        "ActiveMeasurements",
        vec![
            Column::new("ID", String),
            Column::new("SignalID", Guid),
            Column::new("PointTag", String),
            Column::new("DeviceID", Int32),
            Column::new("Big", Int64),
            Column::new("Adder", Double),
            Column::new("Latitude", Decimal),
            Column::new("Enabled", Boolean),
            Column::new("UpdatedOn", DateTime),
        ],
    );
    for i in 0..6i32 {
        let null = i % 3 == 2;
        t.push_row(vec![
            Value::String(format!("PPA:{i}")),
            if null {
                Value::Null
            } else {
                Value::Guid(Uuid::from_u128(i as u128))
            },
            Value::String(format!("Tag.{i}")),
            if null {
                Value::Null
            } else {
                Value::Int32(i - 3)
            },
            Value::Int64(i64::MAX - i64::from(i)),
            Value::Double(f64::from(i) / 2.0),
            if null {
                Value::Null
            } else {
                Value::Decimal(35.5)
            },
            Value::Boolean(i % 2 == 0),
            if null {
                Value::Null
            } else {
                Value::DateTime(638_000_000_000_000_000 + i64::from(i))
            },
        ]);
    }
    let mut set = DataSet::new("DataSet");
    set.tables.push(t);
    set
}

fn run(set: &DataSet, text: &str) {
    if let Ok(f) = parse(text) {
        let _ = f.select(
            set,
            "ActiveMeasurements",
            &EvalContext {
                now_ticks: 638_000_000_000_000_000,
            },
        );
        let _ = f.tables();
    }
}

const TOKENS: &[&str] = &[
    "FILTER",
    "TOP",
    "WHERE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "BINARY",
    "AND",
    "OR",
    "NOT",
    "IS",
    "NULL",
    "IN",
    "LIKE",
    "XOR",
    "TRUE",
    "FALSE",
    "ActiveMeasurements",
    "ID",
    "SignalID",
    "PointTag",
    "DeviceID",
    "Big",
    "Adder",
    "Latitude",
    "Enabled",
    "UpdatedOn",
    "Nope",
    "[PointTag]",
    "`ID`",
    "(",
    ")",
    ",",
    ";",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "~",
    "!",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "==",
    "===",
    "!=",
    "!==",
    "<>",
    "&&",
    "||",
    "0",
    "1",
    "-1",
    "2147483648",
    "0x7FFFFFFF",
    "1.5",
    "1e308",
    "'x'",
    "'PPA:1'",
    "''",
    "'%'",
    "'Tag%'",
    "#2024-01-01#",
    "#x#",
    "PPA:1",
    "\"Tag.1\"",
    "{00000000-0000-0000-0000-000000000001}",
    "'00000000-0000-0000-0000-000000000001'",
    "--c\n",
    "/*c*/",
    "Abs",
    "Ceiling",
    "Coalesce",
    "Convert",
    "Contains",
    "DateAdd",
    "DateDiff",
    "DatePart",
    "EndsWith",
    "Floor",
    "IIf",
    "IndexOf",
    "IsDate",
    "IsInteger",
    "IsGuid",
    "IsNull",
    "IsNumeric",
    "LastIndexOf",
    "Len",
    "Lower",
    "MaxOf",
    "MinOf",
    "Now",
    "NthIndexOf",
    "Power",
    "RegExMatch",
    "RegExVal",
    "Replace",
    "Reverse",
    "Round",
    "Split",
    "Sqrt",
    "StartsWith",
    "StrCount",
    "StrCmp",
    "SubStr",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "Upper",
    "UtcNow",
    "'Day'",
    "'Year'",
    "'Int32'",
    "'String'",
    "'Guid'",
    "'.*'",
];

/// A random well-formed expression over the table's columns, literals, operators and functions.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("ID".to_owned()),
        Just("SignalID".to_owned()),
        Just("PointTag".to_owned()),
        Just("DeviceID".to_owned()),
        Just("Big".to_owned()),
        Just("Adder".to_owned()),
        Just("Latitude".to_owned()),
        Just("Enabled".to_owned()),
        Just("UpdatedOn".to_owned()),
        Just("NULL".to_owned()),
        Just("TRUE".to_owned()),
        Just("'Tag%'".to_owned()),
        Just("'2024-01-01'".to_owned()),
        Just("#2024-01-01#".to_owned()),
        Just("{00000000-0000-0000-0000-000000000001}".to_owned()),
        any::<i32>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (-1e6f64..1e6).prop_map(|v| format!("{v:.3}")),
        "[a-z%*]{0,6}".prop_map(|s| format!("'{s}'")),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let binop = prop_oneof![
            Just("*"),
            Just("/"),
            Just("%"),
            Just("+"),
            Just("-"),
            Just("<<"),
            Just(">>"),
            Just("&"),
            Just("|"),
            Just("^"),
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">="),
            Just("="),
            Just("==="),
            Just("<>"),
            Just("!=="),
            Just("AND"),
            Just("OR"),
            Just("LIKE"),
            Just("NOT LIKE BINARY"),
        ];
        let func = prop_oneof![
            Just("Abs"),
            Just("Ceiling"),
            Just("Coalesce"),
            Just("Convert"),
            Just("Contains"),
            Just("DateAdd"),
            Just("DateDiff"),
            Just("DatePart"),
            Just("EndsWith"),
            Just("Floor"),
            Just("IIf"),
            Just("IndexOf"),
            Just("IsDate"),
            Just("IsInteger"),
            Just("IsGuid"),
            Just("IsNull"),
            Just("IsNumeric"),
            Just("LastIndexOf"),
            Just("Len"),
            Just("Lower"),
            Just("MaxOf"),
            Just("MinOf"),
            Just("NthIndexOf"),
            Just("Power"),
            Just("RegExMatch"),
            Just("RegExVal"),
            Just("Replace"),
            Just("Reverse"),
            Just("Round"),
            Just("Split"),
            Just("Sqrt"),
            Just("StartsWith"),
            Just("StrCount"),
            Just("StrCmp"),
            Just("SubStr"),
            Just("Trim"),
            Just("Upper"),
        ];
        prop_oneof![
            (inner.clone(), binop, inner.clone()).prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            (
                prop_oneof![Just("-"), Just("~"), Just("NOT "), Just("!")],
                inner.clone()
            )
                .prop_map(|(op, e)| format!("{op}({e})")),
            (inner.clone(), any::<bool>())
                .prop_map(|(e, n)| format!("({e} IS {}NULL)", if n { "NOT " } else { "" })),
            (inner.clone(), prop::collection::vec(inner.clone(), 1..5))
                .prop_map(|(e, l)| format!("({e} IN ({}))", l.join(", "))),
            (func, prop::collection::vec(inner, 0..4))
                .prop_map(|(f, a)| format!("{f}({})", a.join(", "))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        run(&table(), &text);
    }

    #[test]
    fn parse_never_panics_on_grammar_characters(text in "[-+*/%<>=!&|^~(),;'\"#{}\\[\\]`:.0-9a-fA-FxX_ \n]{0,120}") {
        run(&table(), &text);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40)) {
        run(&table(), &tokens.join(" "));
    }

    #[test]
    fn evaluating_random_expressions_never_panics(e in expr(), top in -2i32..4, desc in any::<bool>()) {
        let set = table();
        run(&set, &e);
        run(&set, &format!("FILTER TOP {top} ActiveMeasurements WHERE {e} ORDER BY PointTag {}", if desc { "DESC" } else { "ASC" }));
        run(&set, &format!("PPA:1; {e}; FILTER ActiveMeasurements WHERE ({e}) IS NULL"));
    }
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let set = table();
    let huge = "x".repeat(sttp_proto::filter::MAX_FILTER_LENGTH + 1);
    assert!(parse(&huge).is_err());
    // Deep nesting of every recursive construct is rejected, not a stack overflow.
    for (open, close) in [
        ("(", ")"),
        ("Abs(", ")"),
        ("NOT ", ""),
        ("-(", ")"),
        ("x IN (", ")"),
        ("x LIKE (", ")"),
    ] {
        let text = format!("{}1{}", open.repeat(5000), close.repeat(5000));
        assert!(parse(&text).is_err(), "{open}");
    }
    // Just under the limit parses and evaluates without overflowing the test thread's stack.
    for text in [
        format!("{}DeviceID{} = 1", "(".repeat(120), ")".repeat(120)),
        format!("{}DeviceID{} = 1", "Abs(".repeat(60), ")".repeat(60)),
        format!(
            "{}DeviceID{} = 1",
            "(DeviceID + ".repeat(120),
            ")".repeat(120)
        ),
        format!("{}DeviceID = 1{}", "(NOT ".repeat(60), ")".repeat(60)),
    ] {
        assert!(parse(&text).is_ok(), "{text}");
        run(&set, &text);
    }
    // Long OR chains (GUID lists) stay shallow.
    let list: Vec<String> = (0..15_000)
        .map(|i| format!("SignalID = {{{}}}", Uuid::from_u128(i)))
        .collect();
    let f = parse(&list.join(" OR ")).unwrap();
    let got = f
        .select(&set, "ActiveMeasurements", &EvalContext { now_ticks: 0 })
        .unwrap();
    assert_eq!(got[0].rows, vec![0, 1, 3, 4]);
    // Pathological LIKE patterns stay polynomial.
    let pat = "%a".repeat(2000);
    run(
        &set,
        &format!("PointTag + '{}' LIKE '{pat}b'", "a".repeat(5000)),
    );
    // Integer edge cases wrap or error instead of panicking.
    for e in [
        "DeviceID = -2147483648 / -1",
        "Big * Big > 0",
        "Big + Big < 0",
        "-(-9223372036854775807 - 1) < 0",
        "Abs(-2147483648) < 0",
        "DeviceID << 100 = 0",
        "DeviceID % 0 = 0",
        "Power(Big, Big) > 0",
        "SubStr(PointTag, -1) = ''",
        "DateAdd(UpdatedOn, 2147483647, 'Year') > UpdatedOn",
        "DateAdd(UpdatedOn, -2147483647, 'Millisecond') > UpdatedOn",
        "NthIndexOf(PointTag, '.', -2147483648) = 0",
        "Split(PointTag, '', 5) = ''",
        "Convert(1e308, 'Int32') = 0",
    ] {
        run(&set, e);
    }
}
