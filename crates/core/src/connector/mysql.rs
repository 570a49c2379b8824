//! `kind = "mysql"`: a MySQL or MariaDB database, as a source (`select`, paged by offset or
//! keyset) or a target (`execute`, `batchexecute`). Its endpoints run the scheme's `main_sql`.

use serde_json::Value;

use super::{Kind, Opens, Writes, api_one_of, no_connection_lint};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::{BINLOG_API, Role};
use crate::scheme::{Endpoint, Field};
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
        return;
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
