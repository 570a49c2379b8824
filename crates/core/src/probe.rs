//! What the check of a scheme against its live source (`ferry lint --online`) reads from a
//! scheme's SQL, and how it judges what the services answered. No I/O here: the binary fetches a
//! sample page and the tables' columns and keys, and these functions turn them into problems.
//!
//! - [`written_columns`]: the table and the columns a target statement writes (`INSERT ... (a,
//!   b)`, `REPLACE`, `UPDATE ... SET a = ..`, `ON DUPLICATE KEY UPDATE a = ..`).
//! - [`read_table`]: the table a source `SELECT` reads (the first after `FROM`) and which column
//!   each selected name comes from (`contact_name AS name`).
//! - [`missing_columns`], [`id_is_unique`]: the verdicts, with the closest existing name.

use std::collections::BTreeMap;

use crate::sql::mask;

/// A table name as written, with its database when qualified (`www.contacts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// The database, when the SQL names one.
    pub database: Option<String>,
    /// The table.
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.database {
            Some(db) => write!(f, "{db}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// The table a target statement writes and the columns it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub table: TableName,
    /// In the order written; a column assigned twice (insert list and ODKU) appears once.
    pub columns: Vec<String>,
}

/// The table a source `SELECT` reads, and the column behind each selected alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub table: TableName,
    /// `alias -> column` for items written `column [AS] alias`.
    pub aliases: BTreeMap<String, String>,
}

impl Read {
    /// The table column a record field comes from: through its alias, else the field itself.
    pub fn column_of<'a>(&'a self, field: &'a str) -> &'a str {
        self.aliases.get(field).map_or(field, String::as_str)
    }
}

/// One token of a statement: a word or name (quoted names unquoted), or one punctuation char.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A bare word; compared upper-case for keywords.
    Word(String),
    /// A back-quoted name, unquoted.
    Name(String),
    /// A string literal or a `:param` (never a name).
    Other,
    Punct(char),
}

impl Token {
    fn keyword(&self) -> Option<String> {
        match self {
            Token::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn is(&self, keyword: &str) -> bool {
        self.keyword().is_some_and(|k| k == keyword)
    }

    fn name(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Name(w) => Some(w),
            _ => None,
        }
    }
}

fn tokens(sql: &str) -> Option<Vec<Token>> {
    let masked = mask(sql).ok()?;
    let mut out = Vec::new();
    let mut chars = masked.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == ':'
            && chars
                .peek()
                .is_some_and(|(_, n)| n.is_alphanumeric() || *n == '_')
        {
            while chars
                .peek()
                .is_some_and(|(_, n)| n.is_alphanumeric() || *n == '_')
            {
                chars.next();
            }
            out.push(Token::Other);
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut end = at + c.len_utf8();
            while let Some((next_at, n)) = chars.peek().copied() {
                if n.is_alphanumeric() || n == '_' || n == '$' {
                    end = next_at + n.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let original = &sql[at..end];
            out.push(if let Some(quoted) = original.strip_prefix('`') {
                Token::Name(quoted.trim_end_matches('`').replace("``", "`"))
            } else if original.starts_with(['\'', '"']) {
                Token::Other
            } else {
                Token::Word(original.to_string())
            });
            continue;
        }
        out.push(Token::Punct(c));
    }
    Some(out)
}

/// A possibly qualified name at `tokens[i]`: (database, name, next index).
fn qualified(tokens: &[Token], i: usize) -> Option<(Option<String>, String, usize)> {
    let first = tokens.get(i)?.name()?.to_string();
    if tokens.get(i + 1) == Some(&Token::Punct('.'))
        && let Some(second) = tokens.get(i + 2).and_then(Token::name)
    {
        return Some((Some(first), second.to_string(), i + 3));
    }
    Some((None, first, i + 1))
}

/// `a = expr, b = expr` from `tokens[i]`, to the first top-level keyword in `stops` or the end.
fn assignments(tokens: &[Token], mut i: usize, stops: &[&str], out: &mut Vec<String>) {
    loop {
        let Some((_, column, next)) = qualified(tokens, i) else {
            return;
        };
        if tokens.get(next) != Some(&Token::Punct('=')) {
            return;
        }
        out.push(column);
        i = next + 1;
        let mut depth = 0usize;
        while let Some(token) = tokens.get(i) {
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth = depth.saturating_sub(1),
                Token::Punct(',') if depth == 0 => break,
                t if depth == 0 && stops.iter().any(|s| t.is(s)) => return,
                _ => {}
            }
            i += 1;
        }
        if i >= tokens.len() {
            return;
        }
        i += 1;
    }
}

/// The table and columns a target statement writes; None for a statement not understood.
pub fn written_columns(sql: &str) -> Option<Written> {
    let tokens = tokens(sql)?;
    let verb = tokens.first()?.keyword()?;
    let modifiers = ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"];
    let mut i = 1;
    while tokens
        .get(i)
        .is_some_and(|t| modifiers.iter().any(|m| t.is(m)))
    {
        i += 1;
    }
    let (database, table, mut i) = qualified(&tokens, i)?;
    let mut columns = Vec::new();
    match verb.as_str() {
        "INSERT" | "REPLACE" => {
            if tokens.get(i) == Some(&Token::Punct('(')) {
                i += 1;
                while let Some(token) = tokens.get(i) {
                    match token {
                        Token::Punct(')') => break,
                        Token::Punct(',') => {}
                        t => columns.extend(t.name().map(str::to_string)),
                    }
                    i += 1;
                }
            } else if tokens.get(i).is_some_and(|t| t.is("SET")) {
                assignments(&tokens, i + 1, &["ON"], &mut columns);
            }
            let odku = tokens.windows(4).position(|w| {
                w[0].is("ON") && w[1].is("DUPLICATE") && w[2].is("KEY") && w[3].is("UPDATE")
            });
            if let Some(at) = odku {
                assignments(&tokens, at + 4, &[], &mut columns);
            }
        }
        "UPDATE" => {
            if !tokens.get(i).is_some_and(|t| t.is("SET")) {
                return None;
            }
            assignments(&tokens, i + 1, &["WHERE", "ORDER", "LIMIT"], &mut columns);
        }
        _ => return None,
    }
    let mut seen = std::collections::HashSet::new();
    columns.retain(|c| seen.insert(c.to_ascii_lowercase()));
    Some(Written {
        table: TableName { database, table },
        columns,
    })
}

/// The table a source `SELECT` reads (the first after the top-level `FROM`) and its aliases;
/// None for a statement not understood.
pub fn read_table(sql: &str) -> Option<Read> {
    let tokens = tokens(sql)?;
    if !tokens.first()?.is("SELECT") {
        return None;
    }
    let mut depth = 0usize;
    let mut from = None;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth = depth.saturating_sub(1),
            t if depth == 0 && t.is("FROM") => {
                from = Some(i);
                break;
            }
            _ => {}
        }
    }
    let from = from?;
    let (database, table, _) = qualified(&tokens, from + 1)?;
    let mut aliases = BTreeMap::new();
    let mut item: Vec<&Token> = Vec::new();
    let mut depth = 0usize;
    let mut flush = |item: &mut Vec<&Token>| {
        let words: Vec<&Token> = item
            .iter()
            .copied()
            .filter(|t| !t.is("AS") && !t.is("DISTINCT"))
            .collect();
        // `col alias`, `col AS alias`, `t.col AS alias`.
        let (column, alias) = match words.as_slice() {
            [c, a] => (c.name(), a.name()),
            [_, Token::Punct('.'), c, a] => (c.name(), a.name()),
            _ => (None, None),
        };
        if let (Some(column), Some(alias)) = (column, alias) {
            aliases.insert(alias.to_string(), column.to_string());
        }
        item.clear();
    };
    for token in &tokens[1..from] {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth = depth.saturating_sub(1),
            Token::Punct(',') if depth == 0 => {
                flush(&mut item);
                continue;
            }
            _ => {}
        }
        item.push(token);
    }
    flush(&mut item);
    Some(Read {
        table: TableName { database, table },
        aliases,
    })
}

/// The written columns a table lacks (MySQL compares column names case-insensitively), each
/// with the closest column it has.
pub fn missing_columns(written: &[String], has: &[String]) -> Vec<(String, Option<String>)> {
    let names: Vec<&str> = has.iter().map(String::as_str).collect();
    written
        .iter()
        .filter(|c| !has.iter().any(|h| h.eq_ignore_ascii_case(c)))
        .map(|c| {
            (
                c.clone(),
                crate::template::closest(c, &names).map(str::to_string),
            )
        })
        .collect()
}

/// Whether `column` alone is a unique key: some unique index (`unique_keys`, each its columns
/// in order) consists of exactly that column.
pub fn id_is_unique(column: &str, unique_keys: &[Vec<String>]) -> bool {
    unique_keys
        .iter()
        .any(|key| key.len() == 1 && key[0].eq_ignore_ascii_case(column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(sql: &str) -> (String, Vec<String>) {
        let w = written_columns(sql).unwrap();
        (w.table.to_string(), w.columns)
    }

    #[test]
    fn target_statements_name_their_table_and_columns() {
        assert_eq!(
            cols("INSERT INTO `hc_dd_fktk` (`order_no_new`, datetime_new) VALUES (:a, :b)"),
            (
                "hc_dd_fktk".into(),
                vec!["order_no_new".into(), "datetime_new".into()]
            )
        );
        assert_eq!(
            cols(
                "insert ignore into bi.bi_shops (shop_id, shop_name) values (:shop_id, :shop_name) \
                 ON DUPLICATE KEY UPDATE shop_name = VALUES(shop_name), synced_at = NOW()"
            ),
            (
                "bi.bi_shops".into(),
                vec!["shop_id".into(), "shop_name".into(), "synced_at".into()]
            )
        );
        assert_eq!(
            cols("UPDATE t SET a = IF(:x > 1, 'a,b', :y), `名字` = :n WHERE id = :id"),
            ("t".into(), vec!["a".into(), "名字".into()])
        );
        assert_eq!(
            cols("REPLACE t SET a = :a, b = :b"),
            ("t".into(), vec!["a".into(), "b".into()])
        );
        assert!(written_columns("DELETE FROM t WHERE id = :id").is_none());
    }

    #[test]
    fn source_selects_name_their_table_and_aliases() {
        let read = read_table(
            "SELECT c.id, contact_name AS name, `phone` tel, CONCAT(a, ',', b) AS ab, \
             (SELECT 1 FROM other) AS x FROM www.`www_contact` c WHERE id > :last_id",
        )
        .unwrap();
        assert_eq!(read.table.to_string(), "www.www_contact");
        assert_eq!(read.column_of("name"), "contact_name");
        assert_eq!(read.column_of("tel"), "phone");
        assert_eq!(read.column_of("id"), "id");
        assert_eq!(read.column_of("ab"), "ab");
    }

    #[test]
    fn verdicts_name_the_closest_column() {
        let has = vec!["id".to_string(), "name".to_string(), "phone".to_string()];
        assert_eq!(
            missing_columns(&["ID".into(), "nmae".into(), "fax".into()], &has),
            vec![("nmae".into(), Some("name".into())), ("fax".into(), None)]
        );
        let keys = vec![vec!["id".to_string()], vec!["name".into(), "phone".into()]];
        assert!(id_is_unique("id", &keys));
        assert!(!id_is_unique("name", &keys));
    }
}
