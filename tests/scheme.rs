//! Issue 9 items 2 and 4 and issue 8 item 3's check, end to end against the real MariaDB and
//! RabbitMQ: a placeholder that names a field the records lack is reported by `ferry run
//! --once` (summary and log), and `ferry lint --online` checks a scheme against its live source
//! and target (absent placeholders, target columns the table lacks, an `id` that is not unique).

mod common;

use common::World;

/// Five contacts, Chinese names and emoji, one without a phone (NULL), two sharing a name.
async fn contacts(world: &mut World) -> (String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.www_contact (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL,
                phone VARCHAR(20) NULL, KEY by_name (name)) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.www_contact VALUES (1, '张三', '13800138000'), (2, '李四🚀', NULL),
                (3, '张三', '13900139000'), (4, 'O''Brien 王', '+86 10 1234'), (5, '赵六', '13700137000');
             CREATE TABLE `{dst}`.contact_copy (id BIGINT PRIMARY KEY, name VARCHAR(60) NULL,
                phone VARCHAR(20) NULL) CHARACTER SET utf8mb4;"
        ))
        .await;
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &format!(
            "{}{}",
            common::mysql_connection("src", &src),
            common::mysql_connection("dst", &dst)
        ),
    );
    (src, dst)
}

/// A contacts scheme keyed on `id_field`, whose target maps `name_value` to the `name` column
/// and writes the columns `columns`.
fn scheme(name: &str, id_field: &str, name_value: &str, columns: &str) -> String {
    format!(
        r#"{{ "name": "{name}",
  "source": {{ "connection": "src", "metadata": {{ "api": "select", "id": "{id_field}",
    "pagination": {{ "pageSize": 100, "mode": "keyset", "keyset_field": "id" }},
    "otherRequest": [{{ "field": "main_sql", "value": "SELECT id, name, phone FROM www_contact WHERE id > :last_id ORDER BY id LIMIT :limit" }}] }} }},
  "target": {{ "connection": "dst", "metadata": {{ "api": "batchexecute", "idCheck": true,
    "request": [ {{ "field": "id", "type": "int", "value": "{{id}}" }}, {{ "field": "name", "value": "{name_value}" }},
                 {{ "field": "phone", "value": "{{phone}}" }} ],
    "otherRequest": [{{ "field": "main_sql", "value": "INSERT INTO contact_copy ({columns}) VALUES (:id, :name, :phone) ON DUPLICATE KEY UPDATE name = VALUES(name)" }}] }} }} }}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_placeholder_is_reported_by_the_run_and_a_null_field_stays_null() {
    let mut world = World::new("sa").await;
    let (_, dst) = contacts(&mut world).await;
    let name = world.scheme_name("contacts");
    world.write(
        "schemes/contacts.json",
        &scheme(&name, "id", "{nmae}", "id, name, phone"),
    );

    let out = world.ferry(&["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let absent: Vec<&str> = stdout.lines().filter(|l| l.contains("absent")).collect();
    assert_eq!(
        absent,
        vec![format!(
            "{name}: {{nmae}}: absent in all 5 records (rendered as null)"
        )],
        "only the typo is reported; `phone` is present (once as null): {stdout}"
    );
    assert!(
        stderr.contains("{nmae}: absent in 5 of 5 records of this batch"),
        "the log names the placeholder: {stderr}"
    );
    assert_eq!(
        world
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM `{dst}`.contact_copy WHERE name IS NULL"
            ))
            .await,
        5
    );
    let status = world.ferry(&["status", "--json", "--scheme", &name]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(
        status[0]["runs"][0]["absent"],
        serde_json::json!({"{nmae}": 5}),
        "`ferry status` keeps the report with the run"
    );
    let status = world.ferry(&["status", "--scheme", &name]);
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("      {nmae}: absent in all 5 records (rendered as null)"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT GROUP_CONCAT(id, '=', IFNULL(phone, 'NULL') ORDER BY id) FROM `{dst}`.contact_copy"
            ))
            .await,
        "1=13800138000,2=NULL,3=13900139000,4=+86 10 1234,5=13700137000",
        "a field present with a null value stays NULL"
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_online_reports_absent_placeholders_missing_columns_and_a_non_unique_id() {
    let mut world = World::new("sb").await;
    let (_, dst) = contacts(&mut world).await;
    let name = world.scheme_name("contacts");
    world.write(
        "schemes/contacts.json",
        &scheme(&name, "name", "{nmae}", "id, name, phon"),
    );

    let out = world.ferry(&["lint", "--online"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let online: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.contains("source.metadata.id")
                || l.contains("absent")
                || l.contains("otherRequest[0]")
        })
        .collect();
    assert_eq!(
        online,
        vec![
            "schemes/contacts.json: warning: target.metadata.request[1].value: `{nmae}`: absent \
             in all 5 records fetched from connection `src` (it would render null for each); did \
             you mean `{name}`?",
            "schemes/contacts.json: target.metadata.otherRequest[0].value: column `phon` is not \
             in table `contact_copy` (it has `id`, `name`, `phone`); did you mean `phone`?",
            "schemes/contacts.json: warning: source.metadata.id: column `name` is not a unique \
             key of table `www_contact`: rows that share a value are different records under one \
             id; key the scheme on a unique column (`id`)",
        ],
        "{stdout}"
    );
    assert_eq!(
        world
            .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.contact_copy"))
            .await,
        0,
        "the check writes nothing"
    );

    // Fixed, the same check is clean.
    world.write(
        "schemes/contacts.json",
        &scheme(&name, "id", "{name}", "id, name, phone"),
    );
    let out = world.ferry(&["lint", "--online"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "", "no problem left");
    world.clean().await;
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_seeds_pass_the_online_check_but_seed_000s_id_is_not_unique() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (addr, _sandbox) = ferry_sandbox::spawn(ferry_sandbox::SandboxOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ferry_sandbox::SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    let mut world = World::new("sc").await;
    let mut env = vec![("SANDBOX_URL".to_string(), format!("http://{addr}"))];
    for db in ["www", "finance", "bi"] {
        let name = world.database(db).await;
        let sql = std::fs::read_to_string(repo().join(format!("config/sql/{db}.sql")))
            .unwrap()
            .replace(&format!("`{db}`"), &format!("`{name}`"));
        world.exec(&sql).await;
        env.push((
            format!("{}_MYSQL_URL", db.to_uppercase()),
            format!("{}/{name}", common::MYSQL),
        ));
    }
    env.push(("FERRY_STATE_URL".into(), world.state_url()));
    world.write(
        "ferry.toml",
        &std::fs::read_to_string(repo().join("config/ferry.toml")).unwrap(),
    );
    for entry in std::fs::read_dir(repo().join("config/schemes")).unwrap() {
        let path = entry.unwrap().path();
        // The schemes only: their test cases sit in `schemes/tests/`.
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        world.write(
            &format!("schemes/{name}"),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }

    let out = world
        .command(&["lint", "--online"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "schemes/contact-to-dingtalk.json: warning: source.metadata.id: column `name` is not \
             a unique key of table `www_contact`: rows that share a value are different records \
             under one id; key the scheme on a unique column (`id`)"
        ],
        "{stderr}"
    );
    world.clean().await;
}
