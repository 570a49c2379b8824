//! Ferry's own tables. Each statement is idempotent, so every process runs them all at start-up;
//! a new table or column is a new statement at the end, never an edit of an old one.

pub(crate) const MIGRATIONS: &[&str] = &[
    // Where each scheme's extraction stands: a cursor (keyset value, page) and the time of the
    // last complete run, which `{{LAST_SYNC_TIME}}` reads.
    "CREATE TABLE IF NOT EXISTS ferry_checkpoints (
        scheme VARCHAR(191) NOT NULL PRIMARY KEY,
        cursor_json TEXT NULL,
        last_sync_time DATETIME(6) NULL,
        updated_at DATETIME(6) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    // One row per extraction run; `done` counts records that reached a final state (written,
    // skipped as already written, or dead-lettered), so `ferry run --once` knows when to stop.
    "CREATE TABLE IF NOT EXISTS ferry_runs (
        run_id VARCHAR(64) NOT NULL PRIMARY KEY,
        scheme VARCHAR(191) NOT NULL,
        status VARCHAR(16) NOT NULL,
        started_at DATETIME(6) NOT NULL,
        extracted_at DATETIME(6) NULL,
        finished_at DATETIME(6) NULL,
        pages BIGINT NOT NULL DEFAULT 0,
        records BIGINT NOT NULL DEFAULT 0,
        written BIGINT NOT NULL DEFAULT 0,
        skipped BIGINT NOT NULL DEFAULT 0,
        dead BIGINT NOT NULL DEFAULT 0,
        error TEXT NULL,
        KEY ferry_runs_scheme (scheme, started_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    // A lease: the holder renews it; an expired lease can be taken over (a crashed extractor).
    "CREATE TABLE IF NOT EXISTS ferry_locks (
        name VARCHAR(191) NOT NULL PRIMARY KEY,
        owner VARCHAR(191) NOT NULL,
        expires_at DATETIME(6) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    // What a non-idempotent target (the DingTalk robot) has already received.
    "CREATE TABLE IF NOT EXISTS ferry_ledger (
        scheme VARCHAR(191) NOT NULL,
        record_id VARCHAR(191) NOT NULL,
        digest CHAR(64) NOT NULL,
        delivered_at DATETIME(6) NOT NULL,
        PRIMARY KEY (scheme, record_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Access tokens shared by every scheme and replica on a connection.
    "CREATE TABLE IF NOT EXISTS ferry_tokens (
        connection VARCHAR(191) NOT NULL PRIMARY KEY,
        token TEXT NOT NULL,
        extra_json TEXT NULL,
        expires_at DATETIME(6) NOT NULL,
        updated_at DATETIME(6) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Shared rate limits (the robot's 20 a minute across every loader replica): one row per
    // limiter, locked while deciding, and a log of grants for a true sliding window.
    "CREATE TABLE IF NOT EXISTS ferry_rate (
        name VARCHAR(191) NOT NULL PRIMARY KEY
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS ferry_rate_log (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(191) NOT NULL,
        granted_at DATETIME(6) NOT NULL,
        KEY ferry_rate_log_name (name, granted_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Which messages a run has already counted, so a batch the broker delivers again (after a
    // broker restart or a crash between write and ack) is written idempotently but counted once.
    "CREATE TABLE IF NOT EXISTS ferry_settled (
        run_id VARCHAR(64) NOT NULL,
        batch_key CHAR(32) NOT NULL,
        settled_at DATETIME(6) NOT NULL,
        PRIMARY KEY (run_id, batch_key),
        KEY ferry_settled_at (settled_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin",
    // The run a saved cursor belongs to and a digest of the source it was read with: an
    // interrupted run resumes after its last confirmed page only with the same source settings.
    "ALTER TABLE ferry_checkpoints
        ADD COLUMN IF NOT EXISTS run_id VARCHAR(64) NULL,
        ADD COLUMN IF NOT EXISTS source_digest CHAR(64) NULL",
    // The W3C trace context of a run's extraction, so a resumed run continues the same trace.
    "ALTER TABLE ferry_runs ADD COLUMN IF NOT EXISTS traceparent VARCHAR(64) NULL",
    // Records in a robot message whose fate is unknown: written before the push, removed once the
    // robot answered (delivered, or refused). What is left after a crash or a lost answer is pushed
    // again marked as a possible repeat.
    "CREATE TABLE IF NOT EXISTS ferry_ledger_pending (
        scheme VARCHAR(191) NOT NULL,
        record_id VARCHAR(191) NOT NULL,
        digest CHAR(64) NOT NULL,
        since DATETIME(6) NOT NULL,
        PRIMARY KEY (scheme, record_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Placeholders that named a field absent from records (`{nmae}`): how many records of a
    // run lacked each, counted once per transform message (`batch_key`, as in `ferry_settled`).
    "CREATE TABLE IF NOT EXISTS ferry_run_absent (
        run_id VARCHAR(64) NOT NULL,
        batch_key CHAR(32) NOT NULL,
        placeholder VARCHAR(191) NOT NULL,
        records BIGINT NOT NULL,
        PRIMARY KEY (run_id, batch_key, placeholder)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Truthful counts: what MySQL targets did with each record (from the affected rows), duplicate
    // keys kept under write_mode `insert`, and records the no-op target accepted.
    "ALTER TABLE ferry_runs
        ADD COLUMN IF NOT EXISTS inserted BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS updated BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS unchanged BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS kept BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS accepted BIGINT NOT NULL DEFAULT 0",
    // The records a run dead-lettered, by stage: a record written after `ferry replay` moves out
    // of its run's `dead` count, and `ferry run --once` names the stage to replay.
    "CREATE TABLE IF NOT EXISTS ferry_run_dead (
        run_id VARCHAR(64) NOT NULL,
        stage VARCHAR(16) NOT NULL,
        record_id VARCHAR(191) NOT NULL,
        letters INT NOT NULL,
        PRIMARY KEY (run_id, stage, record_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // The data cursor (`cursor_field`): the largest value the last complete run saw, which
    // `{{LAST_CURSOR}}` reads, and the largest the current run has seen so far, saved with each
    // page's position so a resumed run keeps it.
    "ALTER TABLE ferry_checkpoints
        ADD COLUMN IF NOT EXISTS data_cursor TEXT NULL,
        ADD COLUMN IF NOT EXISTS run_data_cursor TEXT NULL",
    // The ledger by content: every (record id, content digest) a non-idempotent target received,
    // so "was this exact content pushed for this id?" has an answer for each content, not only the
    // last. Rows of `ferry_ledger` written before stay valid facts and are read alongside.
    "CREATE TABLE IF NOT EXISTS ferry_ledger_contents (
        scheme VARCHAR(191) NOT NULL,
        record_id VARCHAR(191) NOT NULL,
        digest CHAR(64) NOT NULL,
        delivered_at DATETIME(6) NOT NULL,
        PRIMARY KEY (scheme, record_id, digest)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Pending pushes by content, so two contents of one id in flight are tracked apart. Rows of
    // `ferry_ledger_pending` left by an older version are still read and cleared.
    "CREATE TABLE IF NOT EXISTS ferry_ledger_pending_contents (
        scheme VARCHAR(191) NOT NULL,
        record_id VARCHAR(191) NOT NULL,
        digest CHAR(64) NOT NULL,
        since DATETIME(6) NOT NULL,
        PRIMARY KEY (scheme, record_id, digest)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Records of a run whose id came earlier in the same page with another content.
    "ALTER TABLE ferry_runs ADD COLUMN IF NOT EXISTS shared_id BIGINT NOT NULL DEFAULT 0",
    // The instant an unfinished run's window starts on its source's clock (a MySQL source's own
    // clock, which may differ from Ferry's), so a resumed run keeps its window.
    "ALTER TABLE ferry_checkpoints ADD COLUMN IF NOT EXISTS run_window_start DATETIME(6) NULL",
    // Open alerts, one per (scheme, kind) until it clears: the row is taken by whichever replica
    // raises it first (that one sends the alert) and removed by whichever sees it clear first
    // (that one sends the recovery). `scheme` is '' for alerts about the whole process (the
    // broker); `stage` is the stage a stop happened in, '' otherwise.
    "CREATE TABLE IF NOT EXISTS ferry_alerts (
        scheme VARCHAR(191) NOT NULL,
        kind VARCHAR(32) NOT NULL,
        stage VARCHAR(16) NOT NULL DEFAULT '',
        raised_at DATETIME(6) NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (scheme, kind)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // Every `ferry replay`, `ferry discard` and `ferry teardown` (and the console's replays): when,
    // who (the OS user or `--by`, and the host), which scheme and stage, the filter, what it came
    // to. `finished_at` stays NULL when the process died in the middle of the pass.
    "CREATE TABLE IF NOT EXISTS ferry_replay_audit (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        scheme VARCHAR(191) NOT NULL,
        stage VARCHAR(16) NOT NULL,
        action VARCHAR(16) NOT NULL,
        by_name VARCHAR(191) NOT NULL,
        host VARCHAR(191) NOT NULL,
        filter TEXT NOT NULL,
        dry_run BOOLEAN NOT NULL,
        matched BIGINT NOT NULL DEFAULT 0,
        moved BIGINT NOT NULL DEFAULT 0,
        discarded BIGINT NOT NULL DEFAULT 0,
        started_at DATETIME(6) NOT NULL,
        finished_at DATETIME(6) NULL,
        error TEXT NULL,
        KEY ferry_replay_audit_scheme (scheme, started_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    // Services a role found unreachable (a scheme's target or source), so `ferry status` can say
    // "target down since T": one row per (scheme, side) while it is down, `seen_at` renewed by
    // each probe that still fails, removed when the service answers again.
    "CREATE TABLE IF NOT EXISTS ferry_outages (
        scheme VARCHAR(191) NOT NULL,
        side VARCHAR(16) NOT NULL,
        since DATETIME(6) NOT NULL,
        seen_at DATETIME(6) NOT NULL,
        error TEXT NOT NULL,
        PRIMARY KEY (scheme, side)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    // The running roles and the RabbitMQ node each is connected to, so `ferry status` can show
    // them: one row per process, `seen_at` renewed by a heartbeat while it runs and its node
    // replaced when it connects afresh (another node of the cluster, maybe). A row not renewed
    // for a while is of a process that ended; rows older than a day are removed.
    "CREATE TABLE IF NOT EXISTS ferry_roles (
        process VARCHAR(191) NOT NULL,
        role VARCHAR(32) NOT NULL,
        host VARCHAR(191) NOT NULL,
        pid BIGINT NOT NULL,
        schemes TEXT NOT NULL,
        broker_node VARCHAR(255) NOT NULL,
        connected_at DATETIME(6) NOT NULL,
        seen_at DATETIME(6) NOT NULL,
        PRIMARY KEY (process),
        KEY ferry_roles_seen (seen_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
];
