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
//! Peers send these bytes, so nothing here panics and every selection is bounded by
//! construction (docs/limits.md): input is limited to [`MAX_FILTER_LENGTH`] bytes, nesting to
//! [`MAX_DEPTH`], the parsed tree to [`MAX_EXPRESSION_NODES`] nodes and
//! [`MAX_SCAN_STATEMENTS`] table-scanning statements; LIKE runs in polynomial time, regular
//! expressions are size-limited, integer arithmetic wraps (division by zero is an error), and
//! each selection runs under an [`EvalLimits`] budget: [`MAX_EVALUATION_WORK`] steps (one per
//! node evaluated, `n·log2 n` per term for an ORDER BY of n rows, one per identifier lookup),
//! [`MAX_EVALUATION_BYTES`] bytes of string work (every string a function or `+` produces, and
//! every string a function, LIKE, IN or comparison reads), and [`MAX_STRING_LENGTH`] bytes per
//! produced string. Crossing a limit is a [`FilterError`] whose [`FilterError::limit`] names it.

mod ast;
mod eval;
mod functions;
mod lexer;
mod like;
mod parser;
mod value;

use crate::metadata::dataset::{DataSet, DataTable, Value};
use ast::{Expr, ExprKind, FilterStatement, Statement};
use eval::{read_cell, Budget, Evaluator};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;
use value::{cmp_str, compare_same, Ty, Val};

pub use parser::MAX_DEPTH;

/// Longest accepted filter expression, in bytes.
pub const MAX_FILTER_LENGTH: usize = 1 << 20;

/// Most expression nodes (literals, columns, operators, calls, IN items) plus identifier
/// statements in one filter expression, checked at parse time. A 1 MiB filter naming points
/// one by one holds at most ~27,000 GUIDs or ~90,000 `SOURCE:N` keys, well inside it.
pub const MAX_EXPRESSION_NODES: usize = 1 << 18;

/// Most statements that scan a table (`FILTER …` and bare expressions) in one filter expression.
/// Stock subscribers send one; each costs a pass over the table (and a sort with ORDER BY).
/// Identifier statements (`GUID`, `SOURCE:N`, `"TAG"`) are hash lookups and count only towards
/// [`MAX_EXPRESSION_NODES`].
pub const MAX_SCAN_STATEMENTS: usize = 1024;

/// Evaluation steps one selection may take (the step budget of [`EvalLimits::DEFAULT`]): one per
/// node evaluated per row, `n·⌈log2 n⌉` per ORDER BY term over n rows, one per identifier
/// statement and per row indexed or scanned for it, one per node bound. A stock
/// `FILTER ActiveMeasurements WHERE SignalType = 'FREQ'` over 100,000 rows takes ~400,000.
pub const MAX_EVALUATION_WORK: u64 = 1 << 22;

/// Bytes of string work one selection may do (the byte budget of [`EvalLimits::DEFAULT`]).
pub const MAX_EVALUATION_BYTES: u64 = 16 << 20;

/// Longest string one function or `+` may produce.
pub const MAX_STRING_LENGTH: usize = 1 << 20;

/// The budget one selection runs under (docs/limits.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// Step budget.
    pub max_steps: u64,
    /// Byte budget for string work.
    pub max_bytes: u64,
    /// Longest string a function or `+` may produce.
    pub max_string_len: usize,
}

impl EvalLimits {
    /// [`MAX_EVALUATION_WORK`] steps, [`MAX_EVALUATION_BYTES`] bytes, [`MAX_STRING_LENGTH`].
    pub const DEFAULT: Self = Self {
        max_steps: MAX_EVALUATION_WORK,
        max_bytes: MAX_EVALUATION_BYTES,
        max_string_len: MAX_STRING_LENGTH,
    };
}

impl Default for EvalLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a selection used of its budget (also reported when it failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalUsage {
    /// Steps taken.
    pub steps: u64,
    /// Bytes of string work done.
    pub bytes: u64,
}

/// The limit a [`FilterError`] reports crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterLimit {
    /// [`MAX_FILTER_LENGTH`].
    Length,
    /// [`MAX_DEPTH`].
    Depth,
    /// [`MAX_EXPRESSION_NODES`].
    Nodes,
    /// [`MAX_SCAN_STATEMENTS`].
    Statements,
    /// [`EvalLimits::max_steps`].
    Steps,
    /// [`EvalLimits::max_bytes`].
    Bytes,
    /// [`EvalLimits::max_string_len`].
    StringLength,
}

/// A filter expression error: a precise reason and the byte offset in the expression it refers to.
/// The `Display` text is what a publisher puts in its `Failed` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter expression error at offset {offset}: {message}")]
pub struct FilterError {
    offset: usize,
    message: String,
    limit: Option<FilterLimit>,
}

impl FilterError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
            limit: None,
        }
    }

    /// The error for crossing `limit`, whose value is `max`.
    pub(crate) fn over(offset: usize, limit: FilterLimit, max: u64) -> Self {
        let message = match limit {
            FilterLimit::Length => format!("filter expression longer than {max} bytes"),
            FilterLimit::Depth => format!("expression nesting exceeds {max} levels"),
            FilterLimit::Nodes => format!("filter expression has more than {max} nodes"),
            FilterLimit::Statements => {
                format!("filter expression has more than {max} FILTER or expression statements")
            }
            FilterLimit::Steps => format!("filter evaluation exceeded {max} steps"),
            FilterLimit::Bytes => format!("filter evaluation exceeded {max} bytes of string work"),
            FilterLimit::StringLength => {
                format!("filter evaluation produced a string longer than {max} bytes")
            }
        };
        Self {
            offset,
            message,
            limit: Some(limit),
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

    /// The limit crossed, when that is the reason.
    pub fn limit(&self) -> Option<FilterLimit> {
        self.limit
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
        return Err(FilterError::over(
            MAX_FILTER_LENGTH,
            FilterLimit::Length,
            MAX_FILTER_LENGTH as u64,
        ));
    }
    let tokens = lexer::tokenize(text)?;
    let statements = parser::Parser::new(tokens).statements()?;
    let (mut nodes, mut scans) = (0usize, 0usize);
    for s in &statements {
        let (expr, pos) = match s {
            Statement::Filter(f) => (Some(&f.where_), f.table_pos),
            Statement::Expression(e) => (Some(e), e.pos),
            _ => (None, 0),
        };
        nodes += 1;
        if let Some(e) = expr {
            scans += 1;
            if scans > MAX_SCAN_STATEMENTS {
                return Err(FilterError::over(
                    pos,
                    FilterLimit::Statements,
                    MAX_SCAN_STATEMENTS as u64,
                ));
            }
            nodes += count_nodes(e);
        }
        if nodes > MAX_EXPRESSION_NODES {
            return Err(FilterError::over(
                expr.map_or(0, |e| e.pos),
                FilterLimit::Nodes,
                MAX_EXPRESSION_NODES as u64,
            ));
        }
    }
    Ok(FilterExpression { statements })
}

/// Nodes in `e` (recursion bounded by [`MAX_DEPTH`]).
fn count_nodes(e: &Expr) -> usize {
    1 + match &e.kind {
        ExprKind::Literal(_) | ExprKind::Column(_) => 0,
        ExprKind::Unary(_, a) | ExprKind::IsNull { arg: a, .. } => count_nodes(a),
        ExprKind::Binary(_, l, r)
        | ExprKind::Like {
            arg: l, pattern: r, ..
        } => count_nodes(l) + count_nodes(r),
        ExprKind::Logical { args, .. } | ExprKind::Call(_, args) => {
            args.iter().map(count_nodes).sum()
        }
        ExprKind::In { arg, list, .. } => {
            count_nodes(arg) + list.iter().map(count_nodes).sum::<usize>()
        }
    }
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
    /// statements then select nothing (as in cppapi). Runs under [`EvalLimits::DEFAULT`].
    pub fn select(
        &self,
        set: &DataSet,
        primary: &str,
        ctx: &EvalContext,
    ) -> Result<Vec<TableSelection>, FilterError> {
        self.select_measured(set, primary, ctx, &EvalLimits::DEFAULT)
            .0
    }

    /// [`Self::select`] under `limits`, also returning what it used of them (when it fails too).
    pub fn select_measured(
        &self,
        set: &DataSet,
        primary: &str,
        ctx: &EvalContext,
        limits: &EvalLimits,
    ) -> (Result<Vec<TableSelection>, FilterError>, EvalUsage) {
        let budget = Budget::new(*limits);
        let result = self.select_budgeted(set, primary, ctx, &budget);
        (result, budget.usage())
    }

    fn select_budgeted(
        &self,
        set: &DataSet,
        primary: &str,
        ctx: &EvalContext,
        budget: &Budget,
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
        order
            .into_iter()
            .map(|t| {
                let is_primary = t.name.eq_ignore_ascii_case(primary);
                Ok(TableSelection {
                    table: t.name.clone(),
                    rows: self.select_inner(t, is_primary, ctx, budget)?,
                })
            })
            .collect()
    }

    /// Rows of one table: statements naming `table.name` (case-insensitive), plus identifier and
    /// bare-expression statements if `is_primary`. Runs under [`EvalLimits::DEFAULT`].
    pub fn select_table(
        &self,
        table: &DataTable,
        is_primary: bool,
        ctx: &EvalContext,
    ) -> Result<Vec<usize>, FilterError> {
        self.select_table_measured(table, is_primary, ctx, &EvalLimits::DEFAULT)
            .0
    }

    /// [`Self::select_table`] under `limits`, also returning what it used of them.
    pub fn select_table_measured(
        &self,
        table: &DataTable,
        is_primary: bool,
        ctx: &EvalContext,
        limits: &EvalLimits,
    ) -> (Result<Vec<usize>, FilterError>, EvalUsage) {
        let budget = Budget::new(*limits);
        let result = self.select_inner(table, is_primary, ctx, &budget);
        (result, budget.usage())
    }

    /// Rows of every table the FILTER statements name that `set` has (tables it lacks are
    /// skipped), each as by [`Self::select_table`] with `is_primary` false, all under **one**
    /// budget of `limits`: what a MetadataRefresh filter selects (docs/limits.md).
    pub fn select_named_tables(
        &self,
        set: &DataSet,
        ctx: &EvalContext,
        limits: &EvalLimits,
    ) -> (Result<Vec<TableSelection>, FilterError>, EvalUsage) {
        let budget = Budget::new(*limits);
        let result = self
            .tables()
            .into_iter()
            .filter_map(|name| set.table(&name))
            .map(|t| {
                Ok(TableSelection {
                    table: t.name.clone(),
                    rows: self.select_inner(t, false, ctx, &budget)?,
                })
            })
            .collect();
        (result, budget.usage())
    }

    fn select_inner(
        &self,
        table: &DataTable,
        is_primary: bool,
        ctx: &EvalContext,
        budget: &Budget,
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
        let lookup = Lookup { table, budget };
        for s in &self.statements {
            budget.set_pos(statement_pos(s));
            budget.steps(1)?;
            let rows: Vec<usize> = match s {
                Statement::SignalId(g) if is_primary => {
                    let col = table.column_index("SignalID");
                    lookup
                        .first_match(col, many_guids, &mut index.by_guid, guid_of, *g)?
                        .into_iter()
                        .collect()
                }
                Statement::MeasurementKey(k) if is_primary => {
                    let col = table.column_index("ID");
                    lookup
                        .first_match(
                            col,
                            many_keys,
                            &mut index.by_key,
                            text_key,
                            value::fold(k).into_owned(),
                        )?
                        .into_iter()
                        .collect()
                }
                Statement::PointTag(t) if is_primary => {
                    let col = table.column_index("PointTag");
                    lookup
                        .first_match(
                            col,
                            many_tags,
                            &mut index.by_tag,
                            text_key,
                            value::fold(t).into_owned(),
                        )?
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

/// Offset of a statement for budget errors (0 for identifier statements, which carry none).
fn statement_pos(s: &Statement) -> usize {
    match s {
        Statement::Filter(f) => f.table_pos,
        Statement::Expression(e) => e.pos,
        _ => 0,
    }
}

/// Identifier-statement lookups in one table, charged to a budget.
struct Lookup<'t> {
    table: &'t DataTable,
    budget: &'t Budget,
}

impl Lookup<'_> {
    /// First row whose cell in `col` has key `want`, via a lazily built index when `use_index`.
    /// Building the index or scanning costs one step per row.
    fn first_match<K: std::hash::Hash + Eq>(
        &self,
        col: Option<usize>,
        use_index: bool,
        slot: &mut Option<HashMap<K, usize>>,
        key: fn(&Value) -> Option<K>,
        want: K,
    ) -> Result<Option<usize>, FilterError> {
        let Some(col) = col else { return Ok(None) };
        let table = self.table;
        if use_index {
            if slot.is_none() {
                self.budget.steps(table.len() as u64)?;
                let mut m = HashMap::with_capacity(table.len());
                for (i, row) in table.rows().iter().enumerate() {
                    if let Some(k) = row.get(col).and_then(key) {
                        m.entry(k).or_insert(i);
                    }
                }
                *slot = Some(m);
            }
            return Ok(slot.as_ref().and_then(|map| map.get(&want).copied()));
        }
        self.budget.steps(table.len() as u64)?;
        Ok(table
            .rows()
            .iter()
            .position(|row| row.get(col).and_then(key).is_some_and(|k| k == want)))
    }
}

fn run_filter(
    table: &DataTable,
    f: &FilterStatement,
    ctx: &EvalContext,
    budget: &Budget,
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

/// Steps charged for sorting `n` rows by `terms` terms: `n·⌈log2 n⌉` comparisons per term.
fn sort_cost(n: usize, terms: usize) -> u64 {
    let n = n as u64;
    let log = u64::from(u64::BITS - n.leading_zeros());
    n.saturating_mul(log).saturating_mul(terms as u64)
}

fn run_where(
    table: &DataTable,
    expr: &ast::Expr,
    top: i64,
    order: &[(usize, bool, bool)],
    ctx: &EvalContext,
    budget: &Budget,
) -> Result<Vec<usize>, FilterError> {
    budget.set_pos(expr.pos);
    let (node, nodes) = eval::bind(expr, table)?;
    // Binding walks the tree once (and builds IN sets): one step per node.
    budget.steps(nodes as u64)?;
    let ev = Evaluator { ctx: *ctx, budget };
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
        budget.steps(sort_cost(rows.len(), order.len()))?;
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
