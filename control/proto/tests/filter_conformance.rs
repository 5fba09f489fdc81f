//! Table-driven conformance test for the filter expression language (wire.md §7).
//!
//! The fixture is a hand-built metadata set: a 20-row ActiveMeasurements table over three
//! devices (SHELBY, CORDOVA, GEN_A) with NULLs, plus DeviceDetail and MeasurementDetail. Every
//! expected row list below was worked out by hand from the fixture table in `fixture()`.

use sttp_proto::filter::{parse, EvalContext, TableSelection};
use sttp_proto::metadata::{Column, DataSet, DataTable, DataType, Value};
use sttp_wire::ticks;
use uuid::Uuid;

const AM: &str = "ActiveMeasurements";

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn os(v: Option<&str>) -> Value {
    v.map_or(Value::Null, s)
}

fn oi(v: Option<i32>) -> Value {
    v.map_or(Value::Null, Value::Int32)
}

fn od(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Decimal)
}

/// Row i: (device, ID, SignalType, PointTag, PhasorID, PhasorType, Phase, EngineeringUnits,
/// Description).
#[allow(clippy::type_complexity)]
const ROWS: [(
    &str,
    &str,
    Option<&str>,
    &str,
    Option<i32>,
    Option<&str>,
    Option<&str>,
    Option<&str>,
    Option<&str>,
); 20] = [
    (
        "SHELBY",
        "PPA:1",
        Some("FREQ"),
        "SHELBY:FREQ",
        None,
        None,
        None,
        Some("Hz"),
        Some("Shelby frequency"),
    ),
    (
        "SHELBY",
        "PPA:2",
        Some("DFDT"),
        "SHELBY:DFDT",
        None,
        None,
        None,
        Some(""),
        Some("Shelby df/dt"),
    ),
    (
        "SHELBY",
        "PPA:3",
        Some("VPHM"),
        "SHELBY-V1:VPHM",
        Some(1),
        Some("V"),
        Some("+"),
        Some("Volts"),
        Some("Shelby 500kV V1 magnitude"),
    ),
    (
        "SHELBY",
        "PPA:4",
        Some("VPHA"),
        "SHELBY-V1:VPHA",
        Some(1),
        Some("V"),
        Some("+"),
        Some("Degrees"),
        Some("Shelby 500kV V1 angle"),
    ),
    (
        "SHELBY",
        "PPA:5",
        Some("IPHM"),
        "SHELBY-I1:IPHM",
        Some(2),
        Some("I"),
        Some("+"),
        Some("Amps"),
        Some("Shelby line I1 magnitude"),
    ),
    (
        "SHELBY",
        "PPA:6",
        Some("IPHA"),
        "SHELBY-I1:IPHA",
        Some(2),
        Some("I"),
        Some("+"),
        Some("Degrees"),
        Some("Shelby line I1 angle"),
    ),
    (
        "SHELBY",
        "PPA:7",
        Some("VPHA"),
        "SHELBY-VA:VPHA",
        Some(3),
        Some("V"),
        Some("A"),
        Some("Degrees"),
        Some("Shelby phase A angle"),
    ),
    (
        "SHELBY",
        "PPA:8",
        Some("FLAG"),
        "SHELBY:FLAG",
        None,
        None,
        None,
        Some(""),
        Some("Shelby status flags"),
    ),
    (
        "CORDOVA",
        "PPA:9",
        Some("FREQ"),
        "CORDOVA:FREQ",
        None,
        None,
        None,
        Some("Hz"),
        Some("Cordova frequency"),
    ),
    (
        "CORDOVA",
        "PPA:10",
        Some("VPHM"),
        "CORDOVA-V1:VPHM",
        Some(4),
        Some("V"),
        Some("+"),
        Some("Volts"),
        Some("Cordova V1 magnitude"),
    ),
    (
        "CORDOVA",
        "PPA:11",
        Some("VPHA"),
        "CORDOVA-V1:VPHA",
        Some(4),
        Some("V"),
        Some("+"),
        Some("Degrees"),
        Some("Cordova V1 angle"),
    ),
    (
        "CORDOVA",
        "PPA:12",
        Some("IPHA"),
        "CORDOVA-I1:IPHA",
        Some(5),
        Some("I"),
        Some("-"),
        Some("Degrees"),
        Some("Cordova I1 angle"),
    ),
    (
        "CORDOVA",
        "PPA:13",
        Some("IPHM"),
        "CORDOVA-I1:IPHM",
        Some(5),
        Some("I"),
        Some("-"),
        Some("Amps"),
        Some("Cordova I1 magnitude"),
    ),
    (
        "CORDOVA",
        "PPA:14",
        Some("ALOG"),
        "CORDOVA:ALOG1",
        None,
        None,
        None,
        Some(""),
        Some("Cordova analog 1"),
    ),
    (
        "CORDOVA",
        "PPA:15",
        Some("DIGI"),
        "cordova:digi1",
        None,
        None,
        None,
        Some(""),
        Some("Cordova digital 1"),
    ),
    (
        "GEN_A",
        "GEN:1",
        Some("CALC"),
        "GEN_A.MW",
        None,
        None,
        None,
        None,
        Some("Generator A megawatts"),
    ),
    (
        "GEN_A",
        "GEN:2",
        Some("CALC"),
        "GEN_A.MVAR",
        None,
        None,
        None,
        None,
        Some("Generator A megavars"),
    ),
    (
        "GEN_A",
        "GEN:3",
        Some("ALOG"),
        "GEN_A.STATUS",
        None,
        None,
        None,
        None,
        Some("  Generator A status  "),
    ),
    (
        "GEN_A",
        "GEN:4",
        None,
        "GEN_A.SPARE",
        None,
        None,
        None,
        None,
        None,
    ),
    (
        "GEN_A",
        "GEN:5",
        Some("FREQ"),
        "GEN_A.FREQ",
        None,
        None,
        None,
        Some("Hz"),
        Some("Generator A frequency"),
    ),
];

/// (acronym, DeviceID, fps, protocol, protocol type, company, longitude, latitude)
#[allow(clippy::type_complexity)]
const DEVICES: [(
    &str,
    i32,
    i32,
    &str,
    &str,
    Option<&str>,
    Option<f64>,
    Option<f64>,
); 3] = [
    (
        "SHELBY",
        0,
        30,
        "IEEE C37.118-2005",
        "Frame",
        Some("TVA"),
        Some(-89.9),
        Some(35.1),
    ),
    (
        "CORDOVA",
        1,
        60,
        "STTP",
        "Measurement",
        Some("TVA"),
        Some(-89.7),
        Some(35.2),
    ),
    ("GEN_A", 2, 30, "Modbus", "Measurement", None, None, None),
];

fn signal_id(i: usize) -> Uuid {
    Uuid::from_u128(0x1000 + i as u128)
}

/// UpdatedOn of row i: 2024-01-(i+1) 12:00:00 UTC (row 18 NULL).
fn updated(i: usize) -> Value {
    if i == 18 {
        Value::Null
    } else {
        Value::DateTime(ticks::from_civil(2024, 1, i as u32 + 1, 12, 0, 0, 0))
    }
}

fn fixture() -> DataSet {
    use DataType::*;
    // The reference ActiveMeasurements columns, in schema order.
    let mut am = sttp_proto::metadata::schema::active_measurements();
    for (i, r) in ROWS.iter().enumerate() {
        let dev = DEVICES
            .iter()
            .find(|d| d.0 == r.0)
            .copied()
            .unwrap_or(DEVICES[0]);
        let sigref = match i {
            16 => "4.5e1".to_owned(),
            17 => "42".to_owned(),
            _ => format!("{}-SR{i}", r.0),
        };
        let alt = match i {
            15 => Some("MW"),
            16 => Some("MVAR"),
            17..=19 => None,
            _ => Some(""),
        };
        let (adder, mult) = match i {
            15 => (1.5, 2.0),
            16 => (-0.5, 1.0),
            _ => (0.0, 1.0),
        };
        am.push_row(vec![
            Value::Guid(Uuid::from_u128(0xABCD)),
            s(r.1),
            if i == 18 {
                Value::Null
            } else {
                Value::Guid(signal_id(i))
            },
            s(r.3),
            os(alt),
            s(&sigref),
            Value::Int32(if i < 15 { 1 } else { 0 }),
            Value::Int32(0),
            s(r.0),
            Value::Int32(dev.1),
            Value::Int32(dev.2),
            s(dev.3),
            s(dev.4),
            os(r.2),
            os(r.7),
            oi(r.4),
            os(r.5),
            os(r.6),
            Value::Double(adder),
            Value::Double(mult),
            os(dev.5),
            od(dev.6),
            od(dev.7),
            os(r.8),
            updated(i),
        ]);
    }

    let mut dd = DataTable::new(
        "DeviceDetail",
        vec![
            Column::new("NodeID", Guid),
            Column::new("UniqueID", Guid),
            Column::new("Acronym", String),
            Column::new("Name", String),
            Column::new("ProtocolName", String),
            Column::new("FramesPerSecond", Int32),
            Column::new("CompanyAcronym", String),
            Column::new("Longitude", Decimal),
            Column::new("Latitude", Decimal),
            Column::new("Enabled", Boolean),
        ],
    );
    let devs: [(&str, Option<&str>, Option<i32>, bool); 4] = [
        ("SHELBY", Some("Shelby PMU"), Some(30), true),
        ("CORDOVA", Some("Cordova PMU"), Some(60), true),
        ("GEN_A", Some("Generator A"), Some(30), false),
        ("OLD_PMU", None, None, false),
    ];
    for (i, d) in devs.iter().enumerate() {
        dd.push_row(vec![
            Value::Guid(Uuid::from_u128(0xABCD)),
            Value::Guid(Uuid::from_u128(0x2000 + i as u128)),
            s(d.0),
            os(d.1),
            s("STTP"),
            oi(d.2),
            s("TVA"),
            Value::Decimal(-89.0),
            Value::Decimal(35.0),
            Value::Boolean(d.3),
        ]);
    }

    let mut md = DataTable::new(
        "MeasurementDetail",
        vec![
            Column::new("DeviceAcronym", String),
            Column::new("ID", String),
            Column::new("SignalID", Guid),
            Column::new("PointTag", String),
            Column::new("SignalAcronym", String),
            Column::new("Internal", Boolean),
            Column::new("Enabled", Boolean),
        ],
    );
    for (dev, id, sig, tag, ty, internal, enabled) in [
        (
            "SHELBY",
            "PPA:1",
            0x1000u128,
            "SHELBY:FREQ",
            "FREQ",
            true,
            true,
        ),
        (
            "SHELBY",
            "PPA:3",
            0x1002,
            "SHELBY-V1:VPHM",
            "VPHM",
            true,
            true,
        ),
        (
            "CORDOVA",
            "PPA:9",
            0x1008,
            "CORDOVA:FREQ",
            "FREQ",
            true,
            true,
        ),
        ("GEN_A", "GEN:1", 0x100F, "GEN_A.MW", "CALC", false, true),
        ("OLD_PMU", "OLD:1", 0x3000, "OLD:FREQ", "FREQ", false, false),
    ] {
        md.push_row(vec![
            s(dev),
            s(id),
            Value::Guid(Uuid::from_u128(sig)),
            s(tag),
            s(ty),
            Value::Boolean(internal),
            Value::Boolean(enabled),
        ]);
    }

    let mut set = DataSet::new("DataSet");
    set.tables = vec![md, dd, am];
    set
}

enum Expect {
    /// Rows of ActiveMeasurements only.
    Am(Vec<usize>),
    /// Full selection, table by table.
    Tables(Vec<(&'static str, Vec<usize>)>),
    /// An error whose Display contains the substring.
    Err(&'static str),
}

fn r(range: std::ops::RangeInclusive<usize>) -> Vec<usize> {
    range.collect()
}

fn cat(parts: &[&[usize]]) -> Vec<usize> {
    parts.concat()
}

/// All rows except 18 (the row with NULL SignalType, SignalID, Description, UpdatedOn).
fn all_but_18() -> Vec<usize> {
    (0..20).filter(|&i| i != 18).collect()
}

fn cases() -> Vec<(&'static str, Expect)> {
    use Expect::*;
    let shelby = r(0..=7);
    let cordova = r(8..=14);
    let gen = r(15..=19);
    let fps30 = cat(&[&shelby, &gen]);
    let freq = vec![0, 8, 19];
    let no_phasor = vec![0, 1, 7, 8, 13, 14, 15, 16, 17, 18, 19];
    let not_freq_nonnull = vec![1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17];
    vec![
        // --- FILTER, TOP, ORDER BY -------------------------------------------------------------
        ("FILTER ActiveMeasurements WHERE True", Am(r(0..=19))),
        ("FILTER ActiveMeasurements WHERE false", Am(vec![])),
        ("FILTER TOP 3 ActiveMeasurements WHERE True", Am(vec![0, 1, 2])),
        ("FILTER TOP 0 ActiveMeasurements WHERE True", Am(vec![])),
        ("FILTER TOP -1 ActiveMeasurements WHERE SignalType = 'FREQ'", Am(freq.clone())),
        ("FILTER TOP 20 ActiveMeasurements WHERE SignalType='FREQ'", Am(freq.clone())),
        ("FILTER TOP +2 ActiveMeasurements WHERE SignalType='FREQ'", Am(vec![0, 8])),
        (
            "FILTER ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') AND Phase='+' ORDER BY PhasorID",
            Am(vec![3, 5, 10]),
        ),
        (
            "FILTER ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') ORDER BY PhasorID DESC",
            Am(vec![11, 10, 6, 5, 3]),
        ),
        // TOP applies during the scan, before ORDER BY (cppapi quirk).
        (
            "FILTER TOP 2 ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') ORDER BY PhasorID DESC",
            Am(vec![5, 3]),
        ),
        (
            "FILTER ActiveMeasurements WHERE PhasorID IS NOT NULL ORDER BY Device DESC, PhasorType, SignalType DESC",
            Am(vec![4, 5, 2, 3, 6, 12, 11, 9, 10]),
        ),
        ("FILTER ActiveMeasurements WHERE Device = 'GEN_A' ORDER BY SignalType", Am(vec![18, 17, 15, 16, 19])),
        ("FILTER ActiveMeasurements WHERE Device = 'GEN_A' ORDER BY SignalType DESC", Am(vec![19, 15, 16, 17, 18])),
        ("FILTER ActiveMeasurements WHERE Device = 'CORDOVA' ORDER BY PointTag ASC", Am(vec![11, 12, 10, 9, 13, 14, 8])),
        ("FILTER ActiveMeasurements WHERE Device = 'CORDOVA' ORDER BY BINARY PointTag", Am(vec![11, 12, 10, 9, 13, 8, 14])),
        ("FILTER ActiveMeasurements WHERE Device = 'CORDOVA' ORDER BY Nope", Err("failed to find order by column \"Nope\"")),
        (
            "filter top 1 activemeasurements where signaltype = 'FREQ' order by pointtag desc",
            Am(vec![0]),
        ),
        // --- identifier statements -------------------------------------------------------------
        ("PPA:1", Am(vec![0])),
        ("ppa:9", Am(vec![8])),
        ("PPA:1;PPA:2", Am(vec![0, 1])),
        ("PPA:2;PPA:1;PPA:2", Am(vec![1, 0])),
        ("NOPE:1", Am(vec![])),
        ("\"GEN_A.MW\"", Am(vec![15])),
        ("\"gen_a.mvar\"", Am(vec![16])),
        ("\"SHELBY:FREQ\"", Err("unexpected character")),
        ("00000000-0000-0000-0000-000000001003", Am(vec![3])),
        ("{00000000-0000-0000-0000-000000001003}", Am(vec![3])),
        ("'00000000-0000-0000-0000-000000001003'", Am(vec![3])),
        ("00000000000000000000000000001003", Am(vec![3])),
        ("'00000000-0000-0000-0000-00000000100A'", Am(vec![10])),
        ("00000000-0000-0000-0000-00000000FFFF", Am(vec![])),
        ("00000000-0000-0000-0000-000000001005; 00000000-0000-0000-0000-000000001001", Am(vec![5, 1])),
        ("PPA:1; FILTER ActiveMeasurements WHERE SignalType='FREQ'; \"GEN_A.FREQ\"", Am(freq.clone())),
        ("PPA:1;PPA:2;PPA:3;PPA:4;PPA:5;PPA:6;PPA:7;PPA:8;PPA:9;PPA:10;GEN:5;NOPE:1", Am(cat(&[&r(0..=9), &[19]]))),
        (";;PPA:3;;", Am(vec![2])),
        // --- equality and case rules -----------------------------------------------------------
        ("SignalType = 'FREQ'", Am(freq.clone())),
        ("SignalType = 'freq'", Am(freq.clone())),
        ("SignalType == 'FREQ'", Am(freq.clone())),
        ("SignalType === 'freq'", Am(vec![])),
        ("SignalType === 'FREQ'", Am(freq.clone())),
        ("SignalType !== 'freq'", Am(all_but_18())),
        ("SignalType <> 'FREQ'", Am(not_freq_nonnull.clone())),
        ("SignalType != 'freq'", Am(not_freq_nonnull.clone())),
        ("'freq' = SignalType", Am(freq.clone())),
        // --- comparisons and numeric promotion -------------------------------------------------
        ("FramesPerSecond > 30", Am(cordova.clone())),
        ("FramesPerSecond >= 60", Am(cordova.clone())),
        ("FramesPerSecond < 60", Am(fps30.clone())),
        ("PhasorID <= 2", Am(vec![2, 3, 4, 5])),
        ("PhasorID = 4", Am(vec![9, 10])),
        ("PhasorID = '4'", Am(vec![9, 10])),
        ("PhasorID = 'x'", Err("cannot convert \"x\" to \"Int32\"")),
        ("Latitude > 35.15", Am(cordova.clone())),
        ("Longitude < -89.8", Am(shelby.clone())),
        ("Adder <> 0", Am(vec![15, 16])),
        ("Multiplier * 2 = 4", Am(vec![15])),
        ("Adder + Multiplier > 2", Am(vec![15])),
        ("FramesPerSecond = 0x3C", Am(cordova.clone())),
        ("FramesPerSecond < 3000000000", Am(r(0..=19))),
        ("Adder = 1.5e0", Am(vec![15])),
        ("UpdatedOn >= #2024-01-15#", Am(vec![14, 15, 16, 17, 19])),
        ("UpdatedOn < '2024-01-03'", Am(vec![0, 1])),
        ("SignalID = {00000000-0000-0000-0000-000000001004}", Am(vec![4])),
        ("SignalID = '00000000-0000-0000-0000-000000001004'", Am(vec![4])),
        ("SourceNodeID = 'not-a-guid'", Err("cannot convert \"not-a-guid\" to \"Guid\"")),
        // --- arithmetic / bitwise precedence ---------------------------------------------------
        ("FramesPerSecond = 20 + 10 * 4", Am(cordova.clone())),
        ("FramesPerSecond = (20 + 10) * 2", Am(cordova.clone())),
        ("FramesPerSecond - 10 - 10 = 10", Am(fps30.clone())),
        ("FramesPerSecond / 2 / 3 = 5", Am(fps30.clone())),
        ("FramesPerSecond % 7 = 2", Am(fps30.clone())),
        ("1 + 2 * 3 = 7 AND DeviceID = 2", Am(gen.clone())),
        ("DeviceID | 1 = 1", Am(r(0..=14))),
        ("DeviceID & 1 = 1", Am(cordova.clone())),
        ("DeviceID << 2 = 8", Am(gen.clone())),
        ("FramesPerSecond >> 1 = 30", Am(cordova.clone())),
        ("DeviceID ^ 3 = 1", Am(gen.clone())),
        ("DeviceID XOR 3 = 3", Am(shelby.clone())),
        ("-DeviceID = -1", Am(cordova.clone())),
        ("~DeviceID = -3", Am(gen.clone())),
        ("+FramesPerSecond = 60", Am(cordova.clone())),
        ("Device + ':' + SignalType = 'SHELBY:FREQ'", Am(vec![0])),
        ("PhasorID + 'x' = '1x'", Am(vec![2, 3])),
        // --- logical operators, NOT, NULL semantics -------------------------------------------
        // AND binds tighter than OR; `true OR NULL` is NULL (reference semantics), so row 18
        // (NULL SignalType) drops out.
        (
            "Device = 'GEN_A' OR Device = 'CORDOVA' AND SignalType = 'FREQ'",
            Am(vec![8, 15, 16, 17, 19]),
        ),
        ("(Device = 'GEN_A' OR Device = 'CORDOVA') && SignalType = 'FREQ'", Am(vec![8, 19])),
        ("Device = 'GEN_A' || Device = 'CORDOVA'", Am(r(8..=19))),
        ("NOT SignalType = 'FREQ'", Am(not_freq_nonnull.clone())),
        ("!(DeviceID = 0)", Am(r(8..=19))),
        ("NOT Internal = 1", Am(gen.clone())),
        ("NOT DeviceID = 0 AND Company IS NULL", Am(gen.clone())),
        ("True OR NULL", Am(vec![])),
        ("NULL = NULL", Am(vec![])),
        ("NOT NULL", Am(vec![])),
        ("TRUE AND tRuE", Am(r(0..=19))),
        ("Description = 'Shelby df/dt' OR 'it''s' = 'IT''S'", Am(all_but_18())),
        // --- IS NULL -------------------------------------------------------------------------
        ("PhasorID IS NULL", Am(no_phasor.clone())),
        ("Company IS NOT NULL", Am(r(0..=14))),
        ("SignalID IS NULL", Am(vec![18])),
        ("UpdatedOn IS NULL", Am(vec![18])),
        ("NULL IS NULL", Am(r(0..=19))),
        // --- IN --------------------------------------------------------------------------------
        ("Device IN ('shelby', 'GEN_A')", Am(cat(&[&shelby, &gen]))),
        ("Device IN BINARY ('shelby', 'GEN_A')", Am(gen.clone())),
        ("Device IN === ('shelby', 'GEN_A')", Am(gen.clone())),
        ("Device NOT IN ('SHELBY', 'CORDOVA')", Am(gen.clone())),
        ("PhasorID IN (1, 3, 5)", Am(vec![2, 3, 6, 11, 12])),
        ("PhasorID NOT IN (1, 3, 5)", Am(vec![4, 5, 9, 10])),
        ("SignalType IN ('FREQ', NULL)", Am(freq.clone())),
        ("ID IN ('PPA:1','ppa:3','GEN:5','X:1','Y:2')", Am(vec![0, 2, 19])),
        (
            "SignalID IN ('00000000-0000-0000-0000-000000001001', {00000000-0000-0000-0000-000000001002}, 00000000000000000000000000001013, '00000000-0000-0000-0000-000000001000')",
            Am(vec![0, 1, 2, 19]),
        ),
        (
            "SignalID IN ('00000000-0000-0000-0000-000000001001', {00000000-0000-0000-0000-000000001002}, 00000000000000000000000000001013, 'junk')",
            Err("cannot convert \"junk\" to \"Guid\""),
        ),
        ("DeviceID IN (1)", Am(cordova.clone())),
        ("'FREQ' IN (SignalType)", Am(freq.clone())),
        ("DeviceID IN ()", Err("expected a value")),
        // --- LIKE ------------------------------------------------------------------------------
        ("PointTag LIKE 'SHELBY%'", Am(shelby.clone())),
        ("PointTag LIKE 'shelby-%'", Am(vec![2, 3, 4, 5, 6])),
        ("PointTag LIKE '%:VPHA'", Am(vec![3, 6, 10])),
        ("PointTag LIKE '*FREQ'", Am(freq.clone())),
        ("PointTag LIKE '%-I1%'", Am(vec![4, 5, 11, 12])),
        ("PointTag LIKE BINARY 'cordova%'", Am(vec![14])),
        ("PointTag LIKE === 'Cordova%'", Am(vec![])),
        ("PointTag NOT LIKE 'SHELBY%'", Am(r(8..=19))),
        ("PointTag LIKE 'GEN_A.MW'", Am(vec![15])),
        ("PointTag LIKE 'GEN%.M%'", Am(vec![15, 16])),
        ("Description LIKE '%'", Am(all_but_18())),
        ("SignalType NOT LIKE BINARY 'freq'", Am(all_but_18())),
        ("DeviceID LIKE '1%'", Err("cannot perform \"LIKE\" operation on \"Int32\" and \"String\"")),
        // --- functions -------------------------------------------------------------------------
        ("Abs(Longitude) > 89.8", Am(shelby.clone())),
        ("Abs(-DeviceID) = 2", Am(gen.clone())),
        ("Ceiling(Latitude) = 36", Am(r(0..=14))),
        ("Floor(Longitude) = -90", Am(r(0..=14))),
        ("Round(Adder) = 2", Am(vec![15])),
        ("Round(Adder) = -1", Am(vec![16])),
        ("Coalesce(PhasorType, 'none') = 'none'", Am(no_phasor.clone())),
        ("Coalesce(NULL, Company, 'NA') = 'NA'", Am(gen.clone())),
        ("Convert(FramesPerSecond, 'System.String') = '60'", Am(cordova.clone())),
        ("Convert('2', 'Int32') = DeviceID", Am(gen.clone())),
        ("Convert(SignalID, 'String') LIKE '%100a'", Am(vec![10])),
        ("Convert(DeviceID, 'Blob') = 1", Err("target type \"Blob\" is not supported")),
        ("Contains(Description, 'angle')", Am(vec![3, 5, 6, 10, 11])),
        ("Contains(Description, 'SHELBY')", Am(vec![])),
        ("Contains(Description, 'SHELBY', true)", Am(shelby.clone())),
        ("StartsWith(PointTag, 'GEN_A.M')", Am(vec![15, 16])),
        ("StartsWith(PointTag, 'cordova', True)", Am(cordova.clone())),
        ("EndsWith(PointTag, 'PHM')", Am(vec![2, 4, 9, 12])),
        ("DateAdd(UpdatedOn, 1, 'Day') = #2024-01-03 12:00:00#", Am(vec![1])),
        ("DateAdd(UpdatedOn, 1, 'Month') = #2024-02-05 12:00#", Am(vec![4])),
        ("DateDiff(UpdatedOn, #2024-01-11 12:00:00#, 'Day') = 5", Am(vec![5])),
        ("DateDiff(#2024-01-01#, UpdatedOn, 'Hour') = 36", Am(vec![1])),
        ("DatePart(UpdatedOn, 'Day') = 20", Am(vec![19])),
        ("DatePart(UpdatedOn, 'WeekDay') = 0", Am(vec![6, 13])),
        (
            "DatePart(UpdatedOn, 'Year') = 2024 AND DatePart(UpdatedOn, 'Month') = 1 AND DatePart(UpdatedOn, 'Hour') = 12",
            Am(all_but_18()),
        ),
        ("DatePart(UpdatedOn, 'DayOfYear') = 15", Am(vec![14])),
        ("DatePart(UpdatedOn, 'Week') = 2", Am(r(7..=13))),
        ("DatePart(UpdatedOn, 'Fortnight') = 1", Err("time interval \"Fortnight\" is not recognized")),
        ("IIf(DeviceID = 1, FramesPerSecond, 0) = 60", Am(cordova.clone())),
        ("IIf(Company IS NULL, 'X', Company) = 'X'", Am(gen.clone())),
        ("IndexOf(PointTag, ':') = 6", Am(vec![0, 1, 7])),
        ("IndexOf(PointTag, 'freq', true) = 8", Am(vec![8])),
        ("IndexOf(PointTag, 'freq') = -1 AND SignalType = 'FREQ'", Am(freq.clone())),
        ("LastIndexOf(PointTag, 'A') = 13", Am(vec![3, 5, 6])),
        ("IsDate(Description)", Am(vec![])),
        ("IsDate(UpdatedOn)", Am(all_but_18())),
        ("IsDate('2024-01-01')", Am(r(0..=19))),
        ("IsInteger(Convert(PhasorID, 'String'))", Am(vec![2, 3, 4, 5, 6, 9, 10, 11, 12])),
        ("IsInteger(Adder)", Am(vec![])),
        ("IsInteger(SignalReference)", Am(vec![17])),
        ("IsGuid(Convert(SignalID, 'String'))", Am(all_but_18())),
        ("IsGuid(PointTag)", Am(vec![])),
        ("IsNull(PhasorID, -1) = -1", Am(no_phasor.clone())),
        ("IsNull(Company, NULL) = 'x'", Err("default value, second argument, is null")),
        ("IsNumeric(SignalReference)", Am(vec![16, 17])),
        ("Len(PointTag) = 10", Am(vec![16, 19])),
        ("Lower(Device) = 'gen_a' AND Lower(Device) === 'gen_a'", Am(gen.clone())),
        ("Upper(PointTag) === 'CORDOVA:DIGI1'", Am(vec![14])),
        ("MaxOf(PhasorID, 3) = 3", Am(vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 16, 17, 18, 19])),
        ("MinOf(FramesPerSecond, DeviceID * 100, 45) = 0", Am(shelby.clone())),
        ("Now() > UpdatedOn", Am(all_but_18())),
        ("UtcNow() = #2024-06-01T00:00:00Z#", Am(r(0..=19))),
        ("NthIndexOf(Description, ' ', 1) = 10", Am(vec![9, 10, 11, 12])),
        ("NthIndexOf(Description, ' ', 0) = IndexOf(Description, ' ')", Am(all_but_18())),
        ("Power(DeviceID, 2) = 4", Am(gen.clone())),
        ("Power(2, FramesPerSecond / 10) = 64", Am(cordova.clone())),
        ("RegExMatch('^[A-Z]+-[IV]1:', PointTag)", Am(vec![2, 3, 4, 5, 9, 10, 11, 12])),
        ("RegExVal('[0-9]+', ID) = '1'", Am(vec![0, 15])),
        ("RegExMatch('(', PointTag)", Err("invalid regular expression")),
        ("Replace(PointTag, 'GEN_A.', '') = 'MW'", Am(vec![15])),
        ("Replace(PointTag, 'shelby', 'X', true) = 'X:FREQ'", Am(vec![0])),
        ("Reverse(SignalType) = 'QERF'", Am(freq.clone())),
        ("Split(PointTag, ':', 1) = 'FREQ'", Am(vec![0, 8])),
        ("Split(PointTag, '.', 0) = 'GEN_A'", Am(gen.clone())),
        ("Split(ID, ':', 2) = ''", Am(r(0..=19))),
        ("Sqrt(FramesPerSecond - 5) = 5", Am(fps30.clone())),
        ("StrCount(PointTag, 'A') = 2", Am(vec![6, 10, 11, 13, 16, 17, 18])),
        ("StrCount(PointTag, 'a', true) = 2", Am(vec![6, 10, 11, 13, 16, 17, 18])),
        ("StrCmp(Device, 'CORDOVA') = 0", Am(cordova.clone())),
        ("StrCmp(Device, 'cordova', true) = 0", Am(cordova.clone())),
        ("StrCmp(Device, 'cordova') = -1", Am(r(0..=19))),
        ("StrCmp(Company, 'TVA') = 1", Am(gen.clone())),
        ("SubStr(PointTag, 0, 6) = 'SHELBY'", Am(shelby.clone())),
        ("SubStr(ID, 4) = '1'", Am(vec![0, 15])),
        ("SubStr(PointTag, 50) = ''", Err("out of range")),
        ("Trim(Description) = 'Generator A status'", Am(vec![17])),
        ("TrimLeft(Description) = 'Generator A status  '", Am(vec![17])),
        ("TrimRight(Description) = '  Generator A status'", Am(vec![17])),
        ("Len(Description) <> Len(Trim(Description))", Am(vec![17])),
        // --- lexical: comments, quoted identifiers, keywords ---------------------------------
        ("-- pick frequency\nSignalType = 'FREQ' /* only */", Am(freq.clone())),
        ("/* leading */ [SignalType] = 'FREQ'", Am(freq.clone())),
        ("`Device` = 'GEN_A'", Am(gen.clone())),
        // --- multiple statements and other tables ---------------------------------------------
        (
            "FILTER ActiveMeasurements WHERE DeviceID = 1; FILTER ActiveMeasurements WHERE SignalType = 'FREQ'",
            Am(cat(&[&cordova, &[0, 19]])),
        ),
        (
            "FILTER DeviceDetail WHERE Enabled; FILTER MeasurementDetail WHERE NOT Enabled",
            Tables(vec![("DeviceDetail", vec![0, 1]), ("MeasurementDetail", vec![4])]),
        ),
        (
            "FILTER DeviceDetail WHERE Acronym LIKE 'S%'; PPA:1; FILTER DeviceDetail WHERE FramesPerSecond = 60",
            Tables(vec![("DeviceDetail", vec![0, 1]), (AM, vec![0])]),
        ),
        ("FILTER devicedetail WHERE Name IS NULL", Tables(vec![("DeviceDetail", vec![3])])),
        ("FILTER MeasurementDetail WHERE False", Tables(vec![("MeasurementDetail", vec![])])),
        ("FILTER MeasurementDetail WHERE Internal ORDER BY SignalAcronym DESC, ID", Tables(vec![("MeasurementDetail", vec![1, 0, 2])])),
        ("", Tables(vec![])),
        (" ; -- nothing here", Tables(vec![])),
        // --- errors ----------------------------------------------------------------------------
        ("FILTER Nope WHERE True", Err("failed to find table \"Nope\"")),
        ("Nope = 1", Err("failed to find column \"Nope\"")),
        ("FILTER ActiveMeasurements WHERE DeviceID", Err("did not result in a boolean value")),
        ("FILTER ActiveMeasurements SignalType = 'FREQ'", Err("offset 26: expected WHERE after table name")),
        ("SignalType = 'FREQ", Err("unterminated string literal")),
        ("SignalType = 'FREQ' ?", Err("unexpected character '?'")),
        ("Len(PointTag, 1) = 1", Err("function \"Len\" expects 1 argument, received 2")),
        ("SignalID + 1 = 2", Err("cannot perform \"+\" operation on \"Guid\" and \"Int32\"")),
        ("DeviceID / 0 = 1", Err("division by zero")),
        ("DeviceID AND True", Err("cannot perform \"AND\" operation on \"Int32\"")),
        ("SignalType = 'FREQ' 'x'", Err("expected ';' or end of expression")),
        ("UpdatedOn = #not a date#", Err("invalid date-time literal")),
        ("-SignalType = 'x'", Err("cannot apply unary \"-\" operator to \"String\"")),
        ("Adder % 2 = 0", Err("cannot perform \"%\" operation on \"Double\" and \"Int32\"")),
        ("ID = PPA:1", Err("only valid as a statement of its own")),
        ("FILTER ActiveMeasurements WHERE", Err("expected a value")),
        ("FILTER TOP x ActiveMeasurements WHERE True", Err("expected integer after TOP")),
        ("SignalType IS 'x'", Err("expected NULL after IS")),
        ("(SignalType = 'FREQ'", Err("expected ')'")),
        ("WHERE = 1", Err("unexpected keyword WHERE")),
    ]
}

#[test]
fn conformance() {
    let set = fixture();
    let ctx = EvalContext {
        now_ticks: ticks::from_civil(2024, 6, 1, 0, 0, 0, 0),
    };
    let all = cases();
    assert!(all.len() >= 120, "only {} cases", all.len());
    let mut failures = Vec::new();
    for (text, expect) in &all {
        let got = parse(text).and_then(|f| f.select(&set, AM, &ctx));
        let ok = match (expect, &got) {
            (Expect::Am(rows), Ok(sel)) => {
                sel == &vec![TableSelection {
                    table: AM.to_owned(),
                    rows: rows.clone(),
                }]
            }
            (Expect::Tables(tables), Ok(sel)) => {
                let want: Vec<TableSelection> = tables
                    .iter()
                    .map(|(t, rows)| TableSelection {
                        table: (*t).to_owned(),
                        rows: rows.clone(),
                    })
                    .collect();
                sel == &want
            }
            (Expect::Err(sub), Err(e)) => e.to_string().contains(sub),
            _ => false,
        };
        if !ok {
            let want = match expect {
                Expect::Am(rows) => format!("{AM} {rows:?}"),
                Expect::Tables(t) => format!("{t:?}"),
                Expect::Err(e) => format!("error containing {e:?}"),
            };
            failures.push(format!(
                "  {text}\n    expected: {want}\n    got:      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn select_table_matches_select() {
    let set = fixture();
    let ctx = EvalContext { now_ticks: 0 };
    let f = parse(
        "FILTER DeviceDetail WHERE Enabled; PPA:3; FILTER ActiveMeasurements WHERE DeviceID = 2",
    )
    .unwrap();
    assert_eq!(
        f.tables(),
        vec!["DeviceDetail".to_owned(), "ActiveMeasurements".to_owned()]
    );
    let am = set.table(AM).unwrap();
    assert_eq!(
        f.select_table(am, true, &ctx).unwrap(),
        vec![2, 15, 16, 17, 18, 19]
    );
    assert_eq!(
        f.select_table(am, false, &ctx).unwrap(),
        vec![15, 16, 17, 18, 19]
    );
    let dd = set.table("DeviceDetail").unwrap();
    assert_eq!(f.select_table(dd, false, &ctx).unwrap(), vec![0, 1]);
}

#[test]
fn error_reports_offset_and_reason() {
    let e =
        parse("FILTER ActiveMeasurements WHERE SignalType = 'FREQ' ORDER PointTag").unwrap_err();
    assert_eq!(e.offset(), 58);
    assert!(e.message().starts_with("expected BY after ORDER"), "{e}");
    let set = fixture();
    let e = parse("FILTER ActiveMeasurements WHERE Bogus = 1")
        .unwrap()
        .select(&set, AM, &EvalContext { now_ticks: 0 })
        .unwrap_err();
    assert_eq!(e.offset(), 32);
    assert_eq!(e.to_string(), "filter expression error at offset 32: failed to find column \"Bogus\" in table \"ActiveMeasurements\"");
}
