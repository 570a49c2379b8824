//! The pipeline roles. Each is a function of (app, schemes, shutdown) that returns when drained.
//!
//! - [`extract`]: sources to `ferry.<scheme>.transform`, on schedules or once.
//! - [`transform`]: mapping, `ferry.<scheme>.transform` to `ferry.<scheme>.load`.
//! - [`load`]: `ferry.<scheme>.load` to the target.
//! - [`worker`]: the consume loop both consuming stages share, where the ack / retry /
//!   dead-letter / stop decision is made from the error class.
//! - [`outage`]: a target that does not answer is waited for, its messages held in their queue.
//! - [`state_wait`]: so is the state database, for the counts that decide when a run is done.
//! - [`run`]: all three in one process; `--once` waits until the runs settle.
//! - [`pipeline`]: composition, the handles every role shares and how they connect;
//!   [`consume`] (`ferry transform` / `ferry load`), [`extracting`] (`ferry extract`) and
//!   [`report`] (queue depths, dead-letter alerts, summary lines) are the roles' entry points
//!   and output.
//! - [`supervisor`]: connect, run, and on a lost connection connect afresh with backoff; every
//!   role runs inside it.

pub mod consume;
pub mod extract;
pub mod extracting;
pub mod load;
pub mod outage;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod state_wait;
pub mod supervisor;
pub mod transform;
pub mod worker;
