//! Parsed, table-independent syntax tree of a filter expression (wire.md §7). Column names are
//! resolved against a concrete table later, in `eval::bind`.

use uuid::Uuid;

/// One `;`-separated statement.
#[derive(Debug, Clone)]
pub(crate) enum Statement {
    /// Bare GUID: selects the first primary-table row whose SignalID matches.
    SignalId(Uuid),
    /// `SOURCE:NUMBER`: the first primary-table row whose ID matches (case-insensitive).
    MeasurementKey(String),
    /// `"TAG"`: the first primary-table row whose PointTag matches (case-insensitive).
    PointTag(String),
    /// `FILTER [TOP n] table WHERE expr [ORDER BY …]`.
    Filter(FilterStatement),
    /// A bare expression evaluated as a WHERE clause against the primary table.
    Expression(Expr),
}

/// The parts of a `FILTER` statement.
#[derive(Debug, Clone)]
pub(crate) struct FilterStatement {
    pub table: String,
    pub table_pos: usize,
    /// Negative means unlimited.
    pub top: i64,
    pub where_: Expr,
    pub order_by: Vec<OrderTerm>,
}

/// One `ORDER BY` term.
#[derive(Debug, Clone)]
pub(crate) struct OrderTerm {
    pub column: String,
    pub pos: usize,
    pub descending: bool,
    /// `BINARY` / `===` modifier: case-sensitive string ordering.
    pub exact: bool,
}

/// An expression node with the byte offset of its first token (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub pos: usize,
    /// Tree depth (1 for a leaf), maintained by the parser to bound recursion.
    pub depth: usize,
}

/// Literal values as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Decimal(f64),
    Double(f64),
    Str(String),
    Guid(Uuid),
    DateTime(i64),
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Literal(Lit),
    Column(String),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `AND`/`OR` chains are flattened so long GUID lists joined by `OR` stay shallow.
    Logical {
        and: bool,
        args: Vec<Expr>,
    },
    IsNull {
        arg: Box<Expr>,
        negated: bool,
    },
    In {
        arg: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        exact: bool,
    },
    Like {
        arg: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        exact: bool,
    },
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Plus,
    Minus,
    /// `~`, `!` and `NOT`: logical on Boolean, bitwise complement on integers.
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    Mod,
    Add,
    Sub,
    Shl,
    Shr,
    BitAnd,
    BitOr,
    BitXor,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    EqExact,
    Ne,
    NeExact,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "=",
            BinOp::EqExact => "===",
            BinOp::Ne => "<>",
            BinOp::NeExact => "!==",
        }
    }
}

macro_rules! functions {
    ($($v:ident = $name:literal, $min:literal, $max:literal;)*) => {
        /// The built-in functions (wire.md §7 list).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func { $($v,)* }

        impl Func {
            /// Case-insensitive lookup by name.
            pub fn from_name(name: &str) -> Option<Func> {
                $(if name.eq_ignore_ascii_case($name) { return Some(Func::$v); })*
                None
            }
            /// Canonical spelling.
            pub fn name(self) -> &'static str {
                match self { $(Func::$v => $name,)* }
            }
            /// Accepted argument counts (`max == usize::MAX` for variadic).
            pub fn arity(self) -> (usize, usize) {
                match self { $(Func::$v => ($min, $max),)* }
            }
        }
    };
}

functions! {
    Abs = "Abs", 1, 1;
    Ceiling = "Ceiling", 1, 1;
    Coalesce = "Coalesce", 2, 18446744073709551615;
    Convert = "Convert", 2, 2;
    Contains = "Contains", 2, 3;
    DateAdd = "DateAdd", 3, 3;
    DateDiff = "DateDiff", 3, 3;
    DatePart = "DatePart", 2, 2;
    EndsWith = "EndsWith", 2, 3;
    Floor = "Floor", 1, 1;
    IIf = "IIf", 3, 3;
    IndexOf = "IndexOf", 2, 3;
    IsDate = "IsDate", 1, 1;
    IsInteger = "IsInteger", 1, 1;
    IsGuid = "IsGuid", 1, 1;
    IsNull = "IsNull", 2, 2;
    IsNumeric = "IsNumeric", 1, 1;
    LastIndexOf = "LastIndexOf", 2, 3;
    Len = "Len", 1, 1;
    Lower = "Lower", 1, 1;
    MaxOf = "MaxOf", 2, 18446744073709551615;
    MinOf = "MinOf", 2, 18446744073709551615;
    Now = "Now", 0, 0;
    NthIndexOf = "NthIndexOf", 3, 4;
    Power = "Power", 2, 2;
    RegExMatch = "RegExMatch", 2, 2;
    RegExVal = "RegExVal", 2, 2;
    Replace = "Replace", 3, 4;
    Reverse = "Reverse", 1, 1;
    Round = "Round", 1, 1;
    Split = "Split", 3, 4;
    Sqrt = "Sqrt", 1, 1;
    StartsWith = "StartsWith", 2, 3;
    StrCount = "StrCount", 2, 3;
    StrCmp = "StrCmp", 2, 3;
    SubStr = "SubStr", 2, 3;
    Trim = "Trim", 1, 1;
    TrimLeft = "TrimLeft", 1, 1;
    TrimRight = "TrimRight", 1, 1;
    Upper = "Upper", 1, 1;
    UtcNow = "UtcNow", 0, 0;
}

/// Reserved words of the grammar that are not function names. A plain word equal to one of these
/// cannot be a column name; bracket it instead. (A function name not followed by `(` is accepted
/// as a column name, a leniency over the reference grammar.)
pub(crate) const KEYWORDS: &[&str] = &[
    "AND", "ASC", "BINARY", "BY", "DESC", "FILTER", "IN", "IS", "LIKE", "NOT", "NULL", "OR",
    "ORDER", "TOP", "WHERE", "XOR", "TRUE", "FALSE",
];

pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}
