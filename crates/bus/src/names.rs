//! The one source of truth for queue names and AMQP header names.
//!
//! Every queue of a scheme is named `ferry.<scheme>.<...>`, so an operator finds them all with one
//! filter (`rabbitmqctl list_queues name | grep '^ferry\.refunds\.'`). Logs, metrics, the worker
//! loops and `ferry replay` all take names from here, never from string literals of their own.

use std::fmt;
use std::str::FromStr;

/// Prefix of every queue Ferry declares.
pub const QUEUE_PREFIX: &str = "ferry";

/// The W3C trace context header (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor-specific trace state header.
pub const TRACESTATE: &str = "tracestate";
/// The scheme the message belongs to.
pub const SCHEME: &str = "x-ferry-scheme";
/// The run (one extraction of a scheme) the message belongs to.
pub const RUN: &str = "x-ferry-run";
/// The stage whose work queue the message is for: `transform` or `load`.
pub const STAGE: &str = "x-ferry-stage";
/// How many retries of this message were made so far (0 on its first delivery).
pub const ATTEMPT: &str = "x-ferry-attempt";
/// On a dead letter: `transient`, `record` or `config` (see `ferry_core::ErrorClass`).
pub const ERROR_CLASS: &str = "x-ferry-error-class";
/// On a dead letter: the error message (never a secret).
pub const ERROR: &str = "x-ferry-error";
/// On a dead letter: the field path the error is about, where there is one.
pub const ERROR_PATH: &str = "x-ferry-error-path";
/// On a dead letter or a retry: when the message failed for the first time (RFC 3339, UTC).
pub const FIRST_FAILED_AT: &str = "x-ferry-first-failed-at";
/// On a dead letter or a retry: when the message failed last (RFC 3339, UTC).
pub const FAILED_AT: &str = "x-ferry-failed-at";
/// How many times `ferry replay` moved this message back from a dead-letter queue.
pub const REPLAYS: &str = "x-ferry-replays";
/// On a load dead letter sent back through the transform by `ferry replay --rerender`: the stage
/// whose dead letter it was (`load`), under which its records are counted.
pub const RERENDER_OF: &str = "x-ferry-rerender-of";
/// On a dead letter: the id of the one record it holds.
pub const RECORD_ID: &str = "x-ferry-record-id";
/// Set by quorum queues on redelivery: how many times the broker delivered the message before.
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// A stage that consumes a work queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `ferry transform`: consumes `ferry.<scheme>.transform`.
    Transform,
    /// `ferry load`: consumes `ferry.<scheme>.load`.
    Load,
}

impl Stage {
    /// Both stages, in pipeline order.
    pub const ALL: [Stage; 2] = [Stage::Transform, Stage::Load];

    /// The lower-case name used in queue names, headers and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Transform => "transform",
            Stage::Load => "load",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text given for a stage was neither `transform` nor `load`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?}: expected \"transform\" or \"load\"")]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transform" => Ok(Stage::Transform),
            "load" => Ok(Stage::Load),
            other => Err(UnknownStage(other.to_string())),
        }
    }
}

/// The work queue a stage consumes: `ferry.<scheme>.transform` or `ferry.<scheme>.load`.
pub fn work_queue(scheme: &str, stage: Stage) -> String {
    format!("{QUEUE_PREFIX}.{scheme}.{}", stage.as_str())
}

/// The dead-letter queue of a stage: `ferry.<scheme>.<stage>.dlq`.
pub fn dlq(scheme: &str, stage: Stage) -> String {
    format!("{QUEUE_PREFIX}.{scheme}.{}.dlq", stage.as_str())
}

/// The retry bucket of a stage for one delay: `ferry.<scheme>.<stage>.retry.<n>s`.
pub fn retry_queue(scheme: &str, stage: Stage, delay_secs: u64) -> String {
    format!(
        "{QUEUE_PREFIX}.{scheme}.{}.retry.{delay_secs}s",
        stage.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_the_design() {
        assert_eq!(
            work_queue("refunds", Stage::Transform),
            "ferry.refunds.transform"
        );
        assert_eq!(work_queue("refunds", Stage::Load), "ferry.refunds.load");
        assert_eq!(dlq("refunds", Stage::Load), "ferry.refunds.load.dlq");
        assert_eq!(
            retry_queue("refunds", Stage::Transform, 10),
            "ferry.refunds.transform.retry.10s"
        );
    }

    #[test]
    fn stage_parses_its_own_names_only() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        assert_eq!(
            "Load".parse::<Stage>().unwrap_err().to_string(),
            "unknown stage \"Load\": expected \"transform\" or \"load\""
        );
    }
}
