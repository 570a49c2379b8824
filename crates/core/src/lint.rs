//! `ferry lint`: what is legal but risky in a loaded configuration, found without touching any
//! service.
//!
//! [`crate::load::load`] already refused what cannot work (its problems are lint errors too);
//! [`lint`] looks at a config that loads and warns about what can lose, repeat or leak data:
//! offset pagination over a changing table, `idCheck` with no record id, SQL parameters and
//! request fields that do not meet, an unsigned DingTalk robot, and pasted metadata keys that
//! Ferry keeps but does not use. Every warning names the file and the key path.

use crate::config::{Connection, ConnectionKind};
use crate::load::{Loaded, Role};
use crate::problem::Problem;
use crate::scheme::{Endpoint, Field, Scheme};
use crate::sql::NamedSql;

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

/// Metadata keys outside the model that every HTTP source (`http` and the vendor kinds) reads.
const HTTP_SOURCE_EXTRAS: &[&str] = &[
    "body_format",
    "query_fields",
    "json_text_fields",
    "sync_overlap_secs",
    "cursor_field",
    "cursor_start",
    "lookups",
];

/// Metadata keys outside the model that a kind's source or sink reads itself (from
/// `Metadata::extra`), so they are not "kept but not used". A source or sink that starts reading
/// a new key adds it here.
pub const KIND_EXTRAS: &[(ConnectionKind, Role, &[&str])] = &[
    (
        ConnectionKind::DingTalkRobot,
        Role::Target,
        &[
            "format",
            "message_template",
            "at_mobiles",
            "at_all",
            "update_mark",
            "repeat_mark",
            "window_secs",
            "throttle_retries",
        ],
    ),
    (
        ConnectionKind::Http,
        Role::Source,
        &[
            "body_format",
            "query_fields",
            "json_text_fields",
            "sync_overlap_secs",
            "cursor_field",
            "cursor_start",
            "lookups",
            "ok_codes",
            "code_at",
            "message_at",
        ],
    ),
    (
        ConnectionKind::Mysql,
        Role::Source,
        // The last three are the binlog source's (`api: "binlog"`).
        &[
            "sync_overlap_secs",
            "cursor_field",
            "cursor_start",
            "tables",
            "snapshot",
            "server_id",
        ],
    ),
    (ConnectionKind::DingTalk, Role::Source, HTTP_SOURCE_EXTRAS),
    (ConnectionKind::Jushuitan, Role::Source, HTTP_SOURCE_EXTRAS),
    (ConnectionKind::Okki, Role::Source, HTTP_SOURCE_EXTRAS),
    (ConnectionKind::Kingdee, Role::Source, HTTP_SOURCE_EXTRAS),
];

/// Pagination keys outside the model that a source reads: `keyset_start` (the MySQL source's
/// first `:last_id`) and the HTTP paginator's settings.
const USED_PAGINATION_EXTRAS: &[&str] = &[
    "keyset_start",
    "start_page",
    "cursor_at",
    "cursor_param",
    "has_next_at",
    "total_at",
    "short_page_ends",
    "overlap_secs",
];

/// Every warning about `loaded`, config first, then schemes by name.
pub fn lint(loaded: &Loaded) -> Vec<Problem> {
    let mut out = Vec::new();
    let config_file = loaded.config_name();
    if loaded.schemes.is_empty() {
        out.push(Problem::warning(
            &config_file,
            "schemes",
            format!(
                "no scheme file matches `{}`, so Ferry has nothing to run",
                loaded.config.schemes
            ),
        ));
    }
    for (name, connection) in &loaded.config.connections {
        if let Connection::DingTalkRobot(robot) = connection
            && robot.secret.is_none()
        {
            out.push(Problem::warning(
                &config_file,
                crate::config::read::join("connections", name),
                "the robot has no signing `secret`: anyone who learns its access token can \
                 post to the group; turn on signing (加签) for the robot and set `secret`",
            ));
        }
    }
    for loaded_scheme in &loaded.schemes {
        let file = loaded.display_name(&loaded_scheme.file);
        let mut warn = |path: String, message: String| {
            out.push(Problem::warning(&file, path, message));
        };
        lint_scheme(loaded, &loaded_scheme.scheme, &mut warn);
    }
    out
}

fn lint_scheme(loaded: &Loaded, scheme: &Scheme, warn: &mut dyn FnMut(String, String)) {
    let source = &scheme.source.metadata;
    // Keyset advice is for SQL: an HTTP API pages the way it pages.
    let mysql_source = matches!(
        loaded.connection(&scheme.source.connection),
        Some(Connection::Mysql(_))
    );
    if mysql_source && let Some(path) = offset_pagination(&scheme.source) {
        warn(path, OFFSET_PAGINATION_WARNING.to_string());
    }
    if (source.id_check || scheme.target.metadata.id_check) && source.id.is_none() {
        warn(
            "source.metadata.id".into(),
            "`idCheck` is on but the source names no `id` field, so a record cannot be \
             recognised when it comes back; set `id` to the field that identifies a record"
                .into(),
        );
    }
    if let Some(message) = duplicate_risk(loaded, &scheme.target) {
        warn("target.metadata.idCheck".into(), message);
    }
    for (endpoint, role) in [
        (&scheme.source, Role::Source),
        (&scheme.target, Role::Target),
    ] {
        let at = |key: &str| format!("{}.{key}", role.as_str());
        if matches!(
            loaded.connection(&endpoint.connection),
            Some(Connection::Mysql(_))
        ) {
            lint_sql(endpoint, role, warn);
        }
        let meta = &endpoint.metadata;
        if let Some(Connection::DingTalkRobot(_)) = loaded.connection(&endpoint.connection)
            && let Some(i) = meta
                .request
                .iter()
                .position(|f| f.key() == Some("access_token"))
        {
            warn(
                at(&format!("metadata.request[{i}]")),
                "the robot's access token belongs in ferry.toml (the connection's \
                 `access_token`); as a request field it is sent as message text"
                    .into(),
            );
        }
        if let Some(effect) = &meta.effect {
            let expected = match role {
                Role::Source => "QUERY",
                Role::Target => "EXECUTE",
            };
            if !effect.eq_ignore_ascii_case(expected) {
                warn(
                    at("metadata.effect"),
                    format!(
                        "`effect` is `{effect}` but this is the {}, which the platform marks \
                         `{expected}`; Ferry goes by position and ignores it",
                        role.as_str()
                    ),
                );
            }
        }
        let kind = loaded
            .connection(&endpoint.connection)
            .map(Connection::kind);
        let read_by_kind: &[&str] = KIND_EXTRAS
            .iter()
            .find(|(k, r, _)| Some(*k) == kind && *r == role)
            .map_or(&[], |(_, _, keys)| keys);
        for key in meta
            .extra
            .keys()
            .filter(|k| !read_by_kind.contains(&k.as_str()))
        {
            warn(
                at(&format!("metadata.{key}")),
                format!("`{key}` is kept but not used by Ferry"),
            );
        }
        if let Some(pagination) = &meta.pagination {
            for key in pagination
                .extra
                .keys()
                .filter(|k| !USED_PAGINATION_EXTRAS.contains(&k.as_str()))
            {
                warn(
                    at(&format!("metadata.pagination.{key}")),
                    format!("`{key}` is kept but not used by Ferry"),
                );
            }
        }
    }
}

/// Why a target without `idCheck` would write a record twice when it comes back (a retry, a
/// replay, the next run over the same window), if it would.
fn duplicate_risk(loaded: &Loaded, target: &Endpoint) -> Option<String> {
    let meta = &target.metadata;
    if meta.id_check {
        return None;
    }
    match loaded.connection(&target.connection)? {
        Connection::DingTalkRobot(_) => Some(
            "`idCheck` is off: a record that comes back (a retry, a replay, the next run) is \
             pushed to the group again; set `idCheck: true` so the ledger skips what was pushed"
                .into(),
        ),
        Connection::Mysql(_) => {
            let (_, sql) = main_sql(&meta.other_request)?;
            let sql = sql.to_lowercase();
            let words: Vec<&str> = sql.split_whitespace().collect();
            let plain_insert = words.first() == Some(&"insert")
                && words.get(1) != Some(&"ignore")
                && !words.windows(3).any(|w| w == ["on", "duplicate", "key"]);
            plain_insert.then(|| {
                "`idCheck` is off and main_sql is a plain INSERT: a record that comes back (a \
                 retry, a replay) is inserted again or fails as a duplicate; set `idCheck: true` \
                 (with a unique key on the id) or write `ON DUPLICATE KEY UPDATE`"
                    .into()
            })
        }
        _ => None,
    }
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
fn main_sql(other_request: &[Field]) -> Option<(usize, &str)> {
    other_request
        .iter()
        .enumerate()
        .find(|(_, f)| f.key() == Some("main_sql"))
        .and_then(|(i, f)| f.value.as_ref()?.as_str().map(|sql| (i, sql)))
}

/// The `:name` parameters of `sql`, each once, in order of first use; none when the SQL does
/// not parse (`load` reported that already).
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
