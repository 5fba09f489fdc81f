//! String encodings selectable through operational-mode bits 0x300 (wire.md §1 "String encoding",
//! §2). UTF-8 is what every peer uses in practice; UTF-16LE is the .NET gsfapi subscriber's
//! default, so a publisher that wants .NET interop must speak it. UTF-16 travels without a BOM.

use crate::error::ProtoError;

/// Mask of the encoding bits in the operational modes (wire.md §2).
pub const ENCODING_MASK: u32 = 0x0000_0300;

/// A command-channel string encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringEncoding {
    /// 0x000: UTF-16 little endian (deprecated; .NET `Encoding.Unicode`).
    Utf16Le,
    /// 0x100: UTF-16 big endian (deprecated).
    Utf16Be,
    /// 0x200: UTF-8, the default everywhere.
    Utf8,
    /// 0x300: "ANSI" (gsfapi comment, no implementation supports it). Encoded as UTF-8; decoded
    /// as UTF-8 when valid, else as Latin-1, which maps every byte to a char and never fails.
    Ansi,
}

impl StringEncoding {
    /// The encoding selected by the 0x300 bits of an operational-modes word.
    pub const fn from_modes(modes: u32) -> Self {
        match modes & ENCODING_MASK {
            0x000 => Self::Utf16Le,
            0x100 => Self::Utf16Be,
            0x200 => Self::Utf8,
            _ => Self::Ansi,
        }
    }

    /// The operational-mode bits (within 0x300) that select this encoding.
    pub const fn bits(self) -> u32 {
        match self {
            Self::Utf16Le => 0x000,
            Self::Utf16Be => 0x100,
            Self::Utf8 => 0x200,
            Self::Ansi => 0x300,
        }
    }

    /// A human-readable name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Utf16Le => "UTF-16LE",
            Self::Utf16Be => "UTF-16BE",
            Self::Utf8 => "UTF-8",
            Self::Ansi => "ANSI",
        }
    }

    /// Encodes `s`, without BOM or length prefix.
    pub fn encode(&self, s: &str) -> Vec<u8> {
        match self {
            Self::Utf8 | Self::Ansi => s.as_bytes().to_vec(),
            Self::Utf16Le => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Self::Utf16Be => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        }
    }

    /// Decodes `b` strictly: invalid UTF-8, odd UTF-16 byte counts and unpaired surrogates are
    /// errors (ANSI never fails, see [`StringEncoding::Ansi`]).
    pub fn decode(&self, b: &[u8]) -> Result<String, ProtoError> {
        match self {
            Self::Utf8 => String::from_utf8(b.to_vec()).map_err(|e| ProtoError::BadString {
                encoding: *self,
                reason: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
            }),
            Self::Ansi => Ok(match core::str::from_utf8(b) {
                Ok(s) => s.to_owned(),
                Err(_) => b.iter().map(|&c| char::from(c)).collect(),
            }),
            Self::Utf16Le | Self::Utf16Be => {
                let units = self.utf16_units(b)?;
                String::from_utf16(&units).map_err(|_| ProtoError::BadString {
                    encoding: *self,
                    reason: "unpaired UTF-16 surrogate".to_owned(),
                })
            }
        }
    }

    /// Decodes `b`, replacing anything invalid with U+FFFD; a trailing odd UTF-16 byte is
    /// replaced too. For display-only text such as Succeeded/Failed messages.
    pub fn decode_lossy(&self, b: &[u8]) -> String {
        match self {
            Self::Utf8 => String::from_utf8_lossy(b).into_owned(),
            Self::Ansi => self.decode(b).unwrap_or_default(),
            Self::Utf16Le | Self::Utf16Be => {
                let chunks = b.chunks_exact(2);
                let odd = !chunks.remainder().is_empty();
                let units: Vec<u16> = chunks.map(|c| self.unit(c)).collect();
                let mut s = String::from_utf16_lossy(&units);
                if odd {
                    s.push(char::REPLACEMENT_CHARACTER);
                }
                s
            }
        }
    }

    fn unit(&self, c: &[u8]) -> u16 {
        let pair = [
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ];
        if *self == Self::Utf16Be {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    }

    fn utf16_units(&self, b: &[u8]) -> Result<Vec<u16>, ProtoError> {
        if !b.chunks_exact(2).remainder().is_empty() {
            return Err(ProtoError::BadString {
                encoding: *self,
                reason: format!("odd byte count {} for a UTF-16 string", b.len()),
            });
        }
        Ok(b.chunks_exact(2).map(|c| self.unit(c)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [StringEncoding; 4] = [
        StringEncoding::Utf16Le,
        StringEncoding::Utf16Be,
        StringEncoding::Utf8,
        StringEncoding::Ansi,
    ];

    #[test]
    fn round_trips_including_non_bmp() {
        for enc in ALL {
            for s in ["", "PPA:15", "Grüße 𝄞 ☃", "\u{10FFFF}x"] {
                assert_eq!(enc.decode(&enc.encode(s)).unwrap(), s, "{enc:?}");
                assert_eq!(StringEncoding::from_modes(enc.bits()), enc);
            }
        }
    }

    #[test]
    fn utf16_byte_order_and_no_bom() {
        assert_eq!(
            StringEncoding::Utf16Le.encode("A𝄞"),
            [0x41, 0, 0x34, 0xD8, 0x1E, 0xDD]
        );
        assert_eq!(StringEncoding::Utf16Be.encode("A"), [0, 0x41]);
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert!(StringEncoding::Utf16Le.decode(&[0x41, 0, 0x42]).is_err());
        assert!(StringEncoding::Utf16Be.decode(&[0xD8, 0x00]).is_err());
        assert!(StringEncoding::Utf8.decode(&[0xFF]).is_err());
        assert_eq!(StringEncoding::Ansi.decode(&[0xE9]).unwrap(), "é");
        assert_eq!(
            StringEncoding::Utf16Le.decode_lossy(&[0x41, 0, 0x42]),
            "A\u{FFFD}"
        );
    }
}
