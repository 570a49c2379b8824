//! The scheme file model: a source, a target and the mapping between them, in the seed
//! documents' JSON "metadata" shape, so that a scheme from that platform pastes in nearly as is.
//!
//! The top level (`name`, `schedule`, `source`, `target`, ...) denies unknown keys. `metadata`
//! keeps unknown keys in `extra`: pasted metadata carries harmless platform keys (`effect`,
//! `describe`, ...) that Ferry does not use; `ferry lint` mentions them instead of refusing them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Time zone used when a scheme does not set one: the sources are Chinese SaaS.
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// One scheme file (`config/schemes/*.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheme {
    /// Unique name; becomes part of every queue name (`ferry.<name>.load`), so it is limited to
    /// letters, digits, `-` and `_`.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Five-field cron expression (`0 * * * *`), evaluated in `timezone`. Without one the scheme
    /// runs only with `--once` or `ferry run --once`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone for `NOW()`, `{{CURRENT_TIME}}`, `DAYS_AGO_n` and schedules.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Where records come from.
    pub source: Endpoint,
    /// Where records go.
    pub target: Endpoint,
}

fn default_timezone() -> String {
    DEFAULT_TIMEZONE.to_string()
}

/// A source or target: a named connection from `ferry.toml` and the seed-shaped metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Name of a `[connections.<name>]` table in `ferry.toml`.
    pub connection: String,
    pub metadata: Metadata,
}

/// The seed documents' metadata block, plus Ferry's own additions under plain names.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// What to call: `select`, `execute`, `batchexecute`, `DingTalkRoBotPush`, an API path
    /// (`/v1/user/list`, `v1.0/yida/processes/instances`), or `写入空操作` (noop).
    #[serde(default)]
    pub api: String,
    /// The platform's `QUERY` / `EXECUTE` marker, kept from pasted seeds. Ferry knows the
    /// direction from where the metadata sits; `ferry lint` only checks that the two agree.
    #[serde(default)]
    pub effect: Option<String>,
    /// HTTP method for HTTP sources (`GET`, `POST`); kept but unused for SQL and robot.
    #[serde(default)]
    pub method: Option<String>,
    /// The record field that identifies a record (idCheck, the ledger, dead letters).
    #[serde(default)]
    pub id: Option<String>,
    /// The record field shown as its human-readable number in logs and status.
    #[serde(default)]
    pub number: Option<String>,
    /// Write each record once: upsert on the id (MySQL), consult the ledger (DingTalk).
    #[serde(default, rename = "idCheck")]
    pub id_check: bool,
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// The request tree: for a source, the request sent per page; for a target, what each
    /// record becomes.
    #[serde(default)]
    pub request: Vec<Field>,
    /// Side values, e.g. `main_sql`.
    #[serde(default, rename = "otherRequest")]
    pub other_request: Vec<Field>,
    /// Renames and formats applied to each source record before mapping.
    #[serde(default, rename = "formatResponse")]
    pub format_response: Vec<FormatRule>,
    /// Ferry's addition for HTTP sources: JSON pointer to the records array in a response
    /// (`/data`, `/data/datas`). Vendor kinds know their own.
    #[serde(default)]
    pub records_at: Option<String>,
    /// Ferry's addition for targets: records per load message / per write (default 500 for
    /// MySQL, 10 for the robot).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Ferry's addition for MySQL targets: what a record meeting a key the table already has
    /// does, as DataX names it: `insert` (keep the row, counted as `kept`), `update` (upsert every
    /// mapped column), `replace` (`REPLACE INTO`). Absent: see [`crate::write`].
    #[serde(default)]
    pub write_mode: Option<String>,
    /// Keys Ferry does not interpret, kept as pasted (`effect`, `describe`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Paging. `pageSize` is the seeds' key; the rest are Ferry's additions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pagination {
    #[serde(rename = "pageSize")]
    pub page_size: Option<u64>,
    /// `offset` (the seeds' `limit/offset`), `page` (page numbers), `keyset` (`id > :last_id`),
    /// `cursor` (a next token), or absent for the connection kind's default.
    #[serde(default)]
    pub mode: Option<String>,
    /// keyset: the record field whose last value is the next page's `:last_id`.
    #[serde(default)]
    pub keyset_field: Option<String>,
    /// Stop with an error after this many pages, so a source that never ends cannot loop forever.
    #[serde(default)]
    pub max_pages: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One node of a request tree.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Field {
    /// The key this node produces (`main_params`, `order_no_new`). The seeds write `:created_at`
    /// for a robot field; the leading `:` is dropped.
    #[serde(default)]
    pub field: Option<String>,
    /// Human label; the robot message shows it next to the value.
    #[serde(default)]
    pub label: Option<String>,
    /// Target type of the rendered value.
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    /// A template (`{name}`, `{{a.b}}`, `_function ...`) or a JSON literal. Absent means null.
    #[serde(default)]
    pub value: Option<Value>,
    /// Sub-fields of an `object` (or the element shape of an `array`).
    #[serde(default)]
    pub children: Vec<Field>,
    /// Kept from pasted metadata (`parent`, `describe`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Field {
    /// The output key, with the seeds' leading `:` removed.
    pub fn key(&self) -> Option<&str> {
        self.field.as_deref().map(|f| f.trim_start_matches(':'))
    }
}

/// The types a field value converts to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    #[default]
    String,
    Int,
    Float,
    /// Exact decimal, carried as a string so money never passes through f64.
    Decimal,
    Date,
    Datetime,
    Bool,
    Object,
    Array,
}

/// `formatResponse` entry: rename `old` to `new` and convert it with `format`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FormatRule {
    pub old: String,
    pub new: String,
    /// A type name (`date`, `datetime`, `string`, ...) or a `DATE_FORMAT` pattern (`%Y-%m-%d`).
    #[serde(default)]
    pub format: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// The value of an `otherRequest` entry, e.g. `main_sql`, as text.
    pub fn other(&self, name: &str) -> Option<&str> {
        self.other_request
            .iter()
            .find(|f| f.key() == Some(name))
            .and_then(|f| f.value.as_ref())
            .and_then(Value::as_str)
    }
}
