//! From a scheme's `connection` names to opened sources and sinks.
//!
//! Pools are opened once per connection and shared by every scheme that names it.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::FerryError;
use ferry_core::config::Connection;
use ferry_core::load::LoadedScheme;
use ferry_core::template::Context;
use ferry_sinks::Sink;
use ferry_sources::Source;
use ferry_state::State;
use ferry_state::mysql::redact_url;
use serde_json::Value;
use sqlx::mysql::MySqlPool;
use tokio::sync::Mutex;

use crate::app::App;

pub struct Connections {
    app: Arc<App>,
    state: State,
    pools: Mutex<HashMap<String, MySqlPool>>,
}

impl Connections {
    pub fn new(app: Arc<App>, state: State) -> Connections {
        Connections {
            app,
            state,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn connection(&self, name: &str) -> Result<&Connection, FerryError> {
        self.app.connection(name).ok_or_else(|| {
            FerryError::config(format!("connection `{name}` is not defined in ferry.toml"))
        })
    }

    /// The shared pool of a MySQL connection.
    pub async fn mysql_pool(&self, name: &str) -> Result<MySqlPool, FerryError> {
        let mut pools = self.pools.lock().await;
        if let Some(pool) = pools.get(name) {
            return Ok(pool.clone());
        }
        let Connection::Mysql(conn) = self.connection(name)? else {
            return Err(FerryError::config(format!(
                "connection `{name}` is not a mysql connection"
            )));
        };
        let url = conn.url.expose();
        let pool = ferry_state::mysql::connect(url, conn.max_connections, false)
            .await
            .map_err(|e| {
                let err = ferry_state::mysql::classify_ref(&e);
                let text = format!(
                    "connection `{name}` ({}): {}",
                    redact_url(url),
                    err.message()
                );
                match err.class() {
                    ferry_core::ErrorClass::Config => FerryError::config(text),
                    _ => FerryError::transient(text),
                }
            })?;
        pools.insert(name.to_string(), pool.clone());
        Ok(pool)
    }

    /// Open the scheme's source for one run; `cursor` continues an interrupted run after the page
    /// that saved it.
    pub async fn open_source(
        &self,
        scheme: &LoadedScheme,
        ctx: Context<'static>,
        cursor: Option<&Value>,
    ) -> Result<Box<dyn Source>, FerryError> {
        let name = &scheme.scheme.source.connection;
        let metadata = Arc::new(scheme.scheme.source.metadata.clone());
        let mut source: Box<dyn Source> = match self.connection(name)? {
            Connection::Mysql(_) => {
                let pool = self.mysql_pool(name).await?;
                Box::new(ferry_sources::mysql::MysqlSource::new(pool, metadata, ctx)?)
            }
            other => {
                let client = ferry_sources::vendors::shared_client()?;
                ferry_sources::vendors::open(name, other, metadata, ctx, self.state.clone(), client)
                    .await?
            }
        };
        if let Some(cursor) = cursor {
            source.resume_at(cursor)?;
        }
        Ok(source)
    }

    /// Open the scheme's target.
    pub async fn open_sink(&self, scheme: &LoadedScheme) -> Result<Arc<dyn Sink>, FerryError> {
        let name = &scheme.scheme.target.connection;
        let metadata = &scheme.scheme.target.metadata;
        match self.connection(name)? {
            Connection::Mysql(_) => {
                let pool = self.mysql_pool(name).await?;
                Ok(Arc::new(ferry_sinks::mysql::MysqlSink::new(
                    pool, metadata,
                )?))
            }
            Connection::Noop => Ok(Arc::new(ferry_sinks::noop::NoopSink)),
            Connection::DingTalkRobot(conn) => Ok(Arc::new(ferry_sinks::robot::RobotSink::new(
                name,
                conn,
                metadata,
                self.state.clone(),
                ferry_sinks::robot::http_client()?,
                &scheme.scheme.name,
            )?)),
            other => Err(FerryError::config(format!(
                "connection `{name}`: a {} target is not available in this build",
                other.kind().as_str()
            ))),
        }
    }
}
