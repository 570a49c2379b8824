//! # ferry-core
//!
//! What every stage shares and no service is needed for:
//!
//! - [`error`]: the classified error (`Transient`, `Record`, `Config`) that decides retry,
//!   dead-letter or stop.
//! - [`record`]: records and the message envelope between stages.
//! - [`redact`]: the one place that hides passwords and tokens in URLs and messages.
//! - [`identity`]: a record is its (id, content): identical repeats go, every content stays.
//! - [`scheme`]: the scheme file model in the seed documents' metadata shape.
//! - [`config`]: `ferry.toml` (broker, state, telemetry, connections) with `${VAR}` substitution.
//! - [`connector`]: one module per connection kind (its config, keys, checks, traits) and the
//!   one list of kinds.
//! - [`lint`]: the risky-but-legal things `ferry lint` warns about.
//! - [`files`]: reads `ferry.toml` and every scheme file, checked against each other (named
//!   apart from `load`, which is the loader role only).
//! - [`problem`]: a configuration problem with its file and key path, as `ferry lint` prints it.
//! - [`sign`]: the vendor request signatures (DingTalk robot, Jushuitan, Kingdee).
//! - [`placeholder`]: `{field}`, `{{a.b}}`, Ferry's variables, and the [`template::Context`]
//!   they resolve in; below both `template` and `expr`.
//! - [`template`]: value templates (`{field}`, `{{a.b}}`, `{{CURRENT_TIME|datetime}}`, ...).
//! - [`expr`]: `_function` expressions, a MySQL-style expression language.
//! - [`convert`]: conversion of rendered values to a field's `type`.
//! - [`mapping`]: `formatResponse` rules and the request tree applied to each record.
//! - [`sql`]: `:name` parameters in scheme SQL, turned into binds.
//! - [`paging`]: seed-style `LIMIT :limit OFFSET :offset` over one table, paged by its key.
//! - [`write`]: MySQL write modes (`insert`, `update`, `replace`) and the statement each runs.

pub mod config;
pub mod connector;
pub mod convert;
mod date_format;
pub mod error;
pub mod expr;
pub mod files;
pub mod identity;
pub mod lint;
pub mod mapping;
pub mod paging;
pub mod placeholder;
pub mod probe;
pub mod problem;
pub mod record;
pub mod redact;
pub mod scheme;
pub mod sign;
pub mod sql;
pub mod template;
pub mod write;

pub use error::{ErrorClass, FerryError};
pub use record::{Envelope, Record};
pub use scheme::{Field, FieldType, Metadata, Scheme};
