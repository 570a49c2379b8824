//! MySQL rows to JSON objects.
//!
//! Decoders are chosen once per result set from the column types, then applied to every row.
//! DECIMAL arrives as exact text (`"12.30"`), DATETIME/TIMESTAMP as `YYYY-MM-DD HH:MM:SS[.ffffff]`
//! (the server's wall-clock value, as a pasted scheme expects), DATE as `YYYY-MM-DD`, JSON columns
//! as their JSON value, binary as base64, NULL as null.

use base64::Engine;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::mysql::MySqlRow;
use sqlx::{Column, Row, TypeInfo};

#[derive(Clone, Copy, Debug)]
enum Decode {
    Int,
    UInt,
    Float,
    Decimal,
    DateTime,
    Date,
    Time,
    Json,
    Binary,
    Text,
}

/// Column names and decoders for one result set.
pub struct RowDecoder {
    columns: Vec<(String, Decode)>,
}

impl RowDecoder {
    pub fn new(row: &MySqlRow) -> RowDecoder {
        let columns = row
            .columns()
            .iter()
            .map(|c| {
                let ty = c.type_info().name().to_ascii_uppercase();
                let decode = match ty.as_str() {
                    "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT"
                    | "YEAR" => Decode::Int,
                    t if t.ends_with("UNSIGNED") => Decode::UInt,
                    "FLOAT" | "DOUBLE" => Decode::Float,
                    "DECIMAL" => Decode::Decimal,
                    "DATETIME" | "TIMESTAMP" => Decode::DateTime,
                    "DATE" => Decode::Date,
                    "TIME" => Decode::Time,
                    "JSON" => Decode::Json,
                    "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB"
                    | "BIT" => Decode::Binary,
                    _ => Decode::Text,
                };
                (c.name().to_string(), decode)
            })
            .collect();
        RowDecoder { columns }
    }

    /// Decode one row; a value that cannot be decoded is an error naming the column.
    pub fn decode(&self, row: &MySqlRow) -> Result<Map<String, Value>, String> {
        let mut out = Map::with_capacity(self.columns.len());
        for (i, (name, decode)) in self.columns.iter().enumerate() {
            let value =
                decode_column(row, i, *decode).map_err(|e| format!("column {name}: {e}"))?;
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

fn decode_column(row: &MySqlRow, i: usize, decode: Decode) -> Result<Value, sqlx::Error> {
    Ok(match decode {
        Decode::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        Decode::UInt => row.try_get::<Option<u64>, _>(i)?.map(Value::from),
        Decode::Float => row
            .try_get::<Option<f64>, _>(i)?
            .map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Decode::Decimal => row
            .try_get::<Option<Decimal>, _>(i)?
            .map(|d| Value::String(d.to_string())),
        Decode::DateTime => row.try_get::<Option<NaiveDateTime>, _>(i)?.map(|t| {
            let fmt = if t.and_utc().timestamp_subsec_micros() == 0 {
                "%Y-%m-%d %H:%M:%S"
            } else {
                "%Y-%m-%d %H:%M:%S%.6f"
            };
            Value::String(t.format(fmt).to_string())
        }),
        Decode::Date => row
            .try_get::<Option<NaiveDate>, _>(i)?
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
        Decode::Time => row
            .try_get::<Option<NaiveTime>, _>(i)?
            .map(|t| Value::String(t.format("%H:%M:%S").to_string())),
        Decode::Json => row.try_get::<Option<Value>, _>(i)?,
        Decode::Binary => {
            row.try_get::<Option<Vec<u8>>, _>(i)?
                .map(|b| match String::from_utf8(b) {
                    Ok(text) => Value::String(text),
                    Err(e) => Value::String(
                        base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                    ),
                })
        }
        Decode::Text => row.try_get::<Option<String>, _>(i)?.map(Value::String),
    }
    .unwrap_or(Value::Null))
}
