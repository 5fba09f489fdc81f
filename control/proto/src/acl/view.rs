//! The metadata a restricted catalog shows (see [`crate::catalog::Catalog::restricted`]): only
//! rows about allowed points, so neither a MetadataRefresh reply nor a subscription filter can
//! reveal a denied point's existence through its rows.
//!
//! - `MeasurementDetail`: rows whose `SignalID` is allowed.
//! - `DeviceDetail`: devices (by `Acronym`) that have at least one allowed measurement.
//! - `PhasorDetail`: phasors (by `DeviceAcronym` + `SourceIndex`) an allowed measurement refers to
//!   through its `PhasorSourceIndex`.
//! - `SchemaVersion`: kept.
//! - Any other table is dropped: its rows cannot be tied to points, and deny is the default.
//! - `ActiveMeasurements`: the full catalog's rows whose `SignalID` is allowed, values unchanged
//!   (so `DeviceID`, the device's row in the *full* DeviceDetail, stays what every other view of
//!   this publisher says).

use super::set::SignalSet;
use crate::catalog::Catalog;
use crate::metadata::schema;
use crate::metadata::{DataSet, DataTable, Value};
use std::collections::HashSet;
use uuid::Uuid;

/// The restricted metadata and ActiveMeasurements dataset of `base` for `allowed`.
pub(crate) fn restrict(base: &Catalog, allowed: &SignalSet) -> (DataSet, DataSet) {
    let guids: HashSet<Uuid> = allowed
        .iter()
        .filter_map(|i| base.signal(i).map(|s| s.signal_id))
        .collect();
    let full = base.metadata();
    let mut metadata = DataSet::new(&full.name);
    let mut devices: HashSet<String> = HashSet::new();
    let mut phasors: HashSet<(String, i64)> = HashSet::new();
    if let Some(md) = full.table(schema::MEASUREMENT_DETAIL) {
        let keep = rows_where(md, |t, r| {
            t.value_by_name(r, "SignalID")
                .as_guid()
                .is_some_and(|g| guids.contains(&g))
        });
        for &r in &keep {
            if let Some(dev) = md.value_by_name(r, "DeviceAcronym").as_str() {
                devices.insert(dev.to_owned());
                if let Some(i) = int(md.value_by_name(r, "PhasorSourceIndex")) {
                    phasors.insert((dev.to_owned(), i));
                }
            }
        }
        metadata.tables.push(subset(md, &keep));
    }
    for table in &full.tables {
        let keep = if table.name.eq_ignore_ascii_case(schema::DEVICE_DETAIL) {
            rows_where(table, |t, r| {
                t.value_by_name(r, "Acronym")
                    .as_str()
                    .is_some_and(|a| devices.contains(a))
            })
        } else if table.name.eq_ignore_ascii_case(schema::PHASOR_DETAIL) {
            rows_where(table, |t, r| {
                let dev = t.value_by_name(r, "DeviceAcronym").as_str();
                let idx = int(t.value_by_name(r, "SourceIndex"));
                matches!((dev, idx), (Some(d), Some(i)) if phasors.contains(&(d.to_owned(), i)))
            })
        } else if table.name.eq_ignore_ascii_case(schema::SCHEMA_VERSION) {
            (0..table.len()).collect()
        } else {
            continue;
        };
        metadata.tables.push(subset(table, &keep));
    }
    // Keep the full dataset's table order.
    metadata.tables.sort_by_key(|t| {
        full.tables
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(&t.name))
    });
    let full_active = base.active_measurements();
    let keep = rows_where(full_active, |t, r| {
        t.value_by_name(r, "SignalID")
            .as_guid()
            .is_some_and(|g| guids.contains(&g))
    });
    let mut active = DataSet::new(schema::FILTERING_DATASET);
    active.tables.push(subset(full_active, &keep));
    (metadata, active)
}

fn rows_where(t: &DataTable, pred: impl Fn(&DataTable, usize) -> bool) -> Vec<usize> {
    (0..t.len()).filter(|&r| pred(t, r)).collect()
}

fn subset(t: &DataTable, keep: &[usize]) -> DataTable {
    let mut out = t.clone();
    out.retain_rows(keep);
    out
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        other => other.as_i64(),
    }
}
