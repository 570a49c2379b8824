//! The columns of a watched table, from `information_schema`, and binlog values turned into the
//! same JSON the `select` source gives for them ([`crate::row`]).
//!
//! A row event carries values by position and by wire type only (MariaDB logs no column names
//! unless `binlog_row_metadata = FULL`), so names, signedness, character sets, ENUM and SET labels
//! and fraction digits come from `information_schema.COLUMNS`, read when a table is first seen and
//! again when its shape in the binlog changes (an `ALTER TABLE` mid-stream).

use ferry_core::FerryError;
use ferry_core::record::bytes_value;
use mysql_async::Value as MyValue;
use mysql_async::binlog::value::BinlogValue;
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlPool;

use crate::row::{float_value, fraction, utf8};

/// One column of a watched table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    /// `DATA_TYPE`, lower case (`bigint`, `varchar`, `enum`, ...).
    pub data_type: String,
    pub unsigned: bool,
    /// Bytes rather than text: BINARY, VARBINARY, BLOB (no character set).
    pub binary: bool,
    /// `BINARY(n)`: the binlog drops trailing zero bytes, the column keeps `n`.
    pub pad_to: Option<usize>,
    /// Fraction digits of DATETIME(n), TIMESTAMP(n), TIME(n).
    pub fsp: u32,
    /// ENUM or SET labels, in declaration order.
    pub labels: Vec<String>,
}

/// A watched table: its columns in order and its primary key columns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Table {
    pub database: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Names of the primary key columns, in key order.
    pub key: Vec<String>,
}

impl Table {
    /// `db.table`, as records name it in `_table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    /// Read the table's columns and key. A missing table or one without a primary key is a
    /// configuration error saying so.
    pub async fn read(pool: &MySqlPool, database: &str, name: &str) -> Result<Table, FerryError> {
        let rows: Vec<(
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            Option<i64>,
            String,
        )> = sqlx::query_as(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(LOWER(DATA_TYPE) AS CHAR),
                        CAST(COLUMN_TYPE AS CHAR), CAST(CHARACTER_SET_NAME AS CHAR),
                        CAST(CHARACTER_OCTET_LENGTH AS SIGNED), CAST(DATETIME_PRECISION AS SIGNED),
                        CAST(COLUMN_KEY AS CHAR)
                 FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(database)
        .bind(name)
        .fetch_all(pool)
        .await
        .map_err(|e| {
            FerryError::transient(format!(
                "reading the columns of `{database}`.`{name}` from information_schema: {e}"
            ))
        })?;
        if rows.is_empty() {
            return Err(FerryError::config(format!(
                "source.metadata.tables: table `{database}`.`{name}` does not exist (or the \
                 connection's user cannot see it)"
            )));
        }
        let key_rows: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
             ORDER BY ORDINAL_POSITION",
        )
        .bind(database)
        .bind(name)
        .fetch_all(pool)
        .await
        .map_err(|e| {
            FerryError::transient(format!(
                "reading the primary key of `{database}`.`{name}`: {e}"
            ))
        })?;
        let key: Vec<String> = key_rows.into_iter().map(|(k,)| k).collect();
        if key.is_empty() {
            return Err(FerryError::config(format!(
                "source.metadata.tables: table `{database}`.`{name}` has no PRIMARY KEY; the \
                 binlog source needs one to copy the table in order and to key its changes \
                 (add one: ALTER TABLE `{name}` ADD PRIMARY KEY (...))"
            )));
        }
        let columns = rows
            .into_iter()
            .map(
                |(name, data_type, column_type, charset, octets, precision, _)| {
                    let binary = charset.is_none()
                        && matches!(
                            data_type.as_str(),
                            "binary"
                                | "varbinary"
                                | "tinyblob"
                                | "blob"
                                | "mediumblob"
                                | "longblob"
                        );
                    Column {
                        unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                        pad_to: (data_type == "binary")
                            .then(|| octets.and_then(|n| usize::try_from(n).ok()))
                            .flatten(),
                        fsp: precision
                            .and_then(|p| u32::try_from(p).ok())
                            .unwrap_or(0)
                            .min(6),
                        labels: if matches!(data_type.as_str(), "enum" | "set") {
                            labels(&column_type)
                        } else {
                            Vec::new()
                        },
                        binary,
                        data_type,
                        name,
                    }
                },
            )
            .collect();
        let mut columns: Vec<Column> = columns;
        for column in columns.iter_mut().filter(|c| !c.labels.is_empty()) {
            match exact_labels(pool, database, name, column).await {
                Ok(labels) if labels.len() == column.labels.len() => column.labels = labels,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(table = %format!("{database}.{name}"), column = %column.name, error = %e, "cannot read the exact ENUM/SET labels (needs CREATE TEMPORARY TABLES); labels with characters outside the BMP (emoji) read as `?`")
                }
            }
        }
        Ok(Table {
            database: database.to_string(),
            name: name.to_string(),
            columns,
            key,
        })
    }
}

/// The ENUM or SET labels of `column` as the server holds them. `information_schema` (and
/// `SHOW CREATE TABLE`) show them in utf8mb3 on MariaDB, where an emoji label reads `?`; a
/// temporary table with the column's type, given each label's number, gives them back exactly.
async fn exact_labels(
    pool: &MySqlPool,
    database: &str,
    table: &str,
    column: &Column,
) -> Result<Vec<String>, sqlx::Error> {
    let quote = |n: &str| format!("`{}`", n.replace('`', "``"));
    let mut conn = pool.acquire().await?;
    let tmp = "ferry_binlog_labels";
    sqlx::query(AssertSqlSafe(format!(
        "DROP TEMPORARY TABLE IF EXISTS {tmp}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TEMPORARY TABLE {tmp} SELECT 0 AS n, {} AS v FROM {}.{} LIMIT 0",
        quote(&column.name),
        quote(database),
        quote(table)
    )))
    .execute(&mut *conn)
    .await?;
    let set = column.data_type == "set";
    let values = (0..column.labels.len())
        .map(|i| {
            let number: u64 = if set { 1 << i.min(63) } else { i as u64 + 1 };
            format!("({i}, {number})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let read = async {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {tmp} (n, v) VALUES {values}"
        )))
        .execute(&mut *conn)
        .await?;
        sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
            "SELECT CAST(v AS CHAR) FROM {tmp} ORDER BY n"
        )))
        .fetch_all(&mut *conn)
        .await
    }
    .await;
    let _ = sqlx::query(AssertSqlSafe(format!("DROP TEMPORARY TABLE {tmp}")))
        .execute(&mut *conn)
        .await;
    read
}

/// The labels of `enum('a','b')` or `set('a','b')`, quotes undone (`''` is one quote).
fn labels(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type[open + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        label.push(next);
                    }
                }
                other => label.push(other),
            }
        }
        out.push(label);
    }
    out
}

/// One binlog value of `column` as the record value the `select` source gives for it.
/// `utc_offset_secs` is the source's offset, for TIMESTAMP (logged as seconds since the epoch).
pub(crate) fn json_value(
    column: &Column,
    value: BinlogValue<'_>,
    utc_offset_secs: i64,
) -> Result<Value, String> {
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(jsonb) => {
            return serde_json::Value::try_from(jsonb)
                .map_err(|e| format!("a JSON value that does not convert: {e}"));
        }
        BinlogValue::JsonDiff(_) => {
            return Err(
                "a partial JSON update (binlog_row_value_options = PARTIAL_JSON); set it to '' \
                 on the source so that the whole value is logged"
                    .into(),
            );
        }
    };
    let ty = column.data_type.as_str();
    Ok(match value {
        MyValue::NULL => Value::Null,
        MyValue::Int(n) => match ty {
            "enum" => Value::String(enum_label(column, n)),
            "timestamp" => Value::String(timestamp_text(n, 0, column.fsp, utc_offset_secs)?),
            _ if column.unsigned && n < 0 => Value::from(unsigned(ty, n)),
            _ => Value::from(n),
        },
        MyValue::UInt(n) => Value::from(n),
        MyValue::Float(f) => float_value(f64::from(f))?,
        MyValue::Double(f) => float_value(f)?,
        MyValue::Date(y, m, d, h, mi, s, us) => {
            let date = format!("{y:04}-{m:02}-{d:02}");
            if ty == "date" {
                Value::String(date)
            } else {
                Value::String(format!(
                    "{date} {h:02}:{mi:02}:{s:02}{}",
                    fraction(us, column.fsp)
                ))
            }
        }
        MyValue::Time(negative, days, h, mi, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            Value::String(format!(
                "{sign}{hours:02}:{mi:02}:{s:02}{}",
                fraction(us, column.fsp)
            ))
        }
        MyValue::Bytes(bytes) => match ty {
            "decimal" => Value::String(utf8(&bytes)?.to_string()),
            "timestamp" => {
                let text = utf8(&bytes)?;
                let (secs, micros) = text.split_once('.').unwrap_or((text, "0"));
                let secs: i64 = secs
                    .parse()
                    .map_err(|_| format!("a TIMESTAMP logged as `{text}`"))?;
                let micros: u32 = micros
                    .parse()
                    .map_err(|_| format!("a TIMESTAMP logged as `{text}`"))?;
                Value::String(timestamp_text(secs, micros, column.fsp, utc_offset_secs)?)
            }
            // YEAR is logged as 1900 + its byte; the byte 0 is the zero year.
            "year" => {
                let text = utf8(&bytes)?;
                Value::String(if text == "1900" {
                    "0000".into()
                } else {
                    text.to_string()
                })
            }
            "bit" => bytes_value(&bytes),
            "set" => Value::String(set_labels(column, &bytes)),
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" => {
                return Err("spatial values are not carried by the binlog source".into());
            }
            _ if column.binary => match column.pad_to {
                Some(n) if bytes.len() < n => {
                    let mut padded = bytes;
                    padded.resize(n, 0);
                    bytes_value(&padded)
                }
                _ => bytes_value(&bytes),
            },
            _ => Value::String(utf8(&bytes)?.to_string()),
        },
    })
}

/// A signed binlog integer of an UNSIGNED column read back at its width (MariaDB logs no
/// signedness by default).
fn unsigned(data_type: &str, n: i64) -> u64 {
    let bits = match data_type {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    };
    if bits == 64 {
        n as u64
    } else {
        (n as u64) & ((1u64 << bits) - 1)
    }
}

fn enum_label(column: &Column, index: i64) -> String {
    usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| column.labels.get(i))
        .cloned()
        .unwrap_or_default()
}

/// A SET value is a little-endian bit mask over its labels; MySQL shows the members joined by `,`.
fn set_labels(column: &Column, mask: &[u8]) -> String {
    let mut members = Vec::new();
    for (i, label) in column.labels.iter().enumerate() {
        let byte = mask.get(i / 8).copied().unwrap_or(0);
        if byte & (1 << (i % 8)) != 0 {
            members.push(label.as_str());
        }
    }
    members.join(",")
}

/// A TIMESTAMP as the source shows it: its wall time at `offset_secs` from UTC, with `fsp`
/// fraction digits; 0 is the zero timestamp.
fn timestamp_text(secs: i64, micros: u32, fsp: u32, offset_secs: i64) -> Result<String, String> {
    if secs == 0 && micros == 0 {
        return Ok(format!("0000-00-00 00:00:00{}", fraction(0, fsp)));
    }
    let at = chrono::DateTime::from_timestamp(secs + offset_secs, 0)
        .ok_or_else(|| format!("a TIMESTAMP of {secs} s out of range"))?;
    Ok(format!(
        "{}{}",
        at.naive_utc().format("%Y-%m-%d %H:%M:%S"),
        fraction(micros, fsp)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(data_type: &str) -> Column {
        Column {
            name: "c".into(),
            data_type: data_type.into(),
            unsigned: false,
            binary: false,
            pad_to: None,
            fsp: 0,
            labels: Vec::new(),
        }
    }

    #[test]
    fn enum_and_set_labels_are_read_from_the_column_type() {
        assert_eq!(
            labels("enum('新','旧','🚀','O''Brien')"),
            vec!["新", "旧", "🚀", "O'Brien"]
        );
        let mut set = column("set");
        set.labels = labels("set('a','b','中')");
        assert_eq!(set_labels(&set, &[0b101]), "a,中");
        assert_eq!(set_labels(&set, &[0]), "");
        let mut e = column("enum");
        e.labels = labels("enum('新','旧')");
        let v = json_value(&e, BinlogValue::Value(MyValue::Int(2)), 0).unwrap();
        assert_eq!(v, Value::from("旧"));
        let v = json_value(&e, BinlogValue::Value(MyValue::Int(0)), 0).unwrap();
        assert_eq!(v, Value::from(""));
    }

    #[test]
    fn unsigned_integers_logged_as_signed_come_back_whole() {
        let mut u = column("bigint");
        u.unsigned = true;
        let v = json_value(&u, BinlogValue::Value(MyValue::Int(-1)), 0).unwrap();
        assert_eq!(v, serde_json::json!(18446744073709551615u64));
        let mut t = column("tinyint");
        t.unsigned = true;
        assert_eq!(
            json_value(&t, BinlogValue::Value(MyValue::Int(-1)), 0).unwrap(),
            Value::from(255)
        );
    }

    #[test]
    fn timestamps_years_and_binary_read_as_the_select_source_gives_them() {
        let mut ts = column("timestamp");
        ts.fsp = 6;
        let v = json_value(
            &ts,
            BinlogValue::Value(MyValue::Bytes(b"86401.000001".to_vec())),
            8 * 3600,
        )
        .unwrap();
        assert_eq!(v, Value::from("1970-01-02 08:00:01.000001"));
        let zero = json_value(&ts, BinlogValue::Value(MyValue::Bytes(b"0".to_vec())), 0).unwrap();
        assert_eq!(zero, Value::from("0000-00-00 00:00:00.000000"));
        let y = json_value(
            &column("year"),
            BinlogValue::Value(MyValue::Bytes(b"1900".to_vec())),
            0,
        )
        .unwrap();
        assert_eq!(y, Value::from("0000"));
        let mut bin = column("binary");
        bin.binary = true;
        bin.pad_to = Some(4);
        let v = json_value(&bin, BinlogValue::Value(MyValue::Bytes(vec![0, 0xFF])), 0).unwrap();
        assert_eq!(v, bytes_value(&[0, 0xFF, 0, 0]));
    }
}
