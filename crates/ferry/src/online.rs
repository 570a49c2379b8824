//! `ferry lint --online`: each scheme checked against its live services, after the offline
//! checks passed. Nothing is written and no checkpoint moves:
//!
//! 1. one sample page is fetched from the source (its first page, with `{{LAST_SYNC_TIME}}` at
//!    its start, 1970, so the window holds whatever the source has) and every record is mapped as
//!    the transform would; a target placeholder that names a field none of the fetched records
//!    has is reported (warning: it would render null for every one of them);
//! 2. for a MySQL target, the columns its SQL writes are compared with the target table's
//!    (`information_schema.COLUMNS`); a column the table lacks is an error (every write would
//!    fail);
//! 3. for a MySQL source paging by offset, how it pages: by the table's key (`offset paging over
//!    `www_contact`: paged by key `id``), or as written and why (a join, no usable key);
//! 4. for a MySQL source whose scheme names an `id`, the column behind it must be a unique key of
//!    the table the SQL reads (`information_schema.STATISTICS`); otherwise rows that share a
//!    value are different records under one id, and a warning names the column.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_core::Record;
use ferry_core::files::SchemeFile;
use ferry_core::mapping::placeholders_of;
use ferry_core::probe::{TableName, id_is_unique, missing_columns, read_table, written_columns};
use ferry_core::problem::Problem;
use ferry_core::template::{Context, Reads, closest, shown};
use sqlx::Row;
use sqlx::mysql::MySqlPool;

use crate::app::App;
use crate::connections::Connections;
use crate::roles::transform::{DEFAULT_LOAD_BATCH, Transformer};

/// Every problem the live services show in `schemes`.
pub async fn check(app: Arc<App>, schemes: &[SchemeFile]) -> anyhow::Result<Vec<Problem>> {
    let state = app.state().await?;
    let connections = Connections::new(Arc::clone(&app), state);
    let mut out = Vec::new();
    for scheme in schemes {
        let file = app.files.display_name(&scheme.file);
        let mut found = Vec::new();
        sample_placeholders(&connections, scheme, &mut found).await;
        target_columns(&app, &connections, scheme, &mut found).await;
        source_id_unique(&app, &connections, scheme, &mut found).await;
        out.extend(found.into_iter().map(|(error, path, message)| {
            let message = scheme.redact(&message);
            if error {
                Problem::error(&file, path, message)
            } else {
                Problem::warning(&file, path, message)
            }
        }));
    }
    Ok(out)
}

/// (is an error, JSON path, message).
type Found = Vec<(bool, String, String)>;

/// Step 1: placeholders no fetched record has.
async fn sample_placeholders(connections: &Connections, scheme: &SchemeFile, out: &mut Found) {
    let source = &scheme.scheme.source;
    let tz = scheme.timezone;
    let ctx = Context::new(chrono::Utc::now().with_timezone(&tz), tz);
    let page = match connections.open_source(scheme, ctx, None).await {
        Ok(mut opened) => match opened.paging_note().await {
            Ok(note) => {
                if let Some(note) = note {
                    let path = main_sql(&source.metadata).map_or_else(
                        || "source.metadata.pagination".to_string(),
                        |(i, _)| format!("source.metadata.otherRequest[{i}].value"),
                    );
                    out.push((false, path, note));
                }
                opened.next_page().await
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let records: Vec<Record> = match page {
        Ok(Some(page)) => page.records,
        Ok(None) => Vec::new(),
        Err(e) => {
            out.push((
                true,
                "source".into(),
                format!(
                    "fetching a sample page from connection `{}` failed ({}): {e}",
                    source.connection,
                    e.class()
                ),
            ));
            return;
        }
    };
    if records.is_empty() {
        out.push((
            false,
            "source".into(),
            format!(
                "connection `{}` returned no record on the first page, so the target's \
                 placeholders were not checked against real records",
                source.connection
            ),
        ));
        return;
    }
    let transformer = Transformer::new(scheme.clone(), DEFAULT_LOAD_BATCH);
    let now = chrono::Utc::now().with_timezone(&tz);
    let mut lacking: BTreeMap<String, usize> = BTreeMap::new();
    let mut mapped = 0usize;
    for record in &records {
        if let Ok((_, absent)) = transformer.map_record(record, now) {
            mapped += 1;
            for placeholder in absent {
                *lacking.entry(placeholder).or_default() += 1;
            }
        }
    }
    // The fields the records do have, for "did you mean": the source's own and formatResponse's.
    let mut fields: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.data.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    fields.extend(
        source
            .metadata
            .format_response
            .iter()
            .map(|rule| rule.new.clone()),
    );
    let names: Vec<String> = fields.iter().map(|f| shown(f)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let target = &scheme.scheme.target.metadata;
    let places = placeholders_of(&target.request, "target.metadata.request");
    let mut reported = BTreeSet::new();
    for (path, reads) in places {
        let Reads::Field(name) = reads else { continue };
        let placeholder = shown(&name);
        if mapped == 0 || lacking.get(&placeholder) != Some(&mapped) {
            continue;
        }
        if !reported.insert((path.clone(), placeholder.clone())) {
            continue;
        }
        let hint = match closest(&placeholder, &names) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => String::new(),
        };
        out.push((
            false,
            path,
            format!(
                "`{placeholder}`: absent in all {mapped} records fetched from connection `{}` \
                 (it would render null for each){hint}",
                source.connection
            ),
        ));
    }
}

/// The `otherRequest` index and text of an endpoint's `main_sql`.
fn main_sql(meta: &ferry_core::Metadata) -> Option<(usize, &str)> {
    meta.other_request
        .iter()
        .enumerate()
        .find(|(_, f)| f.key() == Some("main_sql"))
        .and_then(|(i, f)| Some((i, f.value.as_ref()?.as_str()?)))
}

/// The pool of `connection` when it is a MySQL connection.
async fn mysql_pool(
    app: &App,
    connections: &Connections,
    connection: &str,
    out: &mut Found,
    path: &str,
) -> Option<MySqlPool> {
    if !app.connection(connection).is_some_and(|c| c.kind().sql) {
        return None;
    }
    match connections.mysql_pool(connection).await {
        Ok(pool) => Some(pool),
        Err(e) => {
            out.push((true, path.to_string(), e.to_string()));
            None
        }
    }
}

/// Columns of `table` (in its database, or the connection's).
async fn columns_of(pool: &MySqlPool, table: &TableName) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
         ORDER BY ORDINAL_POSITION",
    )
    .bind(table.database.as_deref())
    .bind(&table.table)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>(0))
    .collect()
}

fn listed(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Step 2: target SQL columns the target table lacks.
async fn target_columns(
    app: &App,
    connections: &Connections,
    scheme: &SchemeFile,
    out: &mut Found,
) {
    let target = &scheme.scheme.target;
    let Some((index, sql)) = main_sql(&target.metadata) else {
        return;
    };
    let path = format!("target.metadata.otherRequest[{index}].value");
    let Some(written) = written_columns(sql) else {
        return; // a statement this check does not read (several statements, DELETE, ...)
    };
    let Some(pool) = mysql_pool(app, connections, &target.connection, out, &path).await else {
        return;
    };
    let has = match columns_of(&pool, &written.table).await {
        Ok(has) => has,
        Err(e) => {
            out.push((
                true,
                path,
                format!("reading the target table's columns: {e}"),
            ));
            return;
        }
    };
    if has.is_empty() {
        out.push((
            true,
            path,
            format!(
                "table `{}` does not exist in the database of connection `{}`",
                written.table, target.connection
            ),
        ));
        return;
    }
    for (column, near) in missing_columns(&written.columns, &has) {
        let hint = near.map_or(String::new(), |n| format!("; did you mean `{n}`?"));
        out.push((
            true,
            path.clone(),
            format!(
                "column `{column}` is not in table `{}` (it has {}){hint}",
                written.table,
                listed(&has)
            ),
        ));
    }
}

/// Step 3: a MySQL source's `id` column must be a unique key of the table it reads.
async fn source_id_unique(
    app: &App,
    connections: &Connections,
    scheme: &SchemeFile,
    out: &mut Found,
) {
    let source = &scheme.scheme.source;
    let Some(id) = source.metadata.id.as_deref() else {
        return;
    };
    let Some((_, sql)) = main_sql(&source.metadata) else {
        return;
    };
    let Some(read) = read_table(sql) else {
        return;
    };
    let Some(pool) = mysql_pool(
        app,
        connections,
        &source.connection,
        out,
        "source.metadata.id",
    )
    .await
    else {
        return;
    };
    let column = read.column_of(id);
    let rows = sqlx::query(
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0
         ORDER BY INDEX_NAME, SEQ_IN_INDEX",
    )
    .bind(read.table.database.as_deref())
    .bind(&read.table.table)
    .fetch_all(&pool)
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            out.push((
                true,
                "source.metadata.id".into(),
                format!("reading the keys of table `{}`: {e}", read.table),
            ));
            return;
        }
    };
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &rows {
        if let (Ok(index), Ok(col)) = (row.try_get::<String, _>(0), row.try_get::<String, _>(1)) {
            keys.entry(index).or_default().push(col);
        }
    }
    let keys: Vec<Vec<String>> = keys.into_values().collect();
    if id_is_unique(column, &keys) {
        return;
    }
    let unique: Vec<String> = keys
        .iter()
        .filter(|k| k.len() == 1)
        .map(|k| k[0].clone())
        .collect();
    let advice = if unique.is_empty() {
        "give the table a unique key and key the scheme on it".to_string()
    } else {
        format!("key the scheme on a unique column ({})", listed(&unique))
    };
    let behind = if column == id {
        String::new()
    } else {
        format!(" (selected as `{id}`)")
    };
    out.push((
        false,
        "source.metadata.id".into(),
        format!(
            "column `{column}`{behind} is not a unique key of table `{}`: rows that share a \
             value are different records under one id; {advice}",
            read.table
        ),
    ));
}
