//! The metadata DataSet (wire.md §7): typed tables, their .NET-DataSet XML form, and the derived
//! ActiveMeasurements table that filter expressions run against.

pub mod active;
pub mod builder;
pub mod dataset;
pub mod schema;
pub mod xml;

pub use dataset::{Column, DataSet, DataTable, DataType, Value};
