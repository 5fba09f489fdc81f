//! Session state machines (sans-IO, quinn-proto style): frames and time go in through
//! `handle_*`, bytes to send and events for the application come out through `poll_*`.

pub mod publisher;
pub mod subscriber;

pub use publisher::{PublisherOutput, PublisherSession, PublisherSessionConfig};
pub use subscriber::{
    ReceivedMeasurement, SessionFailure, SubscriberEvent, SubscriberLimits, SubscriberOutput,
    SubscriberSession, SubscriberSessionConfig,
};
