//! Binding (column names → indices, literal patterns precompiled) and row evaluation
//! (wire.md §7). Semantics follow cppapi's `ExpressionTree`: NULL propagates through operators,
//! `AND`/`OR` evaluate both sides and yield NULL when either is NULL, operator result types come
//! from the promotion tables in `value.rs`.

use super::ast::{BinOp, Expr, ExprKind, Func, Lit, UnaryOp};
use super::functions;
use super::like::LikePattern;
use super::value::{
    compare_same, derive_arithmetic, derive_comparison, derive_integer, equal_same, fold, Ty, Val,
};
use super::{EvalContext, EvalLimits, EvalUsage, FilterError, FilterLimit};
use crate::metadata::dataset::{DataTable, DataType, Value};
use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashSet;
use sttp_wire::ticks;
use uuid::Uuid;

/// Limits for regular expressions supplied by peers.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Steps charged for compiling a regular expression computed per row, plus
/// [`REGEX_COMPILE_STEPS_PER_BYTE`] per pattern byte (a compile costs tens of µs, a step tens of ns).
pub(crate) const REGEX_COMPILE_STEPS: u64 = 5000;
/// See [`REGEX_COMPILE_STEPS`].
pub(crate) const REGEX_COMPILE_STEPS_PER_BYTE: u64 = 50;

/// One selection's evaluation budget (docs/limits.md): steps and bytes of string work used so
/// far against [`EvalLimits`]; a refused charge is not counted, so the usage never exceeds
/// the limits. Interior mutability so the evaluator can stay `&self`.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: EvalLimits,
    steps: Cell<u64>,
    bytes: Cell<u64>,
    /// Offset of the statement being evaluated, for the error.
    pos: Cell<usize>,
}

impl Budget {
    pub fn new(limits: EvalLimits) -> Self {
        Self {
            limits,
            steps: Cell::new(0),
            bytes: Cell::new(0),
            pos: Cell::new(0),
        }
    }

    pub fn usage(&self) -> EvalUsage {
        EvalUsage {
            steps: self.steps.get(),
            bytes: self.bytes.get(),
        }
    }

    pub fn set_pos(&self, pos: usize) {
        self.pos.set(pos);
    }

    /// Charges `n` steps.
    #[inline]
    pub fn steps(&self, n: u64) -> Result<(), FilterError> {
        let used = self.steps.get().saturating_add(n);
        if used > self.limits.max_steps {
            return Err(FilterError::over(
                self.pos.get(),
                FilterLimit::Steps,
                self.limits.max_steps,
            ));
        }
        self.steps.set(used);
        Ok(())
    }

    /// Charges `n` bytes of string work.
    #[inline]
    pub fn bytes(&self, n: usize) -> Result<(), FilterError> {
        let used = self.bytes.get().saturating_add(n as u64);
        if used > self.limits.max_bytes {
            return Err(FilterError::over(
                self.pos.get(),
                FilterLimit::Bytes,
                self.limits.max_bytes,
            ));
        }
        self.bytes.set(used);
        Ok(())
    }

    /// Checks the length of a string about to be produced (before it is built).
    pub fn check_len(&self, len: usize) -> Result<(), FilterError> {
        if len > self.limits.max_string_len {
            return Err(FilterError::over(
                self.pos.get(),
                FilterLimit::StringLength,
                self.limits.max_string_len as u64,
            ));
        }
        Ok(())
    }

    /// Checks and charges a produced string of `len` bytes.
    pub fn produce(&self, len: usize) -> Result<(), FilterError> {
        self.check_len(len)?;
        self.bytes(len)
    }
}

/// Length of a string value (0 for anything else): what reading it costs.
pub(crate) fn str_len(v: &Val<'_>) -> usize {
    match v {
        Val::Str(s) => s.len(),
        _ => 0,
    }
}

/// A bound expression node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Val<'static>),
    /// The NULL literal: takes the type its context asks for.
    NullLit,
    Column {
        idx: usize,
        ty: Ty,
    },
    Unary {
        op: UnaryOp,
        arg: Box<Node>,
        pos: usize,
    },
    Binary {
        op: BinOp,
        l: Box<Node>,
        r: Box<Node>,
        pos: usize,
    },
    Logical {
        and: bool,
        args: Vec<Node>,
        pos: usize,
    },
    IsNull {
        arg: Box<Node>,
        negated: bool,
    },
    In {
        arg: Box<Node>,
        list: Vec<Node>,
        negated: bool,
        exact: bool,
        set: Option<InSet>,
        pos: usize,
    },
    Like {
        arg: Box<Node>,
        pattern: Box<Node>,
        negated: bool,
        exact: bool,
        compiled: Option<LikePattern>,
        pos: usize,
    },
    Call {
        func: Func,
        args: Vec<Node>,
        pos: usize,
        regex: Option<regex::Regex>,
    },
}

/// Precomputed lookup for `IN` lists made only of literals, so long GUID or tag lists cost O(1)
/// per row. Used only where it gives the same answer as the pairwise comparisons.
#[derive(Debug, Clone, Default)]
pub(crate) struct InSet {
    /// Text forms of the items (folded unless exact), for String test values.
    strings: HashSet<String>,
    /// GUIDs, when every item is a GUID or GUID text, for Guid test values.
    guids: Option<HashSet<Uuid>>,
}

/// The expression type of a column (reference `EvaluateColumn` mapping).
pub(crate) fn column_ty(dt: DataType) -> Ty {
    match dt {
        DataType::String => Ty::String,
        DataType::Boolean => Ty::Boolean,
        DataType::DateTime => Ty::DateTime,
        DataType::Single | DataType::Double => Ty::Double,
        DataType::Decimal => Ty::Decimal,
        DataType::Guid => Ty::Guid,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            Ty::Int32
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Ty::Int64,
    }
}

/// Reads a cell as an expression value (strings borrowed).
pub(crate) fn read_cell(v: &Value, ty: Ty) -> Val<'_> {
    match v {
        Value::Null => Val::Null(ty),
        Value::String(s) => Val::Str(Cow::Borrowed(s)),
        Value::Boolean(b) => Val::Bool(*b),
        Value::DateTime(t) => Val::Dt(ticks::value(*t)),
        Value::Single(f) => Val::Dbl(f64::from(*f)),
        Value::Double(f) => Val::Dbl(*f),
        Value::Decimal(f) => Val::Dec(*f),
        Value::Guid(g) => Val::Guid(*g),
        Value::Int32(i) => match ty {
            Ty::Int64 => Val::I64(i64::from(*i)),
            _ => Val::I32(*i),
        },
        Value::Int64(i) => match (ty, i32::try_from(*i)) {
            (Ty::Int32, Ok(v)) => Val::I32(v),
            _ => Val::I64(*i),
        },
        Value::UInt64(u) => match i64::try_from(*u) {
            Ok(v) => Val::I64(v),
            Err(_) => Val::Dbl(*u as f64),
        },
    }
}

/// Binds a parsed expression to `table`; returns the node and its node count (for the work budget).
pub(crate) fn bind(e: &Expr, table: &DataTable) -> Result<(Node, usize), FilterError> {
    let mut count = 0usize;
    let n = bind_inner(e, table, &mut count)?;
    Ok((n, count))
}

/// Integer arithmetic shared by Int32 and Int64 (wire.md §7): overflow wraps, `MIN / -1` wraps
/// instead of trapping, and division or remainder by zero is an error.
macro_rules! integer_op {
    ($op:expr, $x:expr, $y:expr, $pos:expr) => {{
        let (x, y) = ($x, $y);
        match $op {
            BinOp::Mul => x.wrapping_mul(y),
            BinOp::Add => x.wrapping_add(y),
            BinOp::Sub => x.wrapping_sub(y),
            BinOp::Div => x
                .checked_div(y)
                .or_else(|| (y == -1).then(|| x.wrapping_neg()))
                .ok_or_else(|| div_zero($pos))?,
            BinOp::Mod => x
                .checked_rem(y)
                .or_else(|| (y == -1).then_some(0))
                .ok_or_else(|| div_zero($pos))?,
            BinOp::BitAnd => x & y,
            BinOp::BitOr => x | y,
            _ => x ^ y,
        }
    }};
}

fn lit_val(l: &Lit) -> Node {
    match l {
        Lit::Null => Node::NullLit,
        Lit::Bool(b) => Node::Const(Val::Bool(*b)),
        Lit::Int32(v) => Node::Const(Val::I32(*v)),
        Lit::Int64(v) => Node::Const(Val::I64(*v)),
        Lit::Decimal(v) => Node::Const(Val::Dec(*v)),
        Lit::Double(v) => Node::Const(Val::Dbl(*v)),
        Lit::Str(s) => Node::Const(Val::Str(Cow::Owned(s.clone()))),
        Lit::Guid(g) => Node::Const(Val::Guid(*g)),
        Lit::DateTime(t) => Node::Const(Val::Dt(*t)),
    }
}

fn bind_inner(e: &Expr, table: &DataTable, count: &mut usize) -> Result<Node, FilterError> {
    *count += 1;
    let mut b = |x: &Expr| bind_inner(x, table, count).map(Box::new);
    Ok(match &e.kind {
        ExprKind::Literal(l) => lit_val(l),
        ExprKind::Column(name) => {
            let idx = table.column_index(name).ok_or_else(|| {
                FilterError::new(
                    e.pos,
                    format!(
                        "failed to find column \"{name}\" in table \"{}\"",
                        table.name
                    ),
                )
            })?;
            let ty = table
                .column(idx)
                .map_or(Ty::String, |c| column_ty(c.data_type));
            Node::Column { idx, ty }
        }
        ExprKind::Unary(op, a) => Node::Unary {
            op: *op,
            arg: b(a)?,
            pos: e.pos,
        },
        ExprKind::Binary(op, l, r) => Node::Binary {
            op: *op,
            l: b(l)?,
            r: b(r)?,
            pos: e.pos,
        },
        ExprKind::Logical { and, args } => {
            let args: Vec<Node> = args
                .iter()
                .map(|a| bind_inner(a, table, count))
                .collect::<Result<_, _>>()?;
            if *and {
                Node::Logical {
                    and: true,
                    args,
                    pos: e.pos,
                }
            } else {
                or_as_in(args, e.pos)
            }
        }
        ExprKind::IsNull { arg, negated } => Node::IsNull {
            arg: b(arg)?,
            negated: *negated,
        },
        ExprKind::In {
            arg,
            list,
            negated,
            exact,
        } => {
            let arg = b(arg)?;
            let list: Vec<Node> = list
                .iter()
                .map(|a| bind_inner(a, table, count))
                .collect::<Result<_, _>>()?;
            let set = in_set(&list, *exact);
            Node::In {
                arg,
                list,
                negated: *negated,
                exact: *exact,
                set,
                pos: e.pos,
            }
        }
        ExprKind::Like {
            arg,
            pattern,
            negated,
            exact,
        } => {
            let arg = b(arg)?;
            let pattern = b(pattern)?;
            let compiled = match pattern.as_ref() {
                Node::Const(Val::Str(p)) => Some(LikePattern::new(p, !exact)),
                _ => None,
            };
            Node::Like {
                arg,
                pattern,
                negated: *negated,
                exact: *exact,
                compiled,
                pos: e.pos,
            }
        }
        ExprKind::Call(func, args) => {
            let args: Vec<Node> = args
                .iter()
                .map(|a| bind_inner(a, table, count))
                .collect::<Result<_, _>>()?;
            let regex = match (func, args.first()) {
                (Func::RegExMatch | Func::RegExVal, Some(Node::Const(Val::Str(p)))) => {
                    Some(compile_regex(p, e.pos)?)
                }
                _ => None,
            };
            Node::Call {
                func: *func,
                args,
                pos: e.pos,
                regex,
            }
        }
    })
}

/// `col = c1 OR col = c2 OR …` (a long GUID or tag list written as an OR chain) becomes
/// `col IN (c1, c2, …)` with a hash set, so it costs O(1) per row instead of O(terms). Only
/// where the answer is the same: one column, at least 4 terms, every constant non-NULL and of
/// the column's type (GUID, or ASCII text on a String column, whose case-insensitive `=` is the
/// set's fold). Anything else stays a plain OR.
fn or_as_in(args: Vec<Node>, pos: usize) -> Node {
    let term = |n: &Node| -> Option<(usize, Ty, Val<'static>)> {
        let Node::Binary {
            op: BinOp::Eq,
            l,
            r,
            ..
        } = n
        else {
            return None;
        };
        let (col, c) = match (l.as_ref(), r.as_ref()) {
            (Node::Column { idx, ty }, Node::Const(v))
            | (Node::Const(v), Node::Column { idx, ty }) => ((*idx, *ty), v),
            _ => return None,
        };
        let fits = match (col.1, c) {
            (Ty::Guid, Val::Guid(_)) => true,
            (Ty::String, Val::Str(s)) => s.is_ascii(),
            _ => false,
        };
        fits.then(|| (col.0, col.1, c.clone()))
    };
    let first = args.first().and_then(term);
    let list: Option<Vec<Node>> = match first {
        Some((idx, ty, _)) if args.len() >= 4 => args
            .iter()
            .map(|a| match term(a) {
                Some((i, t, v)) if i == idx && t == ty => Some(Node::Const(v)),
                _ => None,
            })
            .collect(),
        _ => None,
    };
    match (first, list) {
        (Some((idx, ty, _)), Some(list)) => {
            let set = in_set(&list, false);
            Node::In {
                arg: Box::new(Node::Column { idx, ty }),
                list,
                negated: false,
                exact: false,
                set,
                pos,
            }
        }
        _ => Node::Logical {
            and: false,
            args,
            pos,
        },
    }
}

pub(crate) fn compile_regex(pattern: &str, pos: usize) -> Result<regex::Regex, FilterError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|err| FilterError::new(pos, format!("invalid regular expression: {err}")))
}

fn in_set(list: &[Node], exact: bool) -> Option<InSet> {
    if list.len() < 4 {
        return None;
    }
    let mut set = InSet {
        strings: HashSet::with_capacity(list.len()),
        guids: Some(HashSet::new()),
    };
    for item in list {
        let Node::Const(v) = item else { return None };
        let text = v.to_text();
        set.strings.insert(if exact {
            text
        } else {
            fold(&text).into_owned()
        });
        let g = match v {
            Val::Guid(g) => Some(*g),
            Val::Str(s) => super::lexer::parse_guid_text(s),
            _ => None,
        };
        match (g, set.guids.as_mut()) {
            (Some(g), Some(gs)) => {
                gs.insert(g);
            }
            _ => set.guids = None,
        }
    }
    Some(set)
}

fn type_err(pos: usize, op: &str, l: Ty, r: Ty) -> FilterError {
    FilterError::new(
        pos,
        format!(
            "cannot perform \"{op}\" operation on \"{}\" and \"{}\"",
            l.name(),
            r.name()
        ),
    )
}

/// Evaluates bound nodes against rows, charging every node to the selection's [`Budget`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Evaluator<'b> {
    pub ctx: EvalContext,
    pub budget: &'b Budget,
}

impl Evaluator<'_> {
    /// Evaluates `node` for `row`. `target` is the type a bare NULL literal takes here.
    pub fn eval<'a>(
        &self,
        node: &'a Node,
        row: &'a [Value],
        target: Ty,
    ) -> Result<Val<'a>, FilterError> {
        self.budget.steps(1)?;
        match node {
            Node::Const(v) => Ok(v.borrowed()),
            Node::NullLit => Ok(Val::Null(target)),
            Node::Column { idx, ty } => {
                Ok(row.get(*idx).map_or(Val::Null(*ty), |v| read_cell(v, *ty)))
            }
            Node::Unary { op, arg, pos } => unary(*op, self.eval(arg, row, Ty::Boolean)?, *pos),
            Node::Binary { op, l, r, pos } => {
                let lv = self.eval(l, row, Ty::Boolean)?;
                let rv = self.eval(r, row, Ty::Boolean)?;
                let (ll, rl) = (str_len(&lv), str_len(&rv));
                self.budget.bytes(ll.saturating_add(rl))?;
                if *op == BinOp::Add && (ll > 0 || rl > 0) {
                    // String concatenation (or number + string): the result is at most this
                    // long plus a number's text.
                    self.budget
                        .produce(ll.saturating_add(rl).saturating_add(32))?;
                }
                binary(*op, lv, rv, *pos)
            }
            Node::Logical { and, args, pos } => self.logical(*and, args, row, *pos),
            Node::IsNull { arg, negated } => {
                let v = self.eval(arg, row, Ty::Boolean)?;
                Ok(Val::Bool(v.is_null() != *negated))
            }
            Node::In {
                arg,
                list,
                negated,
                exact,
                set,
                pos,
            } => self.in_list(arg, list, *negated, *exact, set.as_ref(), *pos, row),
            Node::Like {
                arg,
                pattern,
                negated,
                exact,
                compiled,
                pos,
            } => self.like(arg, pattern, *negated, *exact, compiled.as_ref(), *pos, row),
            Node::Call {
                func,
                args,
                pos,
                regex,
            } => {
                let v = functions::call(self, *func, args, row, *pos, regex.as_ref())?;
                if let Val::Str(Cow::Owned(s)) = &v {
                    self.budget.produce(s.len())?;
                }
                Ok(v)
            }
        }
    }

    #[inline(never)]
    fn logical<'a>(
        &self,
        and: bool,
        args: &'a [Node],
        row: &'a [Value],
        pos: usize,
    ) -> Result<Val<'a>, FilterError> {
        let (and, pos) = (&and, &pos);
        let mut any_null = false;
        let mut acc = *and;
        for a in args {
            let v = self.eval(a, row, Ty::Boolean)?;
            match v {
                Val::Bool(b) => {
                    if *and {
                        acc &= b;
                    } else {
                        acc |= b;
                    }
                }
                Val::Null(Ty::Boolean) => any_null = true,
                other => {
                    let op = if *and { "AND" } else { "OR" };
                    return Err(FilterError::new(
                        *pos,
                        format!(
                            "cannot perform \"{op}\" operation on \"{}\"",
                            other.ty().name()
                        ),
                    ));
                }
            }
        }
        Ok(if any_null {
            Val::Null(Ty::Boolean)
        } else {
            Val::Bool(acc)
        })
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn in_list<'a>(
        &self,
        arg: &'a Node,
        list: &'a [Node],
        negated: bool,
        exact: bool,
        set: Option<&InSet>,
        pos: usize,
        row: &'a [Value],
    ) -> Result<Val<'a>, FilterError> {
        let v = self.eval(arg, row, Ty::Boolean)?;
        // A NULL test value yields a Boolean NULL. (cppapi returns a NULL of the test
        // value's type, which then fails the WHERE clause's Boolean check — a bug.)
        if v.is_null() {
            return Ok(Val::Null(Ty::Boolean));
        }
        self.budget.bytes(str_len(&v))?;
        if let Some(set) = set {
            match &v {
                Val::Str(s) => {
                    let key: Cow<'_, str> = if exact {
                        Cow::Borrowed(s.as_ref())
                    } else {
                        fold(s)
                    };
                    return Ok(Val::Bool(set.strings.contains(key.as_ref()) != negated));
                }
                Val::Guid(g) => {
                    if let Some(gs) = &set.guids {
                        return Ok(Val::Bool(gs.contains(g) != negated));
                    }
                }
                _ => {}
            }
        }
        for item in list {
            let iv = self.eval(item, row, Ty::Boolean)?;
            self.budget.bytes(str_len(&iv))?;
            let ty = derive_comparison(v.ty(), iv.ty())
                .ok_or_else(|| type_err(pos, "=", v.ty(), iv.ty()))?;
            if iv.is_null() {
                continue;
            }
            let l = v.convert(ty).map_err(|m| FilterError::new(pos, m))?;
            let r = iv.convert(ty).map_err(|m| FilterError::new(pos, m))?;
            if equal_same(&l, &r, !exact) {
                return Ok(Val::Bool(!negated));
            }
        }
        Ok(Val::Bool(negated))
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn like<'a>(
        &self,
        arg: &'a Node,
        pattern: &'a Node,
        negated: bool,
        exact: bool,
        compiled: Option<&LikePattern>,
        pos: usize,
        row: &'a [Value],
    ) -> Result<Val<'a>, FilterError> {
        let v = self.eval(arg, row, Ty::Boolean)?;
        if v.is_null() {
            return Ok(Val::Null(Ty::Boolean));
        }
        let p = self.eval(pattern, row, Ty::String)?;
        let (Val::Str(text), Ty::String) = (&v, p.ty()) else {
            return Err(type_err(pos, "LIKE", v.ty(), p.ty()));
        };
        let matched = match (compiled, &p) {
            (Some(c), _) => {
                self.budget.bytes(c.cost(text.len()))?;
                c.matches(text)
            }
            (None, Val::Str(ps)) => {
                let c = LikePattern::new(ps, !exact);
                self.budget
                    .bytes(ps.len().saturating_add(c.cost(text.len())))?;
                c.matches(text)
            }
            _ => {
                return Err(FilterError::new(
                    pos,
                    "right operand of \"LIKE\" expression is null",
                ))
            }
        };
        Ok(Val::Bool(matched != negated))
    }
}

fn unary(op: UnaryOp, v: Val<'_>, pos: usize) -> Result<Val<'_>, FilterError> {
    let sym = match op {
        UnaryOp::Plus => "+",
        UnaryOp::Minus => "-",
        UnaryOp::Not => "~",
    };
    let bad = |t: Ty| {
        FilterError::new(
            pos,
            format!("cannot apply unary \"{sym}\" operator to \"{}\"", t.name()),
        )
    };
    Ok(match (&v, op) {
        (Val::Null(t), _) => Val::Null(*t),
        (Val::Bool(b), UnaryOp::Not) => Val::Bool(!b),
        (Val::I32(i), UnaryOp::Plus) => Val::I32(*i),
        (Val::I32(i), UnaryOp::Minus) => Val::I32(i.wrapping_neg()),
        (Val::I32(i), UnaryOp::Not) => Val::I32(!i),
        (Val::I64(i), UnaryOp::Plus) => Val::I64(*i),
        (Val::I64(i), UnaryOp::Minus) => Val::I64(i.wrapping_neg()),
        (Val::I64(i), UnaryOp::Not) => Val::I64(!i),
        (Val::Dec(f), UnaryOp::Plus) => Val::Dec(*f),
        (Val::Dec(f), UnaryOp::Minus) => Val::Dec(-f),
        (Val::Dbl(f), UnaryOp::Plus) => Val::Dbl(*f),
        (Val::Dbl(f), UnaryOp::Minus) => Val::Dbl(-f),
        _ => return Err(bad(v.ty())),
    })
}

fn div_zero(pos: usize) -> FilterError {
    FilterError::new(pos, "division by zero")
}

/// Applies a binary operator with the reference type derivation and NULL propagation.
pub(crate) fn binary<'a>(
    op: BinOp,
    l: Val<'a>,
    r: Val<'a>,
    pos: usize,
) -> Result<Val<'a>, FilterError> {
    let (lt, rt) = (l.ty(), r.ty());
    let conv = |v: &Val<'a>, t: Ty| v.convert(t).map_err(|m| FilterError::new(pos, m));
    match op {
        BinOp::Mul
        | BinOp::Div
        | BinOp::Add
        | BinOp::Sub
        | BinOp::Mod
        | BinOp::BitAnd
        | BinOp::BitOr
        | BinOp::BitXor => {
            let ty = match op {
                BinOp::Mod | BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => derive_integer(lt, rt),
                _ => derive_arithmetic(op == BinOp::Add, lt, rt),
            }
            .ok_or_else(|| type_err(pos, op.symbol(), lt, rt))?;
            if l.is_null() || r.is_null() {
                return Ok(Val::Null(ty));
            }
            let (a, b) = (conv(&l, ty)?, conv(&r, ty)?);
            arith(op, a, b, pos)
        }
        BinOp::Shl | BinOp::Shr => {
            if l.is_null() {
                return Ok(Val::Null(lt));
            }
            if !rt.is_integer() {
                return Err(FilterError::new(pos, "bit-shift amount must be an integer"));
            }
            let Some(s) = r.as_int() else {
                return Err(FilterError::new(pos, "bit-shift amount is null"));
            };
            let s = s as i32 as u32;
            let left = op == BinOp::Shl;
            Ok(match l {
                Val::Bool(b) => {
                    let v = i32::from(b);
                    Val::Bool(
                        if left {
                            v.wrapping_shl(s)
                        } else {
                            v.wrapping_shr(s)
                        } != 0,
                    )
                }
                Val::I32(v) => Val::I32(if left {
                    v.wrapping_shl(s)
                } else {
                    v.wrapping_shr(s)
                }),
                Val::I64(v) => Val::I64(if left {
                    v.wrapping_shl(s)
                } else {
                    v.wrapping_shr(s)
                }),
                _ => {
                    return Err(FilterError::new(
                        pos,
                        format!(
                            "cannot apply bit-shift \"{}\" operator to \"{}\"",
                            op.symbol(),
                            lt.name()
                        ),
                    ))
                }
            })
        }
        BinOp::Lt
        | BinOp::Le
        | BinOp::Gt
        | BinOp::Ge
        | BinOp::Eq
        | BinOp::EqExact
        | BinOp::Ne
        | BinOp::NeExact => {
            let ty = derive_comparison(lt, rt).ok_or_else(|| type_err(pos, op.symbol(), lt, rt))?;
            if l.is_null() || r.is_null() {
                return Ok(Val::Null(Ty::Boolean));
            }
            let (a, b) = (conv(&l, ty)?, conv(&r, ty)?);
            Ok(Val::Bool(match op {
                BinOp::Eq => equal_same(&a, &b, true),
                BinOp::EqExact => equal_same(&a, &b, false),
                BinOp::Ne => !equal_same(&a, &b, true),
                BinOp::NeExact => !equal_same(&a, &b, false),
                _ => {
                    let c = compare_same(&a, &b, true);
                    if matches!(a, Val::Dbl(x) | Val::Dec(x) if x.is_nan())
                        || matches!(b, Val::Dbl(x) | Val::Dec(x) if x.is_nan())
                    {
                        false
                    } else {
                        match op {
                            BinOp::Lt => c == Ordering::Less,
                            BinOp::Le => c != Ordering::Greater,
                            BinOp::Gt => c == Ordering::Greater,
                            _ => c != Ordering::Less,
                        }
                    }
                }
            }))
        }
    }
}

fn arith<'a>(op: BinOp, a: Val<'a>, b: Val<'a>, pos: usize) -> Result<Val<'a>, FilterError> {
    let bad = |t: Ty| {
        FilterError::new(
            pos,
            format!(
                "cannot apply \"{}\" operator to \"{}\"",
                op.symbol(),
                t.name()
            ),
        )
    };
    Ok(match (a, b) {
        (Val::Bool(x), Val::Bool(y)) => Val::Bool(match op {
            BinOp::Mul | BinOp::BitAnd => x && y,
            BinOp::Add | BinOp::BitOr => x || y,
            BinOp::Sub | BinOp::BitXor => x != y,
            BinOp::Div => y && x,
            _ => return Err(bad(Ty::Boolean)),
        }),
        (Val::I32(x), Val::I32(y)) => Val::I32(integer_op!(op, x, y, pos)),
        (Val::I64(x), Val::I64(y)) => Val::I64(integer_op!(op, x, y, pos)),
        (Val::Dec(x), Val::Dec(y)) => Val::Dec(match op {
            BinOp::Mul => x * y,
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            // .NET decimal division by zero throws; keep that rather than producing infinity.
            BinOp::Div if y == 0.0 => return Err(div_zero(pos)),
            BinOp::Div => x / y,
            _ => return Err(bad(Ty::Decimal)),
        }),
        (Val::Dbl(x), Val::Dbl(y)) => Val::Dbl(match op {
            BinOp::Mul => x * y,
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Div => x / y,
            _ => return Err(bad(Ty::Double)),
        }),
        (Val::Str(x), Val::Str(y)) if op == BinOp::Add => {
            let mut s = x.into_owned();
            s.push_str(&y);
            Val::Str(Cow::Owned(s))
        }
        (x, _) => return Err(bad(x.ty())),
    })
}
