//! Perf harness support.
