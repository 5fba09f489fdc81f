//! The compact measurement format (wire.md §4.1) and base time offsets (wire.md §6).
//!
//! Each measurement is `u8 compactFlags | i32 runtimeID | f32 value | [time]`, all big-endian.
//! The 32-bit state flags are folded into six bits (lossy: any bit of a mask sets the compact
//! bit, the compact bit restores the whole mask). Time is optional and, when base time offsets
//! are in use, shrinks to a `u32` tick or `u16` millisecond offset from one of two publisher-sent
//! bases, selected per measurement by the TimeIndex bit so that a base rotation never
//! invalidates measurements still in flight.

use crate::cursor::{DecodeError, Reader};
use crate::measurement::Measurement;
use crate::packet::flags as packet_flags;
use crate::ticks;

/// Bytes of flags, runtime ID and value, without time.
pub const FIXED_LEN: usize = 9;

/// Compact flag bits (wire.md §4.1 table).
pub mod bits {
    /// DataRange: any of [`super::masks::DATA_RANGE`].
    pub const DATA_RANGE: u8 = 0x01;
    /// DataQuality: any of [`super::masks::DATA_QUALITY`].
    pub const DATA_QUALITY: u8 = 0x02;
    /// TimeQuality: any of [`super::masks::TIME_QUALITY`].
    pub const TIME_QUALITY: u8 = 0x04;
    /// SystemIssue: any of [`super::masks::SYSTEM_ISSUE`].
    pub const SYSTEM_ISSUE: u8 = 0x08;
    /// CalculatedValue.
    pub const CALCULATED_VALUE: u8 = 0x10;
    /// DiscardedValue (pyapi: ALARMVALUE).
    pub const DISCARDED_VALUE: u8 = 0x20;
    /// The time is an offset from a base time.
    pub const BASE_TIME_OFFSET: u8 = 0x40;
    /// The offset is from base 1, else base 0.
    pub const TIME_INDEX: u8 = 0x80;
}

/// Full state-flag masks behind the compact bits (wire.md §4.1 table).
pub mod masks {
    /// Range and alarm bits.
    pub const DATA_RANGE: u32 = 0x0000_00FC;
    /// Data quality bits.
    pub const DATA_QUALITY: u32 = 0x0000_EF03;
    /// Time quality bits.
    pub const TIME_QUALITY: u32 = 0x00BF_0000;
    /// System error, warning and measurement error.
    pub const SYSTEM_ISSUE: u32 = 0xE000_0000;
    /// CalculatedValue.
    pub const CALCULATED_VALUE: u32 = 0x0000_1000;
    /// DiscardedValue.
    pub const DISCARDED_VALUE: u32 = 0x0040_0000;
}

const MAP: [(u8, u32); 6] = [
    (bits::DATA_RANGE, masks::DATA_RANGE),
    (bits::DATA_QUALITY, masks::DATA_QUALITY),
    (bits::TIME_QUALITY, masks::TIME_QUALITY),
    (bits::SYSTEM_ISSUE, masks::SYSTEM_ISSUE),
    (bits::CALCULATED_VALUE, masks::CALCULATED_VALUE),
    (bits::DISCARDED_VALUE, masks::DISCARDED_VALUE),
];

/// Compact bits 0x01..=0x20 for full state flags: a bit is set if any bit of its mask is.
/// User-defined flags (0x01000000..=0x10000000) have no compact bit and are lost.
#[inline]
pub fn compact_flags(state: u32) -> u8 {
    let mut c = 0;
    for (bit, mask) in MAP {
        if state & mask != 0 {
            c |= bit;
        }
    }
    c
}

/// Full state flags for compact bits: every set bit restores its whole mask. Bits 0x40/0x80
/// are time-form bits and map to nothing.
#[inline]
pub fn state_flags(compact: u8) -> u32 {
    let mut s = 0;
    for (bit, mask) in MAP {
        if compact & bit != 0 {
            s |= mask;
        }
    }
    s
}

/// Length of the UpdateBaseTimes (0x84) payload.
pub const BASE_TIMES_LEN: usize = 20;

/// The two base times of UpdateBaseTimes (0x84, wire.md §6): `i32 timeIndex, i64 base[0],
/// i64 base[1]`. The publisher encodes against `offsets[index]`; the subscriber decodes each
/// measurement against the base its TimeIndex bit names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BaseTimes {
    /// The base the publisher currently encodes against (0 or 1).
    pub index: i32,
    /// Base times in ticks.
    pub offsets: [i64; 2],
}

impl BaseTimes {
    /// The base the encoder uses now, and whether that is base 1.
    #[inline]
    fn active(&self) -> (i64, bool) {
        if self.index == 1 {
            (self.offsets[1], true)
        } else {
            (self.offsets[0], false)
        }
    }

    /// Appends the 20-byte UpdateBaseTimes payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.offsets[0].to_be_bytes());
        out.extend_from_slice(&self.offsets[1].to_be_bytes());
    }

    /// Parses an UpdateBaseTimes payload. Bytes after the 20 are ignored, as the reference
    /// parsers do; an index other than 0 or 1 is invalid.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let index = r.i32("base time index")?;
        if !(0..=1).contains(&index) {
            return Err(DecodeError::invalid("base time index", 0));
        }
        let b0 = r.i64("base time offset 0")?;
        let b1 = r.i64("base time offset 1")?;
        Ok(Self {
            index,
            offsets: [b0, b1],
        })
    }
}

/// How time travels in compact measurements of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// Measurements carry a time at all (subscription `includeTime`).
    pub include_time: bool,
    /// Offsets are `u16` milliseconds instead of `u32` ticks (`useMillisecondResolution`).
    pub millisecond_resolution: bool,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            include_time: true,
            millisecond_resolution: false,
        }
    }
}

/// The time field chosen for a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeForm {
    None,
    Full,
    Ticks(u32, bool),
    Millis(u16, bool),
}

/// The offset rule of wire.md §4.1: the offset form only when the base is positive, the time
/// is after it and the difference fits (`< 2^32 − 1` ticks, or `< 65535` whole ms). Leap-second
/// timestamps are negative or beyond 2^62 and so always take the full form.
#[inline]
fn time_form(ts: i64, opts: CompactOptions, base: Option<&BaseTimes>) -> TimeForm {
    if !opts.include_time {
        return TimeForm::None;
    }
    let Some(base) = base else {
        return TimeForm::Full;
    };
    let (b, index1) = base.active();
    if b <= 0 {
        return TimeForm::Full;
    }
    let Some(diff) = ts.checked_sub(b) else {
        return TimeForm::Full;
    };
    if diff <= 0 {
        return TimeForm::Full;
    }
    if opts.millisecond_resolution {
        let ms = diff / ticks::PER_MILLISECOND;
        if ms < 65_535 {
            return TimeForm::Millis(ms as u16, index1);
        }
    } else if diff < i64::from(u32::MAX) {
        return TimeForm::Ticks(diff as u32, index1);
    }
    TimeForm::Full
}

/// Encoded size of `m`: 9, 11, 13 or 17 bytes.
#[inline]
pub fn encoded_len(m: &Measurement, opts: CompactOptions, base: Option<&BaseTimes>) -> usize {
    form_len(time_form(m.timestamp, opts, base))
}

/// Appends one compact measurement. In millisecond mode the offset form drops sub-millisecond
/// ticks; the full form always keeps every tick bit, leap-second bits included.
#[inline]
pub fn encode(out: &mut Vec<u8>, m: &Measurement, opts: CompactOptions, base: Option<&BaseTimes>) {
    encode_form(out, m, time_form(m.timestamp, opts, base));
}

/// Length of a measurement with the given time form.
#[inline]
const fn form_len(form: TimeForm) -> usize {
    FIXED_LEN
        + match form {
            TimeForm::None => 0,
            TimeForm::Full => 8,
            TimeForm::Ticks(..) => 4,
            TimeForm::Millis(..) => 2,
        }
}

#[inline(always)]
fn encode_form(out: &mut Vec<u8>, m: &Measurement, form: TimeForm) {
    let mut flags = compact_flags(m.flags);
    let mut buf = [0u8; 17];
    match form {
        TimeForm::None => {}
        TimeForm::Full => buf[9..17].copy_from_slice(&m.timestamp.to_be_bytes()),
        TimeForm::Ticks(t, i1) => {
            flags |= bits::BASE_TIME_OFFSET | if i1 { bits::TIME_INDEX } else { 0 };
            buf[9..13].copy_from_slice(&t.to_be_bytes());
        }
        TimeForm::Millis(t, i1) => {
            flags |= bits::BASE_TIME_OFFSET | if i1 { bits::TIME_INDEX } else { 0 };
            buf[9..11].copy_from_slice(&t.to_be_bytes());
        }
    }
    buf[0] = flags;
    buf[1..5].copy_from_slice(&m.runtime_id.to_be_bytes());
    buf[5..9].copy_from_slice(&m.value.to_bits().to_be_bytes());
    // A fixed 17-byte append and a trim beat a variable-length copy.
    let len = out.len();
    out.extend_from_slice(&buf);
    out.truncate(len + form_len(form));
}

/// Decodes `count` compact measurements from `body` (the DataPacket payload after flags and
/// count) and appends them to `out`. Without `include_time` the timestamp is 0. Bytes after the
/// `count`th measurement are ignored (pyapi/goapi loop `count` times). An offset time with no
/// known base (none, or the named base is 0) is an error, as is truncation; on error nothing is
/// appended.
pub fn decode(
    body: &[u8],
    count: usize,
    opts: CompactOptions,
    base: Option<&BaseTimes>,
    out: &mut Vec<Measurement>,
) -> Result<(), DecodeError> {
    let start = out.len();
    // Each measurement needs at least 9 bytes, so the body bounds the reservation.
    out.reserve(count.min(body.len() / FIXED_LEN));
    let result = decode_into(body, count, opts, base, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn decode_into(
    body: &[u8],
    count: usize,
    opts: CompactOptions,
    base: Option<&BaseTimes>,
    out: &mut Vec<Measurement>,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(body);
    for _ in 0..count {
        let at = r.position();
        let cflags = r.u8("compact flags")?;
        let runtime_id = r.i32("compact runtime id")?;
        let value = f32::from_bits(r.u32("compact value")?);
        let timestamp = if !opts.include_time {
            0
        } else if cflags & bits::BASE_TIME_OFFSET != 0 {
            let b = match base {
                Some(base) if cflags & bits::TIME_INDEX != 0 => base.offsets[1],
                Some(base) => base.offsets[0],
                None => 0,
            };
            if b == 0 {
                return Err(DecodeError::invalid("compact time offset without base", at));
            }
            if opts.millisecond_resolution {
                let ms = i64::from(r.u16("compact ms offset")?);
                b.wrapping_add(ms * ticks::PER_MILLISECOND)
            } else {
                b.wrapping_add(i64::from(r.u32("compact tick offset")?))
            }
        } else {
            r.i64("compact timestamp")?
        };
        out.push(Measurement {
            runtime_id,
            timestamp,
            value,
            flags: state_flags(cflags),
        });
    }
    Ok(())
}

/// Publisher-side base-time rotation (wire.md §6). Time comes in as an argument (the latest
/// published timestamp); the first rotation happens one period after the first observed time,
/// then every period.
#[derive(Debug, Clone)]
pub struct BaseTimeSchedule {
    period: i64,
    next_rotation: Option<i64>,
    current: Option<BaseTimes>,
}

impl BaseTimeSchedule {
    /// Tick offsets rotate every 420 000 ms (just under 2^32 ticks); ms offsets every
    /// 60 000 ms (under 65 535 ms).
    pub fn new(millisecond_resolution: bool) -> Self {
        let period_ms: i64 = if millisecond_resolution {
            60_000
        } else {
            420_000
        };
        Self {
            period: period_ms * ticks::PER_MILLISECOND,
            next_rotation: None,
            current: None,
        }
    }

    /// Feeds the latest time; returns the new bases when an UpdateBaseTimes must be sent.
    /// Leap-second bits are masked off; a time going backwards never rotates.
    pub fn observe(&mut self, now_ticks: i64) -> Option<BaseTimes> {
        let now = ticks::value(now_ticks);
        let Some(due) = self.next_rotation else {
            self.next_rotation = Some(now.saturating_add(self.period));
            return None;
        };
        if now < due {
            return None;
        }
        let ahead = now.saturating_add(self.period);
        let next = match self.current {
            None => BaseTimes {
                index: 0,
                offsets: [now, ahead],
            },
            Some(mut b) => {
                let old = b.index;
                b.index ^= 1;
                if old == 1 {
                    b.offsets[1] = ahead;
                } else {
                    b.offsets[0] = ahead;
                }
                b
            }
        };
        self.current = Some(next);
        self.next_rotation = Some(ahead);
        Some(next)
    }

    /// The bases in force, once the first rotation has happened.
    pub fn current(&self) -> Option<&BaseTimes> {
        self.current.as_ref()
    }
}

/// Publisher side: builds compact DataPacket payloads, `u8 flags (0x02 | extra)`,
/// `i32 BE count`, measurements, within a payload size limit.
#[derive(Debug, Clone)]
pub struct PacketEncoder {
    opts: CompactOptions,
    base: Option<BaseTimes>,
    start: usize,
    limit: usize,
    count: u32,
    open: bool,
}

impl PacketEncoder {
    /// A packet builder for a subscription's time options, with no base times yet.
    pub fn new(opts: CompactOptions) -> Self {
        Self {
            opts,
            base: None,
            start: 0,
            limit: 0,
            count: 0,
            open: false,
        }
    }

    /// The options measurements are encoded with.
    pub fn options(&self) -> CompactOptions {
        self.opts
    }

    /// Sets (or clears) the base times used from the next measurement on. Send the matching
    /// UpdateBaseTimes before any packet that uses them.
    pub fn set_base_times(&mut self, base: Option<BaseTimes>) {
        self.base = base;
    }

    /// The base times in use.
    pub fn base_times(&self) -> Option<&BaseTimes> {
        self.base.as_ref()
    }

    /// Appends flags (`extra_flags | 0x02`, Compressed bit cleared) and a count placeholder;
    /// the packet written from here stays within `max_payload` bytes.
    pub fn begin(&mut self, out: &mut Vec<u8>, extra_flags: u8, max_payload: usize) {
        self.start = out.len();
        self.limit = out.len().saturating_add(max_payload);
        self.count = 0;
        self.open = true;
        out.push((extra_flags & !packet_flags::COMPRESSED) | packet_flags::COMPACT);
        out.extend_from_slice(&[0, 0, 0, 0]);
    }

    /// Adds one measurement; `false` when it does not fit (nothing written).
    #[inline]
    pub fn try_add(&mut self, out: &mut Vec<u8>, m: &Measurement) -> bool {
        let form = time_form(m.timestamp, self.opts, self.base.as_ref());
        if !self.open || out.len().saturating_add(form_len(form)) > self.limit {
            return false;
        }
        encode_form(out, m, form);
        self.count += 1;
        true
    }

    /// Measurements in the open packet.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Patches the count and returns it. An empty packet is removed from `out` again.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u32 {
        if !self.open {
            return 0;
        }
        self.open = false;
        if self.count == 0 {
            out.truncate(self.start);
            return 0;
        }
        let at = self.start + 1;
        if let Some(dst) = out.get_mut(at..at + 4) {
            dst.copy_from_slice(&self.count.to_be_bytes());
        }
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 638_000_000_000_000_000;

    fn m(id: i32, ts: i64) -> Measurement {
        Measurement {
            runtime_id: id,
            timestamp: ts,
            value: 60.0,
            flags: 0,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn captured_full_time_measurement() {
        // wire.md §4.1 capture.
        let opts = CompactOptions::default();
        let mut out = Vec::new();
        encode(&mut out, &m(1, 639_308_533_953_685_376), opts, None);
        assert_eq!(hex(&out), "00000000014270000008df47b9742f6780");
        let mut back = Vec::new();
        decode(&out, 1, opts, None, &mut back).unwrap();
        assert_eq!(back, [m(1, 639_308_533_953_685_376)]);
    }

    #[test]
    fn worked_base_time_examples() {
        // wire.md §6 worked example.
        let mut base = BaseTimes {
            index: 0,
            offsets: [T0, T0 + 4_200_000_000],
        };
        let ticks_opts = CompactOptions::default();
        let ms_opts = CompactOptions {
            include_time: true,
            millisecond_resolution: true,
        };
        let mut out = Vec::new();
        encode(&mut out, &m(5, T0 + 1_234_567), ticks_opts, Some(&base));
        assert_eq!(hex(&out), "4000000005427000000012d687");
        out.clear();
        encode(&mut out, &m(5, T0 + 12_340_000), ms_opts, Some(&base));
        assert_eq!(hex(&out), "40000000054270000004d2");
        base.index = 1;
        base.offsets[1] = T0;
        out.clear();
        encode(&mut out, &m(5, T0 + 1_234_567), ticks_opts, Some(&base));
        assert_eq!(out[0], 0xC0);
    }

    #[test]
    fn offset_rule_boundaries() {
        let base = BaseTimes {
            index: 0,
            offsets: [T0, 0],
        };
        let o = CompactOptions::default();
        let len = |ts| encoded_len(&m(0, ts), o, Some(&base));
        assert_eq!(len(T0), 17, "diff 0 is not an offset");
        assert_eq!(len(T0 - 1), 17);
        assert_eq!(len(T0 + 1), 13);
        assert_eq!(len(T0 + i64::from(u32::MAX) - 1), 13);
        assert_eq!(len(T0 + i64::from(u32::MAX)), 17);
        assert_eq!(len(i64::MIN), 17);
        let ms = CompactOptions {
            include_time: true,
            millisecond_resolution: true,
        };
        let len = |ts| encoded_len(&m(0, ts), ms, Some(&base));
        assert_eq!(len(T0 + 65_534 * 10_000 + 9_999), 11);
        assert_eq!(len(T0 + 65_535 * 10_000), 17);
        let none = CompactOptions {
            include_time: false,
            millisecond_resolution: false,
        };
        assert_eq!(encoded_len(&m(0, T0), none, Some(&base)), 9);
        let zero = BaseTimes::default();
        assert_eq!(encoded_len(&m(0, T0), o, Some(&zero)), 17);
    }

    #[test]
    fn offset_without_base_is_an_error() {
        let body = [0x40, 0, 0, 0, 5, 0x42, 0x70, 0, 0, 0, 0x12, 0xd6, 0x87];
        let mut out = Vec::new();
        assert!(decode(&body, 1, CompactOptions::default(), None, &mut out).is_err());
        let zero = BaseTimes::default();
        assert!(decode(&body, 1, CompactOptions::default(), Some(&zero), &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn flag_mapping() {
        assert_eq!(compact_flags(0), 0);
        assert_eq!(compact_flags(0x0000_0004), 0x01);
        assert_eq!(compact_flags(0x0000_0001), 0x02);
        assert_eq!(compact_flags(0x0001_0000), 0x04);
        assert_eq!(compact_flags(0x8000_0000), 0x08);
        assert_eq!(compact_flags(0x0000_1000), 0x10);
        assert_eq!(compact_flags(0x0040_0000), 0x20);
        assert_eq!(compact_flags(0x1F00_0000), 0, "user-defined flags are lost");
        assert_eq!(state_flags(0x3F), 0xE0FF_FFFF);
        assert_eq!(state_flags(0xC0), 0);
    }

    #[test]
    fn base_times_layout() {
        let b = BaseTimes {
            index: 1,
            offsets: [T0, T0 + 1],
        };
        let mut out = Vec::new();
        b.encode(&mut out);
        assert_eq!(out.len(), BASE_TIMES_LEN);
        assert_eq!(BaseTimes::decode(&out).unwrap(), b);
        assert!(BaseTimes::decode(&out[..19]).is_err());
        out[3] = 2;
        assert!(BaseTimes::decode(&out).is_err());
    }

    #[test]
    fn schedule_rotates_per_wire_md() {
        let p = 420_000 * 10_000;
        let mut s = BaseTimeSchedule::new(false);
        assert_eq!(s.observe(T0), None);
        assert_eq!(s.observe(T0 + p - 1), None);
        assert_eq!(s.current(), None);
        let first = s.observe(T0 + p).unwrap();
        assert_eq!(
            first,
            BaseTimes {
                index: 0,
                offsets: [T0 + p, T0 + 2 * p]
            }
        );
        assert_eq!(s.observe(T0 + 2 * p - 1), None);
        let second = s.observe(T0 + 2 * p).unwrap();
        assert_eq!(
            second,
            BaseTimes {
                index: 1,
                offsets: [T0 + 3 * p, T0 + 2 * p]
            }
        );
        let third = s.observe(T0 + 3 * p + 5).unwrap();
        assert_eq!(
            third,
            BaseTimes {
                index: 0,
                offsets: [T0 + 3 * p, T0 + 4 * p + 5]
            }
        );
        assert_eq!(s.current(), Some(&third));
        let mut ms = BaseTimeSchedule::new(true);
        assert_eq!(ms.observe(T0), None);
        assert!(ms.observe(T0 + 60_000 * 10_000).is_some());
    }

    #[test]
    fn packet_encoder_limits_and_count() {
        let mut enc = PacketEncoder::new(CompactOptions::default());
        let mut out = vec![0xAA];
        enc.begin(&mut out, 0x10 | 0x08, 5 + 2 * 17 + 16);
        assert!(enc.try_add(&mut out, &m(1, T0)));
        assert!(enc.try_add(&mut out, &m(2, T0)));
        assert!(!enc.try_add(&mut out, &m(3, T0)));
        assert_eq!(enc.finish(&mut out), 2);
        assert_eq!(&out[..6], [0xAA, 0x12, 0, 0, 0, 2]);
        assert_eq!(out.len(), 1 + 5 + 34);
        enc.begin(&mut out, 0, 100);
        assert_eq!(enc.finish(&mut out), 0);
        assert_eq!(out.len(), 1 + 5 + 34, "empty packet removed");
    }
}
