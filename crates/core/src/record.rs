//! Records and the message envelope that carries them between stages.
//!
//! A message body is one page or batch: `{"scheme", "run_id", "seq", "records": [{"id", "data"}]}`.
//! A dead letter holds exactly one record. `data` is the record as a JSON object: the source's
//! row or item before `ferry transform`, the rendered target request tree after it. A record on
//! its way to the load stage also carries `source`, the source record it was rendered from, so
//! that a load dead letter can be rendered again after a mapping fix (`ferry replay --rerender`).
//! The load stage never reads `source`, so it carries it as raw JSON text: copied, not parsed
//! into a tree, and written back byte for byte.
//!
//! JSON has no bytes, so a binary value (a MySQL `VARBINARY` or `BLOB`) travels as a tagged
//! object, `{"$bytes": "<standard base64>"}`, which no text can be mistaken for: a lone
//! placeholder passes it on unchanged, the MySQL sink binds it as bytes, and text rendering
//! ([`value_text`]) shows it as its UTF-8 text when it is valid UTF-8, else as `0x` and
//! upper-case hex (`0x00FF10`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The key of the object that carries bytes: `{"$bytes": "<base64>"}`.
pub const BYTES_KEY: &str = "$bytes";

/// `bytes` as a record value: `{"$bytes": "<base64>"}`.
pub fn bytes_value(bytes: &[u8]) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(
        BYTES_KEY.to_string(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    Value::Object(map)
}

/// The bytes a `{"$bytes": "<base64>"}` value carries; `None` for any other value (an object
/// with other keys, or whose base64 does not decode, is an ordinary object).
pub fn as_bytes(value: &Value) -> Option<Vec<u8>> {
    let Value::Object(map) = value else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    let encoded = map.get(BYTES_KEY)?.as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// Bytes as text for a reader: their UTF-8 text when they are valid UTF-8, else `0x` and
/// upper-case hex, as MySQL writes a hex literal.
pub fn bytes_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(2 + 2 * bytes.len());
            out.push_str("0x");
            for b in bytes {
                out.push_str(&format!("{b:02X}"));
            }
            out
        }
    }
}

/// One record: its id (from the scheme's `id` field, used by idCheck and the ledger) and its data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub data: Value,
    /// After the transform: the source record `data` was rendered from (absent before the
    /// transform, and in messages written by a Ferry that did not keep it), as JSON text: the
    /// same JSON on the wire as a value, without a tree built for it (see [`Record::source_value`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<RawValue>>,
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.id == other.id
            && self.data == other.data
            && self.source.as_ref().map(|s| s.get()) == other.source.as_ref().map(|s| s.get())
    }
}

impl Record {
    /// A record as a source yields it: no rendering behind it yet.
    pub fn new(id: impl Into<String>, data: Value) -> Record {
        Record {
            id: id.into(),
            data,
            source: None,
        }
    }

    /// Keep `source` as the source record this one was rendered from.
    pub fn rendered_from(mut self, source: &Value) -> Record {
        // Serialising a JSON value cannot fail.
        self.source = serde_json::value::to_raw_value(source).ok();
        self
    }

    /// The source record as a JSON value, if the record carries one.
    pub fn source_value(&self) -> Option<Value> {
        serde_json::from_str(self.source.as_ref()?.get()).ok()
    }
}

/// The body of every message on a Ferry queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub scheme: String,
    pub run_id: String,
    /// Page or batch number within the run, from 1.
    pub seq: u64,
    pub records: Vec<Record>,
}

impl Envelope {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The same envelope holding only `record`: the shape of a dead letter.
    pub fn single(&self, record: Record) -> Envelope {
        Envelope {
            scheme: self.scheme.clone(),
            run_id: self.run_id.clone(),
            seq: self.seq,
            records: vec![record],
        }
    }
}

/// Render a JSON scalar as the text a template or an id would show: strings without quotes,
/// null as empty, numbers and booleans as JSON writes them, bytes as [`bytes_text`], other
/// objects and arrays as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => match as_bytes(other) {
            Some(bytes) => bytes_text(&bytes),
            None => other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_round_trips_with_chinese_and_emoji() {
        let env = Envelope {
            scheme: "s".into(),
            run_id: "r".into(),
            seq: 3,
            records: vec![
                Record::new(
                    "张三🚀",
                    json!({"company": "某某公司 😀", "amount": "12.30"}),
                )
                .rendered_from(&json!({"公司": "某某公司 😀"})),
            ],
        };
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
        assert_eq!(
            back.records[0].source_value(),
            Some(json!({"公司": "某某公司 😀"}))
        );
    }

    #[test]
    fn a_source_is_written_as_the_value_it_was_and_read_back_byte_for_byte() {
        let source = json!({"公司": "某某公司 😀", "amount": 12.3, "n": null, "q": "say \"hi\""});
        let record = Record::new("1", json!({"a": 1})).rendered_from(&source);
        let as_value = json!({"id": "1", "data": {"a": 1}, "source": source});
        let env = Envelope {
            scheme: "s".into(),
            run_id: "r".into(),
            seq: 1,
            records: vec![record],
        };
        let bytes = env.to_bytes();
        assert_eq!(
            bytes,
            serde_json::to_vec(
                &json!({"scheme": "s", "run_id": "r", "seq": 1, "records": [as_value]})
            )
            .unwrap()
        );
        assert_eq!(Envelope::from_bytes(&bytes).unwrap().to_bytes(), bytes);
    }

    #[test]
    fn a_record_without_a_source_reads_and_writes_as_before() {
        let old = br#"{"scheme":"s","run_id":"r","seq":1,"records":[{"id":"1","data":{"a":1}}]}"#;
        let env = Envelope::from_bytes(old).unwrap();
        assert_eq!(env.records[0], Record::new("1", json!({"a": 1})));
        assert_eq!(env.to_bytes(), old.to_vec());
    }

    #[test]
    fn bytes_travel_tagged_and_render_as_text_or_hex() {
        let raw = [0x00, 0xFF, 0x10];
        let value = bytes_value(&raw);
        assert_eq!(value, json!({"$bytes": "AP8Q"}));
        assert_eq!(as_bytes(&value), Some(raw.to_vec()));
        assert_eq!(value_text(&value), "0x00FF10");
        assert_eq!(value_text(&bytes_value("张三🚀".as_bytes())), "张三🚀");
        assert_eq!(value_text(&bytes_value(b"")), "");
        // Text that looks like base64 stays text; other objects stay objects.
        assert_eq!(as_bytes(&json!("AP8Q")), None);
        assert_eq!(as_bytes(&json!({"$bytes": "AP8Q", "x": 1})), None);
        assert_eq!(as_bytes(&json!({"$bytes": "not base64!"})), None);
        assert_eq!(value_text(&json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn extreme_doubles_survive_the_envelope() {
        for d in [
            f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MAX,
            2.2250738585072014e-308,
            0.1 + 0.2,
        ] {
            let env = Envelope {
                scheme: "s".into(),
                run_id: "r".into(),
                seq: 1,
                records: vec![Record::new("1", json!({ "d": d }))],
            };
            let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
            let got = back.records[0].data["d"].as_f64().unwrap();
            assert_eq!(got.to_bits(), d.to_bits(), "{d}");
        }
    }
}
