//! `ferry lint`: what is legal but risky in a checked configuration, found without touching any
//! service.
//!
//! [`crate::files::read`] already refused what cannot work (its problems are lint errors too);
//! [`lint`] looks at a config that reads without errors and warns about what can lose, repeat or leak data:
//! `idCheck` with no record id, a target that writes a record twice when it comes back, a
//! platform marker that disagrees with the endpoint, pasted metadata keys that Ferry keeps but
//! does not use, and each kind's own warnings ([`crate::connector::Kind`]: offset pagination and
//! SQL parameters for MySQL, an unsigned robot, ...). Every warning names the file and the key
//! path.

use crate::config::Connection;
use crate::connector::{Writes, supported_kinds};
use crate::files::{Files, Role};
use crate::problem::Problem;
use crate::scheme::{Endpoint, Scheme};

pub use crate::connector::mysql::{KEYSET_PARAM, OFFSET_PAGINATION_WARNING, sql_binds};

/// Every warning about `files`, config first, then schemes by name.
pub fn lint(files: &Files) -> Vec<Problem> {
    let mut out = Vec::new();
    let config_file = files.config_name();
    if files.schemes.is_empty() {
        out.push(Problem::warning(
            &config_file,
            "schemes",
            format!(
                "no scheme file matches `{}`, so Ferry has nothing to run",
                files.config.schemes
            ),
        ));
    }
    for (name, connection) in &files.config.connections {
        for message in (connection.kind().lint_connection)(connection) {
            out.push(Problem::warning(
                &config_file,
                crate::config::read::join("connections", name),
                message,
            ));
        }
    }
    for scheme_file in &files.schemes {
        let file = files.display_name(&scheme_file.file);
        let mut warn = |path: String, message: String| {
            out.push(Problem::warning(&file, path, message));
        };
        lint_scheme(files, &scheme_file.scheme, &mut warn);
    }
    out
}

fn lint_scheme(files: &Files, scheme: &Scheme, warn: &mut dyn FnMut(String, String)) {
    let source = &scheme.source.metadata;
    if (source.id_check || scheme.target.metadata.id_check) && source.id.is_none() {
        warn(
            "source.metadata.id".into(),
            "`idCheck` is on but the source names no `id` field, so a record cannot be \
             recognised when it comes back; set `id` to the field that identifies a record"
                .into(),
        );
    }
    if let Some(message) = duplicate_risk(files, &scheme.target) {
        warn("target.metadata.idCheck".into(), message);
    }
    for (endpoint, role) in [
        (&scheme.source, Role::Source),
        (&scheme.target, Role::Target),
    ] {
        let at = |key: &str| format!("{}.{key}", role.as_str());
        let kind = files.connection(&endpoint.connection).map(Connection::kind);
        if let Some(kind) = kind {
            (kind.lint)(endpoint, role, warn);
        }
        let meta = &endpoint.metadata;
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
        let read_by_kind = kind.map_or(&[][..], |k| k.keys(role));
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
            // Paging keys are one vocabulary over every source kind: one a kind does not read
            // (`keyset_start` on an API) is left alone, as a scheme moved between kinds keeps it.
            let read_by_some_kind = |key: &str| {
                supported_kinds()
                    .iter()
                    .any(|k| k.pagination_keys(Role::Source).contains(&key))
            };
            for key in pagination
                .extra
                .keys()
                .filter(|k| !read_by_some_kind(k.as_str()))
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
fn duplicate_risk(files: &Files, target: &Endpoint) -> Option<String> {
    let meta = &target.metadata;
    if meta.id_check {
        return None;
    }
    match files.connection(&target.connection)?.kind().writes {
        Writes::Ledger => Some(
            "`idCheck` is off: a record that comes back (a retry, a replay, the next run) is \
             pushed to the group again; set `idCheck: true` so the ledger skips what was pushed"
                .into(),
        ),
        Writes::Statement => {
            let (_, sql) = crate::connector::mysql::main_sql(&meta.other_request)?;
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
        Writes::Nothing | Writes::Discards => None,
    }
}
