//! Named SQL parameters: `:name` in a scheme's `main_sql` becomes a `?` bind.
//!
//! Values are never spliced into SQL text: [`NamedSql::parse`] turns each `:name` into `?` and
//! lists the names in order, and [`binds_for`] picks each name's value from the rendered record.
//! The scanner understands just enough MySQL to be exact: quoted strings (`'..'`, `".."` with
//! backslash escapes and doubled quotes, `` `..` `` identifiers), comments (`-- ` to end of
//! line, `#`, `/* */`), `::`, and a `:` right after a letter or digit (`12:00:00`, `a:b`), none
//! of which is a parameter. [`split_insert`] cuts a one-row `INSERT ... VALUES (...)` into its
//! parts so that the MySQL sink can write many rows in one statement.

use serde_json::{Map, Value};

use crate::error::FerryError;

/// SQL with its `:name` parameters replaced by `?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSql {
    /// The statement with `?` placeholders.
    pub text: String,
    /// Parameter names in bind order; a name used twice appears twice.
    pub params: Vec<String>,
}

/// A one-row INSERT cut into parts: `head` + `row` (+ `, ` + `row` ...) + ` ` + `tail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsertParts {
    /// `INSERT INTO t (cols) VALUES`
    pub head: String,
    /// The row, parentheses included: `(?, ?, ?)`.
    pub row: String,
    /// What follows the row, e.g. `ON DUPLICATE KEY UPDATE ...`; empty if nothing; without a
    /// trailing `;`.
    pub tail: String,
}

/// Whether a comment to the end of the line starts at `bytes[i]`: `#`, or `--` followed by white
/// space, a control character or the end (as MySQL reads it; `1--1` is arithmetic).
fn opens_line_comment(bytes: &[u8], i: usize) -> bool {
    match bytes[i] {
        b'#' => true,
        b'-' => {
            bytes.get(i + 1) == Some(&b'-')
                && bytes
                    .get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        }
        _ => false,
    }
}

/// A copy of `sql` with the same byte offsets in which quoted text is `Q` and comments are
/// blanks, so that the structure can be read without being fooled by their contents.
pub(crate) fn mask(sql: &str) -> Result<String, String> {
    let bytes = sql.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    let char_offset = |byte: usize| sql[..byte].chars().count();
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                let start = i;
                i += 1;
                loop {
                    if i >= bytes.len() {
                        return Err(format!(
                            "unterminated {} starting at char {}",
                            if quote == b'`' {
                                "quoted name"
                            } else {
                                "string"
                            },
                            char_offset(start)
                        ));
                    }
                    if bytes[i] == b'\\' && quote != b'`' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                let end = i.min(bytes.len());
                out[start..end].fill(b'Q');
            }
            _ if opens_line_comment(bytes, i) => {
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p);
                out[i..end].fill(b' ');
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(p) = sql[i + 2..].find("*/") else {
                    return Err(format!(
                        "unterminated comment starting at char {}",
                        char_offset(i)
                    ));
                };
                let end = i + 2 + p + 2;
                out[i..end].fill(b' ');
                i = end;
            }
            _ => i += 1,
        }
    }
    // Only ASCII bytes were written over whole characters, so this is still UTF-8.
    String::from_utf8(out).map_err(|_| "invalid UTF-8 in SQL".to_string())
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl NamedSql {
    /// Replace `:name` parameters by `?`. A positional `?` in the text is refused (it would
    /// shift every bind after it); so are unterminated strings and comments.
    pub fn parse(sql: &str) -> Result<NamedSql, String> {
        let masked = mask(sql)?;
        let chars: Vec<(usize, char)> = masked.char_indices().collect();
        let mut text = String::with_capacity(sql.len());
        let mut params = Vec::new();
        let mut copied = 0; // byte offset in `sql` copied so far
        let mut i = 0;
        while i < chars.len() {
            let (byte, c) = chars[i];
            if c == '?' {
                return Err(format!("positional ? at char {i}: use :name parameters"));
            }
            if c != ':' {
                i += 1;
                continue;
            }
            let next = chars.get(i + 1).map(|&(_, c)| c);
            if next == Some(':') {
                i += 2;
                continue;
            }
            let after_word = i > 0 && is_word_char(chars[i - 1].1);
            let starts_name = next.is_some_and(|c| c.is_alphabetic() || c == '_');
            if after_word || !starts_name {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < chars.len() && (is_word_char(chars[j].1) || chars[j].1 == '.') {
                j += 1;
            }
            // A trailing dot ends a sentence or a qualified name, it is not part of the name.
            while chars[j - 1].1 == '.' {
                j -= 1;
            }
            let end = chars.get(j).map_or(sql.len(), |&(b, _)| b);
            text.push_str(&sql[copied..byte]);
            text.push('?');
            params.push(sql[byte + 1..end].to_string());
            copied = end;
            i = j;
        }
        text.push_str(&sql[copied..]);
        Ok(NamedSql { text, params })
    }
}

/// Cut a one-row `INSERT|REPLACE ... VALUES (...) [tail]` into head, row and tail. None for
/// anything else (`INSERT ... SELECT`, `... SET`, several rows already, other statements).
pub fn split_insert(sql: &str) -> Option<InsertParts> {
    let masked = mask(sql).ok()?;
    let upper = masked.to_ascii_uppercase();
    let first_word: String = upper
        .trim_start()
        .chars()
        .take_while(|c| is_word_char(*c))
        .collect();
    if first_word != "INSERT" && first_word != "REPLACE" {
        return None;
    }
    // The VALUES (or VALUE) keyword, as a whole word.
    let mut values_end = None;
    for (pos, _) in upper.match_indices("VALUE") {
        let before = upper[..pos].chars().next_back();
        let mut end = pos + "VALUE".len();
        if upper[end..].starts_with('S') {
            end += 1;
        }
        let after = upper[end..].chars().next();
        if before.is_none_or(|c| !is_word_char(c)) && after.is_none_or(|c| !is_word_char(c)) {
            values_end = Some(end);
            break;
        }
    }
    let values_end = values_end?;
    let row_start =
        values_end + (masked[values_end..].len() - masked[values_end..].trim_start().len());
    if !masked[row_start..].starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    let mut row_end = None;
    for (offset, c) in masked[row_start..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    row_end = Some(row_start + offset + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let row_end = row_end?;
    let rest_masked = masked[row_end..].trim_start();
    if rest_masked.starts_with(',') {
        return None;
    }
    let tail = sql[row_end..].trim();
    let tail = tail.strip_suffix(';').unwrap_or(tail).trim_end();
    Some(InsertParts {
        head: sql[..values_end].trim().to_string(),
        row: sql[row_start..row_end].to_string(),
        tail: tail.to_string(),
    })
}

/// The values to bind for `named`, in order. A name is looked up at the top level of `data`
/// (a dotted name walks nested objects), then inside each object child of `data`, in order
/// (seed 001 binds `:order_no_new` from `main_params.order_no_new`). A name found nowhere is a
/// record error naming it; a name whose value is null binds NULL.
pub fn binds_for(named: &NamedSql, data: &Map<String, Value>) -> Result<Vec<Value>, FerryError> {
    bind_refs_for(named, data).map(|refs| refs.into_iter().cloned().collect())
}

/// [`binds_for`] without copying the values: each parameter's value where it is in `data`.
pub fn bind_refs_for<'v>(
    named: &NamedSql,
    data: &'v Map<String, Value>,
) -> Result<Vec<&'v Value>, FerryError> {
    named
        .params
        .iter()
        .map(|name| {
            find_param(data, name).ok_or_else(|| {
                FerryError::record_at(name.clone(), format!("no value for SQL parameter :{name}"))
            })
        })
        .collect()
}

fn find_param<'v>(data: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    if let Some(v) = data.get(name) {
        return Some(v);
    }
    if name.contains('.') {
        let mut steps = name.split('.');
        let mut current = data.get(steps.next()?)?;
        for step in steps {
            current = current.as_object()?.get(step)?;
        }
        return Some(current);
    }
    data.values()
        .filter_map(Value::as_object)
        .find_map(|child| child.get(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `?` text and the parameter names joined with commas.
    fn parsed(sql: &str) -> (String, String) {
        let n = NamedSql::parse(sql).unwrap();
        (n.text, n.params.join(","))
    }

    #[test]
    fn named_parameters_become_question_marks() {
        assert_eq!(
            parsed("select * from t where a = :a and b > :b_2 limit :limit offset :offset"),
            (
                "select * from t where a = ? and b > ? limit ? offset ?".to_string(),
                "a,b_2,limit,offset".to_string()
            )
        );
        assert_eq!(
            parsed("VALUES (:x,:y)"),
            ("VALUES (?,?)".to_string(), "x,y".to_string())
        );
        assert_eq!(parsed(":a = :a"), ("? = ?".to_string(), "a,a".to_string()));
        assert_eq!(
            parsed("x = :main_params.id."),
            ("x = ?.".to_string(), "main_params.id".to_string())
        );
        assert_eq!(
            parsed("x = :名称"),
            ("x = ?".to_string(), "名称".to_string())
        );
        assert_eq!(
            parsed("no params"),
            ("no params".to_string(), "".to_string())
        );
    }

    #[test]
    fn colons_in_strings_comments_and_literals_are_not_parameters() {
        assert_eq!(
            parsed("select ':no', \"a:b\", `c:d` from t where t = '12:00:00' and u = :yes"),
            (
                "select ':no', \"a:b\", `c:d` from t where t = '12:00:00' and u = ?".to_string(),
                "yes".to_string()
            )
        );
        assert_eq!(
            parsed("select 1 -- :no\n, :a # :no2\n/* :no3 */ + :b"),
            (
                "select 1 -- :no\n, ? # :no2\n/* :no3 */ + ?".to_string(),
                "a,b".to_string()
            )
        );
        assert_eq!(
            parsed("a::int, 12:30, x:y, :=, @v := 1"),
            (
                "a::int, 12:30, x:y, :=, @v := 1".to_string(),
                "".to_string()
            )
        );
        assert_eq!(
            parsed("'it''s :no' :a"),
            ("'it''s :no' ?".to_string(), "a".to_string())
        );
        assert_eq!(
            parsed(r"'it\'s :no' :a"),
            (r"'it\'s :no' ?".to_string(), "a".to_string())
        );
        assert_eq!(parsed("1--:a"), ("1--?".to_string(), "a".to_string()));
        assert_eq!(
            parsed("'中文:x' :参数"),
            ("'中文:x' ?".to_string(), "参数".to_string())
        );
    }

    #[test]
    fn bad_sql_is_refused_with_a_position() {
        for (sql, message) in [
            ("select 'abc", "unterminated string starting at char 7"),
            ("select `abc", "unterminated quoted name starting at char 7"),
            ("select 1 /* x", "unterminated comment starting at char 9"),
            (
                "select * from t where a = ?",
                "positional ? at char 26: use :name parameters",
            ),
        ] {
            assert_eq!(NamedSql::parse(sql).unwrap_err(), message, "{sql}");
        }
        // A ? inside a string is text.
        assert_eq!(parsed("select '?' , :a").1, "a");
    }

    const SEED_001_SQL: &str = "INSERT INTO `hc_dd_fktk` (\n  `extend_processInstanceId`,\n  `order_no_new`,\n  `datetime_new`,\n  `qty_count`,\n  `sales_count`,\n  `status`,\n  `Document_Type`\n) VALUES (\n  :extend_processInstanceId,\n  :order_no_new,\n  :datetime_new,\n  :qty_count,\n  :sales_count,\n  :status,\n  :Document_Type\n)";

    #[test]
    fn seed_001_binds_come_from_main_params() {
        let named = NamedSql::parse(SEED_001_SQL).unwrap();
        assert_eq!(
            named.params,
            vec![
                "extend_processInstanceId",
                "order_no_new",
                "datetime_new",
                "qty_count",
                "sales_count",
                "status",
                "Document_Type"
            ]
        );
        assert!(
            named
                .text
                .ends_with("VALUES (\n  ?,\n  ?,\n  ?,\n  ?,\n  ?,\n  ?,\n  ?\n)")
        );
        let data = json!({"main_params": {
            "extend_processInstanceId": "abc-123",
            "order_no_new": "FKTK-2024-001(FKTK)",
            "datetime_new": "2024-05-30",
            "qty_count": "1",
            "sales_count": "1234.50",
            "status": null,
            "Document_Type": "付款退款"
        }});
        let binds = binds_for(&named, data.as_object().unwrap()).unwrap();
        assert_eq!(
            binds,
            vec![
                json!("abc-123"),
                json!("FKTK-2024-001(FKTK)"),
                json!("2024-05-30"),
                json!("1"),
                json!("1234.50"),
                Value::Null,
                json!("付款退款")
            ]
        );
    }

    #[test]
    fn binds_prefer_top_level_then_dotted_then_children() {
        let named = NamedSql::parse(":a :b :main_params.b :c").unwrap();
        let data = json!({"a": 1, "main_params": {"a": 2, "b": 3}, "other": {"c": 4}});
        let binds = binds_for(&named, data.as_object().unwrap()).unwrap();
        assert_eq!(binds, vec![json!(1), json!(3), json!(3), json!(4)]);
        let missing = NamedSql::parse(":a :nope").unwrap();
        let err = binds_for(&missing, data.as_object().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "nope: no value for SQL parameter :nope");
        assert_eq!(err.path(), Some("nope"));
    }

    #[test]
    fn split_insert_cuts_head_row_and_tail() {
        let named = NamedSql::parse(SEED_001_SQL).unwrap();
        let parts = split_insert(&named.text).unwrap();
        assert!(parts.head.starts_with("INSERT INTO `hc_dd_fktk` ("));
        assert!(parts.head.ends_with(") VALUES"));
        assert_eq!(parts.row, "(\n  ?,\n  ?,\n  ?,\n  ?,\n  ?,\n  ?,\n  ?\n)");
        assert_eq!(parts.tail, "");

        let upsert = "insert into t (a, `values`, c) values (?, CONCAT('(', ?), NOW()) \
                      ON DUPLICATE KEY UPDATE a = VALUES(a);";
        assert_eq!(
            split_insert(upsert),
            Some(InsertParts {
                head: "insert into t (a, `values`, c) values".to_string(),
                row: "(?, CONCAT('(', ?), NOW())".to_string(),
                tail: "ON DUPLICATE KEY UPDATE a = VALUES(a)".to_string(),
            })
        );
        assert_eq!(
            split_insert("/* c */ REPLACE INTO t VALUE(?)").map(|p| (p.head, p.row)),
            Some((
                "/* c */ REPLACE INTO t VALUE".to_string(),
                "(?)".to_string()
            ))
        );
        assert_eq!(split_insert("INSERT INTO t VALUES (?), (?)"), None);
        assert_eq!(split_insert("INSERT INTO t SELECT * FROM u"), None);
        assert_eq!(split_insert("INSERT INTO t SET a = ?"), None);
        assert_eq!(split_insert("UPDATE t SET a = ?"), None);
        assert_eq!(split_insert("INSERT INTO t VALUES (?"), None);
        assert_eq!(split_insert("INSERT INTO t VALUES ('abc"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_sql_never_panics(src in "\\PC{0,80}") {
            if let Ok(named) = NamedSql::parse(&src) {
                let _ = split_insert(&named.text);
                let _ = binds_for(&named, &Map::new());
            }
            let _ = split_insert(&src);
        }

        #[test]
        fn sql_soup_keeps_text_outside_parameters(picks in proptest::collection::vec(0..14_usize, 0..30)) {
            const PIECES: [&str; 14] = [
                "'", "\"", "`", ":", "::", "a", "1", " ", "--", "\n", "#", "/*", "*/", "\\",
            ];
            let src: String = picks.iter().map(|&i| PIECES[i]).collect();
            if let Ok(named) = NamedSql::parse(&src) {
                // Every parameter became one `?`, and nothing else changed.
                let mut rebuilt = named.text.clone();
                for p in &named.params {
                    rebuilt = rebuilt.replacen('?', &format!(":{p}"), 1);
                }
                proptest::prop_assert_eq!(rebuilt, src);
            }
        }
    }
}
