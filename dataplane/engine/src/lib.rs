//! The STTP data plane: everything per point and per packet.
//!
//! Sources append batches of [`SourcePoint`]s to a broadcast [`ring`]; every worker (a thread,
//! optionally pinned to a core) reads every batch, looks each point up in its
//! [`route::RoutingTable`] (signal → subscriptions on this worker with their runtime IDs) and
//! hands it to that subscription's [`encoder::SubscriptionEncoder`], which builds compact or TSSC
//! DataPacket frames and flushes them on a target size or a latency deadline: onto the
//! subscriber's TCP command channel ([`sink::PacketSink`]), or as UDP datagrams
//! ([`delivery`], optionally sealed) that the worker sends once per turn through its batched
//! sender ([`io`]: io_uring with UDP GSO, or `sendmmsg` where io_uring is unavailable). The
//! control plane only installs, changes and removes subscriptions and keys with plain-value
//! commands ([`engine::Engine`]); it never touches a point.

pub mod delivery;
pub mod encoder;
pub mod engine;
pub mod io;
pub mod pin;
pub mod point;
pub mod ring;
pub mod route;
pub mod sink;
pub mod stats;

pub use delivery::{Delivery, Sealer};
pub use engine::{Engine, EngineConfig, SubscriptionHandle, SubscriptionSpec};
pub use point::SourcePoint;
pub use ring::SourceHandle;
pub use sink::{PacketSink, SinkStatus};
pub use stats::SubscriptionStats;
