//! The TSSC block decoder (wire.md §4.2 "Decoder `tryGet()`").
//!
//! Mirrors [`super::Encoder`] step by step: every code is read with lastPoint's table, the
//! optional PointID, timestamp and flag codes come first in that order, and a value code always
//! closes a measurement. Peer bytes are never trusted: truncation, codes out of order and IDs
//! outside `0..=max_id` are [`DecodeError`]s, and the point table can never grow past `max_id`.

use super::bits::BitReader;
use super::codes::{
    point_id_class, END_OF_STREAM, POINT_ID_XOR32, QUALITY2, QUALITY_7BIT32, TIME_DELTA1_FWD,
    TIME_XOR_7BIT, VALUE1, VALUE2, VALUE3, VALUE_XOR4, VALUE_ZERO,
};
use super::point::Points;
use super::time::TimeState;
use super::{varint, DEFAULT_MAX_ID};
use crate::cursor::DecodeError;
use crate::measurement::Measurement;

/// TSSC decoder session state; persists across the blocks of one session (one cache slot).
#[derive(Debug, Clone)]
pub struct Decoder {
    points: Points,
    last: usize,
    time: TimeState,
    max_id: i32,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads an XOR payload of size class `class` (1..=8): optional nibble from the bit stream,
/// then little-endian whole bytes.
#[inline(always)]
fn read_xor(r: &mut BitReader<'_>, class: u8) -> Result<u32, DecodeError> {
    let (mut x, mut shift, n) = if class & 1 == 1 {
        (r.bits(4)?, 4u32, (class - 1) / 2)
    } else {
        (0, 0u32, class / 2)
    };
    for _ in 0..n {
        x |= u32::from(r.byte()?) << shift;
        shift += 8;
    }
    Ok(x)
}

#[cold]
#[inline(never)]
fn bad_code(what: &'static str, at: usize) -> DecodeError {
    DecodeError::invalid(what, at)
}

#[cold]
#[inline(never)]
fn bad_id(id: i32, max_id: i32, at: usize) -> DecodeError {
    DecodeError::too_large(
        "tssc point id",
        at,
        usize::try_from(id).unwrap_or(usize::MAX),
        usize::try_from(max_id).unwrap_or(0),
    )
}

impl Decoder {
    /// A fresh session accepting runtime IDs `0..=1<<20`.
    pub fn new() -> Self {
        Self::with_max_id(DEFAULT_MAX_ID)
    }

    /// A fresh session; IDs outside `0..=max_id` are an error. The point table costs about
    /// 68 bytes per ID up to the highest ID seen, so this bounds memory a peer can make us use.
    pub fn with_max_id(max_id: i32) -> Self {
        Self {
            points: Points::new(max_id),
            last: 0,
            time: TimeState::new(),
            max_id,
        }
    }

    /// The ID bound this decoder was built with.
    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    /// Decodes one block (the TSSC stream of one packet) and appends its measurements to `out`.
    ///
    /// On error nothing is appended, and the session state is no longer in step with the
    /// encoder: the caller must wait for a reset (sequence 0). Output is at most 8 points per
    /// stream byte (a repeated point can cost a single bit).
    pub fn decode_block(
        &mut self,
        stream: &[u8],
        out: &mut Vec<Measurement>,
    ) -> Result<(), DecodeError> {
        let start = out.len();
        let result = self.decode_into(stream, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn decode_into(
        &mut self,
        stream: &[u8],
        out: &mut Vec<Measurement>,
    ) -> Result<(), DecodeError> {
        let mut r = BitReader::new(stream);
        while !r.at_end() {
            let at = r.pos;
            let Some(last) = self.points.all.get_mut(self.last) else {
                return Err(bad_code("tssc point table", at));
            };
            let mut code = last.table.read(&mut r)?;
            if code == END_OF_STREAM {
                break;
            }
            if code <= POINT_ID_XOR32 {
                let x = read_xor(&mut r, point_id_class(code))?;
                last.prev_next ^= x as i32;
                code = last.table.read(&mut r)?;
                if code < TIME_DELTA1_FWD {
                    return Err(bad_code("tssc code after point id", r.pos));
                }
            }
            let id = last.prev_next;

            if code <= TIME_XOR_7BIT {
                let ts = if code == TIME_XOR_7BIT {
                    self.time.prev1 ^ varint::get_u64(r.data, &mut r.pos)? as i64
                } else {
                    self.time.predicted(code)
                };
                self.time.advance(ts);
                code = last.table.read(&mut r)?;
                if code < QUALITY2 {
                    return Err(bad_code("tssc code after timestamp", r.pos));
                }
            }

            // Quality and value codes are collected first: they belong to lastPoint's table,
            // while the history they refer to is the current point's.
            let quality = if code <= QUALITY_7BIT32 {
                let q = if code == QUALITY_7BIT32 {
                    Some(varint::get_u32(r.data, &mut r.pos)?)
                } else {
                    None
                };
                code = last.table.read(&mut r)?;
                if code < VALUE1 {
                    return Err(bad_code("tssc code after quality", r.pos));
                }
                Some(q)
            } else {
                None
            };
            let xor = if code >= VALUE_XOR4 {
                read_xor(&mut r, code - VALUE_XOR4 + 1)?
            } else {
                0
            };

            let Some(cur) = self.points.index_of(id) else {
                return Err(bad_id(id, self.max_id, at));
            };
            let Some(p) = self.points.all.get_mut(cur) else {
                return Err(bad_id(id, self.max_id, at));
            };
            match quality {
                None => {}
                Some(q) => {
                    let q = q.unwrap_or(p.q2);
                    p.q2 = p.q1;
                    p.q1 = q;
                }
            }
            let v = match code {
                VALUE1 => p.v1,
                VALUE2 => {
                    core::mem::swap(&mut p.v1, &mut p.v2);
                    p.v1
                }
                VALUE3 => {
                    let v = p.v3;
                    p.v3 = p.v2;
                    p.v2 = p.v1;
                    p.v1 = v;
                    v
                }
                VALUE_ZERO => {
                    p.v3 = p.v2;
                    p.v2 = p.v1;
                    p.v1 = 0;
                    0
                }
                _ => {
                    let v = p.v1 ^ xor;
                    p.v3 = p.v2;
                    p.v2 = p.v1;
                    p.v1 = v;
                    v
                }
            };
            out.push(Measurement {
                runtime_id: id,
                timestamp: self.time.prev1,
                value: f32::from_bits(v),
                flags: p.q1,
            });
            self.last = cur;
        }
        Ok(())
    }
}
