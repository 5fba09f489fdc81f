//! .NET ticks: 100 ns since 0001-01-01T00:00:00 UTC, with bit 63 = leap second in progress and
//! bit 62 = its direction (wire.md §6). Pure arithmetic; the caller supplies the clock.

/// Ticks per second.
pub const PER_SECOND: i64 = 10_000_000;
/// Ticks per millisecond.
pub const PER_MILLISECOND: i64 = 10_000;
/// Ticks at 1970-01-01T00:00:00 UTC.
pub const UNIX_EPOCH: i64 = 621_355_968_000_000_000;
/// Mask of the tick value (bits 0–61).
pub const VALUE_MASK: i64 = 0x3FFF_FFFF_FFFF_FFFF;
/// Bit 63: a leap second is in progress.
pub const LEAP_SECOND_FLAG: u64 = 0x8000_0000_0000_0000;
/// Bit 62: leap second direction (1 = deleted second); meaningful only with bit 63.
pub const LEAP_SECOND_DIRECTION: u64 = 0x4000_0000_0000_0000;

/// The tick value with the leap-second bits masked off, for arithmetic.
pub const fn value(raw: i64) -> i64 {
    raw & VALUE_MASK
}

/// Ticks for a Unix time in nanoseconds (rounded down to 100 ns).
pub const fn from_unix_nanos(nanos: i128) -> i64 {
    (nanos / 100) as i64 + UNIX_EPOCH
}

/// Nanoseconds since the Unix epoch for the (masked) ticks.
pub const fn to_unix_nanos(raw: i64) -> i128 {
    (value(raw) as i128 - UNIX_EPOCH as i128) * 100
}

/// Civil date for days since 1970-01-01 (proleptic Gregorian), after H. Hinnant's algorithm.
const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 for a civil date (proleptic Gregorian).
pub const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Ticks for a UTC civil date and time.
pub const fn from_civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, frac_ticks: i64) -> i64 {
    let days = days_from_civil(y, mo, d);
    UNIX_EPOCH
        + days * 86_400 * PER_SECOND
        + (h as i64 * 3600 + mi as i64 * 60 + s as i64) * PER_SECOND
        + frac_ticks
}

/// The parts of a tick value: (year, month, day, hour, minute, second, ticks within the second).
pub const fn to_civil(raw: i64) -> (i64, u32, u32, u32, u32, u32, i64) {
    let rel = value(raw) - UNIX_EPOCH;
    let secs = rel.div_euclid(PER_SECOND);
    let frac = rel.rem_euclid(PER_SECOND);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        ((sod % 3600) / 60) as u32,
        (sod % 60) as u32,
        frac,
    )
}

/// ISO-8601 UTC with seven fractional digits, e.g. `2026-11-21T10:23:15.3685376Z`. A leap second
/// in progress is shown as second 60.
pub fn to_iso8601(raw: i64) -> String {
    let (y, mo, d, h, mi, mut s, frac) = to_civil(raw);
    if raw as u64 & LEAP_SECOND_FLAG != 0 && raw as u64 & LEAP_SECOND_DIRECTION == 0 && s == 59 {
        s = 60;
    }
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:07}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_timestamp_formats_like_the_reference() {
        // wire.md §4.1: ticks 639308533953685376 = 2026-11-21 10:23:15.3685376 UTC.
        assert_eq!(
            to_iso8601(639_308_533_953_685_376),
            "2026-11-21T10:23:15.3685376Z"
        );
        assert_eq!(
            from_civil(2026, 11, 21, 10, 23, 15, 3_685_376),
            639_308_533_953_685_376
        );
    }

    #[test]
    fn epoch_constants_agree() {
        assert_eq!(from_civil(1970, 1, 1, 0, 0, 0, 0), UNIX_EPOCH);
        assert_eq!(from_civil(1, 1, 1, 0, 0, 0, 0), 0);
        assert_eq!(to_iso8601(0), "0001-01-01T00:00:00.0000000Z");
        // wire.md §4.2: T0 = 2022-09-28 22:13:20 UTC.
        assert_eq!(
            to_iso8601(638_000_000_000_000_000),
            "2022-09-28T22:13:20.0000000Z"
        );
    }

    #[test]
    fn unix_round_trip() {
        let t = from_unix_nanos(1_700_000_000_123_456_700);
        assert_eq!(to_unix_nanos(t), 1_700_000_000_123_456_700);
    }
}
