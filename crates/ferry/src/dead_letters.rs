//! Operations on a scheme's dead letters and queues, audited in the state database: replay
//! (back to the work queue, or `--rerender` through the transform), discard, and teardown.
//!
//! The CLI (`ferry replay`, `ferry discard`, `ferry teardown`) parses its flags into a
//! [`DeadLetterRequest`] and prints the outcome; the console can build the same request. Every
//! operation writes its audit row before it touches a queue and completes it afterwards, so an
//! interrupted pass is still on record (with no end time).

use anyhow::Context as _;
use chrono::Utc;
use ferry_bus::{Bus, DeadLetterAction, DeadLetterPass, QueueDepth, ReplayReport, Stage, Topology};
use ferry_state::{Actor, AuditOutcome, AuditStart, State};

/// One replay, re-render or discard over some stages of a scheme.
#[derive(Clone, Debug)]
pub struct DeadLetterRequest {
    pub scheme: String,
    /// The DLQs to go through, in this order.
    pub stages: Vec<Stage>,
    pub action: DeadLetterAction,
    pub pass: DeadLetterPass,
    pub actor: Actor,
}

/// Who is acting: `by` when given (`--by NAME`, a console login), else the OS user; and the host.
pub fn actor(by: Option<&str>) -> Actor {
    let by = by
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let host = crate::roles::extract::host_name().unwrap_or_else(|| "unknown".to_string());
    Actor { by, host }
}

fn action_name(action: DeadLetterAction) -> &'static str {
    match action {
        DeadLetterAction::Replay => "replay",
        DeadLetterAction::Rerender => "rerender",
        DeadLetterAction::Discard => "discard",
    }
}

/// Run `request` stage by stage, auditing each pass (one audit row per stage). Stops at the first
/// stage that fails, after recording the failure in its audit row.
pub async fn run(
    bus: &Bus,
    state: &State,
    request: &DeadLetterRequest,
) -> anyhow::Result<Vec<ReplayReport>> {
    let filter = request.pass.filter.describe();
    let mut reports = Vec::new();
    for &stage in &request.stages {
        let audit = state
            .audit_start(&AuditStart {
                scheme: &request.scheme,
                stage: stage.as_str(),
                action: action_name(request.action),
                actor: &request.actor,
                filter: &filter,
                dry_run: request.pass.dry_run,
                started_at: Utc::now(),
            })
            .await
            .context("recording the audit of this operation in the state database")?;
        let result = bus
            .dead_letters(&request.scheme, stage, request.action, &request.pass)
            .await;
        let (outcome, finished_at, error) = match &result {
            Ok(report) => (
                AuditOutcome {
                    matched: report.matched as u64,
                    moved: report.moved as u64,
                    discarded: report.discarded as u64,
                },
                report.finished_at,
                None,
            ),
            Err(e) => (AuditOutcome::default(), Utc::now(), Some(e.to_string())),
        };
        state
            .audit_finish(audit, &outcome, finished_at, error.as_deref())
            .await
            .context("completing the audit of this operation")?;
        reports.push(result?);
    }
    Ok(reports)
}

/// What `ferry teardown` found and did.
#[derive(Clone, Debug)]
pub struct Teardown {
    /// Every queue of the scheme that existed, with what it held.
    pub found: Vec<QueueDepth>,
    /// True when they were deleted; false when refused (messages or consumers, without force).
    pub removed: bool,
}

impl Teardown {
    /// Messages in the queues found.
    pub fn messages(&self) -> u64 {
        self.found.iter().map(|q| u64::from(q.messages)).sum()
    }

    /// Consumers attached to the queues found.
    pub fn consumers(&self) -> u64 {
        self.found.iter().map(|q| u64::from(q.consumers)).sum()
    }
}

/// Remove `scheme`'s queues (work, retry, dead letters), refusing while they hold messages or
/// have consumers unless `force`. Audited as action `teardown`, stage `all`.
pub async fn teardown(
    bus: &Bus,
    state: &State,
    scheme: &str,
    topology: &Topology,
    force: bool,
    actor: &Actor,
) -> anyhow::Result<Teardown> {
    let found: Vec<QueueDepth> = bus
        .queue_depths_of(scheme, topology)
        .await?
        .into_iter()
        .filter(|q| q.exists)
        .collect();
    let mut outcome = Teardown {
        found,
        removed: false,
    };
    let refused = !force && (outcome.messages() > 0 || outcome.consumers() > 0);
    if outcome.found.is_empty() || refused {
        return Ok(outcome);
    }
    let audit = state
        .audit_start(&AuditStart {
            scheme,
            stage: "all",
            action: "teardown",
            actor,
            filter: if force { "force" } else { "all" },
            dry_run: false,
            started_at: Utc::now(),
        })
        .await
        .context("recording the audit of this operation in the state database")?;
    let result = bus.delete_queues(scheme, topology).await;
    state
        .audit_finish(
            audit,
            &AuditOutcome {
                matched: outcome.messages(),
                moved: 0,
                discarded: outcome.messages(),
            },
            Utc::now(),
            result.as_ref().err().map(|e| e.to_string()).as_deref(),
        )
        .await
        .context("completing the audit of this operation")?;
    result?;
    outcome.removed = true;
    Ok(outcome)
}
