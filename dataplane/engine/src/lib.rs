//! The STTP data plane: everything per point and per packet.
//!
//! Sources append batches of [`SourcePoint`]s to a broadcast [`ring`]; every worker reads every
//! batch, looks each point up in its [`route::RoutingTable`] (signal → subscriptions on this worker
//! with their runtime IDs) and hands it to that subscription's [`encoder::SubscriptionEncoder`],
//! which builds compact or TSSC DataPacket frames and flushes them to the subscription's
//! [`sink::PacketSink`] on size or when the worker has drained its input. The control plane only
//! installs, changes and removes subscriptions with plain-value commands ([`engine::Engine`]);
//! it never touches a point.
//!
//! This engine uses one plain thread per worker; the io_uring engine replaces [`engine`] behind
//! the same interface without changing the architecture.

pub mod encoder;
pub mod engine;
pub mod point;
pub mod ring;
pub mod route;
pub mod sink;
pub mod stats;

pub use engine::{Engine, EngineConfig, SubscriptionHandle, SubscriptionSpec};
pub use point::SourcePoint;
pub use ring::SourceHandle;
pub use sink::{PacketSink, SinkStatus};
pub use stats::SubscriptionStats;
