//! Sans-IO hot-path codecs of STTP (IEEE 2664) as the reference implementations speak it.
//!
//! Everything here is a pure function of bytes: no sockets, no clocks, no threads. Peer bytes are
//! read through [`cursor::Reader`], which never panics and reports where and why a decode failed.
//! Section numbers in doc comments refer to `wire.md`.
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

pub mod aead;
pub mod compact;
pub mod cursor;
pub mod frame;
pub mod legacy_cbc;
pub mod measurement;
pub mod packet;
pub mod ticks;
pub mod tssc;

pub use cursor::{DecodeError, Reader};
pub use measurement::{Measurement, StateFlags};
pub use uuid::Uuid as Guid;
