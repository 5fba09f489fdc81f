//! Text that came from a peer, made safe to print.
//!
//! A peer chooses the bytes of every Failed/Succeeded message, every user command payload and
//! every metadata string. Printed raw, those bytes can move a terminal's cursor (ESC sequences),
//! forge log lines (CR/LF) or flood the log (a 1 MiB message). [`PeerText`] is the one way such
//! text reaches a log line or a terminal in this project: control characters are escaped and the
//! length is capped, with the number of characters left out said at the end.
//!
//! ```
//! use sttp_proto::peer_text::PeerText;
//! let shown = PeerText::new("ok\x1b[2J\r\nFORGED", 64).to_string();
//! assert_eq!(shown, "ok\\u{1b}[2J\\r\\nFORGED");
//! ```

use core::fmt;

/// The cap [`PeerText::log`] uses: enough for any real Failed message, small enough for a log.
pub const LOG_CAP: usize = 512;

/// A peer's string, displayed with control characters escaped and at most `cap` characters
/// of the original shown.
#[derive(Debug, Clone, Copy)]
pub struct PeerText<'a> {
    text: &'a str,
    cap: usize,
}

impl<'a> PeerText<'a> {
    /// Wraps `text`, showing at most `cap` of its characters.
    pub fn new(text: &'a str, cap: usize) -> Self {
        Self { text, cap }
    }

    /// Wraps `text` with the log cap, [`LOG_CAP`].
    pub fn log(text: &'a str) -> Self {
        Self::new(text, LOG_CAP)
    }
}

/// Escapes a peer's bytes that may not be UTF-8: invalid sequences show as U+FFFD.
pub fn lossy(bytes: &[u8], cap: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    PeerText::new(&text, cap).to_string()
}

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.text.chars();
        for ch in chars.by_ref().take(self.cap) {
            match ch {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                // C0, DEL, C1 controls, and the bidirectional overrides that reorder a line.
                c if c.is_control()
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') =>
                {
                    write!(f, "\\u{{{:x}}}", c as u32)?
                }
                c => fmt::Write::write_char(f, c)?,
            }
        }
        // Count what is left without printing it: bounded by the text, read once.
        let rest = chars.count();
        if rest > 0 {
            write!(f, "… ({rest} more characters)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_the_rest() {
        assert_eq!(PeerText::log("plain text").to_string(), "plain text");
        assert_eq!(
            PeerText::log("a\nb\rc\td\\").to_string(),
            "a\\nb\\rc\\td\\\\"
        );
        assert_eq!(
            PeerText::log("\x1b[31mred\x07").to_string(),
            "\\u{1b}[31mred\\u{7}"
        );
        assert_eq!(
            PeerText::log("\u{9b}x\u{7f}").to_string(),
            "\\u{9b}x\\u{7f}"
        );
        assert_eq!(PeerText::log("ab\u{202e}cd").to_string(), "ab\\u{202e}cd");
        assert_eq!(PeerText::log("Zürich Ω").to_string(), "Zürich Ω");
    }

    #[test]
    fn caps_length_and_says_how_much_was_left_out() {
        let big = "x".repeat(1 << 20);
        let shown = PeerText::new(&big, 10).to_string();
        assert_eq!(
            shown,
            format!("{}… ({} more characters)", "x".repeat(10), (1 << 20) - 10)
        );
        assert_eq!(PeerText::new("abc", 3).to_string(), "abc");
        assert_eq!(
            PeerText::new("abcd", 3).to_string(),
            "abc… (1 more characters)"
        );
    }

    #[test]
    fn no_output_line_break_survives() {
        let hostile = "ok\r\n2026-01-01T00:00:00Z  INFO forged line\n";
        assert!(!PeerText::log(hostile).to_string().contains(['\n', '\r']));
        assert_eq!(lossy(b"\xff\n", 8), "\u{fffd}\\n");
    }
}
