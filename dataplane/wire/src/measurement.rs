//! The single measurement type of STTP (wire.md §4, §4.3): a runtime ID from the signal index
//! cache, an `f32` value, 64-bit ticks (with the leap-second bits) and 32-bit state flags.

/// One decoded or to-be-encoded measurement, identified by its runtime ID.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Runtime signal index from the signal index cache (wire.md §5).
    pub runtime_id: i32,
    /// Raw 64-bit ticks, leap-second bits included (wire.md §6).
    pub timestamp: i64,
    /// The value, `f32` on the wire.
    pub value: f32,
    /// Full 32-bit state flags (wire.md §4.3).
    pub flags: u32,
}

impl Measurement {
    /// True when both measurements carry the same bits (NaN payloads compared bit for bit).
    pub fn bit_eq(&self, other: &Self) -> bool {
        self.runtime_id == other.runtime_id
            && self.timestamp == other.timestamp
            && self.value.to_bits() == other.value.to_bits()
            && self.flags == other.flags
    }
}

/// Measurement state flags (wire.md §4.3), carried raw in TSSC and mapped lossily in compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateFlags(pub u32);

impl StateFlags {
    pub const NORMAL: u32 = 0x0000_0000;
    pub const BAD_DATA: u32 = 0x0000_0001;
    pub const SUSPECT_DATA: u32 = 0x0000_0002;
    pub const OVER_RANGE_ERROR: u32 = 0x0000_0004;
    pub const UNDER_RANGE_ERROR: u32 = 0x0000_0008;
    pub const ALARM_HIGH: u32 = 0x0000_0010;
    pub const ALARM_LOW: u32 = 0x0000_0020;
    pub const WARNING_HIGH: u32 = 0x0000_0040;
    pub const WARNING_LOW: u32 = 0x0000_0080;
    pub const FLATLINE_ALARM: u32 = 0x0000_0100;
    pub const COMPARISON_ALARM: u32 = 0x0000_0200;
    pub const ROC_ALARM: u32 = 0x0000_0400;
    pub const RECEIVED_AS_BAD: u32 = 0x0000_0800;
    pub const CALCULATED_VALUE: u32 = 0x0000_1000;
    pub const CALCULATION_ERROR: u32 = 0x0000_2000;
    pub const CALCULATION_WARNING: u32 = 0x0000_4000;
    pub const RESERVED_QUALITY_FLAG: u32 = 0x0000_8000;
    pub const BAD_TIME: u32 = 0x0001_0000;
    pub const SUSPECT_TIME: u32 = 0x0002_0000;
    pub const LATE_TIME_ALARM: u32 = 0x0004_0000;
    pub const FUTURE_TIME_ALARM: u32 = 0x0008_0000;
    pub const UP_SAMPLED: u32 = 0x0010_0000;
    pub const DOWN_SAMPLED: u32 = 0x0020_0000;
    pub const DISCARDED_VALUE: u32 = 0x0040_0000;
    pub const RESERVED_TIME_FLAG: u32 = 0x0080_0000;
    pub const USER_DEFINED_FLAG1: u32 = 0x0100_0000;
    pub const USER_DEFINED_FLAG2: u32 = 0x0200_0000;
    pub const USER_DEFINED_FLAG3: u32 = 0x0400_0000;
    pub const USER_DEFINED_FLAG4: u32 = 0x0800_0000;
    pub const USER_DEFINED_FLAG5: u32 = 0x1000_0000;
    pub const SYSTEM_ERROR: u32 = 0x2000_0000;
    pub const SYSTEM_WARNING: u32 = 0x4000_0000;
    pub const MEASUREMENT_ERROR: u32 = 0x8000_0000;
}
