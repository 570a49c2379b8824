//! MySQL write modes (`write_mode`, named as DataX names them) and the statement each one runs.
//!
//! A MySQL target's `main_sql` is normally a one-row `INSERT INTO t (cols) VALUES (:a, :b)`.
//! What happens when a record meets a key the table already has is decided here, once, for both
//! `execute` and `batchexecute`, and for `ferry lint`:
//!
//! | `write_mode`        | statement                                              | a duplicate key    |
//! |---------------------|--------------------------------------------------------|--------------------|
//! | `insert`            | `INSERT ... ON DUPLICATE KEY UPDATE` (a no-op)          | `kept` as it is    |
//! | `update`            | `INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c), ...` | `updated`/`unchanged` |
//! | `replace`           | `REPLACE INTO ...`                                     | replaced (`written`) |
//! | none, plain INSERT, `idCheck` | as `insert` (seed 001)                       | `kept`             |
//! | none, plain INSERT  | the INSERT as written                                  | a record error     |
//! | none, own `ON DUPLICATE KEY UPDATE` | as `update`, the scheme's clause kept   | `updated`/`unchanged` |
//! | none, `REPLACE INTO` | as `replace`                                          | replaced (`written`) |
//!
//! `update` builds its clause from the statement's own column list; a scheme's own
//! `ON DUPLICATE KEY UPDATE` clause is kept as written. To count exactly, every
//! `ON DUPLICATE KEY UPDATE` clause Ferry runs starts with an assignment that leaves the first
//! column as it is and counts the duplicate in the session variable [`DUPLICATES_VAR`]
//! (see `ferry-sinks`' MySQL target for how the counts are read).

use crate::sql::{InsertParts, split_insert};

/// The session variable that counts the duplicate keys met by Ferry's upserts.
pub const DUPLICATES_VAR: &str = "@ferry_duplicates";

/// `write_mode` of a MySQL target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Keep the row the target has; the record counts as `kept`.
    Insert,
    /// Upsert every mapped column.
    Update,
    /// `REPLACE INTO`: delete the row the target has and insert the record.
    Replace,
}

impl WriteMode {
    pub const NAMES: [&'static str; 3] = ["insert", "update", "replace"];

    pub fn parse(name: &str) -> Result<WriteMode, String> {
        match name {
            "insert" => Ok(WriteMode::Insert),
            "update" => Ok(WriteMode::Update),
            "replace" => Ok(WriteMode::Replace),
            other => Err(format!(
                "unknown write_mode `{other}`, expected `insert` (keep the row the target has), \
                 `update` (upsert every mapped column) or `replace` (REPLACE INTO)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Insert => "insert",
            WriteMode::Update => "update",
            WriteMode::Replace => "replace",
        }
    }
}

/// What the statement does with a key the table already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDuplicate {
    /// A plain INSERT without `write_mode` or `idCheck`: the database refuses the record.
    Refuse,
    /// Keep the existing row (`insert`); the statement counts duplicates.
    Keep,
    /// Update the existing row (`update`); the statement counts duplicates.
    Update,
    /// `REPLACE INTO` (`replace`).
    Replace,
    /// Not an INSERT or REPLACE (an UPDATE, a CALL, ...): run as written, counted as `written`.
    AsWritten,
}

impl OnDuplicate {
    /// Whether the statement's `ON DUPLICATE KEY UPDATE` counts duplicates in [`DUPLICATES_VAR`].
    pub fn counts_duplicates(self) -> bool {
        matches!(self, OnDuplicate::Keep | OnDuplicate::Update)
    }
}

/// The statement a MySQL target runs, with `:name` parameters still in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSql {
    pub on_duplicate: OnDuplicate,
    /// `INSERT INTO t (cols) VALUES` / `REPLACE INTO ...`; for `AsWritten`, the whole statement.
    pub head: String,
    /// The row, parentheses included; empty for `AsWritten`.
    pub row: String,
    /// What follows the rows (`ON DUPLICATE KEY UPDATE ...`), or empty.
    pub tail: String,
}

impl WriteSql {
    /// The one-row statement.
    pub fn one_row(&self) -> String {
        let mut text = self.head.clone();
        if !self.row.is_empty() {
            text.push(' ');
            text.push_str(&self.row);
        }
        if !self.tail.is_empty() {
            text.push(' ');
            text.push_str(&self.tail);
        }
        text
    }
}

/// Resolve `write_mode` (as written in the scheme), `idCheck` and `main_sql` into the statement
/// to run. The error is meant for the scheme's `target.metadata.write_mode` (or `main_sql`).
pub fn write_sql(sql: &str, mode: Option<&str>, id_check: bool) -> Result<WriteSql, String> {
    let mode = mode.map(WriteMode::parse).transpose()?;
    let Some(InsertParts { head, row, tail }) = split_insert(sql) else {
        if let Some(mode) = mode {
            return Err(format!(
                "write_mode `{}` needs main_sql of the form `INSERT INTO t (cols) VALUES (:a, ...)`",
                mode.as_str()
            ));
        }
        let text = sql.trim();
        return Ok(WriteSql {
            on_duplicate: OnDuplicate::AsWritten,
            head: text
                .strip_suffix(';')
                .unwrap_or(text)
                .trim_end()
                .to_string(),
            row: String::new(),
            tail: String::new(),
        });
    };
    let replace_written = first_word(&head).eq_ignore_ascii_case("REPLACE");
    let own_update = own_update_clause(&tail);
    if !tail.is_empty() && own_update.is_none() {
        return Err(format!(
            "cannot read what follows the VALUES row: `{tail}` (expected nothing or \
             `ON DUPLICATE KEY UPDATE ...`)"
        ));
    }
    let on_duplicate = match (mode, replace_written, own_update.is_some()) {
        (Some(WriteMode::Replace), _, false) | (None, true, _) => OnDuplicate::Replace,
        (Some(m), true, _) => {
            return Err(format!(
                "write_mode `{}` contradicts main_sql's REPLACE INTO: write INSERT INTO, or \
                 write_mode `replace`",
                m.as_str()
            ));
        }
        (Some(m @ (WriteMode::Replace | WriteMode::Insert)), false, true) => {
            return Err(format!(
                "write_mode `{}` contradicts main_sql's own ON DUPLICATE KEY UPDATE: remove \
                 the clause, or write write_mode `update`",
                m.as_str()
            ));
        }
        (Some(WriteMode::Update), false, _) | (None, false, true) => OnDuplicate::Update,
        (Some(WriteMode::Insert), false, false) => OnDuplicate::Keep,
        (None, false, false) if id_check => OnDuplicate::Keep,
        (None, false, false) => OnDuplicate::Refuse,
    };
    let columns = columns(&head);
    let counter = |columns: &[String]| -> Result<String, String> {
        let first = columns.first().ok_or_else(|| {
            format!(
                "write_mode `{}` needs the column list: `INSERT INTO t (a, b) VALUES (:a, :b)`",
                mode.map_or("insert", WriteMode::as_str)
            )
        })?;
        Ok(format!(
            "{first} = IF(({DUPLICATES_VAR} := {DUPLICATES_VAR} + 1) IS NULL, {first}, {first})"
        ))
    };
    let (head, tail) = match on_duplicate {
        OnDuplicate::Replace if !replace_written => (
            format!("REPLACE{}", &head.trim_start()["INSERT".len()..]),
            tail,
        ),
        OnDuplicate::Keep => (
            head,
            format!("ON DUPLICATE KEY UPDATE {}", counter(&columns)?),
        ),
        OnDuplicate::Update => {
            let assignments = match own_update {
                Some(own) => own.to_string(),
                None => columns
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            (
                head,
                format!(
                    "ON DUPLICATE KEY UPDATE {}, {assignments}",
                    counter(&columns)?
                ),
            )
        }
        _ => (head, tail),
    };
    Ok(WriteSql {
        on_duplicate,
        head,
        row,
        tail,
    })
}

fn first_word(sql: &str) -> &str {
    let sql = sql.trim_start();
    let end = sql
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(sql.len());
    &sql[..end]
}

/// The assignments of `ON DUPLICATE KEY UPDATE a = ..., b = ...`, or `None` if `tail` is not
/// such a clause.
fn own_update_clause(tail: &str) -> Option<&str> {
    let mut rest = tail.trim_start();
    for word in ["ON", "DUPLICATE", "KEY", "UPDATE"] {
        let head = rest.get(..word.len())?;
        if !head.eq_ignore_ascii_case(word) {
            return None;
        }
        rest = &rest[word.len()..];
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        rest = rest.trim_start();
    }
    let rest = rest.trim();
    (!rest.is_empty()).then_some(rest)
}

/// The column list of `INSERT INTO t (a, `b`) VALUES`, as written (quotes kept).
fn columns(head: &str) -> Vec<String> {
    let Some(open) = head.find('(') else {
        return Vec::new();
    };
    let Some(close) = head[open..].rfind(')') else {
        return Vec::new();
    };
    head[open + 1..open + close]
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "INSERT INTO `t` (`id`, `name`) VALUES (:id, :name);";

    #[test]
    fn a_plain_insert_with_id_check_keeps_the_row_and_counts_duplicates() {
        let w = write_sql(PLAIN, None, true).unwrap();
        assert_eq!(w.on_duplicate, OnDuplicate::Keep);
        assert_eq!(
            w.one_row(),
            "INSERT INTO `t` (`id`, `name`) VALUES (:id, :name) ON DUPLICATE KEY UPDATE \
             `id` = IF((@ferry_duplicates := @ferry_duplicates + 1) IS NULL, `id`, `id`)"
        );
        assert_eq!(
            write_sql(PLAIN, Some("insert"), false)
                .unwrap()
                .on_duplicate,
            OnDuplicate::Keep
        );
        assert_eq!(
            write_sql(PLAIN, None, false).unwrap().on_duplicate,
            OnDuplicate::Refuse
        );
    }

    #[test]
    fn update_is_built_from_the_column_list_or_keeps_the_schemes_clause() {
        let w = write_sql(PLAIN, Some("update"), true).unwrap();
        assert_eq!(
            w.tail,
            "ON DUPLICATE KEY UPDATE `id` = IF((@ferry_duplicates := @ferry_duplicates + 1) \
             IS NULL, `id`, `id`), `id` = VALUES(`id`), `name` = VALUES(`name`)"
        );
        let own = "INSERT INTO t (id, n) VALUES (:id, :n) on duplicate key update n = n + 1";
        let w = write_sql(own, None, false).unwrap();
        assert_eq!(w.on_duplicate, OnDuplicate::Update);
        assert!(w.tail.ends_with(", n = n + 1"), "{}", w.tail);
        assert!(write_sql(own, Some("insert"), false).is_err());
    }

    #[test]
    fn replace_rewrites_the_verb() {
        let w = write_sql(PLAIN, Some("replace"), true).unwrap();
        assert_eq!(w.on_duplicate, OnDuplicate::Replace);
        assert_eq!(w.head, "REPLACE INTO `t` (`id`, `name`) VALUES");
        assert_eq!(w.tail, "");
    }

    #[test]
    fn bad_modes_and_statements_say_why() {
        assert!(
            write_sql(PLAIN, Some("upsert"), false)
                .unwrap_err()
                .contains("unknown write_mode `upsert`")
        );
        let update = "UPDATE t SET n = :n WHERE id = :id";
        assert_eq!(
            write_sql(update, None, true).unwrap().on_duplicate,
            OnDuplicate::AsWritten
        );
        assert!(write_sql(update, Some("update"), true).is_err());
        assert!(
            write_sql("INSERT INTO t VALUES (:a)", Some("update"), true)
                .unwrap_err()
                .contains("column list")
        );
    }
}
