//! The STTP control plane runtime (tokio): the publisher server, the subscriber client, the
//! embedded demo source and the `sttp` command line.
//!
//! Protocol decisions live in the sans-IO `sttp-proto` sessions; per-point work lives in the
//! `sttp-dataplane` engine. This crate moves bytes between sockets, sessions and the engine.

pub mod access;
pub mod client;
pub mod client_udp;
pub mod clock;
pub mod config;
pub mod config_commands;
pub mod config_dataplane;
pub mod config_limits;
pub mod config_tls;
pub mod demo;
pub mod identity;
pub mod metadata_cache;
pub mod server;
mod sink;
pub mod stats_report;
pub mod tls;

pub use client::{ClientEvent, ReconnectPolicy, Subscriber, SubscriberConfig};
pub use config::ServeConfig;
pub use server::{Publisher, PublisherConfig};
