//! Lookups (`lookups` in the metadata): fields added to every record, either picked from a
//! nested array of the record itself or looked up in a table that a second call fetches once
//! per run. The entries are parsed with the kind's options ([`Lookup`]); this is how a run
//! applies them.

use std::collections::HashMap;

use ferry_core::FerryError;
use ferry_core::record::value_text;
use ferry_core::template::lookup;
use serde_json::Value;

use super::client::{HttpClient, Request};
use super::paginator::items_at;
use super::spec::{Lookup, method as wire_method};
use super::vendor::Vendor;

/// Tables fetched by `Call` lookups, once per run.
type LookupTable = HashMap<String, Value>;

/// Where one run's API is, for the second calls of `Call` lookups.
pub(crate) struct Api<'a> {
    pub http: &'a HttpClient,
    pub vendor: &'a dyn Vendor,
    pub base: &'a str,
}

/// Applies a run's lookups to its records, keeping the tables `Call` lookups fetched (by the
/// lookup's index) for the rest of the run.
#[derive(Default)]
pub(crate) struct Enricher {
    tables: HashMap<usize, LookupTable>,
}

impl Enricher {
    /// Add every lookup's field to `record`, fetching a `Call` lookup's table on first use.
    pub(crate) async fn enrich(
        &mut self,
        lookups: &[Lookup],
        api: &Api<'_>,
        record: &mut Value,
    ) -> Result<(), FerryError> {
        for (index, lookup) in lookups.iter().enumerate() {
            let (field, value) = match &lookup {
                Lookup::Nested {
                    field,
                    from,
                    pick,
                    join,
                } => {
                    let picked: Vec<Value> = lookup_path(record, from)
                        .and_then(Value::as_array)
                        .map(|items| {
                            items
                                .iter()
                                .filter_map(|item| lookup_path(item, pick).cloned())
                                .filter(|v| !v.is_null())
                                .collect()
                        })
                        .unwrap_or_default();
                    let value = match join {
                        Some(sep) => Value::String(
                            picked.iter().map(value_text).collect::<Vec<_>>().join(sep),
                        ),
                        None => Value::Array(picked),
                    };
                    (field.clone(), value)
                }
                Lookup::Call { field, matches, .. } => {
                    if !self.tables.contains_key(&index) {
                        let table = fetch_table(lookup, api).await?;
                        self.tables.insert(index, table);
                    }
                    let key = lookup_path(record, matches).map(value_text);
                    let value = key
                        .and_then(|k| self.tables.get(&index).and_then(|t| t.get(&k)).cloned())
                        .unwrap_or(Value::Null);
                    (field.clone(), value)
                }
            };
            if let Some(map) = record.as_object_mut() {
                map.insert(field, value);
            }
        }
        Ok(())
    }
}

async fn fetch_table(lookup: &Lookup, api_at: &Api<'_>) -> Result<LookupTable, FerryError> {
    let Lookup::Call {
        api,
        method,
        records_at,
        key,
        value,
        ..
    } = lookup
    else {
        return Ok(LookupTable::new());
    };
    let req = Request::new(wire_method(*method), api_at.base, api);
    let reply = api_at.http.call(api_at.vendor, &req).await?;
    let items = items_at(&reply, records_at, "lookups.records_at")?;
    let mut table = LookupTable::new();
    for item in items {
        let item = api_at.vendor.shape(item);
        if let Some(k) = lookup_path(&item, key) {
            table.insert(
                value_text(k),
                lookup_path(&item, value).cloned().unwrap_or(Value::Null),
            );
        }
    }
    tracing::debug!(connection = %api_at.http.connection(), api = %api, rows = table.len(), "lookup table fetched");
    Ok(table)
}

fn lookup_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    lookup(value, path)
}
