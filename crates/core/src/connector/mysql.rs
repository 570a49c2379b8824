//! `kind = "mysql"`: a MySQL or MariaDB database, as a source (`select`, paged by offset or
//! keyset) or a target (`execute`, `batchexecute`). Its endpoints run the scheme's `main_sql`.

use serde_json::Value;

use super::{Kind, Opens, Sends, Writes, api_one_of, no_connection_lint};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::{BINLOG_API, Role};
use crate::scheme::{Endpoint, Field, Metadata};
use crate::sql::NamedSql;

/// MySQL pool size when a connection does not set `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// URL schemes sqlx accepts for MySQL.
const MYSQL_SCHEMES: [&str; 2] = ["mysql", "mariadb"];

/// The warning for offset pagination (the seeds' `limit :limit offset :offset`).
pub const OFFSET_PAGINATION_WARNING: &str = "offset pagination can skip or repeat rows when \
    the table changes during a run; use keyset pagination (`WHERE id > :last_id ORDER BY id \
    LIMIT :limit`, pagination.mode = \"keyset\")";

/// The SQL parameter the keyset paginator binds to the last row's `keyset_field`.
pub const KEYSET_PARAM: &str = "last_id";

/// The request field whose children are the SQL parameters, in the seeds' MySQL metadata.
const MAIN_PARAMS: &str = "main_params";

/// Parameters the MySQL source's paginator binds itself (page size, offset, keyset position).
const PAGINATOR_PARAMS: [&str; 3] = ["limit", "offset", KEYSET_PARAM];

pub static KIND: Kind = Kind {
    name: "mysql",
    opens: Opens::Both,
    rate_limited: false,
    single_active_consumer: false,
    writes: Writes::Statement,
    sends: Sends::Statements,
    sql: true,
    // The last three are the binlog source's (`api: "binlog"`).
    source_keys: &[
        "sync_overlap_secs",
        "cursor_field",
        "cursor_start",
        "tables",
        "snapshot",
        "server_id",
    ],
    target_keys: &[],
    pagination_keys: &["keyset_start", "overlap_secs"],
    read: |r, report| Connection::Mysql(MysqlConnection::read(r, report)),
    api: |role, api| match role {
        Role::Source => api_one_of(api, role, &["select", BINLOG_API]),
        Role::Target => api_one_of(api, role, &["execute", "batchexecute"]),
    },
    check,
    lint,
    lint_connection: no_connection_lint,
};

/// `kind = "mysql"`: a MySQL or MariaDB database, as a source (`select`) or a target
/// (`execute`, `batchexecute`).
#[derive(Clone, Debug, PartialEq)]
pub struct MysqlConnection {
    /// `mysql://user:password@host:3306/database`. Required.
    pub url: Secret,
    /// Largest number of pooled connections (default 10).
    pub max_connections: u32,
}

impl MysqlConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        let url = r.secret(report, "url");
        r.require_url(report, "url", url.expose(), &MYSQL_SCHEMES);
        MysqlConnection {
            url,
            max_connections: r.uint(
                report,
                "max_connections",
                1..=u32::MAX.into(),
                DEFAULT_MAX_CONNECTIONS,
            ),
        }
    }
}

fn check(endpoint: &Endpoint, role: Role, out: &mut Vec<(String, String)>) {
    // The binlog source reads tables, not a statement.
    if role == Role::Source && endpoint.metadata.api == BINLOG_API {
        if let Err(problems) = BinlogOptions::read(&endpoint.metadata) {
            out.extend(problems);
        }
        return;
    }
    if role == Role::Source
        && let Err(problems) = SelectOptions::read(&endpoint.metadata)
    {
        out.extend(problems);
    }
    let at = format!("{}.metadata", role.as_str());
    check_main_sql(endpoint, &at, out);
    if role == Role::Source
        && let Some(mode) = endpoint
            .metadata
            .pagination
            .as_ref()
            .and_then(|p| p.mode.as_deref())
        && matches!(mode, "page" | "cursor")
    {
        out.push((
            format!("{at}.pagination.mode"),
            format!("a MySQL source pages by `keyset`, `offset` or `none`, not `{mode}`"),
        ));
    }
}

/// The `select` source's own options, parsed (the window and cursor options every source reads
/// are [`super::sync::SyncOptions`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SelectOptions {
    /// `pagination.keyset_start`: the key before the first row, for keyset paging (default 0).
    pub keyset_start: Value,
}

impl SelectOptions {
    /// Read a `select` source's options; every problem as (path, message).
    pub fn read(metadata: &Metadata) -> Result<SelectOptions, Vec<(String, String)>> {
        let start = metadata
            .pagination
            .as_ref()
            .and_then(|p| p.extra.get("keyset_start"))
            .filter(|v| !v.is_null());
        match start {
            None => Ok(SelectOptions {
                keyset_start: Value::from(0),
            }),
            Some(v @ (Value::Number(_) | Value::String(_))) => Ok(SelectOptions {
                keyset_start: v.clone(),
            }),
            Some(other) => Err(vec![(
                "source.metadata.pagination.keyset_start".into(),
                format!("expected the key before the first row (a number or text), found {other}"),
            )]),
        }
    }
}

/// The binlog source's options (`api: "binlog"`), parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct BinlogOptions {
    /// `tables`: `(database, table)` in the order the scheme names them; the database is none
    /// for a bare name, which is in the connection's database.
    pub tables: Vec<(Option<String>, String)>,
    /// `snapshot` (default true): copy the tables before following the binlog.
    pub snapshot: bool,
    /// `server_id`: the replica id the source registers with; none: one derived from the tables.
    pub server_id: Option<u32>,
}

impl BinlogOptions {
    /// Read the binlog source's options; every problem as (path, message).
    pub fn read(metadata: &Metadata) -> Result<BinlogOptions, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let at = |key: &str| format!("source.metadata.{key}");
        let names: Vec<Value> = match metadata.extra.get("tables") {
            Some(Value::Array(items)) if !items.is_empty() => items.clone(),
            Some(Value::String(one)) if !one.trim().is_empty() => vec![Value::String(one.clone())],
            None => {
                problems.push((
                    at("tables"),
                    "missing: name the tables to follow, as [\"db.table\", \"table\"] (a bare \
                     name is in the connection's database)"
                        .into(),
                ));
                Vec::new()
            }
            Some(other) => {
                problems.push((
                    at("tables"),
                    format!("expected a list of table names, found {other}"),
                ));
                Vec::new()
            }
        };
        let mut tables = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let Some(text) = name.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
                problems.push((
                    at(&format!("tables[{i}]")),
                    format!("expected a table name, found {name}"),
                ));
                continue;
            };
            tables.push(match text.split_once('.') {
                Some((db, table)) => (
                    Some(db.trim_matches('`').to_string()),
                    table.trim_matches('`').to_string(),
                ),
                None => (None, text.trim_matches('`').to_string()),
            });
        }
        let snapshot = match metadata.extra.get("snapshot") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                problems.push((
                    at("snapshot"),
                    format!("expected true or false, found {other}"),
                ));
                true
            }
        };
        let server_id = match metadata.extra.get("server_id") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let id = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0);
                if id.is_none() {
                    problems.push((
                        at("server_id"),
                        format!("expected a replica id from 1 to 4294967295, found {v}"),
                    ));
                }
                id
            }
        };
        if problems.is_empty() {
            Ok(BinlogOptions {
                tables,
                snapshot,
                server_id,
            })
        } else {
            Err(problems)
        }
    }
}

/// A MySQL endpoint runs `otherRequest`'s `main_sql`: it must be there, be text, and parse.
fn check_main_sql(endpoint: &Endpoint, at: &str, out: &mut Vec<(String, String)>) {
    let meta = &endpoint.metadata;
    let Some((i, entry)) = meta
        .other_request
        .iter()
        .enumerate()
        .find(|(_, f)| f.key() == Some("main_sql"))
    else {
        out.push((
            format!("{at}.otherRequest"),
            format!(
                "api `{}` needs a `main_sql` entry holding the SQL to run",
                meta.api
            ),
        ));
        return;
    };
    let path = format!("{at}.otherRequest[{i}].value");
    match entry.value.as_ref().and_then(Value::as_str) {
        None => out.push((path, "expected the SQL statement as a string".into())),
        Some(sql) => {
            if let Err(message) = NamedSql::parse(sql) {
                out.push((path, format!("main_sql does not parse: {message}")));
            }
        }
    }
}

/// Offset paging on a source; SQL parameters no request field provides, and request fields no
/// parameter uses.
fn lint(endpoint: &Endpoint, role: Role, warn: &mut dyn FnMut(String, String)) {
    if role == Role::Source
        && let Some(path) = offset_pagination(endpoint)
    {
        warn(path, OFFSET_PAGINATION_WARNING.to_string());
    }
    lint_sql(endpoint, role, warn);
}

/// The path that shows a source pages by offset, if it does.
fn offset_pagination(source: &Endpoint) -> Option<String> {
    let meta = &source.metadata;
    match meta.pagination.as_ref().and_then(|p| p.mode.as_deref()) {
        Some("offset") => return Some("source.metadata.pagination.mode".into()),
        Some(_) => return None,
        None => {}
    }
    if let Some((i, sql)) = main_sql(&source.metadata.other_request)
        && (uses_offset(sql) || sql.contains("PAGINATION_START_ROW"))
    {
        return Some(format!("source.metadata.otherRequest[{i}].value"));
    }
    None
}

/// SQL parameters no request field provides, and request fields no parameter uses.
fn lint_sql(endpoint: &Endpoint, role: Role, warn: &mut dyn FnMut(String, String)) {
    let meta = &endpoint.metadata;
    let Some((sql_index, sql)) = main_sql(&meta.other_request) else {
        return;
    };
    let binds = sql_binds(sql);
    let (fields, fields_path) = param_fields(&meta.request);
    let keyset = role == Role::Source
        && meta.pagination.as_ref().and_then(|p| p.mode.as_deref()) == Some("keyset");
    let sql_path = format!("{}.metadata.otherRequest[{sql_index}].value", role.as_str());
    for bind in &binds {
        let provided = fields.iter().any(|(_, f)| f.key() == Some(bind.as_str()))
            || (role == Role::Source && PAGINATOR_PARAMS.contains(&bind.as_str()));
        if !provided {
            warn(
                sql_path.clone(),
                format!("no request field provides SQL parameter `:{bind}`"),
            );
        }
    }
    if keyset && !binds.iter().any(|b| b == KEYSET_PARAM) {
        warn(
            sql_path.clone(),
            format!(
                "keyset pagination binds `:{KEYSET_PARAM}` to the last row's keyset_field, but \
                 main_sql does not use it, so every page would be the first"
            ),
        );
    }
    for (i, field) in fields {
        if let Some(key) = field.key()
            && !binds.iter().any(|b| b == key)
        {
            warn(
                format!("{}.metadata.{fields_path}[{i}]", role.as_str()),
                format!("request field `{key}` is not used by main_sql (no `:{key}`)"),
            );
        }
    }
}

/// The fields that bind SQL parameters: `main_params`' children where there is one (seeds 000,
/// 001), else the request's top level (seed 002's `batchexecute`); and their path.
fn param_fields(request: &[Field]) -> (Vec<(usize, &Field)>, String) {
    match request.iter().position(|f| f.key() == Some(MAIN_PARAMS)) {
        Some(i) => (
            request[i].children.iter().enumerate().collect(),
            format!("request[{i}].children"),
        ),
        None => (request.iter().enumerate().collect(), "request".into()),
    }
}

/// The `main_sql` entry of `otherRequest`: its index and text.
pub(crate) fn main_sql(other_request: &[Field]) -> Option<(usize, &str)> {
    other_request
        .iter()
        .enumerate()
        .find(|(_, f)| f.key() == Some("main_sql"))
        .and_then(|(i, f)| f.value.as_ref()?.as_str().map(|sql| (i, sql)))
}

/// The `:name` parameters of `sql`, each once, in order of first use; none when the SQL does
/// not parse (`files::read` reported that already).
pub fn sql_binds(sql: &str) -> Vec<String> {
    let mut binds: Vec<String> = Vec::new();
    for name in NamedSql::parse(sql).map(|n| n.params).unwrap_or_default() {
        if !binds.contains(&name) {
            binds.push(name);
        }
    }
    binds
}

/// Whether `sql` pages by offset through parameters: `OFFSET :x`, or MySQL's `LIMIT :x, :y`. Read from the parsed
/// statement, where each parameter is a `?` and quoted text cannot hold one.
fn uses_offset(sql: &str) -> bool {
    let Ok(named) = NamedSql::parse(sql) else {
        return false;
    };
    let words = named.text.to_lowercase();
    let words: Vec<&str> = words
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let limit_pair = named
        .text
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
        .contains("limit ?,");
    limit_pair || words.windows(2).any(|pair| pair == ["offset", "?"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_are_listed_once_and_skip_quoted_text() {
        let sql = "select id, 'a :nope' from t where created_at >= '{{DAYS_AGO_1|datetime}} 00:00:00' \
                   and x = :x_1 and v = :汉字 and y = :x_1 limit :limit";
        assert_eq!(sql_binds(sql), ["x_1", "汉字", "limit"]);
        assert!(sql_binds("select 'unterminated from t where x = :x").is_empty());
    }

    fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn binlog_options_name_every_bad_value() {
        let options = BinlogOptions::read(&metadata(serde_json::json!({
            "api": "binlog", "tables": ["订单", "other.`items`"], "snapshot": false})))
        .unwrap();
        assert_eq!(
            options.tables,
            [
                (None, "订单".to_string()),
                (Some("other".to_string()), "items".to_string())
            ]
        );
        assert!(!options.snapshot);
        assert_eq!(options.server_id, None);
        let problems = BinlogOptions::read(&metadata(serde_json::json!({
            "api": "binlog", "tables": ["a", 7], "snapshot": "yes", "server_id": 0})))
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "source.metadata.tables[1]",
                "source.metadata.snapshot",
                "source.metadata.server_id"
            ]
        );
    }

    #[test]
    fn keyset_start_is_a_number_or_text() {
        let read = |v: Value| {
            SelectOptions::read(&metadata(
                serde_json::json!({"api": "select", "pagination": {"keyset_start": v}}),
            ))
        };
        assert_eq!(read(Value::Null).unwrap().keyset_start, Value::from(0));
        assert_eq!(read(Value::from("A-1")).unwrap().keyset_start, "A-1");
        assert_eq!(
            read(serde_json::json!([1])).unwrap_err()[0].0,
            "source.metadata.pagination.keyset_start"
        );
    }

    #[test]
    fn offset_paging_is_recognised_in_both_spellings() {
        assert!(uses_offset(
            "select * from www_contact where created_at >= '{{DAYS_AGO_1|datetime}}' limit :limit offset :offset"
        ));
        assert!(uses_offset("SELECT * FROM t LIMIT :start, :size"));
        assert!(!uses_offset(
            "select * from t where id > :last_id order by id limit :limit"
        ));
        assert!(!uses_offset("select 'offset :x' from t limit 10 offset 20"));
    }
}
