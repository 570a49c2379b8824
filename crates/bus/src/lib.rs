//! # ferry-bus
//!
//! Ferry's RabbitMQ layer: everything the `ferry` roles do with the broker goes through here, so
//! queue names, headers, confirms, acks, retries and dead letters are decided in one crate.
//!
//! - [`names`]: queue and header names, the one source of truth (`ferry.<scheme>.<stage>...`).
//! - [`bus`]: [`Bus`], the connection (auto-recovery on).
//! - `link`: what every operation on the broker shares: the lost-connection signal, the
//!   recovery rule, refusals, short names (below `bus` and everything built on it).
//! - `shape`: [`Topology`], the shape of a scheme's queues (plain data, below `bus` and
//!   `topology`).
//! - [`topology`]: declaring a scheme's work, retry and dead-letter queues; queue depths.
//! - [`publisher`]: [`Publisher`], persistent JSON messages with publisher confirms.
//! - [`consumer`]: [`Consumer`] and [`Incoming`], manual acks with a prefetch.
//! - [`headers`]: [`Headers`], the typed AMQP headers.
//! - [`failure`]: [`Bus::route_failure`] and friends, the one place that picks retry or DLQ.
//! - [`browse`]: [`Bus::browse_dead_letters`], reading dead letters without moving them.
//! - [`replay`]: [`Bus::dead_letters`], one filtered pass over a DLQ: replay, re-render or discard.
//! - [`trace`]: W3C trace context in and out of [`Headers`].
//! - [`error`]: [`BusError`]; [`BusError::Lost`] means "exit non-zero, let the supervisor restart".
//!
//! A worker loop reads, in outline:
//!
//! ```text
//! let mut consumer = bus.consume(&names::work_queue(scheme, stage), prefetch, tag).await?;
//! while let Some(msg) = consumer.next().await? {
//!     let envelope = match &msg.envelope {
//!         Ok(envelope) => envelope,
//!         Err(_) => { bus.route_invalid(&publisher, scheme, stage, &msg).await?; msg.ack().await?; continue }
//!     };
//!     match work(envelope, trace::extract(&msg.headers)).await {
//!         Ok(()) => msg.ack().await?,
//!         Err(err @ FerryError::Config { .. }) => { stop consuming; leave msg unacked }
//!         Err(err) => { bus.route_failure(&publisher, scheme, stage, envelope, &msg.headers, &err, max).await?; msg.ack().await? }
//!     }
//! }
//! ```

pub mod browse;
pub mod bus;
pub mod consumer;
pub mod error;
pub mod failure;
pub mod headers;
mod link;
pub mod names;
pub mod publisher;
pub mod replay;
mod shape;
pub mod topology;
pub mod trace;

pub use browse::{DeadLetterPage, DeadLetterView};
pub use bus::Bus;
pub use consumer::{Consumer, Incoming};
pub use error::BusError;
pub use failure::Routed;
pub use headers::Headers;
pub use names::Stage;
pub use publisher::Publisher;
pub use replay::{
    DeadLetter, DeadLetterAction, DeadLetterFilter, DeadLetterPass, ReplayItem, ReplayReport,
};
pub use topology::{QueueDepth, Topology};
