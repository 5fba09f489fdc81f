//! Typed records a publisher describes its devices, measurements and phasors with, and the
//! conversion into the metadata [`DataSet`] sent in reply to MetadataRefresh (wire.md §7).
//!
//! `Option` fields become NULL cells, which the XML writer omits; stock subscribers then fall back
//! to their own defaults (pyapi `MetadataCache`), which is why optional data is not replaced by
//! empty strings here.

use super::dataset::{DataSet, DataTable, Value};
use super::schema;
use uuid::Uuid;

/// One `DeviceDetail` row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Node (publisher instance) the device belongs to.
    pub node_id: Uuid,
    /// The device's own GUID.
    pub unique_id: Uuid,
    /// Unique device acronym; `MeasurementDetail.DeviceAcronym` refers to it.
    pub acronym: String,
    /// Free-form name.
    pub name: String,
    /// Acronym at the original source, when re-published.
    pub original_source: Option<String>,
    /// True for a PDC (concentrator) rather than a single PMU.
    pub is_concentrator: bool,
    /// ID code of the device in its source protocol.
    pub access_id: i32,
    /// Acronym of the parent concentrator.
    pub parent_acronym: Option<String>,
    /// Source protocol name; decides `ActiveMeasurements.ProtocolType`.
    pub protocol_name: String,
    /// Reporting rate.
    pub frames_per_second: i32,
    /// Owning company.
    pub company_acronym: Option<String>,
    /// Vendor.
    pub vendor_acronym: Option<String>,
    /// Vendor model.
    pub vendor_device_name: Option<String>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Interconnection (grid) name.
    pub interconnection_name: Option<String>,
    /// Contacts.
    pub contact_list: Option<String>,
    /// Disabled devices are still described.
    pub enabled: bool,
    /// Last change, in ticks (wire.md §6).
    pub updated_on: i64,
}

/// One `MeasurementDetail` row.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementRecord {
    /// Acronym of the owning device.
    pub device_acronym: String,
    /// Measurement key `SOURCE:N`.
    pub id: String,
    /// The signal's GUID.
    pub signal_id: Uuid,
    /// Point tag.
    pub point_tag: String,
    /// Alternate tag (gsfapi column).
    pub alternate_tag: Option<String>,
    /// Signal reference, e.g. `DEV-PA1`.
    pub signal_reference: String,
    /// Signal type acronym (`FREQ`, `VPHM`, …).
    pub signal_acronym: String,
    /// 1-based phasor index for phasor components.
    pub phasor_source_index: Option<i32>,
    /// Description.
    pub description: String,
    /// Internal (local) rather than external (received) point; see wire.md §2.
    pub internal: bool,
    /// Disabled measurements are left out of `ActiveMeasurements`.
    pub enabled: bool,
    /// Last change, in ticks (wire.md §6).
    pub updated_on: i64,
}

/// One `PhasorDetail` row.
#[derive(Debug, Clone, PartialEq)]
pub struct PhasorRecord {
    /// Phasor ID.
    pub id: i32,
    /// Acronym of the owning device.
    pub device_acronym: String,
    /// Label.
    pub label: String,
    /// `V` or `I`.
    pub phasor_type: String,
    /// `+`, `-`, `0`, `A`, `B`, `C`, …
    pub phase: String,
    /// Phasor this one maps to at the destination.
    pub destination_phasor_id: Option<i32>,
    /// 1-based index, matched against `MeasurementDetail.PhasorSourceIndex`.
    pub source_index: i32,
    /// Nominal voltage level (gsfapi column).
    pub base_kv: Option<i32>,
    /// Last change, in ticks (wire.md §6).
    pub updated_on: i64,
}

/// Collects a publisher's records and builds the metadata dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataBuilder {
    /// Devices, in `DeviceDetail` row order (the order defines `ActiveMeasurements.DeviceID`).
    pub devices: Vec<DeviceRecord>,
    /// Measurements, in `MeasurementDetail` row order.
    pub measurements: Vec<MeasurementRecord>,
    /// Phasors.
    pub phasors: Vec<PhasorRecord>,
    /// Value of `SchemaVersion.VersionNumber`.
    pub schema_version: i32,
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn opt_i32(v: Option<i32>) -> Value {
    v.map_or(Value::Null, Value::Int32)
}

fn opt_decimal(v: Option<f64>) -> Value {
    v.map_or(Value::Null, Value::Decimal)
}

fn str_val(s: &str) -> Value {
    Value::String(s.to_owned())
}

impl DeviceRecord {
    /// The row in [`schema::device_detail`] column order.
    fn row(&self) -> Vec<Value> {
        vec![
            Value::Guid(self.node_id),
            Value::Guid(self.unique_id),
            opt_str(&self.original_source),
            Value::Boolean(self.is_concentrator),
            str_val(&self.acronym),
            str_val(&self.name),
            Value::Int32(self.access_id),
            opt_str(&self.parent_acronym),
            str_val(&self.protocol_name),
            Value::Int32(self.frames_per_second),
            opt_str(&self.company_acronym),
            opt_str(&self.vendor_acronym),
            opt_str(&self.vendor_device_name),
            opt_decimal(self.longitude),
            opt_decimal(self.latitude),
            opt_str(&self.interconnection_name),
            opt_str(&self.contact_list),
            Value::Boolean(self.enabled),
            Value::DateTime(self.updated_on),
        ]
    }
}

impl MeasurementRecord {
    /// The row in [`schema::measurement_detail`] column order.
    fn row(&self) -> Vec<Value> {
        vec![
            str_val(&self.device_acronym),
            str_val(&self.id),
            Value::Guid(self.signal_id),
            str_val(&self.point_tag),
            opt_str(&self.alternate_tag),
            str_val(&self.signal_reference),
            str_val(&self.signal_acronym),
            opt_i32(self.phasor_source_index),
            str_val(&self.description),
            Value::Boolean(self.internal),
            Value::Boolean(self.enabled),
            Value::DateTime(self.updated_on),
        ]
    }
}

impl PhasorRecord {
    /// The row in [`schema::phasor_detail`] column order.
    fn row(&self) -> Vec<Value> {
        vec![
            Value::Int32(self.id),
            str_val(&self.device_acronym),
            str_val(&self.label),
            str_val(&self.phasor_type),
            str_val(&self.phase),
            opt_i32(self.destination_phasor_id),
            Value::Int32(self.source_index),
            opt_i32(self.base_kv),
            Value::DateTime(self.updated_on),
        ]
    }
}

impl MetadataBuilder {
    /// The metadata dataset `DataSet` with the tables `DeviceDetail`, `MeasurementDetail`,
    /// `PhasorDetail` and `SchemaVersion` (wire.md §7), rows in record order.
    pub fn build(&self) -> DataSet {
        fn fill<T>(
            mut table: DataTable,
            records: &[T],
            row: impl Fn(&T) -> Vec<Value>,
        ) -> DataTable {
            for r in records {
                table.push_row(row(r));
            }
            table
        }
        let mut set = DataSet::new(schema::METADATA_DATASET);
        set.tables.push(fill(
            schema::device_detail(),
            &self.devices,
            DeviceRecord::row,
        ));
        set.tables.push(fill(
            schema::measurement_detail(),
            &self.measurements,
            MeasurementRecord::row,
        ));
        set.tables.push(fill(
            schema::phasor_detail(),
            &self.phasors,
            PhasorRecord::row,
        ));
        let mut version = schema::schema_version();
        version.push_row(vec![Value::Int32(self.schema_version)]);
        set.tables.push(version);
        set
    }
}
