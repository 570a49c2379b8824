//! `kind = "noop"`: a target that accepts every record and writes nothing: the seeds'
//! `写入空操作`, for schemes whose point is the source call itself (token refresh) or for dry
//! runs. It has no settings and reads no keys.

use super::http::no_check;
use super::{Kind, Opens, Sends, Writes, no_connection_lint, no_lint};
use crate::config::Connection;

pub static KIND: Kind = Kind {
    name: "noop",
    opens: Opens::Target,
    rate_limited: false,
    single_active_consumer: false,
    writes: Writes::Discards,
    sends: Sends::Nothing,
    sql: false,
    source_keys: &[],
    target_keys: &[],
    pagination_keys: &[],
    read: |_, _| Connection::Noop,
    api: |_, _| Ok(()),
    check: no_check,
    lint: no_lint,
    lint_connection: no_connection_lint,
};
