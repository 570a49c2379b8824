//! The factories of every connector kind: what opens a scheme's source or target for a typed
//! [`Connection`].
//!
//! A kind's description (its config, keys, checks and traits) is
//! [`ferry_core::connector`]'s, where `ferry lint` sees it; the code that talks to the service is
//! in `ferry-sources` and `ferry-sinks`. [`factories`] joins the two: one arm per connection
//! variant, with no fallback, so a variant added without its factories does not compile. A kind
//! that is not a source (or not a target) has `None` there, and `ferry lint` has already refused
//! a scheme that uses it so.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use ferry_core::FerryError;
use ferry_core::config::Connection;
use ferry_core::config::RobotFormat;
use ferry_core::files::{Role, SchemeFile};
use ferry_core::template::Context;
use ferry_sinks::Sink;
use ferry_sinks::robot::{FeishuWebhook, RobotSettings, RobotSink, WeComWebhook};
use ferry_sources::Source;
use ferry_sources::http::HttpClient;
use ferry_sources::token::SpecToken;
use ferry_sources::vendors;

use crate::connections::Connections;

/// What a factory is given: the scheme, the connection it names (and that name), and the
/// process's shared pools and clients.
pub struct Opening<'a> {
    pub connections: &'a Connections,
    /// The connection's name in `ferry.toml`.
    pub name: &'a str,
    pub connection: &'a Connection,
    pub scheme: &'a SchemeFile,
}

/// Opens the scheme's source for one run, from the run's template context.
pub type SourceFactory = for<'a> fn(
    &'a Opening<'a>,
    Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>>;

/// Opens the scheme's target.
pub type SinkFactory =
    for<'a> fn(&'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>>;

/// What a connection can open.
pub struct Factories {
    pub source: Option<SourceFactory>,
    pub sink: Option<SinkFactory>,
}

/// The factories of `connection`'s kind.
pub fn factories(connection: &Connection) -> Factories {
    let (source, sink): (Option<SourceFactory>, Option<SinkFactory>) = match connection {
        Connection::Mysql(_) => (Some(mysql_source), Some(mysql_sink)),
        Connection::Http(_) => (Some(http_source), Some(http_sink)),
        Connection::DingTalk(_) => (Some(dingtalk_source), None),
        Connection::Jushuitan(_) => (Some(jushuitan_source), None),
        Connection::Okki(_) => (Some(okki_source), None),
        Connection::Kingdee(_) => (Some(kingdee_source), None),
        Connection::DingTalkRobot(_) => (None, Some(dingtalk_robot_sink)),
        Connection::WeComRobot(_) => (None, Some(wecom_robot_sink)),
        Connection::FeishuRobot(_) => (None, Some(feishu_robot_sink)),
        Connection::Noop => (None, Some(noop_sink)),
    };
    Factories { source, sink }
}

/// The error for a connection named where its kind cannot serve (`ferry lint` refuses it first).
pub fn cannot_open(name: &str, connection: &Connection, role: Role) -> FerryError {
    FerryError::config(format!(
        "connection `{name}`: a {} connection cannot be a {}",
        connection.kind(),
        role.as_str()
    ))
}

impl Opening<'_> {
    fn source_metadata(&self) -> Arc<ferry_core::Metadata> {
        Arc::new(self.scheme.scheme.source.metadata.clone())
    }

    /// The shared HTTP client, with this connection's timeout and rate limit.
    fn http(&self, timeout_secs: u64, rate: Option<u32>) -> Result<HttpClient, FerryError> {
        Ok(HttpClient::new(
            self.name,
            vendors::shared_client()?,
            self.connections.state().clone(),
            Duration::from_secs(timeout_secs),
            rate,
        ))
    }
}

fn mysql_source<'a>(
    o: &'a Opening<'a>,
    ctx: Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>> {
    Box::pin(async move {
        let pool = o.connections.mysql_pool(o.name).await?;
        let metadata = o.source_metadata();
        if metadata.api == ferry_sources::binlog::API {
            let Connection::Mysql(conn) = o.connection else {
                return Err(cannot_open(o.name, o.connection, Role::Source));
            };
            let source =
                ferry_sources::binlog::BinlogSource::new(pool, conn.url.expose(), metadata)?;
            return Ok(Box::new(source) as Box<dyn Source>);
        }
        let source = ferry_sources::mysql::MysqlSource::new(pool, metadata, ctx)?;
        Ok(Box::new(source) as Box<dyn Source>)
    })
}

fn mysql_sink<'a>(o: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    Box::pin(async move {
        let pool = o.connections.mysql_pool(o.name).await?;
        let sink = ferry_sinks::mysql::MysqlSink::new(pool, &o.scheme.scheme.target.metadata)?;
        Ok(Arc::new(sink) as Arc<dyn Sink>)
    })
}

fn http_source<'a>(
    o: &'a Opening<'a>,
    ctx: Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>> {
    Box::pin(async move {
        let Connection::Http(conn) = o.connection else {
            return Err(cannot_open(o.name, o.connection, Role::Source));
        };
        let http = o.http(conn.timeout_secs, conn.rate_per_sec)?;
        ferry_sources::http::open(conn, http, o.source_metadata(), ctx)
    })
}

fn dingtalk_source<'a>(
    o: &'a Opening<'a>,
    ctx: Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>> {
    Box::pin(async move {
        let Connection::DingTalk(conn) = o.connection else {
            return Err(cannot_open(o.name, o.connection, Role::Source));
        };
        let http = o.http(conn.timeout_secs, conn.rate_per_sec)?;
        vendors::dingtalk::open(o.name, conn, http, o.source_metadata(), ctx)
    })
}

fn jushuitan_source<'a>(
    o: &'a Opening<'a>,
    ctx: Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>> {
    Box::pin(async move {
        let Connection::Jushuitan(conn) = o.connection else {
            return Err(cannot_open(o.name, o.connection, Role::Source));
        };
        let http = o.http(conn.timeout_secs, Some(conn.rate_per_sec))?;
        vendors::jushuitan::open(o.name, conn, http, o.source_metadata(), ctx)
    })
}

fn okki_source<'a>(
    o: &'a Opening<'a>,
    ctx: Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>> {
    Box::pin(async move {
        let Connection::Okki(conn) = o.connection else {
            return Err(cannot_open(o.name, o.connection, Role::Source));
        };
        let http = o.http(conn.timeout_secs, conn.rate_per_sec)?;
        vendors::okki::open(o.name, conn, http, o.source_metadata(), ctx)
    })
}

fn kingdee_source<'a>(
    o: &'a Opening<'a>,
    ctx: Context<'static>,
) -> BoxFuture<'a, Result<Box<dyn Source>, FerryError>> {
    Box::pin(async move {
        let Connection::Kingdee(conn) = o.connection else {
            return Err(cannot_open(o.name, o.connection, Role::Source));
        };
        let http = o.http(conn.timeout_secs, conn.rate_per_sec)?;
        vendors::kingdee::open(o.name, conn, http, o.source_metadata(), ctx)
    })
}

fn http_sink<'a>(o: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    Box::pin(async move {
        let Connection::Http(conn) = o.connection else {
            return Err(cannot_open(o.name, o.connection, Role::Target));
        };
        let sink = ferry_sinks::http::HttpSink::new(
            o.name,
            conn,
            &o.scheme.scheme.target.metadata,
            o.connections.state().clone(),
            ferry_sinks::robot::http_client()?,
            &o.scheme.scheme.name,
        )?;
        let sink = match &conn.token {
            Some(spec) => sink.with_auth(Arc::new(TargetToken(SpecToken::new(
                o.name,
                &conn.base_url,
                spec,
                o.connections.state().clone(),
                vendors::shared_client()?,
                Duration::from_secs(conn.timeout_secs),
            )))),
            None => sink,
        };
        Ok(Arc::new(sink) as Arc<dyn Sink>)
    })
}

/// An `http` connection's `[token]`, fetched and cached as its source fetches it, given to its
/// target.
struct TargetToken(SpecToken);

#[async_trait::async_trait]
impl ferry_sinks::http::Auth for TargetToken {
    async fn header(&self) -> Result<(String, ferry_core::config::Secret), FerryError> {
        let (name, value) = self.0.header().await?;
        Ok((name, ferry_core::config::Secret::new(value)))
    }

    async fn refused(&self) -> Result<(), FerryError> {
        self.0.forget().await
    }
}

/// The robot client, the scheme's target metadata, the state database and the scheme's name:
/// what every robot sink opens with; `open` adds the vendor's connection.
fn robot_sink<'a>(
    o: &'a Opening<'a>,
    open: impl FnOnce(
        &ferry_core::Metadata,
        ferry_state::State,
        reqwest::Client,
        &str,
    ) -> Result<RobotSink, FerryError>,
) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    let sink = ferry_sinks::robot::http_client().and_then(|client| {
        open(
            &o.scheme.scheme.target.metadata,
            o.connections.state().clone(),
            client,
            &o.scheme.scheme.name,
        )
    });
    Box::pin(std::future::ready(
        sink.map(|sink| Arc::new(sink) as Arc<dyn Sink>),
    ))
}

/// What a robot connection of any vendor says, for [`RobotSettings`].
fn robot_settings<'a>(
    o: &'a Opening<'a>,
    format: RobotFormat,
    keyword: Option<String>,
    per_minute: u32,
    timeout_secs: u64,
) -> RobotSettings<'a> {
    RobotSettings {
        connection: o.name,
        format: format.into(),
        keyword,
        per_minute,
        timeout_secs,
    }
}

/// A connection that cannot be this kind's target (the factory table says otherwise).
fn not_a_target<'a>(o: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    Box::pin(std::future::ready(Err(cannot_open(
        o.name,
        o.connection,
        Role::Target,
    ))))
}

fn dingtalk_robot_sink<'a>(o: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    let Connection::DingTalkRobot(conn) = o.connection else {
        return not_a_target(o);
    };
    robot_sink(o, |metadata, state, client, scheme| {
        RobotSink::new(o.name, conn, metadata, state, client, scheme)
    })
}

fn wecom_robot_sink<'a>(o: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    let Connection::WeComRobot(conn) = o.connection else {
        return not_a_target(o);
    };
    let settings = robot_settings(o, conn.format, None, conn.per_minute, conn.timeout_secs);
    let webhook = WeComWebhook {
        base_url: conn.base_url.clone(),
        key: conn.key.clone(),
    };
    robot_sink(o, |metadata, state, client, scheme| {
        RobotSink::wecom(settings, &webhook, metadata, state, client, scheme)
    })
}

fn feishu_robot_sink<'a>(o: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    let Connection::FeishuRobot(conn) = o.connection else {
        return not_a_target(o);
    };
    let settings = robot_settings(
        o,
        conn.format,
        conn.keyword.clone(),
        conn.per_minute,
        conn.timeout_secs,
    );
    let webhook = FeishuWebhook {
        base_url: conn.base_url.clone(),
        token: conn.token.clone(),
        secret: conn.secret.clone(),
        per_second: conn.per_second,
    };
    robot_sink(o, |metadata, state, client, scheme| {
        RobotSink::feishu(settings, &webhook, metadata, state, client, scheme)
    })
}

fn noop_sink<'a>(_: &'a Opening<'a>) -> BoxFuture<'a, Result<Arc<dyn Sink>, FerryError>> {
    Box::pin(async { Ok(Arc::new(ferry_sinks::noop::NoopSink) as Arc<dyn Sink>) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind's factories match what its description says it opens.
    #[test]
    fn every_kind_has_the_factories_it_says_it_opens() {
        let toml = r#"
            [broker]
            url = "amqp://guest:guest@127.0.0.1:5672/%2f"
            [state]
            url = "mysql://root@127.0.0.1:3306/ferry"
            [connections.mysql]
            kind = "mysql"
            url = "mysql://root@127.0.0.1:3306/www"
            [connections.http]
            kind = "http"
            base_url = "http://127.0.0.1:1"
            [connections.dingtalk]
            kind = "dingtalk"
            app_key = "k"
            app_secret = "s"
            [connections.dingtalk_robot]
            kind = "dingtalk_robot"
            access_token = "t"
            secret = "s"
            [connections.jushuitan]
            kind = "jushuitan"
            base_url = "http://127.0.0.1:1"
            app_key = "k"
            app_secret = "s"
            access_token = "t"
            [connections.okki]
            kind = "okki"
            base_url = "http://127.0.0.1:1"
            client_id = "c"
            client_secret = "s"
            [connections.kingdee]
            kind = "kingdee"
            base_url = "http://127.0.0.1:1"
            client_id = "c"
            client_secret = "s"
            outer_instance_id = "i"
            [connections.wecom_robot]
            kind = "wecom_robot"
            key = "k"
            [connections.feishu_robot]
            kind = "feishu_robot"
            token = "t"
            secret = "s"
            [connections.noop]
            kind = "noop"
        "#;
        let config = ferry_core::config::FerryConfig::parse(toml, "ferry.toml", &|_| None)
            .unwrap_or_else(|p| panic!("{p:?}"));
        for kind in ferry_core::connector::supported_kinds() {
            let connection = &config.connections[kind.name];
            assert_eq!(connection.kind(), *kind);
            let f = factories(connection);
            assert_eq!(
                f.source.is_some(),
                kind.opens.allows(Role::Source),
                "{kind}"
            );
            assert_eq!(f.sink.is_some(), kind.opens.allows(Role::Target), "{kind}");
        }
        assert_eq!(
            config.connections.len(),
            ferry_core::connector::supported_kinds().len()
        );
    }
}
