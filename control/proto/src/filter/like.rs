//! `LIKE` pattern matching (wire.md §7).
//!
//! `%` and `*` both match any run of characters; every other character, `_` included, is literal
//! (neither cppapi nor the .NET DataTable treat `_` as a wildcard). Matching is case-insensitive
//! unless `LIKE BINARY` / `LIKE ===` is used.
//!
//! Differences from cppapi, which only understands wildcards at the ends of the pattern: a
//! wildcard in the middle is an error there and matches here, and a pattern without wildcards is
//! always false there (an apparent bug) and an exact match here, as in SQL and the .NET DataTable.
//!
//! The pattern is split into literal segments; the first must be a prefix, the last a suffix and
//! the rest are found left to right with leftmost matches, which is complete for star-only
//! patterns. Cost is O(len(text) × len(pattern)) at worst, with no backtracking blow-up.

use super::value::fold;
use std::borrow::Cow;

/// A pre-split pattern.
#[derive(Debug, Clone)]
pub(crate) struct LikePattern {
    segments: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
    ignore_case: bool,
}

impl LikePattern {
    pub fn new(pattern: &str, ignore_case: bool) -> Self {
        let p: Cow<'_, str> = if ignore_case {
            fold(pattern)
        } else {
            Cow::Borrowed(pattern)
        };
        let is_wild = |c: char| c == '%' || c == '*';
        Self {
            segments: p
                .split(is_wild)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            anchored_start: !p.starts_with(is_wild),
            anchored_end: !p.ends_with(is_wild),
            ignore_case,
        }
    }

    /// Bytes of work matching a text of `text_len` bytes costs at most: a fold of the text, then
    /// searches for the segments in turn, each starting where the previous match ended (linear
    /// two-way searches), so the text is read about once more in all, plus the segments.
    pub fn cost(&self, text_len: usize) -> usize {
        let seg: usize = self.segments.iter().map(String::len).sum();
        text_len.saturating_mul(2).saturating_add(seg)
    }

    pub fn matches(&self, text: &str) -> bool {
        let t: Cow<'_, str> = if self.ignore_case {
            fold(text)
        } else {
            Cow::Borrowed(text)
        };
        let mut rest: &str = &t;
        let n = self.segments.len();
        if n == 0 {
            // Only wildcards (match all) or the empty pattern (match the empty string).
            return !(self.anchored_start && self.anchored_end) || rest.is_empty();
        }
        if n == 1 && self.anchored_start && self.anchored_end {
            return self.segments.first().is_some_and(|s| s == rest);
        }
        for (i, seg) in self.segments.iter().enumerate() {
            let first = i == 0;
            let last = i + 1 == n;
            if first && self.anchored_start {
                match rest.strip_prefix(seg.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                }
            } else if last && self.anchored_end {
                return rest.ends_with(seg.as_str());
            } else {
                match rest.find(seg.as_str()) {
                    Some(at) => rest = rest.get(at + seg.len()..).unwrap_or(""),
                    None => return false,
                }
            }
        }
        !self.anchored_end || rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    fn m(p: &str, t: &str) -> bool {
        LikePattern::new(p, true).matches(t)
    }

    #[test]
    fn wildcard_forms() {
        assert!(m("abc%", "ABCdef"));
        assert!(m("*def", "abcDEF"));
        assert!(m("%c*d%", "abcXd"));
        assert!(m("%", ""));
        assert!(m("abc", "ABC"));
        assert!(!m("abc", "abcd"));
        assert!(m("a%b%a", "aba"));
        assert!(!m("a%b%ab", "ab"));
        assert!(m("a%a", "aa"));
        assert!(!m("a%a", "a"));
        assert!(!LikePattern::new("abc%", false).matches("ABC"));
        assert!(m("a_c", "a_c"));
        assert!(!m("a_c", "abc"));
        // Pathological pattern stays fast.
        let text = "a".repeat(10_000);
        assert!(!m(&format!("{}b", "%a".repeat(500)), &text));
    }
}
