//! Built-in functions (wire.md §7 list), with the argument orders, NULL handling and result types
//! of cppapi's `ExpressionTree`:
//!
//! - String functions take the source first; an optional trailing Boolean `ignoreCase` defaults
//!   to **case-sensitive**. A NULL source gives NULL (Contains/StartsWith/EndsWith: NULL; a NULL
//!   test string gives false); IndexOf/LastIndexOf/NthIndexOf/Replace/Split reject a NULL test
//!   string. Indices and lengths count characters, 0-based; not found is -1 (also for an empty
//!   search string, as boost's finders do).
//! - `NthIndexOf(s, find, n)`: index of the n-th (0-based) non-overlapping match.
//! - `Split(s, delim, n)`: the n-th (0-based) field, empty when out of range.
//! - `SubStr(s, index[, length])`: an index outside the string is an error (C++ `substr`).
//! - `StrCount` of NULLs or an empty search is 0; `StrCmp` orders NULL after everything.
//! - `Round` rounds half away from zero (C `round`); `Sqrt` of integers is Double; `Power` uses
//!   the arithmetic result type of its two arguments.
//! - `DateAdd(date, n, interval)`, `DateDiff(start, end, interval)` (= end − start, whole units,
//!   truncated; Year/Month count calendar boundaries), `DatePart(date, interval)`; intervals
//!   Year, Month, DayOfYear, Day, Week, WeekDay, Hour, Minute, Second, Millisecond. WeekDay is
//!   0 = Sunday (.NET `DayOfWeek`), Week is the ISO-8601 week number.
//! - `Now()`/`UtcNow()` both return `EvalContext::now_ticks` (this crate reads no clock).
//! - `RegExMatch(pattern, s)`/`RegExVal(pattern, s)` search anywhere in `s` with the `regex`
//!   crate's syntax (no backreferences/look-around, unlike std::regex), size-bounded.

use super::ast::Func;
use super::eval::{binary, compile_regex, Evaluator, Node};
use super::value::{
    days_in_month, derive_arithmetic, is_integer_text, parse_datetime, parse_f64, Ty, Val,
};
use super::FilterError;
use crate::metadata::dataset::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use sttp_wire::ticks;

const DAY: i64 = 86_400 * ticks::PER_SECOND;
/// Largest valid tick value (9999-12-31T23:59:59.9999999).
const MAX_TICKS: i64 = 3_155_378_975_999_999_999;

/// Byte-offset-preserving lowercase fold: each character maps to its lowercase form only when
/// that is a single character of the same UTF-8 length, so match positions carry over.
fn fold_aligned(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Owned(s.to_ascii_lowercase());
        }
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                let mut l = c.to_lowercase();
                match (l.next(), l.next()) {
                    (Some(x), None) if x.len_utf8() == c.len_utf8() => x,
                    _ => c,
                }
            })
            .collect(),
    )
}

fn char_index(s: &str, byte: usize) -> i32 {
    s.get(..byte)
        .map_or(-1, |p| i32::try_from(p.chars().count()).unwrap_or(i32::MAX))
}

/// Byte ranges of non-overlapping matches of `find` in `s`.
fn matches(s: &str, find: &str, ignore_case: bool) -> Vec<usize> {
    if find.is_empty() {
        return Vec::new();
    }
    if ignore_case {
        let (h, n) = (fold_aligned(s), fold_aligned(find));
        h.match_indices(n.as_ref()).map(|(i, _)| i).collect()
    } else {
        s.match_indices(find).map(|(i, _)| i).collect()
    }
}

struct Args<'e, 'a> {
    ev: &'e Evaluator<'e>,
    args: &'a [Node],
    row: &'a [Value],
    pos: usize,
    name: &'static str,
}

impl<'a> Args<'_, 'a> {
    fn get(&self, i: usize, target: Ty) -> Result<Val<'a>, FilterError> {
        match self.args.get(i) {
            Some(n) => self.ev.eval(n, self.row, target),
            None => Ok(Val::Null(target)),
        }
    }

    fn err<T>(&self, msg: impl AsRef<str>) -> Result<T, FilterError> {
        Err(FilterError::new(
            self.pos,
            format!("\"{}\" function {}", self.name, msg.as_ref()),
        ))
    }

    /// A String argument (NULL allowed); wrong type is an error.
    fn string(&self, i: usize, what: &str) -> Result<Option<Cow<'a, str>>, FilterError> {
        match self.get(i, Ty::String)? {
            Val::Str(s) => {
                // Every string function reads its string arguments about once (searching,
                // folding, copying): charge that.
                self.ev.budget.bytes(s.len())?;
                Ok(Some(s))
            }
            Val::Null(Ty::String) => Ok(None),
            v => self.err(format!(
                "{what} must be a string, not \"{}\"",
                v.ty().name()
            )),
        }
    }

    /// The optional ignore-case flag at `i` (absent or NULL = false).
    fn ignore_case(&self, i: usize) -> Result<bool, FilterError> {
        let v = self.get(i, Ty::Boolean)?;
        match v.convert(Ty::Boolean) {
            Ok(b) => Ok(b.truthy()),
            Err(m) => self.err(format!("ignore-case argument: {m}")),
        }
    }

    /// A required non-NULL integer argument.
    fn int(&self, i: usize, what: &str) -> Result<i32, FilterError> {
        let v = self.get(i, Ty::Int32)?;
        if !v.ty().is_integer() {
            return self.err(format!("{what} must be an integer type"));
        }
        match v.as_int() {
            Some(x) => Ok(x as i32),
            None => self.err(format!("{what} is null")),
        }
    }

    fn numeric(&self, i: usize, target: Ty) -> Result<Val<'a>, FilterError> {
        let v = self.get(i, target)?;
        if !v.ty().is_numeric() {
            return self.err(format!(
                "argument must be numeric, not \"{}\"",
                v.ty().name()
            ));
        }
        Ok(v)
    }

    fn datetime(&self, i: usize, what: &str) -> Result<Option<i64>, FilterError> {
        let v = self.get(i, Ty::DateTime)?;
        match v {
            Val::Null(Ty::DateTime | Ty::String) => Ok(None),
            Val::Dt(t) => Ok(Some(t)),
            Val::Str(s) => match parse_datetime(&s) {
                Some(t) => Ok(Some(t)),
                None => self.err(format!("{what}: cannot convert \"{s}\" to \"DateTime\"")),
            },
            other => self.err(format!(
                "{what} must be a date-time, not \"{}\"",
                other.ty().name()
            )),
        }
    }

    fn interval(&self, i: usize) -> Result<Interval, FilterError> {
        match self.string(i, "interval type")? {
            None => self.err("interval type is null"),
            Some(s) => Interval::parse(&s).map_or_else(
                || self.err(format!("time interval \"{s}\" is not recognized")),
                Ok,
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interval {
    Year,
    Month,
    DayOfYear,
    Day,
    Week,
    WeekDay,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl Interval {
    fn parse(s: &str) -> Option<Self> {
        let all = [
            ("Year", Interval::Year),
            ("Month", Interval::Month),
            ("DayOfYear", Interval::DayOfYear),
            ("Day", Interval::Day),
            ("Week", Interval::Week),
            ("WeekDay", Interval::WeekDay),
            ("Hour", Interval::Hour),
            ("Minute", Interval::Minute),
            ("Second", Interval::Second),
            ("Millisecond", Interval::Millisecond),
        ];
        all.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
            .map(|(_, i)| *i)
    }

    fn unit_ticks(self) -> i64 {
        match self {
            Interval::Week => 7 * DAY,
            Interval::Hour => 3600 * ticks::PER_SECOND,
            Interval::Minute => 60 * ticks::PER_SECOND,
            Interval::Second => ticks::PER_SECOND,
            Interval::Millisecond => ticks::PER_MILLISECOND,
            _ => DAY,
        }
    }
}

fn str_val<'a>(s: impl Into<Cow<'a, str>>) -> Val<'a> {
    Val::Str(s.into())
}

/// Evaluates a function call.
pub(crate) fn call<'a>(
    ev: &Evaluator<'_>,
    func: Func,
    args: &'a [Node],
    row: &'a [Value],
    pos: usize,
    regex: Option<&regex::Regex>,
) -> Result<Val<'a>, FilterError> {
    let a = Args {
        ev,
        args,
        row,
        pos,
        name: func.name(),
    };
    match func {
        Func::Abs | Func::Ceiling | Func::Floor | Func::Round | Func::Sqrt | Func::Power => {
            numeric(&a, func)
        }
        Func::Coalesce
        | Func::IsNull
        | Func::IIf
        | Func::MaxOf
        | Func::MinOf
        | Func::Convert
        | Func::IsDate
        | Func::IsInteger
        | Func::IsGuid
        | Func::IsNumeric
        | Func::Now
        | Func::UtcNow => general(&a, func, pos),
        Func::Contains
        | Func::StartsWith
        | Func::EndsWith
        | Func::IndexOf
        | Func::LastIndexOf
        | Func::NthIndexOf
        | Func::Len
        | Func::Lower
        | Func::Upper
        | Func::Trim
        | Func::TrimLeft
        | Func::TrimRight
        | Func::Reverse
        | Func::Replace
        | Func::Split
        | Func::StrCount
        | Func::StrCmp
        | Func::SubStr => text(&a, func),
        Func::RegExMatch | Func::RegExVal => regex_fn(&a, func, pos, regex),
        Func::DateAdd | Func::DateDiff | Func::DatePart => dates(&a, func),
    }
}

#[inline(never)]
fn numeric<'a>(a: &Args<'_, 'a>, func: Func) -> Result<Val<'a>, FilterError> {
    match func {
        Func::Abs => Ok(match a.numeric(0, Ty::Double)? {
            Val::I32(v) => Val::I32(v.wrapping_abs()),
            Val::I64(v) => Val::I64(v.wrapping_abs()),
            Val::Dec(v) => Val::Dec(v.abs()),
            Val::Dbl(v) => Val::Dbl(v.abs()),
            other => other,
        }),
        Func::Ceiling | Func::Floor | Func::Round => {
            let f = |x: f64| match func {
                Func::Ceiling => x.ceil(),
                Func::Floor => x.floor(),
                _ => x.round(),
            };
            Ok(match a.numeric(0, Ty::Double)? {
                Val::Dec(v) => Val::Dec(f(v)),
                Val::Dbl(v) => Val::Dbl(f(v)),
                other => other,
            })
        }
        Func::Sqrt => Ok(match a.numeric(0, Ty::Double)? {
            Val::Null(t) => Val::Null(t),
            Val::Dec(v) => Val::Dec(v.sqrt()),
            other => Val::Dbl(
                other
                    .convert(Ty::Double)
                    .ok()
                    .and_then(|v| match v {
                        Val::Dbl(x) => Some(x),
                        _ => None,
                    })
                    .unwrap_or(0.0)
                    .sqrt(),
            ),
        }),
        Func::Power => {
            let base = a.numeric(0, Ty::Double)?;
            let exp = a.numeric(1, Ty::Int32)?;
            if base.is_null() || exp.is_null() {
                return Ok(Val::Null(base.ty()));
            }
            let ty = derive_arithmetic(false, base.ty(), exp.ty()).unwrap_or(Ty::Double);
            let as_f = |v: &Val<'_>| match v.convert(Ty::Double) {
                Ok(Val::Dbl(x)) => x,
                _ => 0.0,
            };
            let p = as_f(&base).powf(as_f(&exp));
            Ok(match ty {
                Ty::Boolean => Val::Bool(p != 0.0),
                Ty::Int32 => Val::I32(p as i32),
                Ty::Int64 => Val::I64(p as i64),
                Ty::Decimal => Val::Dec(p),
                _ => Val::Dbl(p),
            })
        }
        _ => Ok(Val::Null(Ty::Boolean)),
    }
}

#[inline(never)]
fn general<'a>(a: &Args<'_, 'a>, func: Func, pos: usize) -> Result<Val<'a>, FilterError> {
    match func {
        Func::Coalesce => {
            let first = a.get(0, Ty::Boolean)?;
            if !first.is_null() {
                return Ok(first);
            }
            for i in 1..a.args.len() {
                let v = a.get(i, Ty::Boolean)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Ok(first)
        }
        Func::IsNull => {
            let test = a.get(0, Ty::Boolean)?;
            let default = a.get(1, Ty::Boolean)?;
            if default.is_null() {
                return a.err("default value, second argument, is null");
            }
            Ok(if test.is_null() { default } else { test })
        }
        Func::IIf => {
            let test = a.get(0, Ty::Boolean)?;
            if test.ty() != Ty::Boolean {
                return a.err("test value, first argument, must be a boolean");
            }
            a.get(if test.truthy() { 1 } else { 2 }, Ty::Boolean)
        }
        Func::MaxOf | Func::MinOf => {
            let mut best = a.get(0, Ty::Boolean)?;
            for i in 1..a.args.len() {
                let next = a.get(i, Ty::Boolean)?;
                let op = if func == Func::MaxOf {
                    super::ast::BinOp::Gt
                } else {
                    super::ast::BinOp::Lt
                };
                let better = binary(op, next.clone(), best.clone(), pos)?.truthy();
                if better || (best.is_null() && !next.is_null()) {
                    best = next;
                }
            }
            Ok(best)
        }
        Func::Convert => {
            let v = a.get(0, Ty::Boolean)?;
            let Some(name) = a.string(1, "target type, second argument,")? else {
                return a.err("target type, second argument, is null");
            };
            let Some(target) = type_by_name(&name) else {
                return a.err(format!("target type \"{name}\" is not supported"));
            };
            v.convert(target).map_err(|m| FilterError::new(pos, m))
        }
        Func::IsDate | Func::IsInteger | Func::IsGuid | Func::IsNumeric => {
            let v = a.get(0, Ty::Boolean)?;
            Ok(Val::Bool(match (&v, func) {
                (Val::Null(_), _) => false,
                (Val::Dt(_), Func::IsDate) | (Val::Guid(_), Func::IsGuid) => true,
                (Val::Str(s), Func::IsDate) => parse_datetime(s).is_some(),
                (Val::Str(s), Func::IsGuid) => super::lexer::parse_guid_text(s).is_some(),
                (Val::Str(s), Func::IsInteger) => is_integer_text(s),
                (Val::Str(s), Func::IsNumeric) => parse_f64(s).is_some(),
                (v, Func::IsInteger) => v.ty().is_integer(),
                (v, Func::IsNumeric) => v.ty().is_numeric(),
                _ => false,
            }))
        }
        Func::Now | Func::UtcNow => Ok(Val::Dt(a.ev.ctx.now_ticks)),
        _ => Ok(Val::Null(Ty::Boolean)),
    }
}

#[inline(never)]
fn text<'a>(a: &Args<'_, 'a>, func: Func) -> Result<Val<'a>, FilterError> {
    match func {
        Func::Contains | Func::StartsWith | Func::EndsWith => {
            let src = a.string(0, "source value, first argument,")?;
            let test = a.string(1, "test value, second argument,")?;
            let ic = a.ignore_case(2)?;
            let Some(src) = src else {
                return Ok(Val::Null(Ty::Boolean));
            };
            let Some(test) = test else {
                return Ok(Val::Bool(false));
            };
            let (s, t) = if ic {
                (fold_aligned(&src), fold_aligned(&test))
            } else {
                (Cow::Borrowed(src.as_ref()), Cow::Borrowed(test.as_ref()))
            };
            Ok(Val::Bool(match func {
                Func::Contains => s.contains(t.as_ref()),
                Func::StartsWith => s.starts_with(t.as_ref()),
                _ => s.ends_with(t.as_ref()),
            }))
        }
        Func::IndexOf | Func::LastIndexOf | Func::NthIndexOf => {
            let src = a.string(0, "source value, first argument,")?;
            let Some(test) = a.string(1, "test value, second argument,")? else {
                return a.err("test value, second argument, is null");
            };
            let (nth, ic_at) = if func == Func::NthIndexOf {
                (a.int(2, "index value, third argument,")?, 3)
            } else {
                (0, 2)
            };
            let ic = a.ignore_case(ic_at)?;
            let Some(src) = src else {
                return Ok(Val::Null(Ty::Int32));
            };
            let m = matches(&src, &test, ic);
            let hit = match func {
                Func::IndexOf => m.first().copied(),
                Func::LastIndexOf => {
                    // Last occurrence may overlap earlier non-overlapping matches: search backward.
                    if test.is_empty() {
                        None
                    } else if ic {
                        fold_aligned(&src).rfind(fold_aligned(&test).as_ref())
                    } else {
                        src.rfind(test.as_ref())
                    }
                }
                _ => {
                    if nth >= 0 {
                        m.get(nth as usize).copied()
                    } else {
                        m.len()
                            .checked_sub(nth.unsigned_abs() as usize)
                            .and_then(|i| m.get(i).copied())
                    }
                }
            };
            Ok(Val::I32(hit.map_or(-1, |b| char_index(&src, b))))
        }
        Func::Len => Ok(match a.string(0, "source value, first argument,")? {
            Some(s) => Val::I32(i32::try_from(s.chars().count()).unwrap_or(i32::MAX)),
            None => Val::Null(Ty::Int32),
        }),
        Func::Lower
        | Func::Upper
        | Func::Trim
        | Func::TrimLeft
        | Func::TrimRight
        | Func::Reverse => {
            let Some(s) = a.string(0, "source value, first argument,")? else {
                return Ok(Val::Null(Ty::String));
            };
            Ok(match func {
                Func::Lower => str_val(s.to_lowercase()),
                Func::Upper => str_val(s.to_uppercase()),
                Func::Trim => str_val(trim_cow(s, |x| x.trim())),
                Func::TrimLeft => str_val(trim_cow(s, |x| x.trim_start())),
                Func::TrimRight => str_val(trim_cow(s, |x| x.trim_end())),
                _ => str_val(s.chars().rev().collect::<String>()),
            })
        }
        Func::Replace => {
            let src = a.string(0, "source value, first argument,")?;
            let Some(find) = a.string(1, "test value, second argument,")? else {
                return a.err("test value, second argument, is null");
            };
            let Some(with) = a.string(2, "replace value, third argument,")? else {
                return a.err("replace value, third argument, is null");
            };
            let ic = a.ignore_case(3)?;
            let Some(src) = src else {
                return Ok(Val::Null(Ty::String));
            };
            let m = matches(&src, &find, ic);
            if m.is_empty() {
                return Ok(Val::Str(src));
            }
            // Refuse before building: the output's size is known from the match count (the
            // evaluator charges the built string).
            let out_len = m
                .len()
                .saturating_mul(with.len())
                .saturating_add(src.len().saturating_sub(m.len().saturating_mul(find.len())));
            a.ev.budget.check_len(out_len)?;
            let mut out = String::with_capacity(out_len);
            let mut last = 0usize;
            for at in m {
                out.push_str(src.get(last..at).unwrap_or(""));
                out.push_str(&with);
                last = at + find.len();
            }
            out.push_str(src.get(last..).unwrap_or(""));
            Ok(str_val(out))
        }
        Func::Split => {
            let src = a.string(0, "source value, first argument,")?;
            let Some(delim) = a.string(1, "delimiter value, second argument,")? else {
                return a.err("delimiter value, second argument, is null");
            };
            let index = a.int(2, "index value, third argument,")?;
            let ic = a.ignore_case(3)?;
            let Some(src) = src else {
                return Ok(Val::Null(Ty::String));
            };
            let m = matches(&src, &delim, ic);
            let Ok(index) = usize::try_from(index) else {
                return Ok(str_val(""));
            };
            let start = if index == 0 {
                Some(0)
            } else {
                m.get(index - 1).map(|b| b + delim.len())
            };
            let end = m.get(index).copied().unwrap_or(src.len());
            Ok(match start {
                Some(st) => str_val(src.get(st..end).unwrap_or("").to_owned()),
                None => str_val(""),
            })
        }
        Func::StrCount => {
            let src = a.string(0, "source value, first argument,")?;
            let test = a.string(1, "test value, second argument,")?;
            let ic = a.ignore_case(2)?;
            Ok(Val::I32(match (src, test) {
                (Some(s), Some(t)) => i32::try_from(matches(&s, &t, ic).len()).unwrap_or(i32::MAX),
                _ => 0,
            }))
        }
        Func::StrCmp => {
            let l = a.string(0, "left value, first argument,")?;
            let r = a.string(1, "right value, second argument,")?;
            let ic = a.ignore_case(2)?;
            Ok(Val::I32(match (l, r) {
                (None, None) => 0,
                (None, Some(_)) => 1,
                (Some(_), None) => -1,
                (Some(l), Some(r)) => match super::value::cmp_str(&l, &r, ic) {
                    Ordering::Less => -1,
                    Ordering::Equal => 0,
                    Ordering::Greater => 1,
                },
            }))
        }
        Func::SubStr => {
            let src = a.string(0, "source value, first argument,")?;
            let index = a.int(1, "index value, second argument,")?;
            let len_v = a.get(2, Ty::Int32)?;
            if !len_v.ty().is_integer() {
                return a.err("length value, third argument, must be an integer type");
            }
            let Some(src) = src else {
                return Ok(Val::Null(Ty::String));
            };
            let count = src.chars().count();
            let Ok(start) = usize::try_from(index) else {
                return a.err("index value, second argument, is out of range");
            };
            if start > count {
                return a.err("index value, second argument, is out of range");
            }
            let take = match len_v.as_int() {
                Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            Ok(str_val(
                src.chars().skip(start).take(take).collect::<String>(),
            ))
        }
        _ => Ok(Val::Null(Ty::Boolean)),
    }
}

#[inline(never)]
fn regex_fn<'a>(
    a: &Args<'_, 'a>,
    func: Func,
    pos: usize,
    regex: Option<&regex::Regex>,
) -> Result<Val<'a>, FilterError> {
    match func {
        Func::RegExMatch | Func::RegExVal => {
            let pattern = a.string(0, "expression value, first argument,")?;
            let text = a.string(1, "test value, second argument,")?;
            let want_value = func == Func::RegExVal;
            let (Some(pattern), Some(text)) = (pattern, text) else {
                return Ok(Val::Null(if want_value { Ty::String } else { Ty::Boolean }));
            };
            let compiled;
            let re = match regex {
                Some(r) => r,
                None => {
                    a.ev.budget.steps(
                        super::eval::REGEX_COMPILE_STEPS.saturating_add(
                            (pattern.len() as u64)
                                .saturating_mul(super::eval::REGEX_COMPILE_STEPS_PER_BYTE),
                        ),
                    )?;
                    compiled = compile_regex(&pattern, pos)?;
                    &compiled
                }
            };
            let found = re.find(&text).map(|m| m.as_str().to_owned());
            Ok(if want_value {
                str_val(found.unwrap_or_default())
            } else {
                Val::Bool(found.is_some())
            })
        }
        _ => Ok(Val::Null(Ty::Boolean)),
    }
}

#[inline(never)]
fn dates<'a>(a: &Args<'_, 'a>, func: Func) -> Result<Val<'a>, FilterError> {
    match func {
        Func::DateAdd => {
            let src = a.datetime(0, "source value, first argument,")?;
            let add = a.get(1, Ty::Int32)?;
            if !add.ty().is_integer() {
                return a.err("add value, second argument, must be an integer type");
            }
            let Some(n) = add.as_int() else {
                return a.err("add value, second argument, is null");
            };
            let n = i64::from(n as i32);
            let interval = a.interval(2)?;
            let Some(t) = src else {
                return Ok(Val::Null(Ty::DateTime));
            };
            let out = match interval {
                Interval::Year | Interval::Month => {
                    let (y, mo, d, h, mi, s, frac) = ticks::to_civil(t);
                    let months = if interval == Interval::Year {
                        n * 12
                    } else {
                        n
                    };
                    let total = y * 12 + i64::from(mo) - 1 + months;
                    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
                    if !(1..=9999).contains(&ny) {
                        None
                    } else {
                        let nd = d.min(days_in_month(ny, nm));
                        Some(ticks::from_civil(ny, nm, nd, h, mi, s, frac))
                    }
                }
                other => n
                    .checked_mul(other.unit_ticks())
                    .and_then(|dt| t.checked_add(dt)),
            };
            match out.filter(|v| (0..=MAX_TICKS).contains(v)) {
                Some(v) => Ok(Val::Dt(v)),
                None => a.err("result is out of the date-time range"),
            }
        }
        Func::DateDiff => {
            let l = a.datetime(0, "left value, first argument,")?;
            let r = a.datetime(1, "right value, second argument,")?;
            let interval = a.interval(2)?;
            let (Some(l), Some(r)) = (l, r) else {
                return Ok(Val::Null(Ty::Int32));
            };
            let diff = match interval {
                Interval::Year | Interval::Month => {
                    let (ly, lm, ..) = ticks::to_civil(l);
                    let (ry, rm, ..) = ticks::to_civil(r);
                    if interval == Interval::Year {
                        ry - ly
                    } else {
                        (ry - ly) * 12 + i64::from(rm) - i64::from(lm)
                    }
                }
                other => (r - l) / other.unit_ticks(),
            };
            Ok(Val::I32(
                diff.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            ))
        }
        Func::DatePart => {
            let src = a.datetime(0, "source value, first argument,")?;
            let interval = a.interval(1)?;
            let Some(t) = src else {
                return Ok(Val::Null(Ty::Int32));
            };
            let (y, mo, d, h, mi, s, frac) = ticks::to_civil(t);
            let days = ticks::days_from_civil(y, mo, d);
            let v = match interval {
                Interval::Year => y,
                Interval::Month => i64::from(mo),
                Interval::Day => i64::from(d),
                Interval::DayOfYear => days - ticks::days_from_civil(y, 1, 1) + 1,
                Interval::WeekDay => (days + 4).rem_euclid(7),
                Interval::Week => iso_week(y, mo, d),
                Interval::Hour => i64::from(h),
                Interval::Minute => i64::from(mi),
                Interval::Second => i64::from(s),
                Interval::Millisecond => frac / ticks::PER_MILLISECOND,
            };
            Ok(Val::I32(v as i32))
        }

        _ => Ok(Val::Null(Ty::Boolean)),
    }
}

fn trim_cow<'a>(s: Cow<'a, str>, f: fn(&str) -> &str) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(f(b)),
        Cow::Owned(o) => Cow::Owned(f(&o).to_owned()),
    }
}

fn iso_week(y: i64, mo: u32, d: u32) -> i64 {
    use chrono::Datelike;
    i32::try_from(y)
        .ok()
        .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, mo, d))
        .map_or(0, |date| i64::from(date.iso_week().week()))
}

/// `Convert` target names: the value type names, an optional `System.` prefix, and the aliases
/// Single/Float*, Bool, Int*/UInt* (→ Int64), Date/Time, UUID.
fn type_by_name(name: &str) -> Option<Ty> {
    let n = name.trim();
    let n = match n.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("System.") && n.len() > 7 => n.get(7..).unwrap_or(n),
        _ => n,
    };
    let is = |x: &str| n.eq_ignore_ascii_case(x);
    let starts = |x: &str| n.get(..x.len()).is_some_and(|p| p.eq_ignore_ascii_case(x));
    Some(match () {
        _ if is("Boolean") || is("bool") => Ty::Boolean,
        _ if is("Int32") => Ty::Int32,
        _ if is("Int64") => Ty::Int64,
        _ if is("Decimal") => Ty::Decimal,
        _ if is("Double") || is("Single") || starts("float") => Ty::Double,
        _ if is("String") => Ty::String,
        _ if is("Guid") || is("UUID") => Ty::Guid,
        _ if is("DateTime") || is("Date") || is("Time") => Ty::DateTime,
        _ if starts("Int") || starts("UInt") => Ty::Int64,
        _ => return None,
    })
}
