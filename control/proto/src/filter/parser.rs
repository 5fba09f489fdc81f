//! Recursive-descent parser for the filter expression language (wire.md §7).
//!
//! Precedence, highest first (the documented order of `FilterExpressionSyntax.g4`):
//! unary `- + ~ ! NOT` > `* / %` > `+ -` > `<< >> & | ^ XOR` > `< <= > >=` >
//! `= == === != !== <>` > `IS [NOT] NULL`, `[NOT] IN`, `[NOT] LIKE` > prefix `NOT`/`!` > `AND &&` >
//! `OR ||`. All binary operators are left-associative.
//!
//! Note: the ANTLR grammar itself puts each group of the comment's levels into single
//! alternatives, so the generated cppapi/pyapi/goapi parsers actually treat `* / % + -` as one
//! level, all comparison/predicate operators as one level and `AND`/`OR` as one level
//! (`a OR b AND c` parses as `(a OR b) AND c` there). We implement the documented precedence,
//! which is also what the .NET (gsfapi) DataTable evaluator uses; parenthesised filters behave
//! the same everywhere.
//!
//! Nesting (parentheses, unary/NOT chains, function arguments, IN lists, LIKE patterns) is
//! limited to [`MAX_DEPTH`], and so is the depth of the resulting tree, which bounds recursion in
//! parsing, evaluation and drop. 128 keeps the deepest accepted input well inside a 2 MiB thread
//! stack even in unoptimized builds; real filters nest a handful of levels.

use super::ast::*;
use super::lexer::{Tok, Token};
use super::value::parse_datetime;
use super::{FilterError, FilterLimit};

/// Maximum nesting depth of a parsed expression.
pub const MAX_DEPTH: usize = 128;

pub(crate) struct Parser {
    toks: Vec<Token>,
    at: usize,
    depth: usize,
}

fn depth_of(e: &Expr) -> usize {
    1 + match &e.kind {
        ExprKind::Literal(_) | ExprKind::Column(_) => 0,
        ExprKind::Unary(_, a) | ExprKind::IsNull { arg: a, .. } => a.depth,
        ExprKind::Binary(_, a, b)
        | ExprKind::Like {
            arg: a, pattern: b, ..
        } => a.depth.max(b.depth),
        ExprKind::Logical { args, .. } | ExprKind::Call(_, args) => {
            args.iter().map(|x| x.depth).max().unwrap_or(0)
        }
        ExprKind::In { arg, list, .. } => list
            .iter()
            .map(|x| x.depth)
            .max()
            .unwrap_or(0)
            .max(arg.depth),
    }
}

impl Parser {
    pub fn new(toks: Vec<Token>) -> Self {
        Self {
            toks,
            at: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.at).map_or(&Tok::Eof, |t| &t.kind)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.toks.get(self.at + n).map_or(&Tok::Eof, |t| &t.kind)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.at)
            .or(self.toks.last())
            .map_or(0, |t| t.pos)
    }

    fn bump(&mut self) {
        if self.at < self.toks.len() {
            self.at += 1;
        }
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            Tok::Word(w) | Tok::QuotedIdent(w) => format!("'{w}'"),
            Tok::Integer(t) | Tok::Numeric(t) => format!("number {t}"),
            Tok::Str(_) => "string literal".into(),
            Tok::DateTime(_) => "date-time literal".into(),
            Tok::Guid(_) => "GUID literal".into(),
            Tok::MeasurementKey(k) => format!("measurement key {k}"),
            Tok::PointTag(t) => format!("point tag \"{t}\""),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::Eof => "end of expression".into(),
        }
    }

    #[cold]
    #[inline(never)]
    fn expected<T>(&self, what: &str) -> Result<T, FilterError> {
        Err(FilterError::new(
            self.pos(),
            format!("expected {what}, found {}", self.describe()),
        ))
    }

    #[cold]
    #[inline(never)]
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError::new(self.pos(), msg))
    }

    fn node(&self, kind: ExprKind, pos: usize) -> Result<Expr, FilterError> {
        let mut e = Expr {
            kind,
            pos,
            depth: 0,
        };
        e.depth = depth_of(&e);
        if e.depth > MAX_DEPTH {
            return Err(FilterError::over(pos, FilterLimit::Depth, MAX_DEPTH as u64));
        }
        Ok(e)
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::over(
                self.pos(),
                FilterLimit::Depth,
                MAX_DEPTH as u64,
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// `';'* statement (';'+ statement)* ';'*` — an empty list is accepted (selects nothing).
    pub fn statements(&mut self) -> Result<Vec<Statement>, FilterError> {
        let mut out = Vec::new();
        loop {
            while self.eat_punct(";") {}
            if matches!(self.peek(), Tok::Eof) {
                return Ok(out);
            }
            out.push(self.statement()?);
            if !matches!(self.peek(), Tok::Eof) && !self.is_punct(";") {
                return self.expected("';' or end of expression");
            }
        }
    }

    fn at_statement_end(&self, n: usize) -> bool {
        matches!(self.peek_at(n), Tok::Eof | Tok::Punct(";"))
    }

    fn statement(&mut self) -> Result<Statement, FilterError> {
        match self.peek().clone() {
            Tok::Guid(g) if self.at_statement_end(1) => {
                self.bump();
                Ok(Statement::SignalId(g))
            }
            Tok::MeasurementKey(k) => {
                self.bump();
                Ok(Statement::MeasurementKey(k))
            }
            Tok::PointTag(t) => {
                self.bump();
                Ok(Statement::PointTag(t))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("FILTER") => self.filter_statement(),
            _ => Ok(Statement::Expression(self.expression()?)),
        }
    }

    fn filter_statement(&mut self) -> Result<Statement, FilterError> {
        self.bump(); // FILTER
        let mut top = -1i64;
        if self.eat_kw("TOP") {
            let negative = if self.eat_punct("-") {
                true
            } else {
                self.eat_punct("+");
                false
            };
            let pos = self.pos();
            let Tok::Integer(text) = self.peek().clone() else {
                return self.expected("integer after TOP");
            };
            self.bump();
            let n = parse_int_text(&text)
                .filter(|v| *v <= i64::MAX as u128)
                .ok_or_else(|| FilterError::new(pos, "TOP limit out of range"))?
                as i64;
            top = if negative { -n } else { n };
        }
        let table_pos = self.pos();
        let table = match self.peek().clone() {
            Tok::QuotedIdent(t) => t,
            Tok::Word(w) if !w.eq_ignore_ascii_case("WHERE") => w,
            _ => return self.expected("table name after FILTER"),
        };
        self.bump();
        if !self.eat_kw("WHERE") {
            return self.expected("WHERE after table name");
        }
        let where_ = self.expression()?;
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            if !self.eat_kw("BY") {
                return self.expected("BY after ORDER");
            }
            loop {
                let exact = self.eat_kw("BINARY") || self.eat_punct("===");
                let pos = self.pos();
                let column = match self.peek().clone() {
                    Tok::QuotedIdent(c) => c,
                    Tok::Word(w) if !is_keyword(&w) => w,
                    _ => return self.expected("column name in ORDER BY"),
                };
                self.bump();
                let descending = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                order_by.push(OrderTerm {
                    column,
                    pos,
                    descending,
                    exact,
                });
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        Ok(Statement::Filter(FilterStatement {
            table,
            table_pos,
            top,
            where_,
            order_by,
        }))
    }

    pub fn expression(&mut self) -> Result<Expr, FilterError> {
        self.enter()?;
        let r = self.or_expr();
        self.leave();
        r
    }

    fn logical(&mut self, and: bool) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let first = if and {
            self.not_expr()?
        } else {
            self.logical(true)?
        };
        let mut args = vec![first];
        loop {
            let hit = if and {
                self.eat_kw("AND") || self.eat_punct("&&")
            } else {
                self.eat_kw("OR") || self.eat_punct("||")
            };
            if !hit {
                break;
            }
            args.push(if and {
                self.not_expr()?
            } else {
                self.logical(true)?
            });
        }
        if args.len() == 1 {
            return Ok(args.pop().unwrap_or(Expr {
                kind: ExprKind::Literal(Lit::Null),
                pos,
                depth: 1,
            }));
        }
        self.node(ExprKind::Logical { and, args }, pos)
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        self.logical(false)
    }

    fn not_expr(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        if self.is_kw("NOT") || self.is_punct("!") {
            self.bump();
            self.enter()?;
            let inner = self.not_expr();
            self.leave();
            return self.node(ExprKind::Unary(UnaryOp::Not, Box::new(inner?)), pos);
        }
        self.predicate()
    }

    fn exact_modifier(&mut self) -> bool {
        self.eat_kw("BINARY") || self.eat_punct("===")
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let mut left = self.equality()?;
        while self.is_kw("IS")
            || self.is_kw("IN")
            || self.is_kw("LIKE")
            || self.is_kw("NOT")
            || self.is_punct("!")
        {
            match self.predicate_suffix(left, pos)? {
                (e, true) => left = e,
                (e, false) => return Ok(e),
            }
        }
        Ok(left)
    }

    /// One `IS [NOT] NULL`, `[NOT] IN (…)` or `[NOT] LIKE …` suffix; `false` when none applies.
    #[inline(never)]
    fn predicate_suffix(&mut self, left: Expr, pos: usize) -> Result<(Expr, bool), FilterError> {
        if self.is_kw("IS") {
            self.bump();
            let negated = self.eat_kw("NOT") || self.eat_punct("!");
            if !self.eat_kw("NULL") {
                return self.expected("NULL after IS");
            }
            return Ok((
                self.node(
                    ExprKind::IsNull {
                        arg: Box::new(left),
                        negated,
                    },
                    pos,
                )?,
                true,
            ));
        }
        let negated = (self.is_kw("NOT") || self.is_punct("!"))
            && (self.is_kw_at(1, "IN") || self.is_kw_at(1, "LIKE"));
        if negated {
            self.bump();
        }
        if self.eat_kw("IN") {
            let exact = self.exact_modifier();
            if !self.eat_punct("(") {
                return self.expected("'(' after IN");
            }
            self.enter()?;
            let list = self.expression_list();
            self.leave();
            let list = list?;
            if !self.eat_punct(")") {
                return self.expected("')' to close IN list");
            }
            Ok((
                self.node(
                    ExprKind::In {
                        arg: Box::new(left),
                        list,
                        negated,
                        exact,
                    },
                    pos,
                )?,
                true,
            ))
        } else if self.eat_kw("LIKE") {
            let exact = self.exact_modifier();
            self.enter()?;
            let pattern = self.equality();
            self.leave();
            let pattern = pattern?;
            Ok((
                self.node(
                    ExprKind::Like {
                        arg: Box::new(left),
                        pattern: Box::new(pattern),
                        negated,
                        exact,
                    },
                    pos,
                )?,
                true,
            ))
        } else {
            Ok((left, false))
        }
    }

    fn expression_list(&mut self) -> Result<Vec<Expr>, FilterError> {
        let mut list = vec![self.expression()?];
        while self.eat_punct(",") {
            list.push(self.expression()?);
        }
        Ok(list)
    }

    /// The binary operator at the cursor and its precedence (5 = `* / %` … 1 = equality).
    fn peek_binop(&self) -> Option<(BinOp, u8)> {
        let op = match self.peek() {
            Tok::Punct(p) => match *p {
                "*" => (BinOp::Mul, 5),
                "/" => (BinOp::Div, 5),
                "%" => (BinOp::Mod, 5),
                "+" => (BinOp::Add, 4),
                "-" => (BinOp::Sub, 4),
                "<<" => (BinOp::Shl, 3),
                ">>" => (BinOp::Shr, 3),
                "&" => (BinOp::BitAnd, 3),
                "|" => (BinOp::BitOr, 3),
                "^" => (BinOp::BitXor, 3),
                "<" => (BinOp::Lt, 2),
                "<=" => (BinOp::Le, 2),
                ">" => (BinOp::Gt, 2),
                ">=" => (BinOp::Ge, 2),
                "=" | "==" => (BinOp::Eq, 1),
                "===" => (BinOp::EqExact, 1),
                "!=" | "<>" => (BinOp::Ne, 1),
                "!==" => (BinOp::NeExact, 1),
                _ => return None,
            },
            Tok::Word(w) if w.eq_ignore_ascii_case("XOR") => (BinOp::BitXor, 3),
            _ => return None,
        };
        Some(op)
    }

    /// Precedence climbing over the value-level binary operators (all left-associative).
    fn binop(&mut self, min: u8) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let mut left = self.unary()?;
        while let Some((op, prec)) = self.peek_binop() {
            if prec < min {
                break;
            }
            self.bump();
            let right = self.binop(prec + 1)?;
            left = self.node(ExprKind::Binary(op, Box::new(left), Box::new(right)), pos)?;
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, FilterError> {
        self.binop(1)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let op = match self.peek() {
            Tok::Punct("-") => Some(UnaryOp::Minus),
            Tok::Punct("+") => Some(UnaryOp::Plus),
            Tok::Punct("~") | Tok::Punct("!") => Some(UnaryOp::Not),
            Tok::Word(w) if w.eq_ignore_ascii_case("NOT") => Some(UnaryOp::Not),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            self.enter()?;
            let inner = self.unary();
            self.leave();
            return self.node(ExprKind::Unary(op, Box::new(inner?)), pos);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if self.eat_punct("(") {
            let inner = self.expression()?;
            if !self.eat_punct(")") {
                return self.expected("')'");
            }
            return Ok(inner);
        }
        self.leaf()
    }

    /// Literals, columns and function calls.
    #[inline(never)]
    fn leaf(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let tok = self.peek().clone();
        let lit = |l: Lit| ExprKind::Literal(l);
        let kind = match tok {
            Tok::Integer(text) => {
                self.bump();
                lit(integer_literal(&text)
                    .ok_or_else(|| FilterError::new(pos, "invalid integer literal"))?)
            }
            Tok::Numeric(text) => {
                self.bump();
                let v: f64 = text
                    .parse()
                    .map_err(|_| FilterError::new(pos, "invalid numeric literal"))?;
                // Scientific notation is Double, plain reals are Decimal (reference rule).
                lit(if text.contains(['e', 'E']) {
                    Lit::Double(v)
                } else {
                    Lit::Decimal(v)
                })
            }
            Tok::Str(s) => {
                self.bump();
                lit(Lit::Str(s))
            }
            Tok::DateTime(s) => {
                self.bump();
                let t = parse_datetime(&s).ok_or_else(|| {
                    FilterError::new(pos, format!("invalid date-time literal #{s}#"))
                })?;
                lit(Lit::DateTime(t))
            }
            Tok::Guid(g) => {
                self.bump();
                lit(Lit::Guid(g))
            }
            Tok::QuotedIdent(name) => {
                self.bump();
                ExprKind::Column(name)
            }
            Tok::Word(w) => {
                if let Some(func) =
                    Func::from_name(&w).filter(|_| matches!(self.peek_at(1), Tok::Punct("(")))
                {
                    return self.call(func, pos);
                } else if w.eq_ignore_ascii_case("TRUE") || w.eq_ignore_ascii_case("FALSE") {
                    self.bump();
                    lit(Lit::Bool(w.eq_ignore_ascii_case("TRUE")))
                } else if w.eq_ignore_ascii_case("NULL") {
                    self.bump();
                    lit(Lit::Null)
                } else if is_keyword(&w) {
                    return self.err(format!("unexpected keyword {}", w.to_ascii_uppercase()));
                } else {
                    self.bump();
                    ExprKind::Column(w)
                }
            }
            Tok::MeasurementKey(_) | Tok::PointTag(_) => {
                return self.err(format!(
                    "{} is only valid as a statement of its own",
                    self.describe()
                ));
            }
            _ => return self.expected("a value"),
        };
        self.node(kind, pos)
    }
}

impl Parser {
    /// `Name '(' [expression (',' expression)*] ')'`; the cursor is on the name.
    #[inline(never)]
    fn call(&mut self, func: Func, pos: usize) -> Result<Expr, FilterError> {
        self.bump();
        self.bump();
        let args = if self.is_punct(")") {
            Vec::new()
        } else {
            self.enter()?;
            let a = self.expression_list();
            self.leave();
            a?
        };
        if !self.eat_punct(")") {
            return self.expected("')' to close the function arguments");
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(arity_error(func, args.len(), pos));
        }
        self.node(ExprKind::Call(func, args), pos)
    }
}

#[cold]
#[inline(never)]
fn arity_error(func: Func, got: usize, pos: usize) -> FilterError {
    let (min, max) = func.arity();
    let expected = if min == max {
        format!("{min} argument{}", if min == 1 { "" } else { "s" })
    } else if max == usize::MAX {
        format!("at least {min} arguments")
    } else {
        format!("{min} or {max} arguments")
    };
    FilterError::new(
        pos,
        format!(
            "function \"{}\" expects {expected}, received {got}",
            func.name()
        ),
    )
}

/// Parses decimal or `0x` hexadecimal integer text.
fn parse_int_text(text: &str) -> Option<u128> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u128::from_str_radix(hex, 16).ok()
    } else {
        text.parse::<u128>().ok()
    }
}

/// Integer literal typing: Int32 when it fits, else Int64, else Double (reference rule).
fn integer_literal(text: &str) -> Option<Lit> {
    match parse_int_text(text) {
        Some(v) if v <= i32::MAX as u128 => Some(Lit::Int32(v as i32)),
        Some(v) if v <= i64::MAX as u128 => Some(Lit::Int64(v as i64)),
        Some(v) => Some(Lit::Double(v as f64)),
        None => {
            // Longer than u128: still a number, as a Double.
            let digits = text.trim_start_matches("0x").trim_start_matches("0X");
            if text.len() != digits.len() {
                let mut f = 0f64;
                for c in digits.chars() {
                    f = f * 16.0 + f64::from(c.to_digit(16)?);
                }
                Some(Lit::Double(f))
            } else {
                text.parse::<f64>().ok().map(Lit::Double)
            }
        }
    }
}
