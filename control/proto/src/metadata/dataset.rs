//! An in-memory DataSet: named tables of typed columns and rows, the model behind STTP metadata
//! (wire.md §7). Column lookup is case-insensitive, as in the reference implementations.

use std::collections::HashMap;
use uuid::Uuid;

/// Column data types of the metadata schema (the `xs:` types of wire.md §7, GUIDs included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    String,
    Boolean,
    DateTime,
    Single,
    Double,
    Decimal,
    Guid,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
}

/// One cell. `Null` is an omitted XML element.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    String(String),
    Boolean(bool),
    /// Ticks (wire.md §6).
    DateTime(i64),
    Single(f32),
    Double(f64),
    /// Decimal columns are held as `f64` (coordinates, nominal values); exact decimal arithmetic is
    /// not needed by any STTP metadata column.
    Decimal(f64),
    Guid(Uuid),
    Int32(i32),
    Int64(i64),
    UInt64(u64),
}

impl Value {
    /// True for [`Value::Null`].
    pub const fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a string cell.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The GUID of a GUID cell.
    pub const fn as_guid(&self) -> Option<Uuid> {
        match self {
            Value::Guid(g) => Some(*g),
            _ => None,
        }
    }

    /// An integer view of integer and boolean cells.
    pub const fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int32(v) => Some(*v as i64),
            Value::Int64(v) => Some(*v),
            Value::Boolean(b) => Some(*b as i64),
            _ => None,
        }
    }
}

/// A column definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name as written in the schema.
    pub name: String,
    /// Declared type.
    pub data_type: DataType,
    /// Computed-column expression (`ext:Expression`), kept for round-tripping.
    pub expression: Option<String>,
}

impl Column {
    /// A plain (non-computed) column.
    pub fn new(name: &str, data_type: DataType) -> Self {
        Self {
            name: name.to_owned(),
            data_type,
            expression: None,
        }
    }
}

/// A table: columns, then rows of cells in column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataTable {
    /// Table name (`MeasurementDetail`, `ActiveMeasurements`, …).
    pub name: String,
    columns: Vec<Column>,
    by_name: HashMap<String, usize>,
    rows: Vec<Vec<Value>>,
}

impl DataTable {
    /// An empty table with the given columns.
    pub fn new(name: &str, columns: Vec<Column>) -> Self {
        let by_name = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.to_ascii_lowercase(), i))
            .collect();
        Self {
            name: name.to_owned(),
            columns,
            by_name,
            rows: Vec::new(),
        }
    }

    /// The columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Index of a column, case-insensitively.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The column at `index`.
    pub fn column(&self, index: usize) -> Option<&Column> {
        self.columns.get(index)
    }

    /// The rows.
    pub fn rows(&self) -> &[Vec<Value>] {
        &self.rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends a row; missing trailing cells become `Null`, extra cells are dropped.
    pub fn push_row(&mut self, mut row: Vec<Value>) {
        row.resize(self.columns.len(), Value::Null);
        self.rows.push(row);
    }

    /// The cell at (`row`, `column`), `Null` when out of range.
    pub fn value(&self, row: usize, column: usize) -> &Value {
        const NULL: &Value = &Value::Null;
        self.rows
            .get(row)
            .and_then(|r| r.get(column))
            .unwrap_or(NULL)
    }

    /// The cell at `row` of the named column.
    pub fn value_by_name(&self, row: usize, column: &str) -> &Value {
        const NULL: &Value = &Value::Null;
        match self.column_index(column) {
            Some(c) => self.value(row, c),
            None => NULL,
        }
    }

    /// Keeps only the rows whose indices are listed, in the listed order.
    pub fn retain_rows(&mut self, keep: &[usize]) {
        let rows = std::mem::take(&mut self.rows);
        let mut slots: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
        self.rows = keep
            .iter()
            .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
            .collect();
    }
}

/// A named set of tables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataSet {
    /// Dataset name: the XML root element (`DataSet`, `NewDataSet`, `Iaon`).
    pub name: String,
    /// Tables in schema order.
    pub tables: Vec<DataTable>,
}

impl DataSet {
    /// An empty dataset.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            tables: Vec::new(),
        }
    }

    /// A table by name, case-insensitively.
    pub fn table(&self, name: &str) -> Option<&DataTable> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// A mutable table by name, case-insensitively.
    pub fn table_mut(&mut self, name: &str) -> Option<&mut DataTable> {
        self.tables
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lookup_is_case_insensitive_and_rows_pad() {
        let mut t = DataTable::new(
            "T",
            vec![
                Column::new("SignalID", DataType::Guid),
                Column::new("PointTag", DataType::String),
            ],
        );
        t.push_row(vec![Value::Guid(Uuid::nil())]);
        assert_eq!(t.column_index("signalid"), Some(0));
        assert_eq!(t.value_by_name(0, "POINTTAG"), &Value::Null);
        assert_eq!(t.value(5, 5), &Value::Null);
    }

    #[test]
    fn retain_rows_reorders_and_ignores_out_of_range() {
        let mut t = DataTable::new("T", vec![Column::new("N", DataType::Int32)]);
        for i in 0..4 {
            t.push_row(vec![Value::Int32(i)]);
        }
        t.retain_rows(&[3, 1, 9, 1]);
        assert_eq!(t.rows(), &[vec![Value::Int32(3)], vec![Value::Int32(1)]]);
    }
}
