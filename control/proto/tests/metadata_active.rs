//! ActiveMeasurements derivation (wire.md §7) and the Internal/External row filter (wire.md §2).

use sttp_proto::metadata::active::{
    active_measurements, engineering_units, filter_internal, protocol_type,
};
use sttp_proto::metadata::builder::{
    DeviceRecord, MeasurementRecord, MetadataBuilder, PhasorRecord,
};
use sttp_proto::metadata::{schema, DataSet, DataTable, Value};
use uuid::Uuid;

const NODE: Uuid = Uuid::from_u128(0xAAAA);

fn device(acronym: &str, protocol: &str, fps: i32, company: Option<&str>) -> DeviceRecord {
    DeviceRecord {
        node_id: NODE,
        unique_id: Uuid::from_u128(acronym.len() as u128),
        acronym: acronym.into(),
        name: acronym.into(),
        original_source: None,
        is_concentrator: false,
        access_id: 1,
        parent_acronym: None,
        protocol_name: protocol.into(),
        frames_per_second: fps,
        company_acronym: company.map(Into::into),
        vendor_acronym: None,
        vendor_device_name: None,
        longitude: Some(-84.5),
        latitude: None,
        interconnection_name: None,
        contact_list: None,
        enabled: true,
        updated_on: 1,
    }
}

fn meas(
    n: u128,
    dev: &str,
    acr: &str,
    psi: Option<i32>,
    internal: bool,
    enabled: bool,
) -> MeasurementRecord {
    MeasurementRecord {
        device_acronym: dev.into(),
        id: format!("SRC:{n}"),
        signal_id: Uuid::from_u128(n),
        point_tag: format!("TAG{n}"),
        alternate_tag: (n == 1).then(|| "ALT1".into()),
        signal_reference: format!("REF{n}"),
        signal_acronym: acr.into(),
        phasor_source_index: psi,
        description: format!("desc {n}"),
        internal,
        enabled,
        updated_on: 1000 + n as i64,
    }
}

fn phasor(id: i32, dev: &str, ty: &str, phase: &str, source_index: i32) -> PhasorRecord {
    PhasorRecord {
        id,
        device_acronym: dev.into(),
        label: format!("P{id}"),
        phasor_type: ty.into(),
        phase: phase.into(),
        destination_phasor_id: None,
        source_index,
        base_kv: None,
        updated_on: 0,
    }
}

fn sample() -> DataSet {
    MetadataBuilder {
        devices: vec![
            device("PMU1", "IEEE C37.118-2005", 0, None), // fps 0 → 30
            device("GW", "Gateway Transport", 60, Some("GPA")),
            device("ST", "sttp", 120, Some("TVA")),
        ],
        measurements: vec![
            meas(1, "PMU1", "FREQ", None, true, true),
            meas(2, "PMU1", "VPHM", Some(1), true, true),
            meas(3, "PMU1", "VPHA", Some(1), false, true),
            meas(4, "PMU1", "IPHM", Some(2), true, true),
            meas(5, "PMU1", "IPHA", Some(2), true, false), // disabled
            meas(6, "GW", "DFDT", None, true, true),
            meas(7, "ST", "", None, true, true), // no signal type → CALC
            meas(8, "NOPE", "ALOG", None, true, true), // unknown device
            meas(9, "", "DIGI", None, false, true), // no device
        ],
        phasors: vec![
            phasor(11, "PMU1", "V", "+", 1),
            phasor(12, "PMU1", "I", "A", 2),
            phasor(13, "GW", "V", "B", 1),
        ],
        schema_version: 1,
    }
    .build()
}

fn col(t: &DataTable, name: &str) -> Vec<Value> {
    let c = t
        .column_index(name)
        .unwrap_or_else(|| panic!("column {name}"));
    (0..t.len()).map(|r| t.value(r, c).clone()).collect()
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn active_measurements_column_by_column() {
    let set = sample();
    let am = active_measurements(&set, NODE);
    assert_eq!(am.name, "ActiveMeasurements");
    assert_eq!(am.columns(), schema::active_measurements().columns());
    // Row 5 (disabled) is excluded; the others keep MeasurementDetail order.
    let n = 8;
    assert_eq!(am.len(), n);
    let ids = [1u128, 2, 3, 4, 6, 7, 8, 9];
    let null = Value::Null;
    let i = |v: i32| Value::Int32(v);

    assert_eq!(col(&am, "SourceNodeID"), vec![Value::Guid(NODE); n]);
    assert_eq!(col(&am, "ID"), ids.map(|k| s(&format!("SRC:{k}"))));
    assert_eq!(
        col(&am, "SignalID"),
        ids.map(|k| Value::Guid(Uuid::from_u128(k)))
    );
    assert_eq!(col(&am, "PointTag"), ids.map(|k| s(&format!("TAG{k}"))));
    let mut alt = vec![null.clone(); n];
    alt[0] = s("ALT1");
    assert_eq!(col(&am, "AlternateTag"), alt);
    assert_eq!(
        col(&am, "SignalReference"),
        ids.map(|k| s(&format!("REF{k}")))
    );
    assert_eq!(col(&am, "Internal"), [1, 1, 0, 1, 1, 1, 1, 0].map(i));
    assert_eq!(col(&am, "Subscribed"), vec![i(0); n]);
    assert_eq!(
        col(&am, "Device"),
        [
            s("PMU1"),
            s("PMU1"),
            s("PMU1"),
            s("PMU1"),
            s("GW"),
            s("ST"),
            s("NOPE"),
            null.clone()
        ]
    );
    // DeviceID = row index in DeviceDetail.
    assert_eq!(
        col(&am, "DeviceID"),
        [
            i(0),
            i(0),
            i(0),
            i(0),
            i(1),
            i(2),
            null.clone(),
            null.clone()
        ]
    );
    // FramesPerSecond: 0 → 30, device value, no/unknown device → 30.
    assert_eq!(
        col(&am, "FramesPerSecond"),
        [30, 30, 30, 30, 60, 120, 30, 30].map(i)
    );
    let c37 = s("IEEE C37.118-2005");
    assert_eq!(
        col(&am, "Protocol"),
        [
            c37.clone(),
            c37.clone(),
            c37.clone(),
            c37,
            s("Gateway Transport"),
            s("sttp"),
            null.clone(),
            null.clone()
        ]
    );
    let (f, m) = (s("Frame"), s("Measurement"));
    assert_eq!(
        col(&am, "ProtocolType"),
        [
            f.clone(),
            f.clone(),
            f.clone(),
            f,
            m.clone(),
            m,
            null.clone(),
            null.clone()
        ]
    );
    assert_eq!(
        col(&am, "SignalType"),
        ["FREQ", "VPHM", "VPHA", "IPHM", "DFDT", "CALC", "ALOG", "DIGI"].map(s)
    );
    assert_eq!(
        col(&am, "EngineeringUnits"),
        ["Hz", "Volts", "Degrees", "Amps", "", "", "", ""].map(s)
    );
    // Phasor join on (DeviceAcronym, SourceIndex); a NULL PhasorSourceIndex looks up index 0.
    assert_eq!(
        col(&am, "PhasorID"),
        [
            null.clone(),
            i(11),
            i(11),
            i(12),
            null.clone(),
            null.clone(),
            null.clone(),
            null.clone()
        ]
    );
    assert_eq!(
        col(&am, "PhasorType"),
        [
            null.clone(),
            s("V"),
            s("V"),
            s("I"),
            null.clone(),
            null.clone(),
            null.clone(),
            null.clone()
        ]
    );
    assert_eq!(
        col(&am, "Phase"),
        [
            null.clone(),
            s("+"),
            s("+"),
            s("A"),
            null.clone(),
            null.clone(),
            null.clone(),
            null.clone()
        ]
    );
    assert_eq!(col(&am, "Adder"), vec![Value::Double(0.0); n]);
    assert_eq!(col(&am, "Multiplier"), vec![Value::Double(1.0); n]);
    assert_eq!(
        col(&am, "Company"),
        [
            s(""),
            s(""),
            s(""),
            s(""),
            s("GPA"),
            s("TVA"),
            null.clone(),
            null.clone()
        ]
    );
    let lon = Value::Decimal(-84.5);
    let zero = Value::Decimal(0.0);
    assert_eq!(
        col(&am, "Longitude"),
        [
            lon.clone(),
            lon.clone(),
            lon.clone(),
            lon.clone(),
            lon.clone(),
            lon,
            null.clone(),
            null.clone()
        ]
    );
    assert_eq!(
        col(&am, "Latitude"),
        [
            zero.clone(),
            zero.clone(),
            zero.clone(),
            zero.clone(),
            zero.clone(),
            zero,
            null.clone(),
            null.clone()
        ]
    );
    assert_eq!(
        col(&am, "Description"),
        ids.map(|k| s(&format!("desc {k}")))
    );
    assert_eq!(
        col(&am, "UpdatedOn"),
        ids.map(|k| Value::DateTime(1000 + k as i64))
    );
}

#[test]
fn active_measurements_without_tables() {
    assert!(active_measurements(&DataSet::new("DataSet"), NODE).is_empty());
    // Measurements without DeviceDetail/PhasorDetail tables still derive.
    let mut set = sample();
    set.tables.retain(|t| t.name == "MeasurementDetail");
    let am = active_measurements(&set, NODE);
    assert_eq!(am.len(), 8);
    assert_eq!(col(&am, "FramesPerSecond"), vec![Value::Int32(30); 8]);
}

#[test]
fn active_measurements_survive_an_xml_round_trip() {
    use sttp_proto::metadata::xml::{parse_xml, write_xml};
    let am = active_measurements(&sample(), NODE);
    let mut set = DataSet::new(schema::FILTERING_DATASET);
    set.tables.push(am);
    let text = write_xml(&set);
    assert!(text.contains("<xs:schema id=\"Iaon\""));
    assert_eq!(parse_xml(text.as_bytes()).unwrap(), set);
}

#[test]
fn protocol_type_and_units_rules() {
    for p in [
        "STTP",
        "sttp",
        "Streaming Telemetry Transport Protocol",
        "Gateway Transport",
        "GEP",
        "Modbus",
        "DNP3",
    ] {
        assert_eq!(protocol_type(p), "Measurement", "{p}");
    }
    for p in [
        "",
        "IEEE C37.118-2005",
        "BPA PDCstream",
        "IEC 61850-90-5",
        "STTPX",
    ] {
        assert_eq!(protocol_type(p), "Frame", "{p}");
    }
    assert_eq!(engineering_units("iphm"), "Amps");
    assert_eq!(engineering_units("VPHM"), "Volts");
    assert_eq!(engineering_units("FREQ"), "Hz");
    assert_eq!(engineering_units("IPHA"), "Degrees");
    assert_eq!(engineering_units("xPHA"), "Degrees");
    assert_eq!(engineering_units("DFDT"), "");
    assert_eq!(engineering_units("CALC"), "");
}

fn internal_ids(set: &DataSet) -> Vec<Value> {
    set.table("MeasurementDetail")
        .map(|t| col(t, "ID"))
        .unwrap_or_default()
}

#[test]
fn filter_internal_modes() {
    let all = internal_ids(&sample());
    let internal: Vec<_> = [
        "SRC:1", "SRC:2", "SRC:4", "SRC:5", "SRC:6", "SRC:7", "SRC:8",
    ]
    .map(s)
    .to_vec();
    let external: Vec<_> = ["SRC:3", "SRC:9"].map(s).to_vec();

    let mut both = sample();
    filter_internal(&mut both, true, true);
    assert_eq!(internal_ids(&both), all);
    assert_eq!(both, sample());

    let mut int_only = sample();
    filter_internal(&mut int_only, true, false);
    assert_eq!(internal_ids(&int_only), internal);

    let mut ext_only = sample();
    filter_internal(&mut ext_only, false, true);
    assert_eq!(internal_ids(&ext_only), external);

    // Neither bit ⇒ internal only (gsfapi).
    let mut neither = sample();
    filter_internal(&mut neither, false, false);
    assert_eq!(internal_ids(&neither), internal);

    // Tables without an Internal column are untouched.
    assert_eq!(
        neither.table("DeviceDetail"),
        sample().table("DeviceDetail")
    );
    assert_eq!(
        neither.table("PhasorDetail"),
        sample().table("PhasorDetail")
    );
}

#[test]
fn filter_internal_drops_null_rows_and_reads_integers() {
    let mut t = DataTable::new(
        "Custom",
        vec![sttp_proto::metadata::Column::new(
            "Internal",
            sttp_proto::metadata::DataType::Int32,
        )],
    );
    for v in [Value::Int32(0), Value::Int32(2), Value::Null] {
        t.push_row(vec![v]);
    }
    let mut set = DataSet::new("DataSet");
    set.tables.push(t);
    let mut a = set.clone();
    filter_internal(&mut a, true, false);
    assert_eq!(a.tables[0].rows(), &[vec![Value::Int32(2)]]);
    let mut b = set.clone();
    filter_internal(&mut b, false, true);
    assert_eq!(b.tables[0].rows(), &[vec![Value::Int32(0)]]);
}

mod metadata_filters {
    use super::*;
    use sttp_proto::filter::EvalContext;
    use sttp_proto::metadata::active::apply_metadata_filters;

    const CTX: EvalContext = EvalContext {
        now_ticks: 638_000_000_000_000_000,
    };

    #[test]
    fn empty_filter_returns_everything() {
        let set = sample();
        assert_eq!(apply_metadata_filters(&set, "", &CTX).unwrap(), set);
        assert_eq!(apply_metadata_filters(&set, "  ", &CTX).unwrap(), set);
        assert_eq!(
            apply_metadata_filters(&set, "/* nothing */ ;", &CTX).unwrap(),
            set
        );
    }

    #[test]
    fn each_filter_trims_its_table_only() {
        let set = sample();
        let out = apply_metadata_filters(
            &set,
            "FILTER MeasurementDetail WHERE SignalAcronym LIKE '%PH%' ORDER BY PointTag DESC; \
             FILTER devicedetail WHERE FramesPerSecond >= 60",
            &CTX,
        )
        .unwrap();
        assert_eq!(
            internal_ids(&out),
            ["SRC:5", "SRC:4", "SRC:3", "SRC:2"].map(s).to_vec()
        );
        assert_eq!(
            col(out.table("DeviceDetail").unwrap(), "Acronym"),
            [s("GW"), s("ST")]
        );
        // Unfiltered tables come back whole; the input is untouched.
        assert_eq!(out.table("PhasorDetail"), set.table("PhasorDetail"));
        assert_eq!(out.table("SchemaVersion"), set.table("SchemaVersion"));
        assert_eq!(set, sample());
    }

    #[test]
    fn top_missing_tables_and_identifier_statements() {
        let set = sample();
        let out = apply_metadata_filters(
            &set,
            "FILTER TOP 2 MeasurementDetail WHERE Internal; FILTER NoSuchTable WHERE True; SRC:1",
            &CTX,
        )
        .unwrap();
        assert_eq!(internal_ids(&out), ["SRC:1", "SRC:2"].map(s).to_vec());
        assert_eq!(out.tables.len(), set.tables.len());
    }

    #[test]
    fn errors_are_reported() {
        let set = sample();
        assert!(apply_metadata_filters(&set, "FILTER MeasurementDetail WHERE", &CTX).is_err());
        assert!(
            apply_metadata_filters(&set, "FILTER MeasurementDetail WHERE PointTag", &CTX).is_err()
        );
    }
}

#[test]
fn common_subscriber_filters_select_from_active_measurements() {
    use sttp_proto::filter::{parse, EvalContext};
    let am = active_measurements(&sample(), NODE);
    let ctx = EvalContext { now_ticks: 0 };
    let sel = |f: &str| parse(f).unwrap().select_table(&am, true, &ctx).unwrap();
    assert_eq!(
        sel("FILTER ActiveMeasurements WHERE True"),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(
        sel("FILTER TOP 20 ActiveMeasurements WHERE SignalType='FREQ'"),
        [0]
    );
    assert_eq!(
        sel("FILTER ActiveMeasurements WHERE SignalType IN ('IPHA','VPHA') AND Phase='+' ORDER BY PhasorID"),
        [2]
    );
    assert_eq!(sel("SRC:1;SRC:2"), [0, 1]);
    assert_eq!(sel("00000000-0000-0000-0000-000000000004"), [3]);
    assert_eq!(
        sel("FILTER ActiveMeasurements WHERE ProtocolType = 'Measurement'"),
        [4, 5]
    );
    assert_eq!(sel("FILTER ActiveMeasurements WHERE Internal = 0"), [2, 7]);
}
