//! The copy job the fault tests run: orders (Chinese text, emoji, decimals, NULLs, JSON) from a
//! MySQL source to a MySQL target through extract, transform and load, keyset paging and a
//! `batchexecute` upsert; and the ordered checksum that proves every row arrived exactly once.

#![allow(dead_code)]

use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

use super::common::World;

/// Source rows (shared MariaDB): Chinese text and emoji in several columns, NULLs, JSON.
pub async fn fill_source(world: &mut World, rows: i64) -> String {
    let src = world.database("src").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.orders (id BIGINT NOT NULL PRIMARY KEY, customer VARCHAR(100) NOT NULL,
                amount DECIMAL(12,2) NOT NULL, qty VARCHAR(16) NULL, created_at DATETIME NULL, note TEXT NULL,
                payload JSON NULL) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.orders SELECT seq,
                CONCAT(ELT(1 + seq % 4, '张三', '李四🚀', '王五 😀 公司', 'O''Brien'), '-', seq),
                seq / 100, CAST(seq % 100 AS CHAR), '2026-01-01 00:00:00' + INTERVAL seq SECOND,
                IF(seq % 3 = 0, NULL, CONCAT('备注 ', seq, ' ✓ 🎉')),
                IF(seq % 5 = 0, NULL, JSON_OBJECT('k', seq, 'v', '值'))
                FROM `{src}`.seq_1_to_{rows};"
        ))
        .await;
    src
}

pub const TARGET_DDL: &str = "CREATE TABLE orders_copy (id BIGINT NOT NULL PRIMARY KEY,
    customer VARCHAR(100) NOT NULL, amount DECIMAL(12,2) NOT NULL, qty INT NULL,
    created_at DATETIME NULL, note TEXT NULL, payload JSON NULL) CHARACTER SET utf8mb4";

/// `ferry.toml` (broker `amqp`, which may list several nodes separated by commas, a state database
/// of the world's own, connections `src` and `dst`) and the scheme `orders`; returns its name.
pub fn write_config(world: &mut World, amqp: &str, src_url: &str, dst_url: &str) -> String {
    let scheme = world.scheme_name("orders");
    let state = world.state_url();
    world.write(
        "ferry.toml",
        &format!(
            "schemes = \"schemes/*.json\"\n[broker]\nurl = \"{amqp}\"\n[state]\nurl = \"{state}\"\n\
             [connections.src]\nkind = \"mysql\"\nurl = \"{src_url}\"\n\
             [connections.dst]\nkind = \"mysql\"\nurl = \"{dst_url}\"\n"
        ),
    );
    world.write(
        "schemes/orders.json",
        &format!(
            r#"{{
  "name": "{scheme}",
  "source": {{ "connection": "src", "metadata": {{
      "api": "select", "id": "id", "idCheck": true,
      "pagination": {{ "pageSize": 500, "mode": "keyset", "keyset_field": "id" }},
      "otherRequest": [{{ "field": "main_sql", "type": "string",
        "value": "SELECT id, customer, amount, qty, created_at, note, payload FROM orders WHERE id > :last_id ORDER BY id LIMIT :limit" }}] }} }},
  "target": {{ "connection": "dst", "metadata": {{
      "api": "batchexecute", "idCheck": true, "batch_size": 100,
      "request": [
        {{ "field": "id", "type": "int", "value": "{{id}}" }},
        {{ "field": "customer", "type": "string", "value": "{{customer}}" }},
        {{ "field": "amount", "type": "decimal", "value": "{{amount}}" }},
        {{ "field": "qty", "type": "int", "value": "{{qty}}" }},
        {{ "field": "created_at", "type": "string", "value": "{{created_at}}" }},
        {{ "field": "note", "type": "string", "value": "{{note}}" }},
        {{ "field": "payload", "type": "string", "value": "{{payload}}" }}
      ],
      "otherRequest": [{{ "field": "main_sql", "type": "string",
        "value": "INSERT INTO orders_copy (id, customer, amount, qty, created_at, note, payload) VALUES (:id, :customer, :amount, :qty, :created_at, :note, :payload) ON DUPLICATE KEY UPDATE customer = VALUES(customer), amount = VALUES(amount), qty = VALUES(qty), created_at = VALUES(created_at), note = VALUES(note), payload = VALUES(payload)" }}] }} }}
}}"#
        ),
    );
    scheme
}

/// An ordered checksum over every column, and the row count, on `pool`. `None` while the server
/// cannot be reached.
pub async fn digest(pool: &MySqlPool, db: &str, table: &str) -> Option<(i64, String)> {
    let mut conn = pool.acquire().await.ok()?;
    sqlx::query("SET SESSION group_concat_max_len = 1073741824")
        .execute(&mut *conn)
        .await
        .ok()?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT COUNT(*), SHA2(GROUP_CONCAT(CONCAT_WS('|', id, customer, amount, IFNULL(qty, '∅'),
             IFNULL(created_at, '∅'), IFNULL(note, '∅'), IFNULL(payload, '∅')) ORDER BY id SEPARATOR '\\n'), 256)
         FROM `{db}`.`{table}`"
    )))
    .fetch_one(&mut *conn)
    .await
    .ok()?;
    Some((
        row.try_get(0).ok()?,
        row.try_get::<Option<String>, _>(1).ok()??,
    ))
}

/// The rows in the target table `orders_copy` of `db`; `None` while the server cannot be reached.
pub async fn count(pool: &MySqlPool, db: &str) -> Option<i64> {
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM `{db}`.orders_copy"
    )))
    .fetch_one(pool)
    .await
    .ok()
}
