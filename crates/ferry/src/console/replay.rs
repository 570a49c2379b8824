//! The console's replay: a thin adapter over the replay `ferry replay` runs, so that a replay
//! from the browser and one from the command line are the same operation (and the same audit).

use ferry_bus::{Bus, DeadLetterAction, DeadLetterFilter, DeadLetterPass, Stage};
use ferry_core::ErrorClass;
use ferry_state::State;
use serde_json::{Value, json};

use crate::dead_letters::{self, DeadLetterRequest};

/// Audited operations shown on the dead-letter page.
const AUDIT_SHOWN: u32 = 20;

/// What the operator asked for on the dead-letter page.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ReplayRequest {
    /// `transform` or `load`; none: both.
    #[serde(default)]
    pub stage: Option<String>,
    /// Only dead letters of this error class.
    #[serde(default)]
    pub error_class: Option<String>,
    /// Only dead letters whose error or payload holds this text.
    #[serde(default)]
    pub text: Option<String>,
    /// Only the dead letter holding this record id.
    #[serde(default)]
    pub record: Option<String>,
    /// Count what would move, move nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl ReplayRequest {
    pub fn stages(&self) -> Result<Vec<Stage>, String> {
        match self.stage.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(vec![Stage::Transform, Stage::Load]),
            Some("transform") => Ok(vec![Stage::Transform]),
            Some("load") => Ok(vec![Stage::Load]),
            Some(other) => Err(format!("unknown stage `{other}` (transform or load)")),
        }
    }

    pub fn class(&self) -> Result<Option<ErrorClass>, String> {
        match self.error_class.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some("transient") => Ok(Some(ErrorClass::Transient)),
            Some("record") => Ok(Some(ErrorClass::Record)),
            Some("config") => Ok(Some(ErrorClass::Config)),
            Some(other) => Err(format!(
                "unknown error class `{other}` (transient, record or config)"
            )),
        }
    }

    /// The dead letters it selects, as the replay library takes them.
    fn filter(&self) -> Result<DeadLetterFilter, String> {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(DeadLetterFilter {
            error_class: self.class()?,
            text: text(&self.text),
            record_ids: text(&self.record).into_iter().collect(),
            ..DeadLetterFilter::default()
        })
    }
}

/// What a replay moved (or would move).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    pub matched: u64,
    pub moved: u64,
}

/// Replay `scheme`'s dead letters as `request` says, on behalf of `user` (a console login).
///
/// A dry run (the count the confirmation shows) only looks and is not audited; a replay goes
/// through [`dead_letters::run`], the same audited operation as `ferry replay`, recorded as done
/// by `<user> (console)`.
pub async fn run(
    bus: &Bus,
    state: &State,
    scheme: &str,
    request: &ReplayRequest,
    user: &str,
) -> anyhow::Result<ReplayOutcome> {
    let stages = request.stages().map_err(anyhow::Error::msg)?;
    let pass = DeadLetterPass {
        filter: request.filter().map_err(anyhow::Error::msg)?,
        dry_run: request.dry_run,
        ..DeadLetterPass::default()
    };
    let reports = if request.dry_run {
        let mut reports = Vec::new();
        for stage in stages {
            reports.push(
                bus.dead_letters(scheme, stage, DeadLetterAction::Replay, &pass)
                    .await?,
            );
        }
        reports
    } else {
        let by = format!("{user} (console)");
        let request = DeadLetterRequest {
            scheme: scheme.to_string(),
            stages,
            action: DeadLetterAction::Replay,
            pass,
            actor: dead_letters::actor(Some(&by)),
        };
        dead_letters::run(bus, state, &request).await?
    };
    Ok(ReplayOutcome {
        matched: reports.iter().map(|r| r.matched as u64).sum(),
        moved: reports.iter().map(|r| r.moved as u64).sum(),
    })
}

/// The latest audited operations on `scheme`'s dead letters (from the console and the command
/// line alike), newest first.
pub async fn recent(state: &State, scheme: &str) -> anyhow::Result<Vec<Value>> {
    let entries = state.audit_entries(scheme, AUDIT_SHOWN).await?;
    Ok(entries
        .iter()
        .map(|a| {
            json!({
                "started_at": a.started_at.to_rfc3339(),
                "finished_at": a.finished_at.map(|t| t.to_rfc3339()),
                "by": a.by, "host": a.host, "action": a.action, "stage": a.stage,
                "filter": a.filter, "dry_run": a.dry_run,
                "matched": a.outcome.matched, "moved": a.outcome.moved,
                "discarded": a.outcome.discarded, "error": a.error,
            })
        })
        .collect())
}
