//! Metadata XML writer and parser (wire.md §7): round trips, hand-written peer documents, limits.

use sttp_proto::metadata::builder::{
    DeviceRecord, MeasurementRecord, MetadataBuilder, PhasorRecord,
};
use sttp_proto::metadata::xml::{
    self, encode_payload, parse_datetime, parse_payload, parse_xml, parse_xml_with_limits,
    write_xml, MetadataError, ParseLimits,
};
use sttp_proto::metadata::{schema, Column, DataSet, DataTable, DataType, Value};
use sttp_wire::ticks;
use uuid::Uuid;

const T0: i64 = 638_000_000_000_000_000; // 2022-09-28T22:13:20Z, whole second (peers.md P1)

fn g(n: u128) -> Uuid {
    Uuid::from_u128(0x0123_4567_89ab_cdef_0000_0000_0000_0000 | n)
}

fn sample() -> MetadataBuilder {
    MetadataBuilder {
        devices: vec![DeviceRecord {
            node_id: g(1),
            unique_id: g(2),
            acronym: "DEV1".into(),
            name: "Device <one> & \"two\"".into(),
            original_source: None,
            is_concentrator: false,
            access_id: 7,
            parent_acronym: Some(String::new()),
            protocol_name: "STTP".into(),
            frames_per_second: 60,
            company_acronym: Some("GPA".into()),
            vendor_acronym: None,
            vendor_device_name: None,
            longitude: Some(-84.123456),
            latitude: Some(35.5),
            interconnection_name: Some("Eastern".into()),
            contact_list: None,
            enabled: true,
            updated_on: T0,
        }],
        measurements: vec![
            MeasurementRecord {
                device_acronym: "DEV1".into(),
                id: "DEV1:1".into(),
                signal_id: g(10),
                point_tag: "DEV1.FREQ".into(),
                alternate_tag: None,
                signal_reference: "DEV1-FQ".into(),
                signal_acronym: "FREQ".into(),
                phasor_source_index: None,
                description: "Tab\there, CR\rLF\r\nend ]]> 日本 🎉 'q'".into(),
                internal: true,
                enabled: true,
                updated_on: T0 + 1_234_567,
            },
            MeasurementRecord {
                device_acronym: "DEV1".into(),
                id: "DEV1:2".into(),
                signal_id: g(11),
                point_tag: "DEV1.VA".into(),
                alternate_tag: Some("alt".into()),
                signal_reference: "DEV1-PA1".into(),
                signal_acronym: "VPHA".into(),
                phasor_source_index: Some(1),
                description: String::new(),
                internal: false,
                enabled: false,
                updated_on: 0,
            },
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
            updated_on: xml::MAX_TICKS,
        }],
        schema_version: 9,
    }
}

#[test]
fn built_dataset_round_trips() {
    let set = sample().build();
    assert_eq!(set.name, "DataSet");
    let names: Vec<_> = set.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "DeviceDetail",
            "MeasurementDetail",
            "PhasorDetail",
            "SchemaVersion"
        ]
    );
    let text = write_xml(&set);
    let back = parse_xml(text.as_bytes()).unwrap();
    assert_eq!(back, set);
    // NULLs are omitted elements, empty strings are present.
    assert!(!text.contains("<OriginalSource>"));
    assert!(text.contains("<ParentAcronym></ParentAcronym>"));
    assert!(text.contains("<Description></Description>"));
    // Escaping: markup characters, CR as a character reference, tab verbatim in text.
    assert!(text.contains("Device &lt;one&gt; &amp; \"two\""));
    assert!(text.contains("CR&#xD;LF&#xD;\nend ]]&gt;"));
    // Whole seconds keep seven fractional digits (peers.md P1).
    assert!(text.contains("<UpdatedOn>2022-09-28T22:13:20.0000000Z</UpdatedOn>"));
    assert!(text.contains("<UpdatedOn>2022-09-28T22:13:20.1234567Z</UpdatedOn>"));
    assert!(text.contains("<Longitude>-84.123456</Longitude>"));
}

#[test]
fn writer_emits_the_reference_schema_form() {
    let text = write_xml(&sample().build());
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<DataSet>\n"));
    assert!(text.contains(
        "<xs:schema id=\"DataSet\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:ext=\"urn:schemas-microsoft-com:xml-msdata\">"
    ));
    assert!(text.contains("<xs:element name=\"DataSet\" ext:IsDataSet=\"true\">"));
    assert!(text.contains("<xs:choice minOccurs=\"0\" maxOccurs=\"unbounded\">"));
    assert!(text.contains(
        "<xs:element name=\"SignalID\" type=\"xs:string\" ext:DataType=\"System.Guid\" minOccurs=\"0\" />"
    ));
    assert!(text.contains("<xs:element name=\"UpdatedOn\" type=\"xs:dateTime\" minOccurs=\"0\" />"));
    assert!(text.contains("<xs:element name=\"Longitude\" type=\"xs:decimal\" minOccurs=\"0\" />"));
    assert!(text.contains("<SignalID>01234567-89ab-cdef-0000-00000000000a</SignalID>"));
    assert!(text.contains("<Internal>true</Internal>"));
    assert!(text.contains("<Enabled>false</Enabled>"));
    assert!(text.trim_end().ends_with("</DataSet>"));
}

fn every_type_table() -> DataTable {
    use DataType::*;
    let types = [
        String, Boolean, DateTime, Single, Double, Decimal, Guid, Int8, Int16, Int32, Int64, UInt8,
        UInt16, UInt32, UInt64,
    ];
    let mut t = DataTable::new(
        "AllTypes",
        types
            .iter()
            .map(|ty| Column::new(&format!("{ty:?}Col"), *ty))
            .collect(),
    );
    t.push_row(vec![
        Value::String("  padded  ".into()),
        Value::Boolean(true),
        Value::DateTime(ticks::from_civil(9999, 12, 31, 23, 59, 59, 9_999_999)),
        Value::Single(1.5e-7),
        Value::Double(f64::MAX),
        Value::Decimal(1e-7),
        Value::Guid(Uuid::max()),
        Value::Int32(-128),
        Value::Int32(-32768),
        Value::Int32(i32::MIN),
        Value::Int64(i64::MIN),
        Value::Int64(255),
        Value::Int64(65535),
        Value::Int64(u32::MAX as i64),
        Value::UInt64(u64::MAX),
    ]);
    t.push_row(vec![Value::Null; types.len()]);
    t.push_row(vec![
        Value::String(std::string::String::new()),
        Value::Boolean(false),
        Value::DateTime(0),
        Value::Single(f32::NEG_INFINITY),
        Value::Double(f64::INFINITY),
        Value::Decimal(-123456789.125),
        Value::Guid(Uuid::nil()),
        Value::Int32(127),
        Value::Int32(32767),
        Value::Int32(i32::MAX),
        Value::Int64(i64::MAX),
        Value::Int64(0),
        Value::Int64(0),
        Value::Int64(0),
        Value::UInt64(0),
    ]);
    t
}

#[test]
fn every_type_and_nulls_round_trip() {
    let mut set = DataSet::new("NewDataSet");
    set.tables.push(every_type_table());
    let text = write_xml(&set);
    for ty in [
        "xs:string",
        "xs:boolean",
        "xs:dateTime",
        "xs:float",
        "xs:double",
        "xs:decimal",
        "xs:byte",
        "xs:short",
        "xs:int",
        "xs:long",
        "xs:unsignedByte",
        "xs:unsignedShort",
        "xs:unsignedInt",
        "xs:unsignedLong",
    ] {
        assert!(text.contains(&format!("type=\"{ty}\"")), "{ty}");
    }
    assert!(text.contains("<DoubleCol>INF</DoubleCol>"));
    assert!(text.contains("<SingleCol>-INF</SingleCol>"));
    assert!(text.contains("<DecimalCol>0.0000001</DecimalCol>"));
    assert!(text.contains("<DateTimeCol>9999-12-31T23:59:59.9999999Z</DateTimeCol>"));
    assert!(text.contains("<DateTimeCol>0001-01-01T00:00:00.0000000Z</DateTimeCol>"));
    let back = parse_xml(text.as_bytes()).unwrap();
    assert_eq!(back, set);
    // The all-NULL row is an empty record element.
    assert!(text.contains("  <AllTypes>\n  </AllTypes>\n"));
}

#[test]
fn nan_is_written_and_read() {
    let mut t = DataTable::new("T", vec![Column::new("D", DataType::Double)]);
    t.push_row(vec![Value::Double(f64::NAN)]);
    let mut set = DataSet::new("DataSet");
    set.tables.push(t);
    let text = write_xml(&set);
    assert!(text.contains("<D>NaN</D>"));
    let back = parse_xml(text.as_bytes()).unwrap();
    assert!(matches!(back.tables[0].value(0, 0), Value::Double(d) if d.is_nan()));
}

#[test]
fn computed_columns_keep_their_expression_but_not_values() {
    let mut t = DataTable::new(
        "T",
        vec![
            Column::new("A", DataType::Int32),
            Column {
                name: "B".into(),
                data_type: DataType::Int32,
                expression: Some("A * 2 < 5 & \"x\"".into()),
            },
        ],
    );
    t.push_row(vec![Value::Int32(1), Value::Int32(2)]);
    let mut set = DataSet::new("DataSet");
    set.tables.push(t);
    let text = write_xml(&set);
    assert!(text.contains("ext:Expression=\"A * 2 &lt; 5 &amp; &quot;x&quot;\""));
    assert!(!text.contains("<B>"));
    let back = parse_xml(text.as_bytes()).unwrap();
    assert_eq!(
        back.tables[0].columns()[1].expression.as_deref(),
        Some("A * 2 < 5 & \"x\"")
    );
    assert_eq!(back.tables[0].rows()[0], vec![Value::Int32(1), Value::Null]);
}

#[test]
fn invalid_xml_characters_become_replacement_characters() {
    let mut t = DataTable::new("T", vec![Column::new("S", DataType::String)]);
    t.push_row(vec![Value::String("a\u{0}b\u{1B}c\u{FFFF}".into())]);
    let mut set = DataSet::new("DataSet");
    set.tables.push(t);
    let back = parse_xml(write_xml(&set).as_bytes()).unwrap();
    assert_eq!(
        back.tables[0].value(0, 0),
        &Value::String("a\u{FFFD}b\u{FFFD}c\u{FFFD}".into())
    );
}

/// What .NET's DataSet.WriteXml(XmlWriteMode.WriteSchema) produces: `msdata:` prefix, a Guid
/// type with assembly qualification, a MaxLength restriction, offsets, CDATA, comments.
const DOTNET: &str = r#"<?xml version="1.0" standalone="yes"?>
<NewDataSet>
  <!-- comment -->
  <xs:schema id="NewDataSet" xmlns="" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:msdata="urn:schemas-microsoft-com:xml-msdata">
    <xs:element name="NewDataSet" msdata:IsDataSet="true" msdata:UseCurrentLocale="true">
      <xs:complexType>
        <xs:choice minOccurs="0" maxOccurs="unbounded">
          <xs:element name="MeasurementDetail">
            <xs:complexType>
              <xs:sequence>
                <xs:element name="DeviceAcronym" minOccurs="0">
                  <xs:simpleType>
                    <xs:restriction base="xs:string"><xs:maxLength value="200" /></xs:restriction>
                  </xs:simpleType>
                </xs:element>
                <xs:element name="SignalID" msdata:DataType="System.Guid, mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089" type="xs:string" minOccurs="0" />
                <xs:element name="Blob" type="xs:base64Binary" minOccurs="0" />
                <xs:element name="Internal" type="xs:boolean" minOccurs="0" />
                <xs:element name="UpdatedOn" type="xs:dateTime" minOccurs="0" />
              </xs:sequence>
            </xs:complexType>
          </xs:element>
        </xs:choice>
      </xs:complexType>
    </xs:element>
  </xs:schema>
  <MeasurementDetail>
    <DeviceAcronym><![CDATA[A<B]]>&amp;C</DeviceAcronym>
    <SignalID>{AABBCCDD-0000-1111-2222-333344445555}</SignalID>
    <Blob>AAEC</Blob>
    <Internal>1</Internal>
    <UpdatedOn>2025-01-04T03:00:52.73-05:00</UpdatedOn>
    <Unknown>ignored</Unknown>
  </MeasurementDetail>
  <Unknown><X/></Unknown>
  <MeasurementDetail />
</NewDataSet>"#;

#[test]
fn dotnet_document_with_msdata_prefix_parses() {
    let set = parse_xml(DOTNET.as_bytes()).unwrap();
    assert_eq!(set.name, "NewDataSet");
    let t = set.table("measurementdetail").unwrap();
    let cols: Vec<_> = t
        .columns()
        .iter()
        .map(|c| (c.name.as_str(), c.data_type))
        .collect();
    assert_eq!(
        cols,
        [
            ("DeviceAcronym", DataType::String),
            ("SignalID", DataType::Guid),
            ("Internal", DataType::Boolean),
            ("UpdatedOn", DataType::DateTime),
        ]
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t.value(0, 0), &Value::String("A<B&C".into()));
    assert_eq!(
        t.value(0, 1),
        &Value::Guid(Uuid::parse_str("aabbccdd-0000-1111-2222-333344445555").unwrap())
    );
    assert_eq!(t.value(0, 2), &Value::Boolean(true));
    assert_eq!(
        t.value(0, 3),
        &Value::DateTime(ticks::from_civil(2025, 1, 4, 8, 0, 52, 7_300_000))
    );
    assert_eq!(t.rows()[1], vec![Value::Null; 4]);
}

#[test]
fn arbitrary_prefixes_are_resolved_by_uri_and_bom_is_skipped() {
    let doc = "\u{FEFF}<?xml version=\"1.0\"?>\
        <Iaon xmlns:q=\"http://www.w3.org/2001/XMLSchema\" xmlns:m=\"urn:schemas-microsoft-com:xml-msdata\">\
        <q:schema id=\"Iaon\"><q:element name=\"Iaon\"><q:complexType><q:choice>\
        <q:element name=\"T\"><q:complexType><q:sequence>\
        <q:element name=\"G\" type=\"q:string\" m:DataType=\"System.Guid\"/>\
        <q:element name=\"S\" type=\"q:string\"/>\
        <q:element name=\"N\" type=\"xs:int\"/>\
        </q:sequence></q:complexType></q:element></q:choice></q:complexType></q:element></q:schema>\
        <T><G>00000000-0000-0000-0000-000000000001</G><S/></T></Iaon>";
    let set = parse_xml(doc.as_bytes()).unwrap();
    let t = set.table("T").unwrap();
    // `xs:` is not bound in this document, so column N is skipped.
    assert_eq!(t.columns().len(), 2);
    assert_eq!(t.columns()[0].data_type, DataType::Guid);
    assert_eq!(
        t.rows()[0],
        vec![
            Value::Guid(Uuid::from_u128(1)),
            Value::String(String::new())
        ]
    );

    // A literal `xs:` prefix bound to some other namespace is not the schema.
    let fake = "<D><xs:schema xmlns:xs=\"urn:other\" id=\"D\"/></D>";
    assert_eq!(
        parse_xml(fake.as_bytes()),
        Err(MetadataError::MissingSchema { root: "D".into() })
    );
}

#[test]
fn utf16_documents_are_decoded() {
    // gsfapi's writer would declare the encoding it used.
    let xml = write_xml(&sample().build()).replacen("utf-8", "utf-16", 1);
    let mut le = vec![0xFF, 0xFE];
    le.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(xml.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(parse_xml(&le).unwrap(), sample().build());
    assert_eq!(parse_xml(&be).unwrap(), sample().build());
    assert_eq!(parse_xml(&[0xFF, 0xFE, 0x41]), Err(MetadataError::BadUtf16));
}

#[test]
fn odd_datetimes_parse() {
    let whole = ticks::from_civil(2025, 1, 1, 0, 0, 0, 0);
    for s in [
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00.Z",
        "2025-01-01T00:00:00.000Z",
        "2025-01-01T00:00:00.0000000Z",
        "2025-01-01T00:00:00.000000000000Z",
        "2025-01-01T00:00:00+00:00Z",
        "2025-01-01T00:00:00+00:00",
        "2025-01-01T00:00:00-00:00",
        "2025-01-01T00:00:00",
        "2025-01-01 00:00:00",
        "2025-01-01T00:00",
        "2025-01-01",
        "2025-01-01Z",
        "2024-12-31T24:00:00Z",
        "2025-01-01T02:00:00+02:00",
        "2025-01-01T02:00:00+0200",
        "2025-01-01T02:00:00+02",
        "2024-12-31T19:00:00-05:00",
        "  2025-01-01t00:00:00z  ",
    ] {
        assert_eq!(parse_datetime(s), Ok(whole), "{s}");
    }
    let cases = [
        ("2025-01-01T00:00:00.1Z", 1_000_000),
        ("2025-01-01T00:00:00.12Z", 1_200_000),
        ("2025-01-01T00:00:00.123Z", 1_230_000),
        ("2025-01-01T00:00:00.1234567Z", 1_234_567),
        ("2025-01-01T00:00:00.12345678Z", 1_234_567),
        ("2025-01-01T00:00:00,5Z", 5_000_000),
    ];
    for (s, frac) in cases {
        assert_eq!(parse_datetime(s), Ok(whole + frac), "{s}");
    }
    for bad in [
        "",
        "2025",
        "2025-13-01",
        "2025-02-29T00:00:00Z",
        "2025-01-01T25:00:00Z",
        "2025-01-01T24:00:01Z",
        "2025-01-01T00:60:00Z",
        "2025-01-01T00:00:00ZZ",
        "2025-01-01T00:00:00+25:00",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2025-01-01T00:00:00 junk",
        "２０２５-01-01",
    ] {
        assert!(parse_datetime(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_datetime("2024-02-29T00:00:00Z"),
        Ok(ticks::from_civil(2024, 2, 29, 0, 0, 0, 0))
    );
}

#[test]
fn value_text_forms() {
    use xml::parse_value as p;
    assert_eq!(p(DataType::Boolean, " TRUE "), Ok(Value::Boolean(true)));
    assert_eq!(p(DataType::Boolean, "0"), Ok(Value::Boolean(false)));
    assert!(p(DataType::Boolean, "maybe").is_err());
    assert_eq!(p(DataType::Int32, "+42"), Ok(Value::Int32(42)));
    assert_eq!(p(DataType::Int32, "0x10"), Ok(Value::Int32(16)));
    assert!(p(DataType::Int8, "128").is_err());
    assert!(p(DataType::UInt8, "-1").is_err());
    assert!(p(DataType::Int64, "99999999999999999999999").is_err());
    assert_eq!(
        p(DataType::UInt32, "4294967295"),
        Ok(Value::Int64(4_294_967_295))
    );
    assert_eq!(p(DataType::Double, "INF"), Ok(Value::Double(f64::INFINITY)));
    assert_eq!(
        p(DataType::Double, "-INF"),
        Ok(Value::Double(f64::NEG_INFINITY))
    );
    assert_eq!(p(DataType::Decimal, "1E3"), Ok(Value::Decimal(1000.0)));
    assert_eq!(p(DataType::Int32, "  "), Ok(Value::Null));
    assert_eq!(p(DataType::String, "  "), Ok(Value::String("  ".into())));
    assert!(p(DataType::Guid, "not-a-guid").is_err());
}

#[test]
fn invalid_values_are_reported_with_their_location() {
    let doc = r#"<D><xs:schema id="D" xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="D"><xs:complexType><xs:choice>
        <xs:element name="T"><xs:complexType><xs:sequence><xs:element name="N" type="xs:int"/></xs:sequence></xs:complexType></xs:element>
        </xs:choice></xs:complexType></xs:element></xs:schema><T><N>1</N></T><T><N>x1</N></T></D>"#;
    match parse_xml(doc.as_bytes()) {
        Err(MetadataError::InvalidValue {
            table,
            row,
            column,
            data_type,
            value,
            ..
        }) => {
            assert_eq!((table.as_str(), row, column.as_str()), ("T", 1, "N"));
            assert_eq!((data_type, value.as_str()), (DataType::Int32, "x1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_documents_are_rejected_precisely() {
    assert_eq!(parse_xml(b""), Err(MetadataError::NoRoot));
    assert_eq!(parse_xml(b"  <!-- only -->"), Err(MetadataError::NoRoot));
    assert_eq!(
        parse_xml(b"<D/>"),
        Err(MetadataError::MissingSchema { root: "D".into() })
    );
    assert!(matches!(
        parse_xml(b"<D><a></b></D>"),
        Err(MetadataError::Xml { .. })
    ));
    assert!(matches!(
        parse_xml(b"<D><a>"),
        Err(MetadataError::Xml { .. })
    ));
    assert!(matches!(
        parse_xml(b"<D/><E/>"),
        Err(MetadataError::TrailingContent { .. })
    ));
    assert!(parse_xml(b"<D>\xff</D>").is_err());
    // An unknown entity inside a field is an error, not a silent drop.
    let set = sample().build();
    let text = write_xml(&set).replace(
        "<PointTag>DEV1.FREQ</PointTag>",
        "<PointTag>&lol;</PointTag>",
    );
    assert!(matches!(
        parse_xml(text.as_bytes()),
        Err(MetadataError::Xml { .. })
    ));
}

#[test]
fn limits_are_enforced() {
    let text = write_xml(&sample().build());
    let tight = |f: fn(&mut ParseLimits)| {
        let mut l = ParseLimits::default();
        f(&mut l);
        parse_xml_with_limits(text.as_bytes(), &l)
    };
    assert!(matches!(
        tight(|l| l.max_bytes = 100),
        Err(MetadataError::TooLarge { limit: 100, .. })
    ));
    assert!(matches!(
        tight(|l| l.max_depth = 8),
        Err(MetadataError::TooDeep { limit: 8, .. })
    ));
    assert!(tight(|l| l.max_depth = 9).is_ok());
    assert!(matches!(
        tight(|l| l.max_tables = 3),
        Err(MetadataError::TooManyTables { limit: 3 })
    ));
    assert!(matches!(
        tight(|l| l.max_columns = 18),
        Err(MetadataError::TooManyColumns { ref table, limit: 18 }) if table == "DeviceDetail"
    ));
    // 1 device × 20 + 2 measurements × 13 + 1 phasor × 10 + 1 version × 2 = 58 cells.
    assert!(tight(|l| l.max_cells = 58).is_ok());
    assert!(matches!(
        tight(|l| l.max_cells = 57),
        Err(MetadataError::TooManyCells { limit: 57, ref table, row: 0 }) if table == "SchemaVersion"
    ));
    let deep = format!("<D>{}{}</D>", "<a>".repeat(100_000), "</a>".repeat(100_000));
    assert!(matches!(
        parse_xml(deep.as_bytes()),
        Err(MetadataError::TooDeep { limit: 32, .. })
    ));
}

#[test]
fn payloads_gzip_and_empty() {
    let set = sample().build();
    let limits = ParseLimits::default();
    assert_eq!(
        parse_payload(&encode_payload(&set, true), &limits).unwrap(),
        set
    );
    assert_eq!(
        parse_payload(&encode_payload(&set, false), &limits).unwrap(),
        set
    );
    assert!(parse_payload(b"", &limits).unwrap().tables.is_empty());
    let small = ParseLimits {
        max_bytes: 1000,
        ..limits
    };
    assert!(matches!(
        parse_payload(&encode_payload(&set, true), &small),
        Err(MetadataError::TooLarge { limit: 1000, .. })
    ));
    assert!(matches!(
        parse_payload(b"\x1f\x8bjunk", &limits),
        Err(MetadataError::Gzip(_))
    ));
}

#[test]
fn canonical_schemas_have_reference_columns() {
    let names =
        |t: DataTable| -> Vec<String> { t.columns().iter().map(|c| c.name.clone()).collect() };
    assert_eq!(names(schema::device_detail()).len(), 19);
    assert_eq!(
        names(schema::measurement_detail()),
        [
            "DeviceAcronym",
            "ID",
            "SignalID",
            "PointTag",
            "AlternateTag",
            "SignalReference",
            "SignalAcronym",
            "PhasorSourceIndex",
            "Description",
            "Internal",
            "Enabled",
            "UpdatedOn"
        ]
    );
    assert_eq!(names(schema::active_measurements()).len(), 25);
    assert_eq!(
        schema::schema_version().columns()[0].data_type,
        DataType::Int32
    );
    let am = schema::active_measurements();
    for (c, t) in [
        ("SourceNodeID", DataType::Guid),
        ("Internal", DataType::Int32),
        ("Adder", DataType::Double),
        ("Longitude", DataType::Decimal),
        ("UpdatedOn", DataType::DateTime),
    ] {
        assert_eq!(
            am.column(am.column_index(c).unwrap()).unwrap().data_type,
            t,
            "{c}"
        );
    }
}

/// Writes the sample metadata (plus 1000 generated measurements) for the Python interop check
/// (`tests/python/check_metadata.py FILE 1002`). The file lands in the target temp directory, or
/// at `$STTP_METADATA_FIXTURE` when set.
#[test]
fn write_python_fixture() {
    let mut b = sample();
    for i in 0..1000u32 {
        b.measurements.push(MeasurementRecord {
            device_acronym: "DEV1".into(),
            id: format!("DEV1:{}", 100 + i),
            signal_id: Uuid::from_u128(0xfeed_0000_0000_0000_0000_0000_0000_0000 | u128::from(i)),
            point_tag: format!("DEV1.GEN{i}"),
            alternate_tag: None,
            signal_reference: format!("DEV1-AV{i}"),
            signal_acronym: "ALOG".into(),
            phasor_source_index: None,
            description: format!("generated <{i}>"),
            internal: i % 2 == 0,
            enabled: true,
            // whole seconds on purpose: the P1 trigger
            updated_on: T0 + i64::from(i) * ticks::PER_SECOND,
        });
    }
    let set = b.build();
    let path = std::env::var_os("STTP_METADATA_FIXTURE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("metadata_fixture.xml")
        });
    std::fs::write(&path, write_xml(&set)).unwrap();
    eprintln!("wrote {}", path.display());
}
