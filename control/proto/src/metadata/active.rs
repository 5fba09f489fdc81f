//! Tables derived from the metadata dataset: `ActiveMeasurements`, which subscription filters run
//! against (wire.md §7), the ReceiveExternal/InternalMetadata row filter (wire.md §2), and
//! MetadataRefresh filters (wire.md §7, end).

use super::dataset::{DataSet, DataTable, Value};
use super::schema;
use crate::filter::{self, EvalContext, FilterError};
use std::collections::HashMap;
use uuid::Uuid;

/// Frame rate assumed when a measurement has no device or its device states none, as in the
/// reference publishers.
pub const DEFAULT_FRAMES_PER_SECOND: i32 = 30;

/// `ProtocolType` of a device protocol (wire.md §7): point-oriented protocols (STTP, GEP —
/// "Gateway Exchange Protocol", Modbus, DNP3) are "Measurement", everything else (C37.118,
/// IEEE 1344, BPA, …, and no protocol) is "Frame".
pub fn protocol_type(protocol_name: &str) -> &'static str {
    let p = protocol_name.trim().to_ascii_uppercase();
    if p == "STTP"
        || p == "STREAMING TELEMETRY TRANSPORT PROTOCOL"
        || p.starts_with("GATEWAY")
        || p.starts_with("GEP")
        || p.starts_with("MODBUS")
        || p.starts_with("DNP")
    {
        "Measurement"
    } else {
        "Frame"
    }
}

/// `EngineeringUnits` of a signal type (wire.md §7): IPHM→Amps, VPHM→Volts, FREQ→Hz,
/// *PHA→Degrees, else empty.
pub fn engineering_units(signal_type: &str) -> &'static str {
    let s = signal_type.trim().to_ascii_uppercase();
    match s.as_str() {
        "IPHM" => "Amps",
        "VPHM" => "Volts",
        "FREQ" => "Hz",
        _ if s.ends_with("PHA") => "Degrees",
        _ => "",
    }
}

/// A non-empty string cell.
fn text<'a>(t: &'a DataTable, row: usize, col: &str) -> Option<&'a str> {
    t.value_by_name(row, col).as_str().filter(|s| !s.is_empty())
}

/// Truth of a boolean or integer cell; `None` for NULL and other types.
fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Boolean(b) => Some(*b),
        Value::UInt64(u) => Some(*u != 0),
        other => other.as_i64().map(|i| i != 0),
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::UInt64(u) => i64::try_from(*u).ok(),
        other => other.as_i64(),
    }
}

fn decimal(v: &Value) -> Option<f64> {
    match v {
        Value::Decimal(d) | Value::Double(d) => Some(*d),
        Value::Single(f) => Some(f64::from(*f)),
        other => other.as_i64().map(|i| i as f64),
    }
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

struct DeviceInfo {
    row: usize,
    frames_per_second: i32,
    protocol: String,
    company: String,
    longitude: f64,
    latitude: f64,
}

struct PhasorInfo {
    id: Value,
    phasor_type: Value,
    phase: Value,
}

/// The derived `ActiveMeasurements` table (wire.md §7 column list & rules): enabled
/// `MeasurementDetail` rows joined with `DeviceDetail` (by Acronym) and `PhasorDetail`
/// (DeviceAcronym + SourceIndex); rows in `MeasurementDetail` order.
///
/// Details that follow the reference publishers:
/// - a measurement is skipped only when `Enabled` is false/0 (NULL counts as enabled);
/// - `DeviceID` is the device's row index in `DeviceDetail` (the last row wins for a repeated
///   acronym); acronyms match exactly;
/// - without a matching device, `DeviceID`, `Protocol` and `ProtocolType` stay NULL,
///   `FramesPerSecond` is 30 and `Company`/`Longitude`/`Latitude` stay NULL; with one, a NULL or
///   zero frame rate becomes 30, NULL company `""` and NULL coordinates 0;
/// - a NULL `PhasorSourceIndex` looks up source index 0;
/// - `AlternateTag` is copied when `MeasurementDetail` has that (gsfapi) column, else NULL;
/// - `Adder` 0.0, `Multiplier` 1.0, `Subscribed` 0.
pub fn active_measurements(set: &DataSet, node_id: Uuid) -> DataTable {
    let mut out = schema::active_measurements();
    let Some(md) = set.table(schema::MEASUREMENT_DETAIL) else {
        return out;
    };

    let mut devices: HashMap<&str, DeviceInfo> = HashMap::new();
    if let Some(dd) = set.table(schema::DEVICE_DETAIL) {
        for r in 0..dd.len() {
            let Some(acronym) = text(dd, r, "Acronym") else {
                continue;
            };
            let fps = int(dd.value_by_name(r, "FramesPerSecond"))
                .and_then(|v| i32::try_from(v).ok())
                .filter(|v| *v != 0)
                .unwrap_or(DEFAULT_FRAMES_PER_SECOND);
            devices.insert(
                acronym,
                DeviceInfo {
                    row: r,
                    frames_per_second: fps,
                    protocol: text(dd, r, "ProtocolName").unwrap_or("").to_owned(),
                    company: text(dd, r, "CompanyAcronym").unwrap_or("").to_owned(),
                    longitude: decimal(dd.value_by_name(r, "Longitude")).unwrap_or(0.0),
                    latitude: decimal(dd.value_by_name(r, "Latitude")).unwrap_or(0.0),
                },
            );
        }
    }

    let mut phasors: HashMap<(&str, i64), PhasorInfo> = HashMap::new();
    if let Some(pd) = set.table(schema::PHASOR_DETAIL) {
        for r in 0..pd.len() {
            let Some(acronym) = text(pd, r, "DeviceAcronym") else {
                continue;
            };
            let source_index = int(pd.value_by_name(r, "SourceIndex")).unwrap_or(0);
            let id = int(pd.value_by_name(r, "ID"))
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0);
            phasors.insert(
                (acronym, source_index),
                PhasorInfo {
                    id: Value::Int32(id),
                    phasor_type: string(text(pd, r, "Type").unwrap_or("")),
                    phase: string(text(pd, r, "Phase").unwrap_or("")),
                },
            );
        }
    }

    let width = out.columns().len();
    let col = |name: &str| out.column_index(name);
    let cols = [
        "SourceNodeID",
        "ID",
        "SignalID",
        "PointTag",
        "AlternateTag",
        "SignalReference",
        "Internal",
        "Subscribed",
        "Device",
        "DeviceID",
        "FramesPerSecond",
        "Protocol",
        "ProtocolType",
        "SignalType",
        "EngineeringUnits",
        "PhasorID",
        "PhasorType",
        "Phase",
        "Adder",
        "Multiplier",
        "Company",
        "Longitude",
        "Latitude",
        "Description",
        "UpdatedOn",
    ]
    .map(col);
    let [c_node, c_id, c_signal, c_tag, c_alt, c_ref, c_internal, c_subscribed, c_device, c_device_id, c_fps, c_protocol, c_protocol_type, c_signal_type, c_units, c_phasor_id, c_phasor_type, c_phase, c_adder, c_multiplier, c_company, c_lon, c_lat, c_desc, c_updated] =
        cols;

    let mut rows = Vec::with_capacity(md.len());
    for r in 0..md.len() {
        if truth(md.value_by_name(r, "Enabled")) == Some(false) {
            continue;
        }
        let mut row = vec![Value::Null; width];
        let mut set_cell = |c: Option<usize>, v: Value| {
            if let Some(cell) = c.and_then(|c| row.get_mut(c)) {
                *cell = v;
            }
        };
        set_cell(c_node, Value::Guid(node_id));
        set_cell(c_id, md.value_by_name(r, "ID").clone());
        set_cell(c_signal, md.value_by_name(r, "SignalID").clone());
        set_cell(c_tag, md.value_by_name(r, "PointTag").clone());
        set_cell(c_alt, md.value_by_name(r, "AlternateTag").clone());
        set_cell(c_ref, md.value_by_name(r, "SignalReference").clone());
        let internal = truth(md.value_by_name(r, "Internal")).unwrap_or(false);
        set_cell(c_internal, Value::Int32(i32::from(internal)));
        set_cell(c_subscribed, Value::Int32(0));
        set_cell(c_adder, Value::Double(0.0));
        set_cell(c_multiplier, Value::Double(1.0));
        set_cell(c_desc, md.value_by_name(r, "Description").clone());
        set_cell(c_updated, md.value_by_name(r, "UpdatedOn").clone());
        let signal_type = text(md, r, "SignalAcronym").unwrap_or("CALC");
        set_cell(c_signal_type, string(signal_type));
        set_cell(c_units, string(engineering_units(signal_type)));
        set_cell(c_fps, Value::Int32(DEFAULT_FRAMES_PER_SECOND));
        if let Some(acronym) = text(md, r, "DeviceAcronym") {
            set_cell(c_device, string(acronym));
            if let Some(dev) = devices.get(acronym) {
                set_cell(
                    c_device_id,
                    Value::Int32(i32::try_from(dev.row).unwrap_or(i32::MAX)),
                );
                set_cell(c_fps, Value::Int32(dev.frames_per_second));
                set_cell(c_protocol, string(&dev.protocol));
                set_cell(c_protocol_type, string(protocol_type(&dev.protocol)));
                set_cell(c_company, string(&dev.company));
                set_cell(c_lon, Value::Decimal(dev.longitude));
                set_cell(c_lat, Value::Decimal(dev.latitude));
            }
            let source_index = int(md.value_by_name(r, "PhasorSourceIndex")).unwrap_or(0);
            if let Some(ph) = phasors.get(&(acronym, source_index)) {
                set_cell(c_phasor_id, ph.id.clone());
                set_cell(c_phasor_type, ph.phasor_type.clone());
                set_cell(c_phase, ph.phase.clone());
            }
        }
        rows.push(row);
    }
    for row in rows {
        out.push_row(row);
    }
    out
}

/// Applies the ReceiveExternal/InternalMetadata operational-mode bits (wire.md §2) to every table
/// with an `Internal` column: internal only keeps `Internal <> 0`, external only keeps
/// `Internal = 0`, both keep everything, and **neither means internal only** (gsfapi). Rows whose
/// `Internal` is NULL match neither comparison and are dropped whenever a filter applies.
pub fn filter_internal(set: &mut DataSet, internal: bool, external: bool) {
    let keep_internal = match (internal, external) {
        (true, true) => return,
        (false, true) => false,
        (true, false) | (false, false) => true,
    };
    for table in &mut set.tables {
        let Some(c) = table.column_index("Internal") else {
            continue;
        };
        let keep: Vec<usize> = (0..table.len())
            .filter(|&r| truth(table.value(r, c)) == Some(keep_internal))
            .collect();
        table.retain_rows(&keep);
    }
}

/// Applies MetadataRefresh filters (wire.md §7, end) to a copy of `set`: each
/// `FILTER <Table> WHERE … [ORDER BY …]` statement trims (and orders) that table; tables no
/// FILTER statement names are returned whole, and so is everything for an empty filter string.
///
/// Statements that have no table of their own (identifier statements, bare expressions) target
/// the primary table `ActiveMeasurements` of a subscription, which is not part of the metadata, so
/// they select nothing here; a FILTER naming a table the dataset lacks is ignored, since a
/// subscriber may ask a publisher for tables it does not have. Parse and evaluation errors are
/// returned for the publisher's `Failed(MetadataRefresh)` reply.
pub fn apply_metadata_filters(
    set: &DataSet,
    filters: &str,
    ctx: &EvalContext,
) -> Result<DataSet, FilterError> {
    let mut out = set.clone();
    if filters.trim().is_empty() {
        return Ok(out);
    }
    let expr = filter::parse(filters)?;
    // One evaluation budget for all the tables of this command (docs/limits.md).
    let (selected, _usage) = expr.select_named_tables(set, ctx, &filter::EvalLimits::DEFAULT);
    for sel in selected? {
        if let Some(table) = out.table_mut(&sel.table) {
            table.retain_rows(&sel.rows);
        }
    }
    Ok(out)
}
