//! Sans-IO STTP control protocol (wire.md §1–§3, §5, §7): framing, commands and responses,
//! operational modes, connection strings, the signal index cache, the metadata DataSet, filter
//! expressions, and the publisher- and subscriber-side session state machines.
//!
//! Nothing here does I/O or reads a clock: bytes and the current time come in as arguments,
//! bytes and events go out.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod acl;
pub mod catalog;
pub mod command;
pub mod connstr;
pub mod encoding;
pub mod error;
pub mod ext;
pub mod filter;
pub mod framing;
pub mod gzip;
pub mod metadata;
pub mod opmodes;
pub mod payloads;
pub mod peer_text;
pub mod response;
pub mod session;
pub mod sic;

pub use sttp_wire as wire;
