//! TSSC (wire.md §4.2). Implemented in a follow-up step.
