//! The one place the runtime reads the wall clock as STTP ticks; the sans-IO crates get time as
//! an argument.

use std::time::{SystemTime, UNIX_EPOCH};
use sttp_wire::ticks;

/// Now, in ticks (wire.md §6).
pub fn now_ticks() -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    ticks::from_unix_nanos(nanos)
}
