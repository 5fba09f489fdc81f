//! The metadata DataSet (wire.md §7): typed tables, their .NET-DataSet XML form, and the derived
//! ActiveMeasurements table that filter expressions run against.

pub mod active;
pub mod builder;
pub mod dataset;
pub mod schema;
pub mod xml;

pub use active::{active_measurements, apply_metadata_filters, filter_internal};
pub use builder::{DeviceRecord, MeasurementRecord, MetadataBuilder, PhasorRecord};
pub use dataset::{Column, DataSet, DataTable, DataType, Value};
pub use xml::{parse_xml, write_xml, MetadataError, ParseLimits};
