//! Runtime values of filter expressions and the reference type rules (wire.md §7).
//!
//! Values carry a type even when NULL, as in cppapi's `ValueExpression`: the type of a NULL still
//! decides operator type derivation (e.g. `NullInt32Column AND TRUE` is a type error) and a WHERE
//! clause must produce a Boolean even when the row's result is NULL. Numeric promotion follows
//! Boolean < Int32 < Int64 < Decimal < Double. `Decimal` is held as `f64`, like the DataSet model.

use super::lexer::parse_guid_text;
use std::borrow::Cow;
use std::cmp::Ordering;
use sttp_wire::ticks;
use uuid::Uuid;

/// Expression value types (cppapi `ExpressionValueType`, without `Undefined`, which only the NULL
/// literal has before it takes the type its context asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Boolean,
    Int32,
    Int64,
    Decimal,
    Double,
    String,
    Guid,
    DateTime,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Boolean => "Boolean",
            Ty::Int32 => "Int32",
            Ty::Int64 => "Int64",
            Ty::Decimal => "Decimal",
            Ty::Double => "Double",
            Ty::String => "String",
            Ty::Guid => "Guid",
            Ty::DateTime => "DateTime",
        }
    }

    /// Rank in the numeric promotion order; `None` for non-numeric types.
    pub fn numeric_rank(self) -> Option<u8> {
        match self {
            Ty::Boolean => Some(0),
            Ty::Int32 => Some(1),
            Ty::Int64 => Some(2),
            Ty::Decimal => Some(3),
            Ty::Double => Some(4),
            _ => None,
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self, Ty::Boolean | Ty::Int32 | Ty::Int64)
    }

    pub fn is_numeric(self) -> bool {
        self.numeric_rank().is_some()
    }
}

/// A runtime value. Strings borrow from the table or the bound tree where possible, so that
/// evaluating a typical WHERE clause allocates nothing per row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null(Ty),
    Bool(bool),
    I32(i32),
    I64(i64),
    Dec(f64),
    Dbl(f64),
    Str(Cow<'a, str>),
    Guid(Uuid),
    /// .NET ticks.
    Dt(i64),
}

impl<'a> Val<'a> {
    pub fn ty(&self) -> Ty {
        match self {
            Val::Null(t) => *t,
            Val::Bool(_) => Ty::Boolean,
            Val::I32(_) => Ty::Int32,
            Val::I64(_) => Ty::Int64,
            Val::Dec(_) => Ty::Decimal,
            Val::Dbl(_) => Ty::Double,
            Val::Str(_) => Ty::String,
            Val::Guid(_) => Ty::Guid,
            Val::Dt(_) => Ty::DateTime,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null(_))
    }

    /// A view borrowing any owned string.
    pub fn borrowed(&self) -> Val<'_> {
        match self {
            Val::Str(s) => Val::Str(Cow::Borrowed(s.as_ref())),
            Val::Null(t) => Val::Null(*t),
            Val::Bool(b) => Val::Bool(*b),
            Val::I32(v) => Val::I32(*v),
            Val::I64(v) => Val::I64(*v),
            Val::Dec(v) => Val::Dec(*v),
            Val::Dbl(v) => Val::Dbl(*v),
            Val::Guid(g) => Val::Guid(*g),
            Val::Dt(t) => Val::Dt(*t),
        }
    }

    /// Boolean view; NULL counts as false (reference `ValueAsBoolean` on a null).
    pub fn truthy(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    /// Integer view of Boolean/Int32/Int64 values.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Bool(b) => Some(i64::from(*b)),
            Val::I32(v) => Some(i64::from(*v)),
            Val::I64(v) => Some(*v),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            Val::I32(v) => Some(f64::from(*v)),
            Val::I64(v) => Some(*v as f64),
            Val::Dec(v) | Val::Dbl(v) => Some(*v),
            _ => None,
        }
    }

    /// Text form used when a value is converted to String.
    pub fn to_text(&self) -> String {
        match self {
            Val::Null(_) => String::new(),
            Val::Bool(b) => b.to_string(),
            Val::I32(v) => v.to_string(),
            Val::I64(v) => v.to_string(),
            Val::Dec(v) | Val::Dbl(v) => v.to_string(),
            Val::Str(s) => s.to_string(),
            Val::Guid(g) => g.to_string(),
            Val::Dt(t) => format_datetime(*t),
        }
    }

    /// Converts to `target` per the reference `Convert` rules. NULL converts to NULL of the target.
    pub fn convert(&self, target: Ty) -> Result<Val<'a>, String> {
        if let Val::Null(_) = self {
            return Ok(Val::Null(target));
        }
        if self.ty() == target {
            return Ok(self.clone());
        }
        let cannot = || {
            format!(
                "cannot convert \"{}\" to \"{}\"",
                self.ty().name(),
                target.name()
            )
        };
        match self {
            Val::Bool(_) | Val::I32(_) | Val::I64(_) | Val::Dec(_) | Val::Dbl(_) => {
                let f = self.as_f64().unwrap_or(0.0);
                let i = self.as_int();
                Ok(match target {
                    Ty::Boolean => Val::Bool(f != 0.0),
                    // Float → integer casts saturate (the reference's C++ cast is undefined there).
                    Ty::Int32 => Val::I32(i.map_or(f as i32, |v| v as i32)),
                    Ty::Int64 => Val::I64(i.unwrap_or(f as i64)),
                    Ty::Decimal => Val::Dec(f),
                    Ty::Double => Val::Dbl(f),
                    Ty::String => Val::Str(Cow::Owned(self.to_text())),
                    Ty::Guid | Ty::DateTime => return Err(cannot()),
                })
            }
            Val::Str(s) => {
                let bad = || format!("cannot convert \"{}\" to \"{}\"", s, target.name());
                match target {
                    Ty::Boolean => parse_bool(s).map(Val::Bool).ok_or_else(bad),
                    Ty::Int32 => s.trim().parse::<i32>().map(Val::I32).map_err(|_| bad()),
                    Ty::Int64 => s.trim().parse::<i64>().map(Val::I64).map_err(|_| bad()),
                    Ty::Decimal => parse_f64(s).map(Val::Dec).ok_or_else(bad),
                    Ty::Double => parse_f64(s).map(Val::Dbl).ok_or_else(bad),
                    Ty::String => Ok(self.clone()),
                    Ty::Guid => parse_guid_text(s).map(Val::Guid).ok_or_else(bad),
                    Ty::DateTime => parse_datetime(s).map(Val::Dt).ok_or_else(bad),
                }
            }
            Val::Guid(g) => match target {
                Ty::String => Ok(Val::Str(Cow::Owned(g.to_string()))),
                _ => Err(cannot()),
            },
            Val::Dt(t) => {
                // Numeric conversions of a date-time use Unix seconds (reference `to_time_t`).
                let unix = (ticks::value(*t) - ticks::UNIX_EPOCH).div_euclid(ticks::PER_SECOND);
                Ok(match target {
                    Ty::Boolean => Val::Bool(unix != 0),
                    Ty::Int32 => Val::I32(unix as i32),
                    Ty::Int64 => Val::I64(unix),
                    Ty::Decimal => Val::Dec(unix as f64),
                    Ty::Double => Val::Dbl(unix as f64),
                    Ty::String => Val::Str(Cow::Owned(format_datetime(*t))),
                    Ty::Guid => return Err(cannot()),
                    Ty::DateTime => self.clone(),
                })
            }
            Val::Null(_) => Ok(Val::Null(target)),
        }
    }
}

/// `true`/`false` (any case) and `1`/`0`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Some(false)
    } else {
        None
    }
}

/// A plain decimal/scientific number; rejects Rust's `inf`/`nan` spellings.
pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t.bytes().any(|b| b.is_ascii_digit())
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// An optionally signed integer.
pub(crate) fn is_integer_text(s: &str) -> bool {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Formats ticks as `YYYY-MM-DD HH:MM:SS.fff` (the String form of a DateTime value).
pub(crate) fn format_datetime(t: i64) -> String {
    let (y, mo, d, h, mi, s, frac) = ticks::to_civil(t);
    format!(
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}",
        frac / ticks::PER_MILLISECOND
    )
}

/// Lenient timestamp parser for `#…#` literals and String→DateTime conversion. Accepts
/// `YYYY-MM-DD` or `YYYY/MM/DD` or `MM/DD/YYYY`, optionally followed (after `T` or spaces) by
/// `HH:MM[:SS[.fraction]]`, an optional `AM`/`PM`, and an optional `Z` or `±HH[:MM]` offset
/// (applied to yield UTC). Returns .NET ticks.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    let s = text.trim();
    let b = s.as_bytes();
    let mut p = 0usize;
    let num = |p: &mut usize, max: usize| -> Option<(i64, usize)> {
        let start = *p;
        let mut v: i64 = 0;
        while *p < b.len() && *p - start < max {
            match b.get(*p) {
                Some(c) if c.is_ascii_digit() => {
                    v = v * 10 + i64::from(c - b'0');
                    *p += 1;
                }
                _ => break,
            }
        }
        if *p == start {
            None
        } else {
            Some((v, *p - start))
        }
    };
    let (a, alen) = num(&mut p, 4)?;
    let sep = *b.get(p)?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    p += 1;
    let (m1, _) = num(&mut p, 2)?;
    if b.get(p) != Some(&sep) {
        return None;
    }
    p += 1;
    let (c, clen) = num(&mut p, 4)?;
    let (year, month, day) = if alen == 4 {
        (a, m1, c)
    } else if clen == 4 && sep == b'/' {
        (c, a, m1)
    } else {
        return None;
    };
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    let dim = days_in_month(year, month as u32);
    if day > i64::from(dim) {
        return None;
    }
    let (mut hour, mut minute, mut second, mut frac) = (0i64, 0i64, 0i64, 0i64);
    let mut offset_minutes = 0i64;
    // Time part.
    let mut q = p;
    while matches!(b.get(q), Some(b' ' | b'T' | b't')) {
        q += 1;
    }
    if q > p && b.get(q).is_some_and(u8::is_ascii_digit) {
        p = q;
        hour = num(&mut p, 2)?.0;
        if b.get(p) != Some(&b':') {
            return None;
        }
        p += 1;
        minute = num(&mut p, 2)?.0;
        if b.get(p) == Some(&b':') {
            p += 1;
            second = num(&mut p, 2)?.0;
            if b.get(p) == Some(&b'.') {
                p += 1;
                let mut digits = 0;
                while let Some(c) = b.get(p).filter(|c| c.is_ascii_digit()) {
                    if digits < 7 {
                        frac = frac * 10 + i64::from(c - b'0');
                        digits += 1;
                    }
                    p += 1;
                }
                for _ in digits..7 {
                    frac *= 10;
                }
            }
        }
        while b.get(p) == Some(&b' ') {
            p += 1;
        }
        let rest = s.get(p..).unwrap_or("");
        if rest.len() >= 2
            && (rest.get(..2)?.eq_ignore_ascii_case("AM")
                || rest.get(..2)?.eq_ignore_ascii_case("PM"))
        {
            let pm = rest.get(..2)?.eq_ignore_ascii_case("PM");
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour = (hour % 12) + if pm { 12 } else { 0 };
            p += 2;
        }
    } else {
        p = q;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    while b.get(p) == Some(&b' ') {
        p += 1;
    }
    match b.get(p) {
        None => {}
        Some(b'Z' | b'z') => p += 1,
        Some(&sign @ (b'+' | b'-')) => {
            p += 1;
            let (oh, _) = num(&mut p, 2)?;
            if b.get(p) == Some(&b':') {
                p += 1;
            }
            let om = num(&mut p, 2).map_or(0, |x| x.0);
            offset_minutes = (oh * 60 + om) * if sign == b'-' { -1 } else { 1 };
            if b.get(p).is_some_and(|c| *c == b'Z' || *c == b'z') {
                p += 1;
            }
        }
        Some(_) => return None,
    }
    if p != b.len() {
        return None;
    }
    let t = ticks::from_civil(
        year,
        month as u32,
        day as u32,
        hour as u32,
        minute as u32,
        second as u32,
        frac,
    ) - offset_minutes * 60 * ticks::PER_SECOND;
    (t >= 0).then_some(t)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Case-insensitive equality (simple lowercase folding; ASCII fast path).
pub(crate) fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// Case-insensitive ordering (compares lowercase-folded characters).
pub(crate) fn cmp_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .cmp(b.chars().flat_map(char::to_lowercase))
    }
}

/// String comparison honouring the case rule.
pub(crate) fn cmp_str(a: &str, b: &str, ignore_case: bool) -> Ordering {
    if ignore_case {
        cmp_ci(a, b)
    } else {
        a.cmp(b)
    }
}

/// Lowercase fold, borrowing when nothing changes.
pub(crate) fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// Result type of `* / + -` (reference `DeriveArithmeticOperationValueType`).
pub(crate) fn derive_arithmetic(is_add: bool, l: Ty, r: Ty) -> Option<Ty> {
    match (l.numeric_rank(), r.numeric_rank()) {
        (Some(a), Some(b)) => Some(if a >= b { l } else { r }),
        (Some(_), None) if r == Ty::String && is_add => Some(Ty::String),
        (None, _) if l == Ty::String && is_add => Some(Ty::String),
        _ => None,
    }
}

/// Result type of `% & | ^` (reference `DeriveIntegerOperationValueType`).
pub(crate) fn derive_integer(l: Ty, r: Ty) -> Option<Ty> {
    if l.is_integer() && r.is_integer() {
        derive_arithmetic(false, l, r)
    } else {
        None
    }
}

/// Common type of a comparison (reference `DeriveComparisonOperationValueType`): a String left
/// side compares as String; a numeric left side converts a String right side to its own type.
pub(crate) fn derive_comparison(l: Ty, r: Ty) -> Option<Ty> {
    match l {
        Ty::String => Some(Ty::String),
        Ty::Guid => matches!(r, Ty::Guid | Ty::String).then_some(Ty::Guid),
        Ty::DateTime => matches!(r, Ty::DateTime | Ty::String).then_some(Ty::DateTime),
        _ => {
            if r == Ty::String {
                Some(l)
            } else {
                derive_arithmetic(false, l, r)
            }
        }
    }
}

/// Compares two non-null values already converted to the same type.
pub(crate) fn compare_same(l: &Val<'_>, r: &Val<'_>, ignore_case: bool) -> Ordering {
    match (l, r) {
        (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
        (Val::I32(a), Val::I32(b)) => a.cmp(b),
        (Val::I64(a), Val::I64(b)) => a.cmp(b),
        (Val::Dec(a), Val::Dec(b)) | (Val::Dbl(a), Val::Dbl(b)) => {
            a.partial_cmp(b).unwrap_or(Ordering::Equal)
        }
        (Val::Str(a), Val::Str(b)) => cmp_str(a, b, ignore_case),
        (Val::Guid(a), Val::Guid(b)) => a.cmp(b),
        (Val::Dt(a), Val::Dt(b)) => a.cmp(b),
        _ => Ordering::Equal,
    }
}

/// Equality of two non-null values already converted to the same type.
pub(crate) fn equal_same(l: &Val<'_>, r: &Val<'_>, ignore_case: bool) -> bool {
    match (l, r) {
        (Val::Dec(a), Val::Dec(b)) | (Val::Dbl(a), Val::Dbl(b)) => a == b,
        (Val::Str(a), Val::Str(b)) => {
            if ignore_case {
                eq_ci(a, b)
            } else {
                a == b
            }
        }
        _ => compare_same(l, r, ignore_case) == Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_forms() {
        let base = ticks::from_civil(2024, 3, 5, 0, 0, 0, 0);
        assert_eq!(parse_datetime("2024-03-05"), Some(base));
        assert_eq!(parse_datetime("03/05/2024"), Some(base));
        assert_eq!(
            parse_datetime("2024-03-05T10:20:30.5Z"),
            Some(base + (10 * 3600 + 20 * 60 + 30) * ticks::PER_SECOND + 5_000_000)
        );
        assert_eq!(parse_datetime("2024-03-05 01:00:00+01:00"), Some(base));
        assert_eq!(
            parse_datetime("2024-03-05 1:00 PM"),
            Some(base + 13 * 3600 * ticks::PER_SECOND)
        );
        assert_eq!(parse_datetime("2024-02-30"), None);
        assert_eq!(parse_datetime("nonsense"), None);
    }
}
