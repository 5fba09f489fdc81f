//! Canonical, empty metadata tables (wire.md §7).
//!
//! Column names and types follow the reference `MetadataSchema.xml` (cppapi, identical in pyapi)
//! and `ActiveMeasurementsSchema.xml`. Two gsfapi additions are included because stock
//! subscribers read them when present and ignore them otherwise: `MeasurementDetail.AlternateTag`
//! and `PhasorDetail.BaseKV` (the pyapi `MetadataCache` reads `BaseKV`). Subscribers look columns
//! up by name, so the position of these extra columns does not matter to them.

use super::dataset::{Column, DataTable, DataType};

/// Name of the device table.
pub const DEVICE_DETAIL: &str = "DeviceDetail";
/// Name of the measurement table.
pub const MEASUREMENT_DETAIL: &str = "MeasurementDetail";
/// Name of the phasor table.
pub const PHASOR_DETAIL: &str = "PhasorDetail";
/// Name of the schema-version table.
pub const SCHEMA_VERSION: &str = "SchemaVersion";
/// Name of the derived table that subscription filters run against.
pub const ACTIVE_MEASUREMENTS: &str = "ActiveMeasurements";
/// Dataset name of the metadata sent to subscribers (cppapi writes `DataSet`).
pub const METADATA_DATASET: &str = "DataSet";
/// Dataset name of the filtering dataset holding `ActiveMeasurements` (reference root `Iaon`).
pub const FILTERING_DATASET: &str = "Iaon";

fn table(name: &str, columns: &[(&str, DataType)]) -> DataTable {
    DataTable::new(
        name,
        columns.iter().map(|(n, t)| Column::new(n, *t)).collect(),
    )
}

/// `DeviceDetail` (wire.md §7), in reference column order.
pub fn device_detail() -> DataTable {
    use DataType::*;
    table(
        DEVICE_DETAIL,
        &[
            ("NodeID", Guid),
            ("UniqueID", Guid),
            ("OriginalSource", String),
            ("IsConcentrator", Boolean),
            ("Acronym", String),
            ("Name", String),
            ("AccessID", Int32),
            ("ParentAcronym", String),
            ("ProtocolName", String),
            ("FramesPerSecond", Int32),
            ("CompanyAcronym", String),
            ("VendorAcronym", String),
            ("VendorDeviceName", String),
            ("Longitude", Decimal),
            ("Latitude", Decimal),
            ("InterconnectionName", String),
            ("ContactList", String),
            ("Enabled", Boolean),
            ("UpdatedOn", DateTime),
        ],
    )
}

/// `MeasurementDetail` (wire.md §7), reference columns plus gsfapi's `AlternateTag` after
/// `PointTag`.
pub fn measurement_detail() -> DataTable {
    use DataType::*;
    table(
        MEASUREMENT_DETAIL,
        &[
            ("DeviceAcronym", String),
            ("ID", String),
            ("SignalID", Guid),
            ("PointTag", String),
            ("AlternateTag", String),
            ("SignalReference", String),
            ("SignalAcronym", String),
            ("PhasorSourceIndex", Int32),
            ("Description", String),
            ("Internal", Boolean),
            ("Enabled", Boolean),
            ("UpdatedOn", DateTime),
        ],
    )
}

/// `PhasorDetail` (wire.md §7), reference columns plus gsfapi's `BaseKV` after `SourceIndex`.
pub fn phasor_detail() -> DataTable {
    use DataType::*;
    table(
        PHASOR_DETAIL,
        &[
            ("ID", Int32),
            ("DeviceAcronym", String),
            ("Label", String),
            ("Type", String),
            ("Phase", String),
            ("DestinationPhasorID", Int32),
            ("SourceIndex", Int32),
            ("BaseKV", Int32),
            ("UpdatedOn", DateTime),
        ],
    )
}

/// `SchemaVersion` (wire.md §7): one `VersionNumber` row.
pub fn schema_version() -> DataTable {
    table(SCHEMA_VERSION, &[("VersionNumber", DataType::Int32)])
}

/// `ActiveMeasurements` (wire.md §7), exactly the reference `ActiveMeasurementsSchema.xml`
/// columns; filled by [`super::active::active_measurements`].
pub fn active_measurements() -> DataTable {
    use DataType::*;
    table(
        ACTIVE_MEASUREMENTS,
        &[
            ("SourceNodeID", Guid),
            ("ID", String),
            ("SignalID", Guid),
            ("PointTag", String),
            ("AlternateTag", String),
            ("SignalReference", String),
            ("Internal", Int32),
            ("Subscribed", Int32),
            ("Device", String),
            ("DeviceID", Int32),
            ("FramesPerSecond", Int32),
            ("Protocol", String),
            ("ProtocolType", String),
            ("SignalType", String),
            ("EngineeringUnits", String),
            ("PhasorID", Int32),
            ("PhasorType", String),
            ("Phase", String),
            ("Adder", Double),
            ("Multiplier", Double),
            ("Company", String),
            ("Longitude", Decimal),
            ("Latitude", Decimal),
            ("Description", String),
            ("UpdatedOn", DateTime),
        ],
    )
}
