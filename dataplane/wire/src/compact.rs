//! Compact measurement format (wire.md §4.1, §6). Implemented in a follow-up step.
