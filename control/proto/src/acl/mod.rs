//! Subscriber access control: who a peer is, which points it may see, and the restricted catalog
//! view a session serves it from.
//!
//! - [`AccessPolicy`] ([`policy`]): groups of points and identities with allow/deny rules on
//!   points, groups and filter expressions, evaluated with the draft STTP precedence (point
//!   explicit > group explicit > filter implicit > group implicit, deny by default) into a
//!   [`SignalSet`] of allowed global signal indices.
//! - [`AccessPolicy::from_toml`] ([`parse`]): the policy file, with line/column errors.
//! - [`crate::catalog::Catalog::restricted`] ([`view`]): a catalog showing only allowed points —
//!   in MetadataRefresh replies, in ActiveMeasurements, and in what subscription filters select —
//!   with global signal indices unchanged, so data-plane routes stay valid. Its
//!   [`crate::catalog::Catalog::select_signals_split`] also reports the points a filter selected
//!   that access control refused: they go into the signal index cache's unauthorized list
//!   (wire.md §5, as gsfapi does) and the Subscribe reply says how many there were.
//!
//! Nothing here knows about sockets or certificates: the runtime fills a [`Who`] from what its
//! transport proved.

pub mod cidr;
pub mod parse;
pub mod policy;
pub mod set;
pub(crate) mod view;

pub use cidr::AddressRange;
pub use parse::PolicyError;
pub use policy::{AccessPolicy, Grant, Group, Identity, PointRef, Refusal, RuleSet, Who};
pub use set::SignalSet;
