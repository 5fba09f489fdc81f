//! The .NET DataSet "WriteSchema" XML form of metadata (wire.md §7): writer and tolerant parser.
//!
//! Document shape: root `<X>` (X = dataset name), an inline `xs:schema` with `id="X"` describing
//! each table as `xs:element/xs:complexType/xs:choice/xs:element/xs:complexType/xs:sequence/
//! xs:element`, then one `<Table>` element per row with one child per non-NULL cell.
//!
//! The parser reads peer bytes, so it never panics, resolves namespace prefixes by URI (the
//! reference parsers do; .NET writes `msdata:`, cppapi/pyapi write `ext:`), accepts a UTF-8 BOM and
//! UTF-16 input, reads datetimes leniently (the pyapi publisher emits `…:00.Z` and `…+00:00Z`),
//! and is bounded in input size, element depth, table and column counts and total cells
//! ([`ParseLimits`]), so that a small hostile document cannot claim unbounded memory.

use super::dataset::{Column, DataSet, DataTable, DataType, Value};
use crate::gzip::{self, GunzipError};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;
use std::fmt::Write as _;
use sttp_wire::ticks;
use uuid::Uuid;

/// Namespace of the W3C XML Schema language (the `xs:` prefix).
pub const XS_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema";
/// Namespace of the .NET DataSet schema extensions (`msdata:` in .NET, `ext:` in cppapi/pyapi).
pub const MSDATA_NAMESPACE: &str = "urn:schemas-microsoft-com:xml-msdata";

/// Largest tick value .NET can represent: 9999-12-31T23:59:59.9999999.
pub const MAX_TICKS: i64 = 3_155_378_975_999_999_999;

/// Bounds applied while parsing peer metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest accepted XML document, and largest inflated gzip payload, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting; the .NET form needs 9 levels (10 with column restrictions).
    pub max_depth: usize,
    /// Most tables in one dataset.
    pub max_tables: usize,
    /// Most columns in one table.
    pub max_columns: usize,
    /// Most cells (rows × (columns + 1)) over all tables. Rows are allocated per column, so this,
    /// not the byte size, bounds memory: `<T/>` is 4 bytes but allocates a full row.
    pub max_cells: usize,
}

impl Default for ParseLimits {
    /// 64 MiB of XML (≈ 150 000 measurements at the 400 bytes each of peers.md), depth 32, 256
    /// tables of at most 1024 columns, 8 M cells.
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_depth: 32,
            max_tables: 256,
            max_columns: 1024,
            max_cells: 8 << 20,
        }
    }
}

/// Why metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The document (or its inflated payload) is larger than [`ParseLimits::max_bytes`].
    #[error("metadata XML is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Size seen.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A gzip payload did not inflate.
    #[error("metadata payload: {0}")]
    Gzip(#[from] GunzipError),
    /// UTF-16 input (after a UTF-16 BOM) was not valid UTF-16.
    #[error("metadata XML is not valid UTF-16 (odd length or unpaired surrogate)")]
    BadUtf16,
    /// Not well-formed XML.
    #[error("malformed metadata XML at byte {position}: {message}")]
    Xml {
        /// Byte offset (of the UTF-8 text) where the problem was found.
        position: u64,
        /// What was wrong.
        message: String,
    },
    /// No root element.
    #[error("metadata XML has no root element")]
    NoRoot,
    /// An element after the root element closed.
    #[error("metadata XML has a second top-level element at byte {position}")]
    TrailingContent {
        /// Byte offset.
        position: u64,
    },
    /// Elements nest deeper than [`ParseLimits::max_depth`].
    #[error("metadata XML nests deeper than {limit} elements at byte {position}")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Byte offset.
        position: u64,
    },
    /// The root has no `xs:schema` child, so no table is defined.
    #[error("metadata root <{root}> has no xs:schema child (namespace {XS_NAMESPACE})")]
    MissingSchema {
        /// The root element's local name.
        root: String,
    },
    /// More tables than [`ParseLimits::max_tables`].
    #[error("metadata defines more than {limit} tables")]
    TooManyTables {
        /// The limit.
        limit: usize,
    },
    /// More columns than [`ParseLimits::max_columns`].
    #[error("metadata table {table} defines more than {limit} columns")]
    TooManyColumns {
        /// Table name.
        table: String,
        /// The limit.
        limit: usize,
    },
    /// More cells than [`ParseLimits::max_cells`].
    #[error("metadata has more than {limit} cells (at table {table}, row {row})")]
    TooManyCells {
        /// The limit.
        limit: usize,
        /// Table being filled.
        table: String,
        /// Row index being added.
        row: usize,
    },
    /// A cell's text does not parse as its column's type.
    #[error("metadata table {table} row {row} column {column}: invalid {data_type:?} value {value:?}: {reason}")]
    InvalidValue {
        /// Table name.
        table: String,
        /// Zero-based row index.
        row: usize,
        /// Column name.
        column: String,
        /// Declared type.
        data_type: DataType,
        /// The text (at most 64 characters of it).
        value: String,
        /// Why it was rejected.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// The `xs:` type name of a column type (wire.md §7). GUIDs are `xs:string` plus
/// `ext:DataType="System.Guid"`.
pub const fn xsd_type(data_type: DataType) -> &'static str {
    match data_type {
        DataType::String | DataType::Guid => "string",
        DataType::Boolean => "boolean",
        DataType::DateTime => "dateTime",
        DataType::Single => "float",
        DataType::Double => "double",
        DataType::Decimal => "decimal",
        DataType::Int8 => "byte",
        DataType::Int16 => "short",
        DataType::Int32 => "int",
        DataType::Int64 => "long",
        DataType::UInt8 => "unsignedByte",
        DataType::UInt16 => "unsignedShort",
        DataType::UInt32 => "unsignedInt",
        DataType::UInt64 => "unsignedLong",
    }
}

/// The column type of an `xs:` type name and optional `ext:DataType`, `None` for types the
/// reference parsers skip (`base64Binary`, `anyType`, …).
pub fn data_type_from_xsd(local_name: &str, ext_data_type: Option<&str>) -> Option<DataType> {
    Some(match local_name {
        "string" if ext_data_type.is_some_and(|t| t.starts_with("System.Guid")) => DataType::Guid,
        "string" => DataType::String,
        "boolean" => DataType::Boolean,
        "dateTime" => DataType::DateTime,
        "float" => DataType::Single,
        "double" => DataType::Double,
        "decimal" => DataType::Decimal,
        "byte" => DataType::Int8,
        "short" => DataType::Int16,
        "int" => DataType::Int32,
        "long" => DataType::Int64,
        "unsignedByte" => DataType::UInt8,
        "unsignedShort" => DataType::UInt16,
        "unsignedInt" => DataType::UInt32,
        "unsignedLong" => DataType::UInt64,
        _ => return None,
    })
}

/// A datetime as written in metadata: `YYYY-MM-DDTHH:MM:SS.fffffffZ`, always with seven
/// fractional digits. cppapi writes this form; the pyapi subscriber (dateutil) and .NET parse it,
/// and — unlike pyapi's own writer (peers.md P1) — whole seconds never lose their digits.
/// Values past 9999-12-31 are clamped to [`MAX_TICKS`].
pub fn format_datetime(raw_ticks: i64) -> String {
    let raw = if ticks::value(raw_ticks) > MAX_TICKS {
        MAX_TICKS
    } else {
        raw_ticks
    };
    ticks::to_iso8601(raw)
}

fn format_float<T: std::fmt::Debug + Copy + PartialOrd + Default>(
    v: T,
    is_nan: bool,
    is_inf: bool,
) -> String {
    // XSD float/double lexical forms; `{:?}` gives the shortest text that reads back exactly and
    // switches to exponent form for very large or small magnitudes (allowed by xs:float/double).
    if is_nan {
        "NaN".to_owned()
    } else if is_inf {
        if v < T::default() {
            "-INF".to_owned()
        } else {
            "INF".to_owned()
        }
    } else {
        format!("{v:?}")
    }
}

/// The text of a cell, `None` for NULL (written as an omitted element).
pub fn format_value(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Boolean(b) => if *b { "true" } else { "false" }.to_owned(),
        Value::DateTime(t) => format_datetime(*t),
        Value::Single(v) => format_float(*v, v.is_nan(), v.is_infinite()),
        Value::Double(v) => format_float(*v, v.is_nan(), v.is_infinite()),
        // xs:decimal has no exponent form; `Display` for f64 never uses one and still reads back
        // exactly.
        Value::Decimal(v) if v.is_finite() => format!("{v}"),
        Value::Decimal(v) => format_float(*v, v.is_nan(), v.is_infinite()),
        Value::Guid(g) => g.hyphenated().to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::UInt64(v) => v.to_string(),
    })
}

/// True for characters XML 1.0 can carry at all (not even as character references otherwise).
const fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Appends `s` escaped for element text (`attr = false`) or a double-quoted attribute. `\r` (and
/// in attributes `\t`/`\n`) become character references because parsers normalise the literal
/// characters away; characters XML cannot carry become U+FFFD.
fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attr => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\n' if attr => out.push_str("&#xA;"),
            '\t' if attr => out.push_str("&#x9;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// Serialises a dataset in the .NET DataSet WriteSchema form (wire.md §7), UTF-8 without BOM.
///
/// - The schema `id` equals the root tag, which the pyapi parser requires.
/// - Namespace prefixes are `xs:` and `ext:` (as cppapi/pyapi); the root `xs:element` carries
///   `ext:IsDataSet="true"` so .NET's `DataSet.ReadXml` takes the root as the dataset.
/// - NULL cells are omitted; values of computed columns (`ext:Expression`) are not written, as in
///   the reference writers, because readers recompute them.
/// - Table, column and dataset names must already be valid XML names (all STTP names are); an
///   empty dataset name is written as `DataSet`.
pub fn write_xml(set: &DataSet) -> String {
    let name = if set.name.is_empty() {
        "DataSet"
    } else {
        set.name.as_str()
    };
    let rows: usize = set
        .tables
        .iter()
        .map(|t| t.len() * (t.columns().len() + 1))
        .sum();
    let mut out = String::with_capacity(1024 + rows * 40);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<");
    out.push_str(name);
    out.push_str(">\n  <xs:schema id=\"");
    escape_into(&mut out, name, true);
    let _ = write!(
        out,
        "\" xmlns:xs=\"{XS_NAMESPACE}\" xmlns:ext=\"{MSDATA_NAMESPACE}\">\n    <xs:element name=\""
    );
    escape_into(&mut out, name, true);
    out.push_str(
        "\" ext:IsDataSet=\"true\">\n      <xs:complexType>\n        \
         <xs:choice minOccurs=\"0\" maxOccurs=\"unbounded\">\n",
    );
    for table in &set.tables {
        out.push_str("          <xs:element name=\"");
        escape_into(&mut out, &table.name, true);
        out.push_str("\">\n            <xs:complexType>\n              <xs:sequence>\n");
        for column in table.columns() {
            out.push_str("                <xs:element name=\"");
            escape_into(&mut out, &column.name, true);
            out.push_str("\" type=\"xs:");
            out.push_str(xsd_type(column.data_type));
            out.push('"');
            if column.data_type == DataType::Guid {
                out.push_str(" ext:DataType=\"System.Guid\"");
            }
            if let Some(expr) = &column.expression {
                out.push_str(" ext:Expression=\"");
                escape_into(&mut out, expr, true);
                out.push('"');
            }
            out.push_str(" minOccurs=\"0\" />\n");
        }
        out.push_str("              </xs:sequence>\n            </xs:complexType>\n          </xs:element>\n");
    }
    out.push_str(
        "        </xs:choice>\n      </xs:complexType>\n    </xs:element>\n  </xs:schema>\n",
    );
    for table in &set.tables {
        for row in table.rows() {
            out.push_str("  <");
            out.push_str(&table.name);
            out.push_str(">\n");
            for (column, value) in table.columns().iter().zip(row) {
                if column.expression.is_some() {
                    continue;
                }
                let Some(text) = format_value(value) else {
                    continue;
                };
                out.push_str("    <");
                out.push_str(&column.name);
                out.push('>');
                escape_into(&mut out, &text, false);
                out.push_str("</");
                out.push_str(&column.name);
                out.push_str(">\n");
            }
            out.push_str("  </");
            out.push_str(&table.name);
            out.push_str(">\n");
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
    out
}

/// The MetadataRefresh reply payload: the XML, gzipped when the subscriber negotiated
/// CompressMetadata (wire.md §2, §7).
pub fn encode_payload(set: &DataSet, compress: bool) -> Vec<u8> {
    let xml = write_xml(set);
    if compress {
        gzip::compress(xml.as_bytes())
    } else {
        xml.into_bytes()
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsing
// ---------------------------------------------------------------------------------------------

/// A small panic-free byte cursor for the datetime grammar.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.i + ahead).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, b: u8, what: &str) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' {what} at character {}",
                b as char, self.i
            ))
        }
    }
    fn digits(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(d - b'0');
                    self.i += 1;
                }
                _ => {
                    return Err(format!(
                        "expected {n} digits of {what} at character {}",
                        self.i
                    ))
                }
            }
        }
        Ok(v)
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an ISO 8601 datetime leniently into ticks (wire.md §7).
///
/// Accepts `YYYY-MM-DD`, optionally followed by `T` (or a space) and `HH:MM[:SS[.f…]]`, with 0 to
/// any number of fractional digits (the first 7 count; `…:00.Z` from pyapi is fine), then
/// optionally `Z`, or an offset `±HH[:MM]` / `±HHMM` optionally followed by a stray `Z`
/// (`+00:00Z`, pyapi again). No zone means UTC, as in cppapi. Hour 24 is accepted for
/// `24:00:00` (end of day) and second 60 rolls into the next minute.
pub fn parse_datetime(text: &str) -> Result<i64, String> {
    let mut c = Cur {
        s: text.trim().as_bytes(),
        i: 0,
    };
    let year = c.digits(4, "year")?;
    c.expect(b'-', "after the year")?;
    let month = c.digits(2, "month")?;
    c.expect(b'-', "after the month")?;
    let day = c.digits(2, "day")?;
    let (mut hour, mut minute, mut second, mut frac) = (0u32, 0u32, 0u32, 0i64);
    if matches!(c.peek(), Some(b'T' | b't' | b' '))
        && c.peek_at(1).is_some_and(|b| b.is_ascii_digit())
    {
        c.i += 1;
        hour = c.digits(2, "hour")?;
        c.expect(b':', "after the hour")?;
        minute = c.digits(2, "minute")?;
        if c.eat(b':') {
            second = c.digits(2, "second")?;
            if c.eat(b'.') || c.eat(b',') {
                let mut n = 0;
                while let Some(d @ b'0'..=b'9') = c.peek() {
                    if n < 7 {
                        frac = frac * 10 + i64::from(d - b'0');
                        n += 1;
                    }
                    c.i += 1;
                }
                while n < 7 {
                    frac *= 10;
                    n += 1;
                }
            }
        }
    }
    while c.eat(b' ') {}
    let mut offset_minutes = 0i64;
    match c.peek() {
        Some(b'Z' | b'z') => c.i += 1,
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let oh = c.digits(2, "offset hours")?;
            c.eat(b':');
            let om = if c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.digits(2, "offset minutes")?
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return Err(format!("offset {oh:02}:{om:02} out of range"));
            }
            offset_minutes = i64::from(oh * 60 + om);
            if sign == b'-' {
                offset_minutes = -offset_minutes;
            }
            if !c.eat(b'Z') {
                c.eat(b'z');
            }
        }
        _ => {}
    }
    if c.i != c.s.len() {
        return Err(format!("unexpected text at character {}", c.i));
    }
    let y = i64::from(year);
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(y, month) {
        return Err(format!("no such date {year:04}-{month:02}-{day:02}"));
    }
    if hour > 24
        || minute > 59
        || second > 60
        || (hour == 24 && (minute, second, frac) != (0, 0, 0))
    {
        return Err(format!("no such time {hour:02}:{minute:02}:{second:02}"));
    }
    let local = ticks::from_civil(y, month, day, hour, minute, second, frac);
    let utc = local - offset_minutes * 60 * ticks::PER_SECOND;
    if !(0..=MAX_TICKS).contains(&utc) {
        return Err("outside 0001-01-01..9999-12-31 UTC".to_owned());
    }
    Ok(utc)
}

fn parse_int(text: &str) -> Result<i128, String> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or("")),
        Some(b'+') => (false, t.get(1..).unwrap_or("")),
        _ => (false, t),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        // pyapi accepts hex integers; harmless to accept as well.
        u128::from_str_radix(hex, 16)
    } else {
        digits.parse::<u128>()
    }
    .map_err(|e| format!("not an integer: {e}"))?;
    let m = i128::try_from(magnitude).map_err(|_| "integer too large".to_owned())?;
    Ok(if neg { -m } else { m })
}

fn ranged(v: i128, min: i128, max: i128) -> Result<i128, String> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} outside {min}..={max}"))
    }
}

/// Parses a cell's text as `data_type` (wire.md §7 value formats).
///
/// Cells map onto [`Value`] variants as follows: 8/16/32-bit signed integers → `Int32`,
/// `Int64` and 8/16/32-bit unsigned → `Int64`, `UInt64` → `UInt64` (range-checked against the
/// declared type). Booleans accept `true/false/1/0/yes/no` in any case. Empty text is `""` for
/// strings and NULL for every other type (whitespace around non-string values is ignored, as
/// XSD collapses it).
pub fn parse_value(data_type: DataType, text: &str) -> Result<Value, String> {
    if data_type == DataType::String {
        return Ok(Value::String(text.to_owned()));
    }
    let t = text.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    let i32v = |min: i128, max: i128| -> Result<Value, String> {
        let v = ranged(parse_int(t)?, min, max)?;
        i32::try_from(v)
            .map(Value::Int32)
            .map_err(|e| e.to_string())
    };
    let i64v = |min: i128, max: i128| -> Result<Value, String> {
        let v = ranged(parse_int(t)?, min, max)?;
        i64::try_from(v)
            .map(Value::Int64)
            .map_err(|e| e.to_string())
    };
    Ok(match data_type {
        DataType::String => Value::String(text.to_owned()),
        DataType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Boolean(true),
            "false" | "0" | "no" => Value::Boolean(false),
            _ => return Err("expected true or false".to_owned()),
        },
        DataType::DateTime => Value::DateTime(parse_datetime(t)?),
        DataType::Single => Value::Single(t.parse::<f32>().map_err(|e| e.to_string())?),
        DataType::Double => Value::Double(t.parse::<f64>().map_err(|e| e.to_string())?),
        DataType::Decimal => Value::Decimal(t.parse::<f64>().map_err(|e| e.to_string())?),
        DataType::Guid => Value::Guid(Uuid::parse_str(t).map_err(|e| e.to_string())?),
        DataType::Int8 => i32v(i128::from(i8::MIN), i128::from(i8::MAX))?,
        DataType::Int16 => i32v(i128::from(i16::MIN), i128::from(i16::MAX))?,
        DataType::Int32 => i32v(i128::from(i32::MIN), i128::from(i32::MAX))?,
        DataType::Int64 => i64v(i128::from(i64::MIN), i128::from(i64::MAX))?,
        DataType::UInt8 => i64v(0, i128::from(u8::MAX))?,
        DataType::UInt16 => i64v(0, i128::from(u16::MAX))?,
        DataType::UInt32 => i64v(0, i128::from(u32::MAX))?,
        DataType::UInt64 => {
            let v = ranged(parse_int(t)?, 0, i128::from(u64::MAX))?;
            Value::UInt64(u64::try_from(v).map_err(|e| e.to_string())?)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// What an open element is, decided from its parent and its (namespace, local name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Schema,
    DataSetElement,
    DataSetComplex,
    Choice,
    TableDef,
    TableComplex,
    Sequence,
    ColumnDef,
    ColumnSimpleType,
    Record,
    Field(Option<usize>),
    Other,
}

/// A column definition being read (its type may come from a nested `xs:restriction`).
struct PendingColumn {
    name: String,
    xsd: Option<String>,
    ext_data_type: Option<String>,
    expression: Option<String>,
}

/// Parser state outside the element stack.
struct State {
    limits: ParseLimits,
    set: DataSet,
    /// Table being defined: name and columns.
    table_def: Option<(String, Vec<Column>)>,
    column: Option<PendingColumn>,
    /// Record being read: table index and cells.
    record: Option<(usize, Vec<Value>)>,
    text: String,
    cells: usize,
    saw_schema: bool,
}

fn strip_bom_and_decode(xml: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, MetadataError> {
    use std::borrow::Cow;
    if let Some(rest) = xml.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return Ok(Cow::Borrowed(rest));
    }
    let le = xml.starts_with(&[0xFF, 0xFE]);
    if le || xml.starts_with(&[0xFE, 0xFF]) {
        // gsfapi defaults to UTF-16 strings (wire.md §2); decode rather than fail.
        let body = xml.get(2..).unwrap_or_default();
        if body.len() % 2 != 0 {
            return Err(MetadataError::BadUtf16);
        }
        let units = body.chunks_exact(2).map(|p| match p {
            [a, b] if le => u16::from_le_bytes([*a, *b]),
            [a, b] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        });
        let s: String = char::decode_utf16(units)
            .collect::<Result<_, _>>()
            .map_err(|_| MetadataError::BadUtf16)?;
        return Ok(Cow::Owned(s.into_bytes()));
    }
    Ok(Cow::Borrowed(xml))
}

fn ns_is(ns: &ResolveResult<'_>, uri: &str) -> bool {
    matches!(ns, ResolveResult::Bound(n) if n.as_ref() == uri.as_bytes())
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses metadata XML with [`ParseLimits::default`].
pub fn parse_xml(xml: &[u8]) -> Result<DataSet, MetadataError> {
    parse_xml_with_limits(xml, &ParseLimits::default())
}

/// Parses a MetadataRefresh reply payload: empty means no metadata (an empty `DataSet`), gzip is
/// detected by its magic (wire.md §2: subscribers sniff it too) and inflated within
/// `limits.max_bytes`.
pub fn parse_payload(payload: &[u8], limits: &ParseLimits) -> Result<DataSet, MetadataError> {
    if payload.is_empty() {
        return Ok(DataSet::new("DataSet"));
    }
    if gzip::is_gzip(payload) {
        let xml = gzip::decompress(payload, limits.max_bytes).map_err(|e| match e {
            GunzipError::TooLarge(limit) => MetadataError::TooLarge {
                size: limit.saturating_add(1),
                limit,
            },
            other => MetadataError::Gzip(other),
        })?;
        return parse_xml_with_limits(&xml, limits);
    }
    parse_xml_with_limits(payload, limits)
}

/// Parses metadata XML (wire.md §7) within `limits`. See the module documentation for what is
/// tolerated; every failure says what and where.
pub fn parse_xml_with_limits(xml: &[u8], limits: &ParseLimits) -> Result<DataSet, MetadataError> {
    if xml.len() > limits.max_bytes {
        return Err(MetadataError::TooLarge {
            size: xml.len(),
            limit: limits.max_bytes,
        });
    }
    let bytes = strip_bom_and_decode(xml)?;
    if bytes.len() > limits.max_bytes {
        return Err(MetadataError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let mut reader = NsReader::from_reader(bytes.as_ref());
    {
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.trim_text(false);
    }
    let mut st = State {
        limits: *limits,
        set: DataSet::default(),
        table_def: None,
        column: None,
        record: None,
        text: String::new(),
        cells: 0,
        saw_schema: false,
    };
    let mut stack: Vec<Node> = Vec::new();
    let mut root_done = false;
    let xml_err = |reader: &NsReader<&[u8]>, e: quick_xml::Error| MetadataError::Xml {
        position: reader.error_position(),
        message: e.to_string(),
    };
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok(v) => v,
            Err(e) => return Err(xml_err(&reader, e)),
        };
        let is_xs = ns_is(&ns, XS_NAMESPACE);
        match event {
            Event::Start(start) => {
                if root_done {
                    return Err(MetadataError::TrailingContent {
                        position: reader.buffer_position(),
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(MetadataError::TooDeep {
                        limit: limits.max_depth,
                        position: reader.buffer_position(),
                    });
                }
                let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let node = match stack.last() {
                    None => {
                        st.set.name.clone_from(&local);
                        Node::Root
                    }
                    Some(parent) => {
                        let node = classify(*parent, is_xs, &local, &st);
                        on_start(&mut st, &reader, node, &start, &local)?;
                        node
                    }
                };
                stack.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().unwrap_or(Node::Other);
                on_end(&mut st, node)?;
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) => {
                if let Some(Node::Field(Some(_))) = stack.last() {
                    let s = t.unescape().map_err(|e| xml_err(&reader, e))?;
                    st.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(Node::Field(Some(_))) = stack.last() {
                    let s = c
                        .decode()
                        .map_err(|e| xml_err(&reader, quick_xml::Error::Encoding(e)))?;
                    st.text.push_str(&s);
                }
            }
            Event::Empty(_) => {
                // `expand_empty_elements` turns these into Start + End.
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(MetadataError::Xml {
            position: reader.buffer_position(),
            message: format!(
                "document ends inside an open element ({open:?}, depth {})",
                stack.len()
            ),
        });
    }
    if !root_done {
        return Err(MetadataError::NoRoot);
    }
    if !st.saw_schema {
        return Err(MetadataError::MissingSchema { root: st.set.name });
    }
    Ok(st.set)
}

/// The kind of a child element. Schema elements must be in the XS namespace; records and fields
/// are matched by local name whatever their namespace (typed .NET datasets put them in a target
/// namespace).
fn classify(parent: Node, is_xs: bool, local: &str, st: &State) -> Node {
    match (parent, is_xs, local) {
        (Node::Root, true, "schema") => Node::Schema,
        (Node::Root, true, _) => Node::Other,
        (Node::Root, false, _) => match st
            .set
            .tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(local))
        {
            Some(_) => Node::Record,
            None => Node::Other,
        },
        (Node::Schema, true, "element") => Node::DataSetElement,
        (Node::DataSetElement, true, "complexType") => Node::DataSetComplex,
        (Node::DataSetComplex, true, "choice") => Node::Choice,
        (Node::Choice, true, "element") => Node::TableDef,
        (Node::TableDef, true, "complexType") => Node::TableComplex,
        (Node::TableComplex, true, "sequence") => Node::Sequence,
        (Node::Sequence, true, "element") => Node::ColumnDef,
        (Node::ColumnDef, true, "simpleType") => Node::ColumnSimpleType,
        (Node::ColumnSimpleType, true, "restriction") => Node::Other,
        (Node::Record, _, _) => Node::Field(
            st.record
                .as_ref()
                .and_then(|(index, _)| st.set.tables.get(*index))
                .and_then(|t| t.column_index(local)),
        ),
        _ => Node::Other,
    }
}

/// Attribute values of `start` as (is in msdata namespace, local name, value).
fn attributes(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
) -> Result<Vec<(bool, String, String)>, MetadataError> {
    let mut out = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| MetadataError::Xml {
            position: reader.buffer_position(),
            message: format!("bad attribute: {e}"),
        })?;
        let (ns, local) = reader.resolve_attribute(attr.key);
        let msdata = ns_is(&ns, MSDATA_NAMESPACE);
        if !msdata && !matches!(ns, ResolveResult::Unbound) {
            continue; // xmlns declarations and foreign attributes
        }
        let value = attr.unescape_value().map_err(|e| MetadataError::Xml {
            position: reader.buffer_position(),
            message: format!("bad attribute value: {e}"),
        })?;
        out.push((
            msdata,
            String::from_utf8_lossy(local.as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(out)
}

/// The local part of an `xs:` type reference, `None` when its prefix is bound to another
/// namespace or unknown. Unprefixed names are accepted.
fn xsd_local(reader: &NsReader<&[u8]>, qname: &str) -> Option<String> {
    if !qname.contains(':') {
        return Some(qname.to_owned());
    }
    let (ns, local) = reader.resolve_element(QName(qname.as_bytes()));
    ns_is(&ns, XS_NAMESPACE).then(|| String::from_utf8_lossy(local.as_ref()).into_owned())
}

fn on_start(
    st: &mut State,
    reader: &NsReader<&[u8]>,
    node: Node,
    start: &BytesStart<'_>,
    local: &str,
) -> Result<(), MetadataError> {
    match node {
        Node::Schema => st.saw_schema = true,
        Node::TableDef => {
            let name = attributes(reader, start)?
                .into_iter()
                .find(|(ms, n, _)| !ms && n == "name")
                .map(|(_, _, v)| v);
            // A nameless table definition is skipped, as in pyapi.
            st.table_def = name.map(|n| (n, Vec::new()));
        }
        Node::ColumnDef => {
            let mut col = PendingColumn {
                name: String::new(),
                xsd: None,
                ext_data_type: None,
                expression: None,
            };
            let mut has_name = false;
            for (ms, n, v) in attributes(reader, start)? {
                match (ms, n.as_str()) {
                    (false, "name") => {
                        col.name = v;
                        has_name = true;
                    }
                    (false, "type") => col.xsd = xsd_local(reader, &v),
                    (true, "DataType") => col.ext_data_type = Some(v),
                    (true, "Expression") => col.expression = Some(v),
                    _ => {}
                }
            }
            st.column = has_name.then_some(col);
        }
        Node::Other if local == "restriction" => {
            // .NET writes string columns with a MaxLength as
            // <xs:simpleType><xs:restriction base="xs:string">; take the base type.
            let base = attributes(reader, start)?
                .into_iter()
                .find(|(ms, n, _)| !ms && n == "base")
                .and_then(|(_, _, v)| xsd_local(reader, &v));
            if let (Some(col), Some(base)) = (st.column.as_mut(), base) {
                if col.xsd.is_none() {
                    col.xsd = Some(base);
                }
            }
        }
        Node::Record => {
            let Some(index) = st
                .set
                .tables
                .iter()
                .position(|t| t.name.eq_ignore_ascii_case(local))
            else {
                return Ok(());
            };
            let Some(table) = st.set.tables.get(index) else {
                return Ok(());
            };
            let width = table.columns().len();
            st.cells = st.cells.saturating_add(width + 1);
            if st.cells > st.limits.max_cells {
                return Err(MetadataError::TooManyCells {
                    limit: st.limits.max_cells,
                    table: table.name.clone(),
                    row: table.len(),
                });
            }
            st.record = Some((index, vec![Value::Null; width]));
        }
        Node::Field(_) => {
            st.text.clear();
        }
        _ => {}
    }
    Ok(())
}

fn on_end(st: &mut State, node: Node) -> Result<(), MetadataError> {
    match node {
        Node::ColumnDef => {
            if let (Some(col), Some((table, columns))) = (st.column.take(), st.table_def.as_mut()) {
                let dt = col
                    .xsd
                    .as_deref()
                    .and_then(|x| data_type_from_xsd(x, col.ext_data_type.as_deref()));
                // Columns of unsupported types, and repeated names, are skipped like pyapi does.
                if let Some(dt) = dt {
                    if !columns
                        .iter()
                        .any(|c| c.name.eq_ignore_ascii_case(&col.name))
                    {
                        if columns.len() >= st.limits.max_columns {
                            return Err(MetadataError::TooManyColumns {
                                table: table.clone(),
                                limit: st.limits.max_columns,
                            });
                        }
                        columns.push(Column {
                            name: col.name,
                            data_type: dt,
                            expression: col.expression,
                        });
                    }
                }
            }
        }
        Node::TableDef => {
            if let Some((name, columns)) = st.table_def.take() {
                let table = DataTable::new(&name, columns);
                // A repeated table name replaces the earlier definition (pyapi keys tables by
                // upper-cased name).
                if let Some(slot) = st
                    .set
                    .tables
                    .iter_mut()
                    .find(|t| t.name.eq_ignore_ascii_case(&name))
                {
                    *slot = table;
                } else {
                    if st.set.tables.len() >= st.limits.max_tables {
                        return Err(MetadataError::TooManyTables {
                            limit: st.limits.max_tables,
                        });
                    }
                    st.set.tables.push(table);
                }
            }
        }
        Node::Record => {
            if let Some((index, row)) = st.record.take() {
                if let Some(table) = st.set.tables.get_mut(index) {
                    table.push_row(row);
                }
            }
        }
        Node::Field(Some(column)) => {
            if let Some((index, row)) = st.record.as_mut() {
                if let Some(table) = st.set.tables.get(*index) {
                    if let (Some(col), Some(cell)) = (table.column(column), row.get_mut(column)) {
                        let text = std::mem::take(&mut st.text);
                        *cell = parse_value(col.data_type, &text).map_err(|reason| {
                            MetadataError::InvalidValue {
                                table: table.name.clone(),
                                row: table.len(),
                                column: col.name.clone(),
                                data_type: col.data_type,
                                value: truncated(&text),
                                reason,
                            }
                        })?;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}
