//! MySQL rows to JSON objects, every column type carried exactly.
//!
//! Decoders are chosen once per result set from the column types, then applied to every row.
//! Rows come from prepared statements (sqlx's `query` always prepares), so every value is in the
//! binary protocol's form; they are read from its raw bytes (`try_get_raw`) rather than through
//! chrono or rust_decimal, whose ranges are narrower than MySQL's (zero dates, `TIME` up to
//! 838 hours, 65-digit decimals). What each type becomes:
//!
//! | MySQL type | record value |
//! |---|---|
//! | TINYINT .. BIGINT (UNSIGNED) | number, full range (`18446744073709551615`) |
//! | FLOAT, DOUBLE | number: the exact double (a FLOAT's too: `3.4028234663852886e38`) |
//! | DECIMAL(M,D) | string, the server's exact text (`"-12.3000"`) |
//! | DATE | `"YYYY-MM-DD"`, zero dates and zero parts kept (`"0000-00-00"`, `"2024-00-15"`) |
//! | DATETIME(n), TIMESTAMP(n) | `"YYYY-MM-DD HH:MM:SS[.f]"` with the column's `n` fraction digits |
//! | TIME(n) | `"[-]HH:MM:SS[.f]"`, -838:59:59 to 838:59:59 |
//! | YEAR | `"YYYY"` (`"2155"`, `"0000"`) |
//! | BIT(n) | bytes, big-endian, as MySQL sends them (`b'101'` is `{"$bytes": "BQ=="}`) |
//! | CHAR, VARCHAR, TEXT, ENUM, SET, MariaDB JSON | string |
//! | MySQL JSON | its JSON value |
//! | BINARY, VARBINARY, BLOB (binary charset) | `{"$bytes": "<base64>"}`, see [`ferry_core::record`] |
//! | NULL | null |
//!
//! A value that cannot be carried (a spatial value; text that is not UTF-8) is reported with
//! its column and reason in [`Decoded::unreadable`]; the extractor dead-letters that record alone.

use ferry_core::record::bytes_value;
use serde_json::{Map, Number, Value};
use sqlx::mysql::{MySql, MySqlRow, MySqlTypeInfo, MySqlValueRef};
use sqlx::{Column, Decode, Row, TypeInfo};

/// The collation id of the `binary` character set: bytes, not text.
const BINARY_COLLATION: u32 = 63;

/// Display length of `DATETIME`/`TIMESTAMP` without fraction (`YYYY-MM-DD HH:MM:SS`).
const DATETIME_WIDTH: u32 = 19;
/// Display length of `TIME` without fraction (`-838:59:59`).
const TIME_WIDTH: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int {
        unsigned: bool,
    },
    Float,
    Double,
    Decimal,
    /// DATETIME or TIMESTAMP with its fraction digits.
    DateTime {
        fsp: u32,
    },
    Date,
    Time {
        fsp: u32,
    },
    Year,
    Bit,
    Json,
    Bytes,
    Text,
    /// A type Ferry does not carry; the reason says what to select instead.
    Refused(&'static str),
}

/// A decoded row: the record data, and the columns whose value could not be carried.
#[derive(Debug, Default)]
pub struct Decoded {
    pub data: Map<String, Value>,
    /// `(column, reason)` of each value that cannot be carried; `data` holds its raw bytes as
    /// `{"$bytes": ..}`, so the row's dead letter shows what it was.
    pub unreadable: Vec<(String, String)>,
}

/// Column names and decoders for one result set.
pub struct RowDecoder {
    columns: Vec<(String, Kind)>,
}

impl RowDecoder {
    pub fn new(row: &MySqlRow) -> RowDecoder {
        let columns = row
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), decoder_for(c.type_info())))
            .collect();
        RowDecoder { columns }
    }

    /// Decode one row. A value that cannot be carried does not stop the row: it is listed in
    /// [`Decoded::unreadable`] with its column and reason.
    pub fn decode(&self, row: &MySqlRow) -> Decoded {
        let mut out = Decoded {
            data: Map::with_capacity(self.columns.len()),
            unreadable: Vec::new(),
        };
        for (i, (name, decode)) in self.columns.iter().enumerate() {
            let raw = match row.try_get_raw(i) {
                Ok(raw) => raw_bytes(raw),
                Err(e) => {
                    out.unreadable.push((name.clone(), e.to_string()));
                    continue;
                }
            };
            let value = match raw {
                None => Ok(Value::Null),
                Some(bytes) => decode_value(*decode, bytes),
            };
            match value {
                Ok(value) => {
                    out.data.insert(name.clone(), value);
                }
                Err(reason) => {
                    if let Some(bytes) = raw {
                        out.data.insert(name.clone(), bytes_value(bytes));
                    }
                    out.unreadable.push((name.clone(), reason));
                }
            }
        }
        out
    }
}

/// The raw binary-protocol bytes of a value, `None` for SQL NULL. sqlx's own null test also
/// calls a zero date NULL; reading the bytes tells the two apart (a zero date has bytes).
fn raw_bytes(raw: MySqlValueRef<'_>) -> Option<&[u8]> {
    // Reading the bytes fails only for SQL NULL.
    <&[u8] as Decode<MySql>>::decode(raw).ok()
}

/// What sqlx knows of a column but keeps private: its collation, its UNSIGNED flag and its
/// display length (which gives the fraction digits of DATETIME(n) and TIME(n)). Read from the
/// type's `Debug` text, which the unit tests pin for the sqlx version in Cargo.lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ColumnFacts {
    collation: Option<u32>,
    unsigned: bool,
    max_size: Option<u32>,
}

fn column_facts(ty: &MySqlTypeInfo) -> ColumnFacts {
    let text = format!("{ty:?}");
    let number_after = |key: &str| {
        let rest = &text[text.find(key)? + key.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse::<u32>().ok()
    };
    let flags = text
        .find("flags: ColumnFlags(")
        .map(|i| &text[i..])
        .and_then(|rest| rest.split(')').next())
        .unwrap_or("");
    ColumnFacts {
        collation: number_after("collation: Collation("),
        unsigned: flags.contains("UNSIGNED"),
        max_size: number_after("max_size: Some("),
    }
}

fn decoder_for(ty: &MySqlTypeInfo) -> Kind {
    let facts = column_facts(ty);
    let name = ty.name().to_ascii_uppercase();
    // Unknown display length: all six digits, so no fraction is ever cut.
    let fraction = |width: u32| {
        facts
            .max_size
            .map_or(6, |len| len.saturating_sub(width + 1).min(6))
    };
    match name.as_str() {
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => Kind::Int {
            unsigned: facts.unsigned,
        },
        t if t.ends_with("UNSIGNED") => Kind::Int { unsigned: true },
        "FLOAT" => Kind::Float,
        "DOUBLE" => Kind::Double,
        "DECIMAL" => Kind::Decimal,
        "DATETIME" | "TIMESTAMP" => Kind::DateTime {
            fsp: fraction(DATETIME_WIDTH),
        },
        "DATE" => Kind::Date,
        "TIME" => Kind::Time {
            fsp: fraction(TIME_WIDTH),
        },
        "YEAR" => Kind::Year,
        "BIT" => Kind::Bit,
        "JSON" => Kind::Json,
        "GEOMETRY" => Kind::Refused(
            "spatial values are not carried; select them as text or bytes in main_sql \
             (ST_AsText(col) or ST_AsWKB(col)) and write them back with ST_GeomFromText/ST_GeomFromWKB",
        ),
        // Strings: the binary character set means bytes, whatever sqlx calls the type (it says
        // VARBINARY for a `_bin` collation too, and BLOB for MariaDB's JSON).
        _ if facts.collation == Some(BINARY_COLLATION) => Kind::Bytes,
        _ => Kind::Text,
    }
}

/// Decode one non-null value from its binary-protocol bytes.
fn decode_value(decode: Kind, bytes: &[u8]) -> Result<Value, String> {
    Ok(match decode {
        Kind::Int { unsigned } => {
            let n = le_integer(bytes)?;
            if unsigned {
                Value::from(n)
            } else {
                // Sign-extend from the wire width (1, 2, 4 or 8 bytes).
                let shift = 64 - 8 * bytes.len() as u32;
                Value::from(((n << shift) as i64) >> shift)
            }
        }
        Kind::Float => {
            let array: [u8; 4] = bytes.try_into().map_err(|_| wire_len("FLOAT", bytes))?;
            // The float's exact value as a double: a FLOAT column takes it back bit for bit (its
            // shortest text, such as 3.4028235e38, is above FLT_MAX as a double and is refused).
            float_value(f64::from(f32::from_le_bytes(array)))?
        }
        Kind::Double => {
            let array: [u8; 8] = bytes.try_into().map_err(|_| wire_len("DOUBLE", bytes))?;
            float_value(f64::from_le_bytes(array))?
        }
        Kind::Decimal => Value::String(ascii(bytes, "DECIMAL")?),
        Kind::DateTime { fsp } => Value::String(datetime_text(bytes, fsp, true)?),
        Kind::Date => Value::String(datetime_text(bytes, 0, false)?),
        Kind::Time { fsp } => Value::String(time_text(bytes, fsp)?),
        // As MySQL shows it: `string` and `int` mappings both write it back unchanged ("0" would
        // be read as 2000).
        Kind::Year => Value::String(format!("{:04}", le_integer(bytes)?)),
        // A BIT value is a binary string in MySQL; `type: int` in a mapping makes it a number.
        Kind::Bit => bytes_value(bytes),
        Kind::Json => {
            let text = utf8(bytes)?;
            serde_json::from_str(text).map_err(|e| format!("JSON that does not parse: {e}"))?
        }
        Kind::Bytes => bytes_value(bytes),
        Kind::Text => Value::String(utf8(bytes)?.to_string()),
        Kind::Refused(reason) => return Err(reason.to_string()),
    })
}

fn wire_len(ty: &str, bytes: &[u8]) -> String {
    format!("a {ty} value of {} bytes on the wire", bytes.len())
}

/// A little-endian integer of 1, 2, 4 or 8 bytes, as the binary protocol sends integers.
fn le_integer(bytes: &[u8]) -> Result<u64, String> {
    if !matches!(bytes.len(), 1 | 2 | 4 | 8) {
        return Err(wire_len("integer", bytes));
    }
    Ok(bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

pub(crate) fn float_value(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("the float {f} has no JSON form"))
}

fn ascii(bytes: &[u8], ty: &str) -> Result<String, String> {
    if bytes.is_ascii() {
        Ok(String::from_utf8_lossy(bytes).into_owned())
    } else {
        Err(format!("a {ty} value that is not ASCII text"))
    }
}

pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        let shown: String = bytes.iter().take(32).map(|b| format!("{b:02X}")).collect();
        format!(
            "text that is not valid UTF-8 ({e}; bytes 0x{shown}{})",
            if bytes.len() > 32 { "..." } else { "" }
        )
    })
}

/// `DATE`, `DATETIME`, `TIMESTAMP`: a length byte (0, 4, 7 or 11), then year (u16 LE), month,
/// day, hour, minute, second, microseconds (u32 LE). Length 0 is the zero date. Parts are
/// printed as they are, so zero months and days (`2024-00-15`) survive.
fn datetime_text(bytes: &[u8], fsp: u32, with_time: bool) -> Result<String, String> {
    let (len, body) = bytes.split_first().ok_or_else(|| wire_len("date", bytes))?;
    let len = usize::from(*len);
    if !matches!(len, 0 | 4 | 7 | 11) || body.len() < len {
        return Err(wire_len("date", bytes));
    }
    let part = |i: usize| body.get(i).copied().map_or(0, u32::from);
    let year = if len >= 4 {
        u32::from(u16::from_le_bytes([body[0], body[1]]))
    } else {
        0
    };
    let date = format!("{year:04}-{:02}-{:02}", part(2), part(3));
    if !with_time {
        return Ok(date);
    }
    let micros = if len == 11 {
        u32::from_le_bytes([body[7], body[8], body[9], body[10]])
    } else {
        0
    };
    Ok(format!(
        "{date} {:02}:{:02}:{:02}{}",
        part(4),
        part(5),
        part(6),
        fraction(micros, fsp)
    ))
}

/// `TIME`: a length byte (0, 8 or 12), then negative (u8), days (u32 LE), hour, minute,
/// second, microseconds (u32 LE). Days are folded into hours, as MySQL prints them.
fn time_text(bytes: &[u8], fsp: u32) -> Result<String, String> {
    let (len, body) = bytes.split_first().ok_or_else(|| wire_len("TIME", bytes))?;
    let len = usize::from(*len);
    if !matches!(len, 0 | 8 | 12) || body.len() < len {
        return Err(wire_len("TIME", bytes));
    }
    if len == 0 {
        return Ok(format!("00:00:00{}", fraction(0, fsp)));
    }
    let negative = body[0] == 1;
    let days = u64::from(u32::from_le_bytes([body[1], body[2], body[3], body[4]]));
    let hours = days * 24 + u64::from(body[5]);
    let micros = if len == 12 {
        u32::from_le_bytes([body[8], body[9], body[10], body[11]])
    } else {
        0
    };
    Ok(format!(
        "{}{hours:02}:{:02}:{:02}{}",
        if negative { "-" } else { "" },
        body[6],
        body[7],
        fraction(micros, fsp)
    ))
}

/// `.ffffff` cut to `fsp` digits (none for `fsp` 0). A column of unknown precision shows the
/// digits the value has.
pub(crate) fn fraction(micros: u32, fsp: u32) -> String {
    if fsp == 0 {
        return String::new();
    }
    let six = format!("{micros:06}");
    format!(".{}", &six[..fsp.min(6) as usize])
}

/// Base64 of `bytes`, as `{"$bytes": ..}` carries them (for tests and messages).
#[cfg(test)]
fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sqlx::Type;

    #[test]
    fn column_facts_are_read_from_sqlx_debug_text() {
        // Pins the Debug format of the sqlx in Cargo.lock: if it changes, this fails here.
        let text = MySqlTypeInfo::__enum();
        assert_eq!(
            column_facts(&text),
            ColumnFacts {
                collation: Some(45),
                unsigned: false,
                max_size: None
            }
        );
        let bytes = <Vec<u8> as Type<MySql>>::type_info();
        assert_eq!(column_facts(&bytes).collation, Some(BINARY_COLLATION));
        assert_eq!(decoder_for(&bytes), Kind::Bytes);
        assert_eq!(decoder_for(&text), Kind::Text);
        let unsigned = <u64 as Type<MySql>>::type_info();
        assert!(column_facts(&unsigned).unsigned);
        assert_eq!(decoder_for(&unsigned), Kind::Int { unsigned: true });
    }

    #[test]
    fn integers_keep_sign_and_full_range() {
        let int = Kind::Int { unsigned: false };
        let uint = Kind::Int { unsigned: true };
        assert_eq!(decode_value(uint, &[0xFF; 8]), Ok(json!(u64::MAX)));
        assert_eq!(decode_value(int, &[0xFF; 8]), Ok(json!(-1)));
        assert_eq!(
            decode_value(int, &i64::MIN.to_le_bytes()),
            Ok(json!(i64::MIN))
        );
        assert_eq!(decode_value(int, &[0x80]), Ok(json!(-128)));
        assert_eq!(decode_value(uint, &[0x80]), Ok(json!(128)));
        assert_eq!(
            decode_value(int, &(-8_388_608i32).to_le_bytes()),
            Ok(json!(-8_388_608))
        );
        assert!(decode_value(int, &[1, 2, 3]).is_err());
    }

    #[test]
    fn floats_read_back_to_the_same_bits() {
        for d in [f64::MAX, f64::MIN_POSITIVE, -f64::MAX, 0.1, 1e-300] {
            let v = decode_value(Kind::Double, &d.to_le_bytes()).unwrap();
            let back: f64 = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(back.to_bits(), d.to_bits(), "{d}");
        }
        for f in [f32::MAX, f32::MIN_POSITIVE, 0.1f32, -3.5f32] {
            let v = decode_value(Kind::Float, &f.to_le_bytes()).unwrap();
            let back: f64 = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(back, f64::from(f), "{f}");
        }
        assert_eq!(
            decode_value(Kind::Float, &f32::MAX.to_le_bytes()),
            Ok(json!(3.4028234663852886e38))
        );
    }

    #[test]
    fn decimals_stay_exact_text() {
        let big = "-12345678901234567890123456789012345.123456789012345678901234567890";
        assert_eq!(decode_value(Kind::Decimal, big.as_bytes()), Ok(json!(big)));
    }

    #[test]
    fn dates_keep_zeros_and_fractions() {
        let dt = |fsp| Kind::DateTime { fsp };
        assert_eq!(decode_value(dt(0), &[0]), Ok(json!("0000-00-00 00:00:00")));
        assert_eq!(
            decode_value(dt(3), &[0]),
            Ok(json!("0000-00-00 00:00:00.000"))
        );
        assert_eq!(decode_value(Kind::Date, &[0]), Ok(json!("0000-00-00")));
        assert_eq!(
            decode_value(Kind::Date, &[4, 232, 7, 0, 15]),
            Ok(json!("2024-00-15"))
        );
        assert_eq!(
            decode_value(dt(2), &[11, 232, 7, 1, 2, 3, 4, 5, 160, 134, 1, 0]),
            Ok(json!("2024-01-02 03:04:05.10"))
        );
        assert_eq!(
            decode_value(dt(6), &[7, 0x0f, 0x27, 12, 31, 23, 59, 59]),
            Ok(json!("9999-12-31 23:59:59.000000"))
        );
        assert_eq!(
            decode_value(dt(0), &[4, 232, 7, 2, 29]),
            Ok(json!("2024-02-29 00:00:00"))
        );
        assert!(decode_value(dt(0), &[5, 1, 2, 3, 4, 5]).is_err());
    }

    #[test]
    fn time_covers_its_whole_range() {
        let t = |fsp| Kind::Time { fsp };
        assert_eq!(
            decode_value(t(6), &[12, 1, 34, 0, 0, 0, 22, 59, 59, 32, 161, 7, 0]),
            Ok(json!("-838:59:59.500000"))
        );
        assert_eq!(
            decode_value(t(0), &[8, 0, 34, 0, 0, 0, 22, 59, 59]),
            Ok(json!("838:59:59"))
        );
        assert_eq!(
            decode_value(t(0), &[8, 0, 1, 0, 0, 0, 1, 0, 0]),
            Ok(json!("25:00:00"))
        );
        assert_eq!(decode_value(t(0), &[0]), Ok(json!("00:00:00")));
        assert_eq!(decode_value(t(1), &[0]), Ok(json!("00:00:00.0")));
    }

    #[test]
    fn year_is_four_digits_and_bit_is_bytes() {
        assert_eq!(decode_value(Kind::Year, &[107, 8]), Ok(json!("2155")));
        assert_eq!(decode_value(Kind::Year, &[0, 0]), Ok(json!("0000")));
        assert_eq!(
            decode_value(Kind::Bit, &[21]),
            Ok(json!({"$bytes": b64(&[21])}))
        );
        assert_eq!(
            decode_value(Kind::Bit, &[0xFF; 8]),
            Ok(json!({"$bytes": b64(&[0xFF; 8])}))
        );
    }

    #[test]
    fn bytes_are_tagged_and_text_must_be_utf8() {
        assert_eq!(
            decode_value(Kind::Bytes, &[0x00, 0xFF, 0x10]),
            Ok(json!({"$bytes": b64(&[0x00, 0xFF, 0x10])}))
        );
        assert_eq!(
            decode_value(Kind::Text, "张三🚀".as_bytes()),
            Ok(json!("张三🚀"))
        );
        assert_eq!(
            decode_value(Kind::Text, &[0x41, 0xFF, 0x42]),
            Err("text that is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 1; bytes 0x41FF42)".to_string())
        );
        assert_eq!(
            decode_value(Kind::Json, "{\"a\":\"中\"}".as_bytes()),
            Ok(json!({"a": "中"}))
        );
        assert!(decode_value(Kind::Refused("no"), &[1]).is_err());
    }
}
