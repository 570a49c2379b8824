//! # ferry-state
//!
//! Ferry's own tables in a MySQL database (`FERRY_STATE_URL`), created by idempotent migrations at
//! start-up, and shared by every process and replica:
//!
//! - [`mysql`]: connecting to MySQL the way every Ferry component does (utf8mb4, server time zone,
//!   errors that name the host but never the password).
//! - [`store`]: the [`State`] handle: checkpoints, runs, the extract lock, the idCheck ledger,
//!   cached access tokens, the shared rate limiter, the outages roles are riding out, and the
//!   running roles with the RabbitMQ node each is connected to.
//! - [`audit`]: the audit of replays, discards and teardowns.

pub mod audit;
pub mod mysql;
mod schema;
pub mod store;

pub use audit::{Actor, AuditEntry, AuditOutcome, AuditStart};
pub use store::{
    Checkpoint, ConfirmedPage, Counts, LedgerEntry, Outage, Reconciled, Resume, RoleRow, RoleSeen,
    RunStatus, RunSummary, Settled, State, StateError,
};
