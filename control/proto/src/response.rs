//! Publisher → subscriber responses (wire.md §1, §1.2): a frame body holds one or more
//! `u8 code, u8 commandCode, i32 BE payloadLength, payload` records.

use crate::encoding::StringEncoding;
use crate::error::ProtoError;
use sttp_wire::cursor::{DecodeError, Reader};
use sttp_wire::frame;

pub use crate::command::is_known_command_code;

/// ServerResponse codes (wire.md §1.2).
pub mod code {
    /// Success, with message or metadata.
    pub const SUCCEEDED: u8 = 0x80;
    /// Failure, with message.
    pub const FAILED: u8 = 0x81;
    /// Data packet (wire.md §4).
    pub const DATA_PACKET: u8 = 0x82;
    /// Signal index cache (wire.md §5).
    pub const UPDATE_SIGNAL_INDEX_CACHE: u8 = 0x83;
    /// Base time offsets (wire.md §6).
    pub const UPDATE_BASE_TIMES: u8 = 0x84;
    /// Cipher keys (wire.md §8).
    pub const UPDATE_CIPHER_KEYS: u8 = 0x85;
    /// First timestamp of a subscription.
    pub const DATA_START_TIME: u8 = 0x86;
    /// Temporal replay finished.
    pub const PROCESSING_COMPLETE: u8 = 0x87;
    /// Buffer block (wire.md §9).
    pub const BUFFER_BLOCK: u8 = 0x88;
    /// Notification (wire.md §9).
    pub const NOTIFY: u8 = 0x89;
    /// Metadata changed.
    pub const CONFIGURATION_CHANGED: u8 = 0x8A;
    /// First user response.
    pub const USER_RESPONSE_00: u8 = 0xE0;
    /// Last user response.
    pub const USER_RESPONSE_15: u8 = 0xEF;
    /// Keep-alive, every 5 s.
    pub const NO_OP: u8 = 0xFF;
}

/// True for the response codes of wire.md §1.2 (0x80–0x8A, 0xE0–0xEF, 0xFF). The Python
/// subscriber raises and disconnects on any other, so a publisher must emit only these.
pub const fn is_known_response_code(c: u8) -> bool {
    (c >= code::SUCCEEDED && c <= code::CONFIGURATION_CHANGED)
        || (c >= code::USER_RESPONSE_00 && c <= code::USER_RESPONSE_15)
        || c == code::NO_OP
}

/// The wire.md §1.2 name of a response code, for logs.
pub const fn response_name(c: u8) -> &'static str {
    match c {
        code::SUCCEEDED => "Succeeded",
        code::FAILED => "Failed",
        code::DATA_PACKET => "DataPacket",
        code::UPDATE_SIGNAL_INDEX_CACHE => "UpdateSignalIndexCache",
        code::UPDATE_BASE_TIMES => "UpdateBaseTimes",
        code::UPDATE_CIPHER_KEYS => "UpdateCipherKeys",
        code::DATA_START_TIME => "DataStartTime",
        code::PROCESSING_COMPLETE => "ProcessingComplete",
        code::BUFFER_BLOCK => "BufferBlock",
        code::NOTIFY => "Notify",
        code::CONFIGURATION_CHANGED => "ConfigurationChanged",
        code::NO_OP => "NoOP",
        c if c >= code::USER_RESPONSE_00 && c <= code::USER_RESPONSE_15 => "UserResponse",
        _ => "Unknown",
    }
}

/// One response borrowed from a frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// Response code (see [`code`]).
    pub code: u8,
    /// The command this answers; 0x02 for unsolicited responses.
    pub command: u8,
    /// The payload, exactly `payloadLength` bytes.
    pub payload: &'a [u8],
}

/// Parses every response in one frame body. gsfapi may pack several into one frame, so the
/// inner `payloadLength` is honoured (wire.md §1); a length that is negative or runs past the
/// frame is an error rather than a guess. An empty body is an error too.
pub fn decode_responses(body: &[u8]) -> Result<Vec<Response<'_>>, ProtoError> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(1);
    loop {
        let code = r.u8("response code")?;
        let command = r.u8("response command code")?;
        let at = r.position();
        let len = r.i32("response payload length")?;
        let len = usize::try_from(len)
            .map_err(|_| DecodeError::invalid("response payload length", at))?;
        if len > r.remaining() {
            return Err(
                DecodeError::too_large("response payload length", at, len, r.remaining()).into(),
            );
        }
        let payload = r.take(len, "response payload")?;
        out.push(Response {
            code,
            command,
            payload,
        });
        if r.is_empty() {
            return Ok(out);
        }
    }
}

/// Appends one whole response frame (prefix, header with a correct inner length, payload);
/// always one response per frame, as wire.md §1 asks of a Rust publisher.
pub fn encode_response(out: &mut Vec<u8>, code: u8, command: u8, payload: &[u8]) {
    frame::write_response(out, code, command, payload);
}

/// The text of a Succeeded/Failed/ProcessingComplete payload (raw string bytes, no prefix,
/// wire.md §1). The sttpapi publisher prefixes its messages with a `u32` length (wire.md §1,
/// peers.md P5); that prefix is stripped only when it equals the number of bytes after it, so
/// ordinary text starting with four arbitrary bytes is left alone. Invalid characters become
/// U+FFFD: a message is for display, never worth failing a session over.
pub fn decode_message(payload: &[u8], enc: StringEncoding) -> String {
    let text = match payload.split_first_chunk::<4>() {
        Some((len, rest)) if u32::from_be_bytes(*len) as usize == rest.len() => rest,
        _ => payload,
    };
    enc.decode_lossy(text)
}

/// Encodes a message payload for Succeeded/Failed: the raw string, no length prefix.
pub fn encode_message(message: &str, enc: StringEncoding) -> Vec<u8> {
    enc.encode(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_responses_per_frame() {
        let mut frame = Vec::new();
        encode_response(&mut frame, code::SUCCEEDED, 0x06, b"ok");
        encode_response(&mut frame, code::NO_OP, 0x02, b"");
        // Concatenate the two bodies into one frame body, as gsfapi may.
        let mut body = frame[4..12].to_vec();
        body.extend_from_slice(&frame[16..]);
        let rs = decode_responses(&body).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(
            (rs[0].code, rs[0].command, rs[0].payload),
            (0x80, 0x06, &b"ok"[..])
        );
        assert_eq!((rs[1].code, rs[1].payload.len()), (0xFF, 0));
    }

    #[test]
    fn payload_length_past_end_rejected() {
        assert!(decode_responses(&[0x80, 0x06, 0, 0, 0, 3, b'o', b'k']).is_err());
        assert!(decode_responses(&[0x80, 0x06, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(decode_responses(&[0x80, 0x06, 0, 0]).is_err());
        assert!(decode_responses(&[]).is_err());
        // Trailing junk shorter than a header.
        assert!(decode_responses(&[0x80, 0x06, 0, 0, 0, 0, 0x80]).is_err());
    }

    #[test]
    fn python_prefix_stripped_only_when_it_matches() {
        let mut p = 2u32.to_be_bytes().to_vec();
        p.extend_from_slice(b"hi");
        assert_eq!(decode_message(&p, StringEncoding::Utf8), "hi");
        assert_eq!(decode_message(b"abcdhi", StringEncoding::Utf8), "abcdhi");
        let mut p = 3u32.to_be_bytes().to_vec();
        p.extend_from_slice(b"hi");
        assert_eq!(decode_message(&p, StringEncoding::Utf8), "\0\0\0\u{3}hi");
        assert_eq!(decode_message(b"", StringEncoding::Utf8), "");
        assert_eq!(decode_message(&[0, 0, 0, 0], StringEncoding::Utf8), "");
    }

    #[test]
    fn known_codes() {
        assert!(is_known_response_code(0x8A) && !is_known_response_code(0x8B));
        assert!(is_known_response_code(0xEF) && !is_known_response_code(0xF0));
        assert!(is_known_response_code(0xFF) && !is_known_response_code(0x7F));
    }
}
