//! Alerts: tell people when something breaks, and once more when it is fixed.
//!
//! `[alerts]` in `ferry.toml` names a robot connection (`dingtalk_robot`, `wecom_robot` or
//! `feishu_robot`) and/or a webhook URL. The roles
//! call [`Alerts::raise`] where a failure becomes known (an extraction that failed, a stage that
//! stopped on a configuration error, dead letters past the threshold, the broker unreachable) and
//! [`Alerts::clear`] where it is seen gone (a later extraction that succeeds, a stage that handles
//! a message again, dead letters under the threshold, the broker back).
//!
//! The open alerts live in the state database, one per (scheme, kind): whichever replica opens
//! the row sends the alert, whichever removes it sends the one "recovered" message, so three
//! loaders seeing the same failure send one alert. Robot messages take a slot of the robot's
//! shared limiter (`robot:<connection>`, the one the robot target uses), so alerts never push a
//! robot over its 20 messages a minute, whatever the number of replicas.
//!
//! Sending happens on tasks of its own: a slow or refusing robot never holds up a message, and a
//! delivery failure is logged (`could not deliver an alert`), never raised. Commands that exit on
//! their own ([`Alerts::flush`]) wait briefly for what is still being sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::config::{AlertsConfig, FerryConfig, Secret};
use ferry_sinks::robot::RobotSink;
use ferry_state::State;
use serde_json::json;
use tokio::task::JoinHandle;

/// How often a throttled alert is tried again, a robot window apart, before it is given up.
const ALERT_THROTTLE_RETRIES: usize = 3;
/// How long [`Alerts::flush`] waits for deliveries still under way.
pub const FLUSH_SECS: u64 = 30;

/// What an alert is about. With the scheme, it identifies an open alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A run's extraction failed (other than on a configuration error or a failing source).
    RunFailed,
    /// A stage of the scheme stopped on a configuration error; its messages wait in their queue.
    Stopped,
    /// The scheme's dead letters reached `[alerts] dead_letters`.
    DeadLetters,
    /// The source kept failing past its retries.
    SourceFailing,
    /// RabbitMQ unreachable for longer than `[alerts] broker_down_secs`.
    BrokerDown,
}

impl Kind {
    /// The name kept in the state database and sent in webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RunFailed => "run_failed",
            Kind::Stopped => "stopped",
            Kind::DeadLetters => "dead_letters",
            Kind::SourceFailing => "source_failing",
            Kind::BrokerDown => "broker_down",
        }
    }

    /// What it is, in the words of the message.
    fn label(self) -> &'static str {
        match self {
            Kind::RunFailed => "运行失败",
            Kind::Stopped => "配置错误，已停止",
            Kind::DeadLetters => "死信超过阈值",
            Kind::SourceFailing => "数据源持续失败",
            Kind::BrokerDown => "RabbitMQ 无法连接",
        }
    }
}

/// One alert: what, where, and the lines of its message.
#[derive(Clone, Debug)]
pub struct Alert {
    /// The scheme; empty for the whole process (the broker).
    pub scheme: String,
    pub kind: Kind,
    /// The stage a stop happened in (`extract`, `transform`, `load`); empty otherwise.
    pub stage: String,
    /// `label：value` lines: counts, the error, the command that fixes it.
    pub lines: Vec<(String, String)>,
}

impl Alert {
    pub fn new(scheme: &str, kind: Kind) -> Alert {
        Alert {
            scheme: scheme.to_string(),
            kind,
            stage: String::new(),
            lines: Vec::new(),
        }
    }

    pub fn stage(mut self, stage: &str) -> Alert {
        self.stage = stage.to_string();
        self
    }

    pub fn line(mut self, label: &str, value: impl Into<String>) -> Alert {
        self.lines.push((label.to_string(), value.into()));
        self
    }

    fn title(&self) -> String {
        format!(
            "【Ferry 告警】{}：{}",
            scheme_label(&self.scheme),
            self.kind.label()
        )
    }

    /// The message text (markdown, readable as plain text too).
    fn text(&self) -> String {
        let mut text = format!("#### {}\n\n", self.title());
        if !self.scheme.is_empty() {
            text.push_str(&format!("- 方案：{}\n", self.scheme));
        }
        if !self.stage.is_empty() {
            text.push_str(&format!("- 阶段：{}\n", self.stage));
        }
        for (label, value) in &self.lines {
            text.push_str(&format!("- {label}：{value}\n"));
        }
        text
    }
}

fn scheme_label(scheme: &str) -> String {
    if scheme.is_empty() {
        "所有方案".to_string()
    } else {
        format!("方案 {scheme}")
    }
}

/// The alerts of this process; cheap to clone. Without `[alerts]` every call does nothing.
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    state: State,
    config: AlertsConfig,
    robot: Option<RobotSink>,
    webhook: Option<(Secret, reqwest::Client)>,
    /// Deliveries under way, for [`Alerts::flush`].
    sending: Mutex<Vec<JoinHandle<()>>>,
    /// Whether this process last saw each alert open, so that its log says each change once.
    seen: Mutex<HashMap<(String, Kind), bool>>,
}

impl Alerts {
    /// The alerts `config` asks for, kept in `state`. A robot connection that cannot be opened is
    /// logged and left out: alerts never stop the pipeline.
    pub fn new(config: &FerryConfig, state: State) -> Alerts {
        let Some(alerts) = &config.alerts else {
            return Alerts::default();
        };
        let client = match ferry_sinks::robot::http_client() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "alerts are off: no HTTP client");
                return Alerts::default();
            }
        };
        // `ferry lint` and the config check refuse a connection that is not a robot; such a
        // one gives no poster here.
        let robot = alerts.robot.as_ref().and_then(|name| {
            ferry_sinks::robot::robot_poster(
                name,
                config.connections.get(name)?,
                state.clone(),
                client.clone(),
                ALERT_THROTTLE_RETRIES,
            )
        });
        let webhook = alerts.webhook.clone().map(|url| (url, client));
        Alerts {
            inner: Some(Arc::new(Inner {
                state,
                config: alerts.clone(),
                robot,
                webhook,
                sending: Mutex::new(Vec::new()),
                seen: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// `[alerts] dead_letters`, when alerts are on.
    pub fn dead_letter_threshold(&self) -> Option<u64> {
        self.inner.as_ref().map(|i| i.config.dead_letters)
    }

    /// `[alerts] broker_down_secs`, when alerts are on.
    pub fn broker_down_after(&self) -> Option<Duration> {
        self.inner
            .as_ref()
            .map(|i| Duration::from_secs(i.config.broker_down_secs))
    }

    /// Raise `alert`: sent if no replica has it open already.
    pub fn raise(&self, alert: Alert) {
        let Some(inner) = &self.inner else { return };
        let inner2 = Arc::clone(inner);
        let task = tokio::spawn(async move {
            let inner = inner2;
            let (scheme, kind) = (alert.scheme.as_str(), alert.kind.as_str());
            let text = alert.text();
            let opened = match inner
                .state
                .open_alert(scheme, kind, &alert.stage, &text)
                .await
            {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::warn!(scheme, kind, error = %e, "could not record an alert in the state database; not sent");
                    return;
                }
            };
            let first_seen = inner.saw(&alert.scheme, alert.kind, true);
            if !opened {
                if first_seen {
                    tracing::info!(
                        scheme,
                        kind,
                        "alert already open (another replica sent it); not sent again"
                    );
                }
                return;
            }
            tracing::warn!(scheme, kind, "alert raised; sending it");
            inner.deliver(&alert, "firing", &alert.title(), &text).await;
        });
        inner.track(task);
    }

    /// Clear the alert (`scheme`, `kind`) if it is open (with `stage`: only one raised there):
    /// the one replica that closes it sends a "recovered" message.
    pub fn clear(&self, scheme: &str, kind: Kind, stage: Option<&str>, detail: Option<String>) {
        let Some(inner) = &self.inner else { return };
        let inner2 = Arc::clone(inner);
        let (scheme, stage) = (scheme.to_string(), stage.map(str::to_string));
        let task = tokio::spawn(async move {
            let inner = inner2;
            let closed = match inner
                .state
                .close_alert(&scheme, kind.as_str(), stage.as_deref())
                .await
            {
                Ok(closed) => closed,
                Err(e) => {
                    tracing::warn!(scheme, kind = kind.as_str(), error = %e, "could not clear an alert in the state database");
                    return;
                }
            };
            let first_seen = inner.saw(&scheme, kind, false);
            let Some(raised_at) = closed else {
                if first_seen {
                    tracing::debug!(scheme, kind = kind.as_str(), "no open alert to clear");
                }
                return;
            };
            let minutes = (chrono::Utc::now() - raised_at).num_minutes().max(0);
            let title = format!("【Ferry 恢复】{}：{}", scheme_label(&scheme), kind.label());
            let mut text = format!("#### {title}\n\n");
            if !scheme.is_empty() {
                text.push_str(&format!("- 方案：{scheme}\n"));
            }
            text.push_str(&format!(
                "- 状态：已恢复（告警于 {} UTC 发出，持续约 {minutes} 分钟）\n",
                raised_at.format("%Y-%m-%d %H:%M:%S")
            ));
            if let Some(detail) = detail {
                text.push_str(&format!("- 现状：{detail}\n"));
            }
            tracing::info!(
                scheme,
                kind = kind.as_str(),
                "alert cleared; sending the recovery"
            );
            let alert = Alert::new(&scheme, kind);
            inner.deliver(&alert, "resolved", &title, &text).await;
        });
        inner.track(task);
    }

    /// Wait (at most [`FLUSH_SECS`]) for the alerts still being sent, before the process exits.
    pub async fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(FLUSH_SECS);
        loop {
            let pending: Vec<JoinHandle<()>> = match inner.sending.lock() {
                Ok(mut sending) => sending.drain(..).collect(),
                Err(_) => return,
            };
            if pending.is_empty() {
                return;
            }
            for task in pending {
                if tokio::time::timeout_at(deadline, task).await.is_err() {
                    tracing::warn!("alerts still being sent at exit were abandoned");
                    return;
                }
            }
        }
    }
}

impl Inner {
    fn track(&self, task: JoinHandle<()>) {
        if let Ok(mut sending) = self.sending.lock() {
            sending.retain(|t| !t.is_finished());
            sending.push(task);
        }
    }

    /// Note that this process saw (`scheme`, `kind`) `open` or not; true when that changed.
    fn saw(&self, scheme: &str, kind: Kind, open: bool) -> bool {
        match self.seen.lock() {
            Ok(mut seen) => seen.insert((scheme.to_string(), kind), open) != Some(open),
            Err(_) => true,
        }
    }

    /// Send to the robot and the webhook; failures are logged, never returned.
    async fn deliver(&self, alert: &Alert, status: &str, title: &str, text: &str) {
        let (scheme, kind) = (alert.scheme.as_str(), alert.kind.as_str());
        if let Some(robot) = &self.robot {
            match robot.post(title, text).await {
                Ok(()) => tracing::info!(
                    scheme,
                    kind,
                    status,
                    "alert delivered to the DingTalk robot"
                ),
                Err(e) => {
                    tracing::error!(scheme, kind, status, error = %e, "could not deliver an alert to the DingTalk robot; the pipeline goes on")
                }
            }
        }
        if let Some((url, client)) = &self.webhook {
            let body = json!({
                "source": "ferry",
                "status": status,
                "scheme": scheme,
                "kind": kind,
                "stage": alert.stage,
                "title": title,
                "text": text,
                "at": chrono::Utc::now().to_rfc3339(),
            });
            let sent = client
                .post(url.expose())
                .timeout(Duration::from_secs(self.config.timeout_secs))
                .json(&body)
                .send()
                .await;
            // The URL may hold a token: name the host only.
            let host = ferry_core::redact::host(url.expose());
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    tracing::info!(scheme, kind, status, "alert delivered to the webhook")
                }
                Ok(answer) => {
                    tracing::error!(scheme, kind, status, webhook = %host, http_status = %answer.status(), "the alert webhook refused an alert; the pipeline goes on")
                }
                Err(e) => {
                    tracing::error!(scheme, kind, status, webhook = %host, error = %e.without_url(), "could not deliver an alert to the webhook; the pipeline goes on")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_reads_in_chinese_with_the_scheme_the_counts_and_the_command() {
        let alert = Alert::new("退款-refunds", Kind::DeadLetters)
            .line("死信", "load 12 条（阈值 10）")
            .line("处理", "ferry replay --scheme 退款-refunds --stage load");
        assert_eq!(
            alert.title(),
            "【Ferry 告警】方案 退款-refunds：死信超过阈值"
        );
        assert_eq!(
            alert.text(),
            "#### 【Ferry 告警】方案 退款-refunds：死信超过阈值\n\n- 方案：退款-refunds\n\
             - 死信：load 12 条（阈值 10）\n- 处理：ferry replay --scheme 退款-refunds --stage load\n"
        );
        assert_eq!(
            Alert::new("", Kind::BrokerDown).title(),
            "【Ferry 告警】所有方案：RabbitMQ 无法连接"
        );
    }
}
