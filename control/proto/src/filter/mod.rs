//! Filter expressions (wire.md §7). Implemented in a follow-up step.
