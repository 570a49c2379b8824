//! Seed-style offset paging, paged by a key instead.
//!
//! Seed 000 pages a table with `... LIMIT :limit OFFSET :offset`, and users copy it. MariaDB
//! walks past every earlier row for each page (the copy is quadratic in the table's size), and a
//! row inserted or deleted during a run shifts every later page: rows are skipped or read twice.
//! When such a statement reads one table, Ferry pages it by that table's primary or unique key
//! itself, keeping the statement's columns and filter, so the run reads the same rows:
//!
//! ```text
//! SELECT <columns> FROM t [WHERE <filter>] LIMIT :limit OFFSET :offset
//!   first page:  SELECT <columns> FROM t WHERE (<filter>) ORDER BY `t`.`id` LIMIT :limit
//!   next pages:  SELECT <columns> FROM t WHERE (<filter>) AND `t`.`id` > :ferry_key_after
//!                ORDER BY `t`.`id` LIMIT :limit
//! ```
//!
//! [`OffsetQuery::parse`] reads the statement and refuses, with the reason, what it cannot prove
//! the same row set for: several statements, a UNION, a join or several tables, a subquery in
//! FROM, GROUP BY, HAVING, DISTINCT, aggregates, locking clauses, an ORDER BY other than the key,
//! a LIMIT it does not recognise. [`choose_key`] picks the key from the database's catalog (one
//! NOT NULL column of a primary or unique index, integer or character typed, so that `>` and
//! `ORDER BY` agree); the key must be among the selected columns, to read where a page ended.
//! Where either says no, the source keeps offset paging and `ferry lint --online` says why.

use crate::probe::TableName;
use crate::sql::mask;

/// The parameter the rewritten statement binds to the last key of the previous page.
pub const KEY_AFTER_PARAM: &str = "ferry_key_after";

/// A `SELECT ... FROM one_table [WHERE ..] [ORDER BY ..] LIMIT x OFFSET y` statement, cut into
/// the parts a key-paged statement is built from (original text, templates and binds kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetQuery {
    /// The table read.
    pub table: TableName,
    /// How the statement names the table's columns: its alias, else the table (back-quoted).
    qualifier: String,
    /// `SELECT <columns> FROM <table> [alias]`, as written.
    head: String,
    /// The selected items, as written.
    items: Vec<String>,
    /// The `WHERE` condition, as written.
    filter: Option<String>,
    /// The `ORDER BY` list, as written.
    order_by: Option<String>,
    /// The row count of the `LIMIT` clause, as written (`:limit`, `{PAGINATION_PAGE_SIZE}`).
    limit: String,
}

/// One column of a unique index, as `information_schema` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyColumn {
    /// The index (`PRIMARY` for the primary key).
    pub index: String,
    /// 1 for the index's first column.
    pub seq: u32,
    pub column: String,
    /// `DATA_TYPE`: `bigint`, `varchar`, ...
    pub data_type: String,
    pub nullable: bool,
}

/// Key types whose `>` and `ORDER BY` agree with a bound value of the kind the source reads.
const KEY_TYPES: &[&str] = &[
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "integer",
    "bigint",
    "char",
    "varchar",
];

/// Aggregate functions: a statement using one returns groups, not rows.
const AGGREGATES: &[&str] = &[
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "GROUP_CONCAT",
    "JSON_ARRAYAGG",
    "JSON_OBJECTAGG",
    "STD",
    "STDDEV",
    "VARIANCE",
    "BIT_AND",
    "BIT_OR",
    "BIT_XOR",
];

/// A word at parenthesis depth 0 of the masked statement: byte range and upper-case text.
struct Word {
    start: usize,
    end: usize,
    upper: String,
}

fn top_level_words(masked: &str) -> (Vec<Word>, Vec<usize>) {
    let mut words = Vec::new();
    let mut commas = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<usize> = None;
    let word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    for (i, c) in masked.char_indices() {
        if word_char(c) {
            current.get_or_insert(i);
            continue;
        }
        if let Some(start) = current.take()
            && depth == 0
        {
            words.push(Word {
                start,
                end: i,
                upper: masked[start..i].to_ascii_uppercase(),
            });
        }
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => commas.push(i),
            _ => {}
        }
    }
    if let Some(start) = current
        && depth == 0
    {
        words.push(Word {
            start,
            end: masked.len(),
            upper: masked[start..].to_ascii_uppercase(),
        });
    }
    (words, commas)
}

/// Back-quote a name for SQL text.
fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A name as written: back-quotes removed.
fn unquoted(name: &str) -> String {
    let name = name.trim();
    match name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) {
        Some(inner) => inner.replace("``", "`"),
        None => name.to_string(),
    }
}

/// Split `a.b` / `` `a`.`b` `` at the dots outside back-quotes.
fn dotted(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    for c in text.trim().chars() {
        match c {
            '`' => {
                in_quote = !in_quote;
                current.push(c);
            }
            '.' if !in_quote => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.iter().map(|p| unquoted(p)).collect()
}

/// Whitespace-separated words outside back-quotes.
fn words_of(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        if c == '`' {
            in_quote = !in_quote;
        }
        if c.is_whitespace() && !in_quote {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
        } else {
            start.get_or_insert(i);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn is_name(text: &str) -> bool {
    let t = text.trim();
    (t.starts_with('`') && t.ends_with('`') && t.len() >= 2)
        || (!t.is_empty()
            && t.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$'))
}

impl OffsetQuery {
    /// Read an offset-paged statement; `Err` says why it cannot be paged by a key.
    pub fn parse(sql: &str) -> Result<OffsetQuery, String> {
        let masked = mask(sql)?;
        let trimmed_len = masked.trim_end().trim_end_matches(';').trim_end().len();
        let (sql, masked) = (&sql[..trimmed_len], &masked[..trimmed_len]);
        if masked.contains(';') {
            return Err("main_sql holds several statements".into());
        }
        let (words, commas) = top_level_words(masked);
        if words.first().map(|w| w.upper.as_str()) != Some("SELECT") {
            return Err("main_sql is not a SELECT".into());
        }
        for w in &words {
            let why = match w.upper.as_str() {
                "UNION" | "INTERSECT" | "EXCEPT" => "it combines several SELECTs (UNION)",
                "JOIN" | "STRAIGHT_JOIN" => "it joins tables",
                "GROUP" => "it groups rows (GROUP BY)",
                "HAVING" => "it filters groups (HAVING)",
                "DISTINCT" | "DISTINCTROW" => "it selects DISTINCT rows",
                "WINDOW" | "OVER" => "it uses window functions",
                "INTO" => "it selects INTO variables or a file",
                "FOR" | "LOCK" => "it locks rows (FOR UPDATE, LOCK IN SHARE MODE)",
                "PROCEDURE" => "it calls a PROCEDURE",
                _ => continue,
            };
            return Err(why.into());
        }
        let find = |name: &str| words.iter().position(|w| w.upper == name);
        let from = find("FROM").ok_or("it reads no table (no FROM)")?;
        let where_ = find("WHERE");
        let order = find("ORDER");
        let limit = find("LIMIT").ok_or("it has no LIMIT")?;
        if order.is_some_and(|o| words.get(o + 1).map(|w| w.upper.as_str()) != Some("BY")) {
            return Err("its ORDER clause is not understood".into());
        }
        let clauses: Vec<usize> = [Some(from), where_, order, Some(limit)]
            .into_iter()
            .flatten()
            .collect();
        if clauses.windows(2).any(|w| w[0] >= w[1]) {
            return Err(
                "its clauses are not in the order SELECT, FROM, WHERE, ORDER BY, LIMIT".into(),
            );
        }
        let at = |i: usize| words[i].start;
        let after = |i: usize| words[i].end;
        let from_end = where_.or(order).map_or(at(limit), at);
        // The table: `name`, `db.name`, each optionally back-quoted, then `[AS] alias`.
        let table_ref = &sql[after(from)..from_end];
        let table_masked = &masked[after(from)..from_end];
        if table_masked.contains('(') {
            return Err("it reads from a subquery or a table function".into());
        }
        if commas.iter().any(|&c| c > after(from) && c < from_end) {
            return Err("it reads several tables".into());
        }
        let ref_words = words_of(table_ref);
        let (name, alias) = match ref_words.as_slice() {
            [name] => (*name, None),
            [name, alias] => (*name, Some(*alias)),
            [name, as_, alias] if as_.eq_ignore_ascii_case("AS") => (*name, Some(*alias)),
            _ => return Err("its FROM clause is not one table".into()),
        };
        let parts = dotted(name);
        let table = match parts.as_slice() {
            [table] => TableName {
                database: None,
                table: table.clone(),
            },
            [database, table] => TableName {
                database: Some(database.clone()),
                table: table.clone(),
            },
            _ => return Err("its FROM clause is not one table".into()),
        };
        if !parts.iter().all(|p| !p.is_empty()) || alias.is_some_and(|a| !is_name(a)) {
            return Err("its FROM clause is not one table".into());
        }
        let qualifier = match alias {
            Some(alias) => quoted(&unquoted(alias)),
            None => parts
                .iter()
                .map(|p| quoted(p))
                .collect::<Vec<_>>()
                .join("."),
        };
        // The selected items, split at top-level commas.
        let select_start = after(0);
        let mut items = Vec::new();
        let mut start = select_start;
        for &c in commas.iter().filter(|&&c| c < at(from)) {
            items.push(sql[start..c].trim().to_string());
            start = c + 1;
        }
        items.push(sql[start..at(from)].trim().to_string());
        for item in &items {
            let upper = item.to_ascii_uppercase();
            for name in AGGREGATES {
                if let Some(pos) = upper
                    .find(&format!("{name}("))
                    .or_else(|| upper.find(&format!("{name} (")))
                    && upper[..pos]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                {
                    return Err(format!("it aggregates rows ({name})"));
                }
            }
        }
        let filter = where_.map(|w| {
            let end = order.map_or(at(limit), at);
            sql[after(w)..end].trim().to_string()
        });
        let order_by = order.map(|o| sql[after(o + 1)..at(limit)].trim().to_string());
        // LIMIT x OFFSET y, or LIMIT y, x.
        let limit_end = sql.len();
        let offset_word = words[limit + 1..]
            .iter()
            .position(|w| w.upper == "OFFSET" && !masked[..w.start].ends_with(':'))
            .map(|i| limit + 1 + i);
        let limit_comma = commas.iter().copied().find(|&c| c > after(limit));
        let (count, offset) = match (offset_word, limit_comma) {
            (Some(o), None) => (&sql[after(limit)..at(o)], &sql[after(o)..limit_end]),
            (None, Some(c)) => (&sql[c + 1..limit_end], &sql[after(limit)..c]),
            _ => return Err("its LIMIT is not `LIMIT :limit OFFSET :offset`".into()),
        };
        let offset = offset.trim();
        if offset != ":offset" && offset != "{PAGINATION_START_ROW}" {
            return Err(format!(
                "its OFFSET is `{offset}`, not `:offset` or `{{PAGINATION_START_ROW}}`"
            ));
        }
        let count = count.trim();
        if count.is_empty() || count.contains(char::is_whitespace) {
            return Err("its LIMIT is not `LIMIT :limit OFFSET :offset`".into());
        }
        Ok(OffsetQuery {
            table,
            qualifier,
            head: sql[..from_end].trim_end().to_string(),
            items,
            filter,
            order_by,
            limit: count.to_string(),
        })
    }

    /// The record field that carries `column` (its name as selected, or its alias), if the
    /// statement selects it.
    pub fn field_of(&self, column: &str) -> Option<String> {
        for item in &self.items {
            let words = words_of(item);
            let (expr, alias) = match words.as_slice() {
                [expr] => (*expr, None),
                [expr, alias] => (*expr, Some(*alias)),
                [expr, as_, alias] if as_.eq_ignore_ascii_case("AS") => (*expr, Some(*alias)),
                _ => continue,
            };
            let parts = dotted(expr);
            let Some(last) = parts.last() else { continue };
            let qualified_ok = parts.len() == 1 || self.names_table(&parts[..parts.len() - 1]);
            if !qualified_ok {
                continue;
            }
            if last == "*" && alias.is_none() {
                return Some(column.to_string());
            }
            if last.eq_ignore_ascii_case(column) {
                return Some(alias.map_or_else(|| last.clone(), unquoted));
            }
        }
        None
    }

    /// Whether `parts` (`t`, `db.t`, an alias) names the statement's table.
    fn names_table(&self, parts: &[String]) -> bool {
        let joined = parts
            .iter()
            .map(|p| quoted(p))
            .collect::<Vec<_>>()
            .join(".");
        joined.eq_ignore_ascii_case(&self.qualifier)
            || parts
                .last()
                .is_some_and(|p| p.eq_ignore_ascii_case(&self.table.table))
    }

    /// `None` when the statement's order is the key's (or it gives none); else why not.
    pub fn order_differs(&self, column: &str) -> Option<String> {
        let order = self.order_by.as_deref()?;
        let words = words_of(order);
        let by_key = match words.as_slice() {
            [expr] | [expr, _] => {
                let parts = dotted(expr);
                words.get(1).is_none_or(|d| d.eq_ignore_ascii_case("ASC"))
                    && parts.last().is_some_and(|p| p.eq_ignore_ascii_case(column))
                    && (parts.len() == 1 || self.names_table(&parts[..parts.len() - 1]))
            }
            _ => false,
        };
        (!by_key).then(|| format!("it orders by `{order}`, not by the key `{column}`"))
    }

    /// The key-paged statement: the first page (`after` false) or a page after the
    /// `:ferry_key_after` key.
    pub fn keyed(&self, column: &str, after: bool) -> String {
        let key = format!("{}.{}", self.qualifier, quoted(column));
        let mut sql = self.head.clone();
        // New lines around the filter: a comment at its end must not swallow what follows.
        match (&self.filter, after) {
            (Some(filter), true) => sql.push_str(&format!(
                " WHERE (\n{filter}\n) AND {key} > :{KEY_AFTER_PARAM}"
            )),
            (Some(filter), false) => sql.push_str(&format!(" WHERE (\n{filter}\n)")),
            (None, true) => sql.push_str(&format!(" WHERE {key} > :{KEY_AFTER_PARAM}")),
            (None, false) => {}
        }
        sql.push_str(&format!(" ORDER BY {key} LIMIT {}", self.limit));
        sql
    }
}

/// The key to page by, from the unique indexes of the table (every column of each, as the
/// catalog lists them): the primary key if it is one usable column, else the first usable
/// single-column unique key. `Err` says why there is none.
pub fn choose_key(columns: &[KeyColumn]) -> Result<String, String> {
    let mut indexes: Vec<&str> = columns.iter().map(|c| c.index.as_str()).collect();
    indexes.sort_by_key(|i| (*i != "PRIMARY", i.to_string()));
    indexes.dedup();
    if indexes.is_empty() {
        return Err("the table has no primary or unique key".into());
    }
    let mut why = Vec::new();
    for index in indexes {
        let cols: Vec<&KeyColumn> = columns.iter().filter(|c| c.index == index).collect();
        let name = if index == "PRIMARY" {
            "its primary key".to_string()
        } else {
            format!("its unique key `{index}`")
        };
        match cols.as_slice() {
            [c] if c.nullable => why.push(format!("{name} `{}` allows NULL", c.column)),
            [c] if !KEY_TYPES.contains(&c.data_type.to_ascii_lowercase().as_str()) => {
                why.push(format!(
                    "{name} `{}` is {} (not an integer or text)",
                    c.column, c.data_type
                ))
            }
            [c] => return Ok(c.column.clone()),
            _ => why.push(format!(
                "{name} has {} columns ({})",
                cols.len(),
                cols.iter()
                    .map(|c| format!("`{}`", c.column))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    Err(why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "select id,company,name,phone,created_at from www_contact where created_at >= '{{DAYS_AGO_1|datetime}}' limit :limit offset :offset";

    fn key(index: &str, seq: u32, column: &str, ty: &str, nullable: bool) -> KeyColumn {
        KeyColumn {
            index: index.into(),
            seq,
            column: column.into(),
            data_type: ty.into(),
            nullable,
        }
    }

    #[test]
    fn seed_000_is_paged_by_its_key_keeping_columns_and_filter() {
        let q = OffsetQuery::parse(SEED).unwrap();
        assert_eq!(q.table.to_string(), "www_contact");
        assert_eq!(q.field_of("id").as_deref(), Some("id"));
        assert_eq!(q.order_differs("id"), None);
        assert_eq!(
            q.keyed("id", false),
            "select id,company,name,phone,created_at from www_contact WHERE (\ncreated_at >= \
             '{{DAYS_AGO_1|datetime}}'\n) ORDER BY `www_contact`.`id` LIMIT :limit"
        );
        assert_eq!(
            q.keyed("id", true),
            "select id,company,name,phone,created_at from www_contact WHERE (\ncreated_at >= \
             '{{DAYS_AGO_1|datetime}}'\n) AND `www_contact`.`id` > :ferry_key_after ORDER BY \
             `www_contact`.`id` LIMIT :limit"
        );
    }

    #[test]
    fn aliases_qualified_names_star_and_the_other_limit_form() {
        let q = OffsetQuery::parse(
            "SELECT c.*, 1 AS one FROM `www`.`www_contact` AS c ORDER BY c.id ASC LIMIT :offset, {PAGINATION_PAGE_SIZE};",
        )
        .unwrap();
        assert_eq!(q.table.to_string(), "www.www_contact");
        assert_eq!(q.field_of("id").as_deref(), Some("id"));
        assert_eq!(q.order_differs("id"), None);
        assert_eq!(
            q.keyed("id", true),
            "SELECT c.*, 1 AS one FROM `www`.`www_contact` AS c WHERE `c`.`id` > :ferry_key_after \
             ORDER BY `c`.`id` LIMIT {PAGINATION_PAGE_SIZE}"
        );
        let q =
            OffsetQuery::parse("select contact_id as cid, name from t limit :limit offset :offset")
                .unwrap();
        assert_eq!(q.field_of("contact_id").as_deref(), Some("cid"));
        assert_eq!(q.field_of("id"), None);
        assert_eq!(
            q.order_differs("contact_id"),
            None,
            "no ORDER BY: any order is the key's"
        );
        let q = OffsetQuery::parse(
            "select id, n from t order by created_at desc limit :limit offset :offset",
        )
        .unwrap();
        assert_eq!(
            q.order_differs("id").as_deref(),
            Some("it orders by `created_at desc`, not by the key `id`")
        );
    }

    #[test]
    fn what_cannot_be_proved_the_same_rows_says_why() {
        let why = |sql: &str| OffsetQuery::parse(sql).unwrap_err();
        assert_eq!(
            why("select a.id from a join b on a.x = b.x limit :limit offset :offset"),
            "it joins tables"
        );
        assert_eq!(
            why("select id from a, b limit :limit offset :offset"),
            "it reads several tables"
        );
        assert_eq!(
            why("select company, count(*) from t group by company limit :limit offset :offset"),
            "it groups rows (GROUP BY)"
        );
        assert_eq!(
            why("select count(*) from t limit :limit offset :offset"),
            "it aggregates rows (COUNT)"
        );
        assert_eq!(
            why("select distinct company from t limit :limit offset :offset"),
            "it selects DISTINCT rows"
        );
        assert_eq!(
            why("select id from (select id from t) x limit :limit offset :offset"),
            "it reads from a subquery or a table function"
        );
        assert_eq!(
            why("select id from t limit :limit offset 10"),
            "its OFFSET is `10`, not `:offset` or `{PAGINATION_START_ROW}`"
        );
        assert_eq!(
            why("select id from t union select id from u limit :limit offset :offset"),
            "it combines several SELECTs (UNION)"
        );
        // Words inside strings, comments and subqueries of the filter do not count.
        let q = OffsetQuery::parse(
            "select id from t where note <> 'a join b group by' -- order by x\n and id in (select id from u group by id) limit :limit offset :offset",
        )
        .unwrap();
        assert!(q.keyed("id", true).contains("-- order by x\n and id in (select id from u group by id)\n) AND `t`.`id` > :ferry_key_after"));
    }

    #[test]
    fn the_key_is_one_not_null_integer_or_text_column() {
        assert_eq!(
            choose_key(&[key("PRIMARY", 1, "id", "bigint", false)]),
            Ok("id".into())
        );
        assert_eq!(
            choose_key(&[
                key("PRIMARY", 1, "shop", "int", false),
                key("PRIMARY", 2, "no", "varchar", false),
                key("uk_code", 1, "code", "varchar", false),
            ]),
            Ok("code".into())
        );
        assert_eq!(
            choose_key(&[
                key("PRIMARY", 1, "shop", "int", false),
                key("PRIMARY", 2, "no", "varchar", false),
                key("uk_amount", 1, "amount", "decimal", false),
                key("uk_mail", 1, "mail", "varchar", true),
            ]),
            Err(
                "its primary key has 2 columns (`shop`, `no`); its unique key `uk_amount` \
                 `amount` is decimal (not an integer or text); its unique key `uk_mail` `mail` \
                 allows NULL"
                    .into()
            )
        );
        assert_eq!(
            choose_key(&[]),
            Err("the table has no primary or unique key".into())
        );
    }
}
