//! Command-channel framing (wire.md §1): every TCP message is `u32 BE length` + body. Response
//! bodies carry a 6-byte header `u8 code, u8 commandCode, i32 BE payloadLength`. Over UDP the
//! 4-byte length prefix is dropped (wire.md §8).
//!
//! These writers live in the wire crate because the data plane emits data-packet responses
//! directly into a subscriber's byte stream.

/// Bytes of the TCP length prefix.
pub const PREFIX_LEN: usize = 4;
/// Bytes of a response header: code, command code, payload length.
pub const RESPONSE_HEADER_LEN: usize = 6;
/// Offset of the response code inside a response body.
pub const RESPONSE_CODE: usize = 0;
/// Offset of the answered command code inside a response body.
pub const RESPONSE_COMMAND: usize = 1;
/// Offset of the `i32` payload length inside a response body.
pub const RESPONSE_LENGTH: usize = 2;

/// Response codes emitted by the data plane (the full table lives in `sttp-proto`).
pub mod code {
    /// Subscribe command: the commandCode of every unsolicited response.
    pub const SUBSCRIBE: u8 = 0x02;
    /// Response 0x82 DataPacket.
    pub const DATA_PACKET: u8 = 0x82;
    /// Response 0x84 UpdateBaseTimes.
    pub const UPDATE_BASE_TIMES: u8 = 0x84;
    /// Response 0x86 DataStartTime.
    pub const DATA_START_TIME: u8 = 0x86;
    /// Response 0xFF NoOP.
    pub const NO_OP: u8 = 0xFF;
}

/// Where a response started in a buffer, to patch its lengths once the payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMark {
    start: usize,
    framed: bool,
}

impl ResponseMark {
    /// Offset in the buffer where the response (with its prefix, if framed) starts; truncating
    /// the buffer here removes the response.
    pub const fn start(&self) -> usize {
        self.start
    }
}

/// Starts a response in `out`: reserves the TCP prefix when `framed`, then writes the header with
/// a zero length. Write the payload, then call [`finish_response`].
pub fn begin_response(out: &mut Vec<u8>, code: u8, command: u8, framed: bool) -> ResponseMark {
    let start = out.len();
    if framed {
        out.extend_from_slice(&[0; PREFIX_LEN]);
    }
    out.extend_from_slice(&[code, command, 0, 0, 0, 0]);
    ResponseMark { start, framed }
}

/// Patches the frame and payload lengths of the response started at `mark`.
pub fn finish_response(out: &mut [u8], mark: ResponseMark) {
    let body_start = if mark.framed {
        mark.start + PREFIX_LEN
    } else {
        mark.start
    };
    let body_len = out.len().saturating_sub(body_start);
    let payload_len = body_len.saturating_sub(RESPONSE_HEADER_LEN);
    if mark.framed {
        if let Some(prefix) = out.get_mut(mark.start..mark.start + PREFIX_LEN) {
            prefix.copy_from_slice(&(body_len as u32).to_be_bytes());
        }
    }
    let at = body_start + RESPONSE_LENGTH;
    if let Some(len) = out.get_mut(at..at + 4) {
        len.copy_from_slice(&(payload_len as i32).to_be_bytes());
    }
}

/// Appends one complete framed response.
pub fn write_response(out: &mut Vec<u8>, code: u8, command: u8, payload: &[u8]) {
    let mark = begin_response(out, code, command, true);
    out.extend_from_slice(payload);
    finish_response(out, mark);
}

/// Appends one complete framed command: `u32 length`, `u8 code`, payload.
pub fn write_command(out: &mut Vec<u8>, code: u8, payload: &[u8]) {
    out.extend_from_slice(&((payload.len() + 1) as u32).to_be_bytes());
    out.push(code);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_frame_layout() {
        let mut out = Vec::new();
        write_response(&mut out, 0x80, 0x06, b"ok");
        assert_eq!(out, [0, 0, 0, 8, 0x80, 0x06, 0, 0, 0, 2, b'o', b'k']);
    }

    #[test]
    fn unframed_response_for_udp() {
        let mut out = vec![0xAA];
        let mark = begin_response(&mut out, 0x82, 0x02, false);
        out.extend_from_slice(&[1, 2, 3]);
        finish_response(&mut out, mark);
        assert_eq!(out, [0xAA, 0x82, 0x02, 0, 0, 0, 3, 1, 2, 3]);
    }

    #[test]
    fn command_frame_layout() {
        let mut out = Vec::new();
        write_command(&mut out, 0x06, &0xE000_0262u32.to_be_bytes());
        assert_eq!(out, [0, 0, 0, 5, 0x06, 0xE0, 0x00, 0x02, 0x62]);
    }
}
