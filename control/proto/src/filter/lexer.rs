//! Tokenizer for the filter expression language (wire.md §7, cppapi `FilterExpressionSyntax.g4`).
//!
//! The reference lexer is ANTLR-generated: at each position the longest matching token wins, and on
//! a tie the rule declared first wins (keywords and identifiers, then integers, numerics, GUIDs,
//! measurement keys, point tags, strings, date-times). This lexer computes the candidate lengths
//! for the overlapping token classes and applies the same rule, so inputs such as `PPA:12`
//! (measurement key, not identifier `PPA`) or `'8f3e…'` (GUID, not string) tokenize like the
//! reference. One deliberate difference: a 32-hex-digit dash-less GUID ties with an identifier
//! (when it starts with a letter) or an integer (when it is all digits); the reference picks the
//! identifier/integer (and then fails), we pick the GUID, which is what wire.md §7 documents.

use super::FilterError;
use uuid::Uuid;

/// One token with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub pos: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A plain word `[A-Za-z_][A-Za-z0-9_]*`: keyword, boolean, function name or identifier.
    Word(String),
    /// A `[bracketed]` or `` `back-quoted` `` identifier (never a keyword).
    QuotedIdent(String),
    /// Decimal or `0x` hexadecimal integer text.
    Integer(String),
    /// Real-number text (`1.5`, `.5`, `1e3`).
    Numeric(String),
    /// A `'string'` with `''` escapes already collapsed.
    Str(String),
    /// The text between `#…#`.
    DateTime(String),
    /// A GUID in any of its literal forms.
    Guid(Uuid),
    /// `ACRONYM:123`.
    MeasurementKey(String),
    /// The text between `"…"`.
    PointTag(String),
    /// Punctuation and operators.
    Punct(&'static str),
    /// End of input.
    Eof,
}

/// Operators and punctuation, longest first so that prefix matching picks `!==` before `!=`.
const PUNCTS: &[&str] = &[
    "===", "!==", "<<", ">>", "<=", ">=", "==", "!=", "<>", "&&", "||", "(", ")", ",", ";", "+",
    "-", "*", "/", "%", "&", "|", "^", "~", "!", "<", ">", "=",
];

const fn is_acronym_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'!' | b'_' | b'.' | b'@' | b'#' | b'$')
}

fn byte(s: &[u8], i: usize) -> Option<u8> {
    s.get(i).copied()
}

fn count_while(s: &[u8], start: usize, f: impl Fn(u8) -> bool) -> usize {
    s.get(start..)
        .map_or(0, |rest| rest.iter().take_while(|&&b| f(b)).count())
}

/// Length of a bare GUID value (8-4-4-4-12 hex digits, each dash optional) at `i`.
fn guid_value_len(s: &[u8], i: usize) -> usize {
    let mut p = i;
    for (n, group) in [8usize, 4, 4, 4, 12].iter().enumerate() {
        for _ in 0..*group {
            match byte(s, p) {
                Some(b) if b.is_ascii_hexdigit() => p += 1,
                _ => return 0,
            }
        }
        if n < 4 && byte(s, p) == Some(b'-') {
            p += 1;
        }
    }
    p - i
}

/// Length of a GUID literal (bare, `'…'` or `{…}`) at `i`, 0 if none.
fn guid_literal_len(s: &[u8], i: usize) -> usize {
    match byte(s, i) {
        Some(open @ (b'\'' | b'{')) => {
            let close = if open == b'{' { b'}' } else { b'\'' };
            let n = guid_value_len(s, i + 1);
            if n > 0 && byte(s, i + 1 + n) == Some(close) {
                n + 2
            } else {
                0
            }
        }
        _ => guid_value_len(s, i),
    }
}

/// Length of `ACRONYM:123` at `i`, 0 if none.
fn measurement_key_len(s: &[u8], i: usize) -> usize {
    let a = count_while(s, i, is_acronym_char);
    if a == 0 || byte(s, i + a) != Some(b':') {
        return 0;
    }
    let d = count_while(s, i + a + 1, |b| b.is_ascii_digit());
    if d == 0 {
        0
    } else {
        a + 1 + d
    }
}

/// Length of an identifier word at `i`.
fn word_len(s: &[u8], i: usize) -> usize {
    match byte(s, i) {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
            1 + count_while(s, i + 1, |b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => 0,
    }
}

/// Length of an INTEGER_LITERAL at `i`.
fn integer_len(s: &[u8], i: usize) -> usize {
    if byte(s, i) == Some(b'0') && matches!(byte(s, i + 1), Some(b'x' | b'X')) {
        let h = count_while(s, i + 2, |b| b.is_ascii_hexdigit());
        if h > 0 {
            return 2 + h;
        }
    }
    count_while(s, i, |b| b.is_ascii_digit())
}

fn exponent_len(s: &[u8], i: usize) -> usize {
    if !matches!(byte(s, i), Some(b'e' | b'E')) {
        return 0;
    }
    let sign = usize::from(matches!(byte(s, i + 1), Some(b'+' | b'-')));
    let d = count_while(s, i + 1 + sign, |b| b.is_ascii_digit());
    if d == 0 {
        0
    } else {
        1 + sign + d
    }
}

/// Length of a NUMERIC_LITERAL at `i`.
fn numeric_len(s: &[u8], i: usize) -> usize {
    let d = count_while(s, i, |b| b.is_ascii_digit());
    if d > 0 {
        let mut n = d;
        if byte(s, i + n) == Some(b'.') {
            n += 1 + count_while(s, i + n + 1, |b| b.is_ascii_digit());
        }
        n + exponent_len(s, i + n)
    } else if byte(s, i) == Some(b'.') {
        let f = count_while(s, i + 1, |b| b.is_ascii_digit());
        if f == 0 {
            0
        } else {
            1 + f + exponent_len(s, i + 1 + f)
        }
    } else {
        0
    }
}

/// Length of `"TAG"` at `i`.
fn point_tag_len(s: &[u8], i: usize) -> usize {
    if byte(s, i) != Some(b'"') {
        return 0;
    }
    let a = count_while(s, i + 1, is_acronym_char);
    if a > 0 && byte(s, i + 1 + a) == Some(b'"') {
        a + 2
    } else {
        0
    }
}

/// Parses the text of a GUID literal (any form). Dashes are optional per group.
pub(crate) fn parse_guid_text(text: &str) -> Option<Uuid> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| t.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(t);
    let b = t.as_bytes();
    if guid_value_len(b, 0) != b.len() || b.is_empty() {
        return None;
    }
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    Uuid::try_parse(&hex).ok()
}

/// Tokenizes `text`. Comments and whitespace are dropped; the last token is [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < s.len() {
        let Some(c) = byte(s, i) else { break };
        // Whitespace (the grammar's SPACES plus form feed).
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0x0B | 0x0C) {
            i += 1;
            continue;
        }
        // Comments.
        if c == b'-' && byte(s, i + 1) == Some(b'-') {
            i += 2 + count_while(s, i + 2, |b| b != b'\n' && b != b'\r');
            continue;
        }
        if c == b'/' && byte(s, i + 1) == Some(b'*') {
            let rest = text.get(i + 2..).unwrap_or("");
            i = match rest.find("*/") {
                Some(end) => i + 2 + end + 2,
                None => s.len(), // an unterminated block comment runs to the end, as in the grammar
            };
            continue;
        }
        let start = i;
        match c {
            b'[' | b'`' => {
                let close = if c == b'[' { ']' } else { '`' };
                let rest = text.get(i + 1..).unwrap_or("");
                match rest.find(close) {
                    Some(0) => return Err(FilterError::new(start, "empty quoted identifier")),
                    Some(end) => {
                        let name = rest.get(..end).unwrap_or("").to_owned();
                        out.push(Token {
                            kind: Tok::QuotedIdent(name),
                            pos: start,
                        });
                        i += end + 2;
                    }
                    None => {
                        return Err(FilterError::new(start, "unterminated quoted identifier"));
                    }
                }
                continue;
            }
            b'#' => {
                let rest = text.get(i + 1..).unwrap_or("");
                let dt = rest.find('#').filter(|&e| e > 0);
                let key = measurement_key_len(s, i);
                match dt {
                    Some(end) if end + 2 > key => {
                        let inner = rest.get(..end).unwrap_or("").to_owned();
                        out.push(Token {
                            kind: Tok::DateTime(inner),
                            pos: start,
                        });
                        i += end + 2;
                        continue;
                    }
                    _ if key > 0 => {}
                    _ => return Err(FilterError::new(start, "unterminated date-time literal")),
                }
            }
            _ => {}
        }

        // Overlapping classes: pick the longest, ties resolved in grammar declaration order.
        let word = word_len(s, i);
        let int = integer_len(s, i);
        let num = numeric_len(s, i);
        let guid = guid_literal_len(s, i);
        let key = measurement_key_len(s, i);
        let tag = point_tag_len(s, i);
        let best = word.max(int).max(num).max(guid).max(key).max(tag);
        if best > 0 {
            let lexeme = text.get(i..i + best).unwrap_or("");
            let kind = if guid == best && (word < best || word == 32) {
                // See the module docs for the word/GUID tie.
                match parse_guid_text(lexeme) {
                    Some(g) => Tok::Guid(g),
                    None => return Err(FilterError::new(start, "invalid GUID literal")),
                }
            } else if word == best {
                Tok::Word(lexeme.to_owned())
            } else if int == best {
                Tok::Integer(lexeme.to_owned())
            } else if num == best {
                Tok::Numeric(lexeme.to_owned())
            } else if key == best {
                Tok::MeasurementKey(lexeme.to_owned())
            } else {
                Tok::PointTag(lexeme.get(1..best - 1).unwrap_or("").to_owned())
            };
            out.push(Token { kind, pos: start });
            i += best;
            continue;
        }

        if c == b'\'' {
            // STRING_LITERAL: '' is an escaped quote.
            let mut value = String::new();
            let mut p = i + 1;
            let mut seg = p;
            loop {
                match byte(s, p) {
                    None => return Err(FilterError::new(start, "unterminated string literal")),
                    Some(b'\'') => {
                        value.push_str(text.get(seg..p).unwrap_or(""));
                        if byte(s, p + 1) == Some(b'\'') {
                            value.push('\'');
                            p += 2;
                            seg = p;
                        } else {
                            p += 1;
                            break;
                        }
                    }
                    Some(_) => p += 1,
                }
            }
            out.push(Token {
                kind: Tok::Str(value),
                pos: start,
            });
            i = p;
            continue;
        }

        let rest = text.get(i..).unwrap_or("");
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            out.push(Token {
                kind: Tok::Punct(p),
                pos: start,
            });
            i += p.len();
            continue;
        }
        let ch = rest.chars().next().unwrap_or('?');
        return Err(FilterError::new(
            start,
            format!("unexpected character '{}'", ch.escape_default()),
        ));
    }
    out.push(Token {
        kind: Tok::Eof,
        pos: s.len(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(t: &str) -> Vec<Tok> {
        tokenize(t).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn longest_match_rules() {
        assert_eq!(
            kinds("PPA:12"),
            vec![Tok::MeasurementKey("PPA:12".into()), Tok::Eof]
        );
        assert!(matches!(
            kinds("'0123456789abcdef0123456789abcdef'")[0],
            Tok::Guid(_)
        ));
        assert!(matches!(
            kinds("{01234567-89ab-cdef-0123-456789abcdef}")[0],
            Tok::Guid(_)
        ));
        assert_eq!(kinds("'ab''c'")[0], Tok::Str("ab'c".into()));
        assert_eq!(kinds("12")[0], Tok::Integer("12".into()));
        assert_eq!(kinds("1.5e3")[0], Tok::Numeric("1.5e3".into()));
        assert_eq!(kinds("a!==b")[1], Tok::Punct("!=="));
        assert_eq!(kinds("\"A.B\"")[0], Tok::PointTag("A.B".into()));
        assert_eq!(kinds("#2020-01-01#")[0], Tok::DateTime("2020-01-01".into()));
        assert_eq!(kinds("[My Col]")[0], Tok::QuotedIdent("My Col".into()));
        assert_eq!(kinds("-- c\n/* x */ x")[0], Tok::Word("x".into()));
    }
}
