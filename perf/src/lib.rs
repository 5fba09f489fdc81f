//! The end-to-end perf harness's building blocks, used by the `sttp-perf` binary (publisher,
//! validating receivers, raw receivers and the ceiling sender as separate processes) and driven
//! by `cargo xtask perf`. The criterion micro-benchmarks live in `benches/`.

pub mod catalog;
pub mod cpu;
pub mod oracle;
pub mod publish;
pub mod raw;
pub mod receive;
pub mod report;
pub mod snmp;
pub mod udp_ceiling;
pub mod validate;
