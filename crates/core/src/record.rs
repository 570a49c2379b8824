//! Records and the message envelope that carries them between stages.
//!
//! A message body is one page or batch: `{"scheme", "run_id", "seq", "records": [{"id", "data"}]}`.
//! A dead letter holds exactly one record. `data` is the record as a JSON object: the source's
//! row or item before `ferry transform`, the rendered target request tree after it. A record on
//! its way to the load stage also carries `source`, the source record it was rendered from, so
//! that a load dead letter can be rendered again after a mapping fix (`ferry replay --rerender`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One record: its id (from the scheme's `id` field, used by idCheck and the ledger) and its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub data: Value,
    /// After the transform: the source record `data` was rendered from (absent before the
    /// transform, and in messages written by a Ferry that did not keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
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
/// null as empty, numbers and booleans as JSON writes them, objects and arrays as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
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
            records: vec![Record {
                id: "张三🚀".into(),
                data: json!({"company": "某某公司 😀", "amount": "12.30"}),
                source: Some(json!({"公司": "某某公司 😀"})),
            }],
        };
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn a_record_without_a_source_reads_and_writes_as_before() {
        let old = br#"{"scheme":"s","run_id":"r","seq":1,"records":[{"id":"1","data":{"a":1}}]}"#;
        let env = Envelope::from_bytes(old).unwrap();
        assert_eq!(env.records[0], Record::new("1", json!({"a": 1})));
        assert_eq!(env.to_bytes(), old.to_vec());
    }
}
