//! Filter expressions (wire.md §7): the language subscribers use to pick signals (the Subscribe
//! `filterExpression`, evaluated against `ActiveMeasurements`) and to trim metadata
//! (MetadataRefresh filters, evaluated against the metadata tables).
//!
//! The language is the GSF/STTP one defined by cppapi's `FilterExpressionSyntax.g4`, which pyapi
//! and goapi share. Statements are separated by `;` and their results unioned, with duplicates
//! dropped when there is more than one statement. A statement is one of:
//!
//! - an identifier statement against the primary table, selecting the **first** matching row:
//!   a bare GUID (`'…'`, `{…}` or unquoted, dashes optional) → `SignalID`; `ACRONYM:123` → `ID`;
//!   `"POINT.TAG"` → `PointTag` (the latter two case-insensitive). No match selects nothing;
//! - `FILTER [TOP n] <Table> WHERE <expr> [ORDER BY [BINARY] col [ASC|DESC], …]`;
//! - a bare `<expr>`, evaluated as a WHERE clause against the primary table.
//!
//! **TOP is applied during the table scan, before ORDER BY**, as cppapi does: `FILTER TOP 2 T
//! WHERE True ORDER BY X DESC` sorts the first two matching rows in table order, it does not
//! return the two largest X. `TOP` with a negative value, or no TOP, is unlimited. ORDER BY is a
//! stable sort; NULLs sort first in ascending order; strings compare case-insensitively unless
//! the term has the `BINARY` (or `===`) modifier. (cppapi inverts that modifier — a bug we do not
//! copy.)
//!
//! A WHERE expression must produce a Boolean; a NULL result counts as false; any other type is an
//! error. Operator precedence, NULL propagation, type promotion, `LIKE` and every function are
//! documented in the submodules (`parser`, `eval`, `value`, `like`, `functions`).
//!
//! Results keep statement order: rows of the first statement, then new rows of the second, and so
//! on. (cppapi emits identifier-statement rows before all FILTER/expression rows; order does not
//! change what a subscriber receives.) An empty filter (only whitespace, comments or `;`) parses
//! and selects nothing; publishers wanting pyapi's "empty means everything" must special-case it.
//!
//! Peers send these bytes, so nothing here panics: input is limited to [`MAX_FILTER_LENGTH`]
//! bytes, nesting to [`MAX_DEPTH`], LIKE runs in polynomial time, regular expressions are
//! size-limited, integer arithmetic wraps (division by zero is an error), and each selection is
//! limited to [`MAX_EVALUATION_WORK`] node evaluations.

mod ast;
mod eval;
mod functions;
mod lexer;
mod like;
mod parser;
mod value;

use crate::metadata::dataset::{DataSet, DataTable, Value};
use ast::{FilterStatement, Statement};
use eval::{read_cell, Evaluator};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;
use value::{cmp_str, compare_same, Ty, Val};

pub use parser::MAX_DEPTH;

/// Longest accepted filter expression, in bytes.
pub const MAX_FILTER_LENGTH: usize = 1 << 20;

/// Upper bound on (expression nodes × rows scanned) per selection, so a hostile filter cannot pin
/// a publisher for minutes. Legitimate filters are many orders of magnitude below it.
pub const MAX_EVALUATION_WORK: u64 = 1 << 28;

/// A filter expression error: a precise reason and the byte offset in the expression it refers to.
/// The `Display` text is what a publisher puts in its `Failed` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter expression error at offset {offset}: {message}")]
pub struct FilterError {
    offset: usize,
    message: String,
}

impl FilterError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }

    /// Byte offset in the expression text.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The reason, without the offset prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Evaluation inputs that are not in the data: the current time for `Now()`/`UtcNow()`.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext {
    /// .NET ticks (wire.md §6).
    pub now_ticks: i64,
}

/// A parsed filter expression, independent of any table.
#[derive(Debug, Clone)]
pub struct FilterExpression {
    statements: Vec<Statement>,
}

/// Rows selected from one table, as indices into [`DataTable::rows`], in result order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSelection {
    /// The table's name as the DataSet spells it.
    pub table: String,
    pub rows: Vec<usize>,
}

/// Parses `text` (wire.md §7 grammar).
pub fn parse(text: &str) -> Result<FilterExpression, FilterError> {
    if text.len() > MAX_FILTER_LENGTH {
        return Err(FilterError::new(
            MAX_FILTER_LENGTH,
            format!("filter expression longer than {MAX_FILTER_LENGTH} bytes"),
        ));
    }
    let tokens = lexer::tokenize(text)?;
    let statements = parser::Parser::new(tokens).statements()?;
    Ok(FilterExpression { statements })
}

impl std::str::FromStr for FilterExpression {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Lookup structures for identifier statements, built on demand when there are many of them.
#[derive(Default)]
struct IdIndex {
    by_guid: Option<HashMap<Uuid, usize>>,
    by_key: Option<HashMap<String, usize>>,
    by_tag: Option<HashMap<String, usize>>,
}

/// Identifier statements of one kind beyond this count use a hash index instead of scans.
const INDEX_THRESHOLD: usize = 8;

fn guid_of(v: &Value) -> Option<Uuid> {
    match v {
        Value::Guid(g) => Some(*g),
        Value::String(s) => lexer::parse_guid_text(s),
        _ => None,
    }
}

fn text_key(v: &Value) -> Option<String> {
    v.as_str().map(|s| value::fold(s).into_owned())
}

impl FilterExpression {
    /// Number of statements (0 for an empty filter).
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// True when the filter has no statements and so selects nothing.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Names of the tables the FILTER statements name, in first-mention order (deduplicated
    /// case-insensitively, spelled as first written).
    pub fn tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.statements {
            if let Statement::Filter(f) = s {
                if !out.iter().any(|t| t.eq_ignore_ascii_case(&f.table)) {
                    out.push(f.table.clone());
                }
            }
        }
        out
    }

    /// Rows selected per table; identifier statements and bare expressions target `primary`.
    /// Tables appear in first-mention order (a FILTER naming a table that selects nothing still
    /// lists it, with no rows); rows in result order. A FILTER naming a table missing from `set`
    /// is an error; so is a bare expression when `primary` is missing, while identifier
    /// statements then select nothing (as in cppapi).
    pub fn select(
        &self,
        set: &DataSet,
        primary: &str,
        ctx: &EvalContext,
    ) -> Result<Vec<TableSelection>, FilterError> {
        let mut order: Vec<&DataTable> = Vec::new();
        for s in &self.statements {
            let table = match s {
                Statement::Filter(f) => Some(set.table(&f.table).ok_or_else(|| {
                    FilterError::new(f.table_pos, format!("failed to find table \"{}\"", f.table))
                })?),
                Statement::Expression(e) => Some(set.table(primary).ok_or_else(|| {
                    FilterError::new(e.pos, format!("failed to find primary table \"{primary}\""))
                })?),
                _ => set.table(primary),
            };
            if let Some(t) = table {
                if !order.iter().any(|o| std::ptr::eq(*o, t)) {
                    order.push(t);
                }
            }
        }
        let mut budget = MAX_EVALUATION_WORK;
        order
            .into_iter()
            .map(|t| {
                let is_primary = t.name.eq_ignore_ascii_case(primary);
                Ok(TableSelection {
                    table: t.name.clone(),
                    rows: self.select_inner(t, is_primary, ctx, &mut budget)?,
                })
            })
            .collect()
    }

    /// Rows of one table: statements naming `table.name` (case-insensitive), plus identifier and
    /// bare-expression statements if `is_primary`.
    pub fn select_table(
        &self,
        table: &DataTable,
        is_primary: bool,
        ctx: &EvalContext,
    ) -> Result<Vec<usize>, FilterError> {
        let mut budget = MAX_EVALUATION_WORK;
        self.select_inner(table, is_primary, ctx, &mut budget)
    }

    fn select_inner(
        &self,
        table: &DataTable,
        is_primary: bool,
        ctx: &EvalContext,
        budget: &mut u64,
    ) -> Result<Vec<usize>, FilterError> {
        let dedup = self.statements.len() > 1;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut index = IdIndex::default();
        let count =
            |pred: fn(&Statement) -> bool| self.statements.iter().filter(|s| pred(s)).count();
        let many_guids = count(|s| matches!(s, Statement::SignalId(_))) > INDEX_THRESHOLD;
        let many_keys = count(|s| matches!(s, Statement::MeasurementKey(_))) > INDEX_THRESHOLD;
        let many_tags = count(|s| matches!(s, Statement::PointTag(_))) > INDEX_THRESHOLD;
        for s in &self.statements {
            let rows: Vec<usize> = match s {
                Statement::SignalId(g) if is_primary => {
                    let col = table.column_index("SignalID");
                    first_match(table, col, many_guids, &mut index.by_guid, guid_of, *g)
                        .into_iter()
                        .collect()
                }
                Statement::MeasurementKey(k) if is_primary => {
                    let col = table.column_index("ID");
                    first_match(
                        table,
                        col,
                        many_keys,
                        &mut index.by_key,
                        text_key,
                        value::fold(k).into_owned(),
                    )
                    .into_iter()
                    .collect()
                }
                Statement::PointTag(t) if is_primary => {
                    let col = table.column_index("PointTag");
                    first_match(
                        table,
                        col,
                        many_tags,
                        &mut index.by_tag,
                        text_key,
                        value::fold(t).into_owned(),
                    )
                    .into_iter()
                    .collect()
                }
                Statement::Expression(e) if is_primary => {
                    run_where(table, e, -1, &[], ctx, budget)?
                }
                Statement::Filter(f) if f.table.eq_ignore_ascii_case(&table.name) => {
                    run_filter(table, f, ctx, budget)?
                }
                _ => continue,
            };
            if dedup {
                out.extend(rows.into_iter().filter(|r| seen.insert(*r)));
            } else {
                out.extend(rows);
            }
        }
        Ok(out)
    }
}

/// First row whose cell in `col` has key `want`, via a lazily built index when `use_index`.
fn first_match<K: std::hash::Hash + Eq>(
    table: &DataTable,
    col: Option<usize>,
    use_index: bool,
    slot: &mut Option<HashMap<K, usize>>,
    key: fn(&Value) -> Option<K>,
    want: K,
) -> Option<usize> {
    let col = col?;
    if use_index {
        let map = slot.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(table.len());
            for (i, row) in table.rows().iter().enumerate() {
                if let Some(k) = row.get(col).and_then(key) {
                    m.entry(k).or_insert(i);
                }
            }
            m
        });
        return map.get(&want).copied();
    }
    table
        .rows()
        .iter()
        .position(|row| row.get(col).and_then(key).is_some_and(|k| k == want))
}

fn run_filter(
    table: &DataTable,
    f: &FilterStatement,
    ctx: &EvalContext,
    budget: &mut u64,
) -> Result<Vec<usize>, FilterError> {
    let mut terms = Vec::with_capacity(f.order_by.len());
    for t in &f.order_by {
        let idx = table.column_index(&t.column).ok_or_else(|| {
            FilterError::new(
                t.pos,
                format!(
                    "failed to find order by column \"{}\" in table \"{}\"",
                    t.column, table.name
                ),
            )
        })?;
        terms.push((idx, t.descending, t.exact));
    }
    run_where(table, &f.where_, f.top, &terms, ctx, budget)
}

fn run_where(
    table: &DataTable,
    expr: &ast::Expr,
    top: i64,
    order: &[(usize, bool, bool)],
    ctx: &EvalContext,
    budget: &mut u64,
) -> Result<Vec<usize>, FilterError> {
    let (node, nodes) = eval::bind(expr, table)?;
    let work = (nodes as u64).saturating_mul(table.len() as u64);
    *budget = budget.checked_sub(work).ok_or_else(|| {
        FilterError::new(
            expr.pos,
            "filter expression is too expensive to evaluate over this table",
        )
    })?;
    let ev = Evaluator { ctx: *ctx };
    let limit = usize::try_from(top).ok();
    let mut rows = Vec::new();
    for (i, row) in table.rows().iter().enumerate() {
        if limit.is_some_and(|l| rows.len() >= l) {
            break;
        }
        match ev.eval(&node, row, Ty::Boolean)? {
            Val::Bool(true) => rows.push(i),
            Val::Bool(false) | Val::Null(Ty::Boolean) => {}
            other => {
                return Err(FilterError::new(
                    expr.pos,
                    format!(
                        "final expression tree evaluation did not result in a boolean value, result data type is \"{}\"",
                        other.ty().name()
                    ),
                ))
            }
        }
    }
    if !order.is_empty() {
        let cells = |r: usize, c: usize| table.value(r, c);
        rows.sort_by(|&a, &b| {
            for &(col, desc, exact) in order {
                let ord = compare_cells(cells(a, col), cells(b, col), exact);
                let ord = if desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    Ok(rows)
}

/// ORDER BY comparison of two cells of one column: NULL first, strings per the case rule.
fn compare_cells(a: &Value, b: &Value, exact: bool) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => cmp_str(x, y, !exact),
        _ => {
            let (x, y) = (read_cell(a, Ty::Int64), read_cell(b, Ty::Int64));
            if x.ty() == y.ty() {
                compare_same(&x, &y, !exact)
            } else {
                match (x.convert(Ty::Double), y.convert(Ty::Double)) {
                    (Ok(p), Ok(q)) => compare_same(&p, &q, !exact),
                    _ => Ordering::Equal,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_has_offset() {
        let e = parse("FILTER ActiveMeasurements SignalType = 'FREQ'").unwrap_err();
        assert_eq!(
            e.to_string(),
            "filter expression error at offset 26: expected WHERE after table name, found 'SignalType'"
        );
    }

    #[test]
    fn empty_filter_selects_nothing() {
        let f = parse("  ; -- nothing\n ;").unwrap();
        assert!(f.is_empty());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&text).unwrap_err().message().contains("nesting"));
        let text = format!("x = {}", "-".repeat(10_000));
        assert!(parse(&text).is_err());
        let text = (0..2000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        assert!(parse(&text).is_err());
        let text = (0..5000)
            .map(|i| format!("ID = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        assert!(parse(&text).is_ok());
    }
}
