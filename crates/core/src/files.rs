//! The configuration files: `ferry.toml` plus every scheme file it points at, read and checked
//! against each other. ("load" is the loader role's word, so reading config is called reading.)
//!
//! [`read`] is what every role calls at start-up and what `ferry lint` runs first. It reads the
//! config ([`FerryConfig::parse`]), finds the scheme files through its `schemes` glob, and checks
//! each one in three passes, collecting every problem rather than stopping at the first:
//! 1. JSON syntax (the error's line, column and the JSON path open there), then `${VAR}` and
//!    `${VAR:-default}` in every string value, with `ferry.toml`'s rules ([`crate::config::env`]);
//! 2. shape: unknown, missing and mistyped keys, with their JSON paths ([`shape`]);
//! 3. meaning: the name, the time zone, the schedule, that connections exist and that each
//!    `api` is one its connection's kind offers, page sizes.
//!
//! Names in problems are relative to the directory of `ferry.toml` (`schemes/refunds.json`).

pub(crate) mod shape;
mod syntax;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::Value;

use crate::config::env::substitute;
use crate::config::{Connection, FerryConfig, Secret};
use crate::connector::misspelt_keys;
use crate::connector::sync::SyncOptions;
use crate::mapping::{Mapper, check_format_rules, placeholders_of};
use crate::problem::Problem;
use crate::scheme::{Endpoint, Metadata, Scheme};
use crate::sql::NamedSql;
use crate::template::{
    FERRY_VARIABLE_LIST, FERRY_VARIABLES, Reads, closest, looks_like_ferry_variable,
};

/// The pagination modes a scheme may name.
pub const PAGINATION_MODES: [&str; 5] = ["offset", "page", "keyset", "cursor", "none"];

/// A config with its schemes, all checked.
#[derive(Clone, Debug)]
pub struct Files {
    /// The `ferry.toml` that was read.
    pub path: PathBuf,
    /// Its directory: the base of the `schemes` glob and of the file names in problems.
    pub dir: PathBuf,
    /// The parsed `ferry.toml`.
    pub config: FerryConfig,
    /// Sorted by scheme name.
    pub schemes: Vec<SchemeFile>,
}

/// One scheme and the file it came from, with the values every role needs parsed once here:
/// a role never parses the time zone, the schedule or the target's templates again, so none has
/// an error path for them.
#[derive(Clone, Debug)]
pub struct SchemeFile {
    /// The scheme file, as the `schemes` glob found it.
    pub file: PathBuf,
    /// Its parsed and checked content.
    pub scheme: Scheme,
    /// `scheme.timezone`, parsed: the zone schedules, templates and the source's clock use.
    pub timezone: Tz,
    /// `scheme.schedule`, parsed; `None` when the scheme has none (it runs only with `--once`).
    pub schedule: Option<Cron>,
    /// The target's `request` and `otherRequest` templates, compiled: applied to every record.
    pub mapper: Arc<Mapper>,
    /// The source's window and data cursor options (`sync_overlap_secs`, `cursor_field`, ...).
    pub sync: SyncOptions,
    /// The values `${VAR}` took from the environment: shown as `***` wherever the scheme's
    /// output is displayed ([`SchemeFile::redact`]).
    pub env_values: Vec<Secret>,
}

/// Environment values shorter than this are not redacted: `1` or `on` are settings, not
/// secrets, and hiding every `1` would make a preview unreadable.
pub const MIN_REDACTED_LEN: usize = 4;

impl SchemeFile {
    /// `text` with every value this scheme took from the environment replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in &self.env_values {
            if value.expose().chars().count() >= MIN_REDACTED_LEN {
                out = out.replace(value.expose(), "***");
            }
        }
        out
    }
}

impl Files {
    /// The scheme called `name`.
    pub fn scheme(&self, name: &str) -> Option<&SchemeFile> {
        self.schemes.iter().find(|s| s.scheme.name == name)
    }

    /// The connection called `name`.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.config.connections.get(name)
    }

    /// `file` as problems name it: relative to the config's directory where possible.
    pub fn display_name(&self, file: &Path) -> String {
        display_name(&self.dir, file)
    }

    /// The config file as problems name it (`ferry.toml`).
    pub fn config_name(&self) -> String {
        display_name(&self.dir, &self.path)
    }
}

/// Which side of a scheme an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `source`: where records are read.
    Source,
    /// `target`: where records are written.
    Target,
}

impl Role {
    /// `source` or `target`: the key of the endpoint in a scheme file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }
}

/// Read and check `config_path` and every scheme file it names. `env` looks up environment
/// variables for `${VAR}` in `ferry.toml` and in scheme files. Returns every error found
/// (warnings are `lint`'s).
pub fn read(
    config_path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Files, Vec<Problem>> {
    let dir = match config_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let config_name = display_name(&dir, config_path);
    let text = std::fs::read_to_string(config_path).map_err(|err| {
        vec![Problem::error(
            config_name.clone(),
            "",
            format!("cannot read: {err}"),
        )]
    })?;
    let (config, mut problems) = match FerryConfig::parse(&text, &config_name, env) {
        Ok(config) => (Some(config), Vec::new()),
        Err(problems) => (None, problems),
    };
    // Without a valid config the glob falls back to its default, so scheme files are still
    // checked and the operator sees every problem in one pass.
    let glob_text = config
        .as_ref()
        .map_or(crate::config::DEFAULT_SCHEMES_GLOB, |c| c.schemes.as_str());
    let files = match scheme_files(&dir, glob_text) {
        Ok(files) => files,
        Err(message) => {
            problems.push(Problem::error(config_name.clone(), "schemes", message));
            Vec::new()
        }
    };

    let mut schemes = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let name = display_name(&dir, &file);
        let Some((scheme, parsed, env_values)) =
            read_scheme(&file, &name, config.as_ref(), env, &mut problems)
        else {
            continue;
        };
        if let Some(first) = names.get(&scheme.name) {
            problems.push(Problem::error(
                name,
                "name",
                format!("scheme name `{}` is already used by {first}", scheme.name),
            ));
            continue;
        }
        names.insert(scheme.name.clone(), name);
        schemes.push(SchemeFile {
            file,
            scheme,
            timezone: parsed.timezone,
            schedule: parsed.schedule,
            mapper: Arc::new(parsed.mapper),
            sync: parsed.sync,
            env_values,
        });
    }

    match config {
        Some(config) if problems.is_empty() => {
            schemes.sort_by(|a, b| a.scheme.name.cmp(&b.scheme.name));
            Ok(Files {
                path: config_path.to_path_buf(),
                dir,
                config,
                schemes,
            })
        }
        _ => Err(problems),
    }
}

/// The files the `schemes` glob matches, sorted by path.
fn scheme_files(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    // The directory is taken literally: a `[` in it must not act as a glob class.
    let base = glob::Pattern::escape(&dir.to_string_lossy());
    let full = format!("{base}/{pattern}");
    let paths = glob::glob(&full).map_err(|err| format!("invalid glob `{pattern}`: {err}"))?;
    let mut files = Vec::new();
    for entry in paths {
        match entry {
            Ok(path) if path.is_file() => files.push(path),
            Ok(_) => {}
            Err(err) => return Err(format!("cannot list `{pattern}`: {err}")),
        }
    }
    files.sort();
    Ok(files)
}

/// Read one scheme file; push its problems; the scheme, its parsed values (and the values it
/// took from the environment) when it has none.
fn read_scheme(
    file: &Path,
    name: &str,
    config: Option<&FerryConfig>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<(Scheme, Parsed, Vec<Secret>)> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) => {
            problems.push(Problem::error(name, "", format!("cannot read: {err}")));
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => {
            let (path, message) = syntax::describe(text, &err);
            problems.push(Problem::error(name, path, message));
            return None;
        }
    };
    let mut found = Vec::new();
    let mut env_values = Vec::new();
    substitute_strings(&mut value, "", env, &mut env_values, &mut found);
    if !found.is_empty() {
        problems.extend(found.into_iter().map(|(p, m)| Problem::error(name, p, m)));
        return None;
    }
    shape::check(&value, &shape::SCHEME, "", &mut found);
    if !found.is_empty() {
        problems.extend(found.into_iter().map(|(p, m)| Problem::error(name, p, m)));
        return None;
    }
    let scheme: Scheme = match serde_json::from_value(value) {
        Ok(scheme) => scheme,
        Err(err) => {
            // The shape check above mirrors the model, so this is only reached if they drift.
            problems.push(Problem::error(name, "", err.to_string()));
            return None;
        }
    };
    let parsed = check_scheme(&scheme, config, &mut found);
    match parsed {
        Some(parsed) if found.is_empty() => Some((scheme, parsed, env_values)),
        _ => {
            problems.extend(found.into_iter().map(|(p, m)| Problem::error(name, p, m)));
            None
        }
    }
}

/// What [`check_scheme`] parsed on the way, kept in the [`SchemeFile`].
struct Parsed {
    timezone: Tz,
    schedule: Option<Cron>,
    mapper: Mapper,
    sync: SyncOptions,
}

/// Substitute `${VAR}` / `${VAR:-default}` in every string value under `value` (keys are
/// names, not values, and stay as written). Values taken from the environment are collected
/// into `taken`, so that displays can redact them; problems carry the JSON path of the string.
fn substitute_strings(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    taken: &mut Vec<Secret>,
    out: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(text) if text.contains('$') => {
            let used = std::cell::RefCell::new(Vec::new());
            let recording = |var: &str| {
                let found = env(var);
                if let Some(v) = found.as_ref().filter(|v| !v.is_empty()) {
                    used.borrow_mut().push(Secret::new(v.clone()));
                }
                found
            };
            let result = substitute(text, &recording);
            taken.extend(used.into_inner());
            match result {
                Ok(done) => *text = done,
                Err(err) => out.push((path.to_string(), err.to_string())),
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_strings(item, &format!("{path}[{i}]"), env, taken, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute_strings(item, &here, env, taken, out);
            }
        }
        _ => {}
    }
}

/// The checks that need the whole scheme, and the config for its connections. Returns the
/// values parsed on the way when they all parse (other problems may still be in `out`).
fn check_scheme(
    scheme: &Scheme,
    config: Option<&FerryConfig>,
    out: &mut Vec<(String, String)>,
) -> Option<Parsed> {
    if !is_scheme_name(&scheme.name) {
        out.push((
            "name".into(),
            format!(
                "`{}` is not a valid scheme name: use letters, digits, `-` and `_` \
                 (it becomes part of queue names)",
                scheme.name
            ),
        ));
    }
    let timezone = timezone(&scheme.timezone)
        .map_err(|message| out.push(("timezone".into(), message)))
        .ok();
    let schedule = match &scheme.schedule {
        None => Some(None),
        Some(expr) => schedule(expr)
            .map_err(|message| out.push(("schedule".into(), message)))
            .ok()
            .map(Some),
    };
    check_endpoint(&scheme.source, Role::Source, config, out);
    let mapper = check_endpoint(&scheme.target, Role::Target, config, out);
    // Every source kind's run reads these alike, so they are checked whatever the kind.
    let sync = SyncOptions::read(&scheme.source.metadata)
        .map_err(|problems| out.extend(problems))
        .ok();
    check_variables(scheme, out);
    Some(Parsed {
        timezone: timezone?,
        schedule: schedule?,
        mapper: mapper?,
        sync: sync?,
    })
}

/// Names written like Ferry's own variables (`{{NO_SUCH_VAR|datetime}}`) that are not one of
/// them: on the source, where no record exists, they would always render null; on the target,
/// they are accepted as record fields only when the source declares them (a word of its SQL, or
/// a `formatResponse` rule's `new`), since MySQL columns are sometimes named so.
fn check_variables(scheme: &Scheme, out: &mut Vec<(String, String)>) {
    let source = &scheme.source.metadata;
    let sql = source.other("main_sql").unwrap_or_default();
    let declared = |name: &str| {
        sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == name)
            || source.format_response.iter().any(|rule| rule.new == name)
    };
    for (role, endpoint) in [
        (Role::Source, &scheme.source),
        (Role::Target, &scheme.target),
    ] {
        let meta = &endpoint.metadata;
        let at = format!("{}.metadata", role.as_str());
        let found = placeholders_of(&meta.request, &format!("{at}.request"))
            .into_iter()
            .chain(placeholders_of(
                &meta.other_request,
                &format!("{at}.otherRequest"),
            ));
        for (path, reads) in found {
            let Reads::Field(name) = reads else { continue };
            if !looks_like_ferry_variable(&name) || (role == Role::Target && declared(&name)) {
                continue;
            }
            let hint = match closest(&name, &FERRY_VARIABLES) {
                Some(near) => format!("did you mean `{near}`? "),
                None => String::new(),
            };
            let why = if role == Role::Source {
                "a source request has no record to read it from"
            } else {
                "no source SQL column or formatResponse rule provides a record field so named"
            };
            out.push((
                path,
                format!(
                    "unknown variable `{name}` ({why}); {hint}Ferry's variables: \
                     {FERRY_VARIABLE_LIST}"
                ),
            ));
        }
    }
}

/// Check one endpoint; its compiled templates when they parse.
fn check_endpoint(
    endpoint: &Endpoint,
    role: Role,
    config: Option<&FerryConfig>,
    out: &mut Vec<(String, String)>,
) -> Option<Mapper> {
    let at = |key: &str| format!("{}.{key}", role.as_str());
    let meta = &endpoint.metadata;
    let connection = match config {
        None => None,
        Some(config) => match config.connections.get(&endpoint.connection) {
            Some(connection) => Some(connection),
            None => {
                let known = config
                    .connections
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let known = if known.is_empty() {
                    "ferry.toml defines none".to_string()
                } else {
                    format!("ferry.toml defines {known}")
                };
                out.push((
                    at("connection"),
                    format!("unknown connection `{}` ({known})", endpoint.connection),
                ));
                None
            }
        },
    };
    // Templates and `_function` expressions are parsed here, once, so that a typo stops the
    // scheme at start-up instead of failing every record.
    let mapper = Mapper::new(meta)
        .map_err(|problems| {
            out.extend(
                problems
                    .into_iter()
                    .map(|(path, message)| (at(&format!("metadata.{path}")), message)),
            );
        })
        .ok();
    out.extend(
        check_format_rules(&meta.format_response)
            .into_iter()
            .map(|(path, message)| (at(&format!("metadata.{path}")), message)),
    );
    if meta.api.is_empty() {
        out.push((
            at("metadata.api"),
            "missing required key (what to call: `select`, `execute`, an API path, ...)".into(),
        ));
    } else if let Some(connection) = connection
        && let Err(message) = connection.kind().api_supported(role, &meta.api)
    {
        out.push((
            at("metadata.api"),
            format!(
                "connection `{}` (kind {}) {message}",
                endpoint.connection,
                connection.kind()
            ),
        ));
    }
    let kind = connection.map(Connection::kind);
    check_write_mode(
        meta,
        role,
        kind.is_some_and(|k| k.sql),
        &at("metadata"),
        out,
    );
    if let Some(kind) = kind {
        misspelt_keys(
            &meta.extra,
            &[&shape::keys(&shape::METADATA)[..], kind.keys(role)].concat(),
            &at("metadata"),
            out,
        );
        if let Some(pagination) = &meta.pagination {
            misspelt_keys(
                &pagination.extra,
                &[
                    &shape::keys(&shape::PAGINATION)[..],
                    kind.pagination_keys(role),
                ]
                .concat(),
                &at("metadata.pagination"),
                out,
            );
        }
        (kind.check)(endpoint, role, out);
    }
    if let Some(pagination) = &meta.pagination {
        if pagination.page_size == Some(0) {
            out.push((
                at("metadata.pagination.pageSize"),
                "must be at least 1".into(),
            ));
        }
        if let Some(mode) = &pagination.mode
            && !PAGINATION_MODES.contains(&mode.as_str())
        {
            out.push((
                at("metadata.pagination.mode"),
                format!(
                    "unknown pagination mode `{mode}`, expected one of `offset`, `page`, \
                     `keyset`, `cursor`, `none`"
                ),
            ));
        }
        if pagination.max_pages == Some(0) {
            out.push((
                at("metadata.pagination.max_pages"),
                "must be at least 1".into(),
            ));
        }
    }
    if meta.batch_size == Some(0) {
        out.push((at("metadata.batch_size"), "must be at least 1".into()));
    }
    if let Some(pointer) = &meta.records_at
        && !pointer.is_empty()
        && !pointer.starts_with('/')
    {
        out.push((
            at("metadata.records_at"),
            format!("`{pointer}` is not a JSON pointer: write it as `/data/items`"),
        ));
    }
    mapper
}

/// `write_mode`: only on a MySQL target, one of the three names, and agreeing with `main_sql`.
fn check_write_mode(
    meta: &Metadata,
    role: Role,
    mysql: bool,
    at: &str,
    out: &mut Vec<(String, String)>,
) {
    let path = format!("{at}.write_mode");
    if let Some(mode) = &meta.write_mode
        && (role != Role::Target || !mysql)
    {
        out.push((
            path,
            format!("write_mode `{mode}` applies to MySQL targets only (api `execute` or `batchexecute`)"),
        ));
        return;
    }
    let Some(sql) = meta
        .other("main_sql")
        .filter(|_| mysql && role == Role::Target)
    else {
        return;
    };
    if NamedSql::parse(sql).is_err() {
        return; // check_main_sql said why
    }
    if let Err(message) = crate::write::write_sql(sql, meta.write_mode.as_deref(), meta.id_check) {
        out.push((path, message));
    }
}

/// The `api` of a `mysql` connection's binlog source (`ferry_sources::binlog`): every change of
/// the tables it names, from the server's binary log.
pub const BINLOG_API: &str = "binlog";

/// Parse a five-field cron expression (minute hour day-of-month month day-of-week).
pub fn schedule(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|err| {
            format!(
                "`{expr}` is not a cron expression of five fields \
                 (minute hour day-of-month month day-of-week): {err}"
            )
        })
}

/// Parse an IANA time zone name.
pub fn timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`: use an IANA name such as `Asia/Shanghai`")
    })
}

/// Scheme names become queue names: letters, digits, `-` and `_` only.
pub fn is_scheme_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `file` relative to `dir`, with `/` separators; as given when it is elsewhere.
fn display_name(dir: &Path, file: &Path) -> String {
    // `./config` and the `config/...` paths glob returns must compare equal.
    let plain = |path: &Path| -> PathBuf {
        path.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    };
    let (dir, file) = (plain(dir), plain(file));
    match file.strip_prefix(&dir) {
        Ok(relative) => relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => file.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_five_fields() {
        assert!(schedule("0 * * * *").is_ok());
        assert!(schedule("*/30 8-18 * * MON-FRI").is_ok());
        assert!(schedule("0 0 * * * *").is_err());
        assert!(schedule("61 * * * *").is_err());
    }

    #[test]
    fn files_are_named_relative_to_the_config_directory() {
        let name = |dir: &str, file: &str| display_name(Path::new(dir), Path::new(file));
        assert_eq!(name("./config", "config/schemes/a.json"), "schemes/a.json");
        assert_eq!(name("config", "./config/schemes/a.json"), "schemes/a.json");
        assert_eq!(name(".", "ferry.toml"), "ferry.toml");
        assert_eq!(name("/etc/ferry", "/etc/ferry/ferry.toml"), "ferry.toml");
        assert_eq!(
            name("/etc/ferry", "/srv/schemes/a.json"),
            "/srv/schemes/a.json"
        );
    }

    #[test]
    fn names_and_zones() {
        assert!(is_scheme_name("yida-refunds_to-mysql2"));
        assert!(!is_scheme_name("退款"));
        assert!(!is_scheme_name("a.b"));
        assert!(!is_scheme_name(""));
        assert!(timezone("Asia/Shanghai").is_ok());
        assert!(timezone("Asia/Shangai").is_err());
    }
}
