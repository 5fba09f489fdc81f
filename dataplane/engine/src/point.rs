//! The point a source publishes: identified by the publisher's global signal index (its row in
//! the signal registry), not yet by any subscription's runtime ID.

/// One measurement as published by a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourcePoint {
    /// Global signal index in the publisher's signal registry.
    pub signal: u32,
    /// Raw ticks (wire.md §6).
    pub timestamp: i64,
    /// Value.
    pub value: f32,
    /// Full state flags (wire.md §4.3).
    pub flags: u32,
}
