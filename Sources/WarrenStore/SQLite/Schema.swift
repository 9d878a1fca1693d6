import GRDB

/// The database schema, as versioned migrations. A migration is never edited once released:
/// changes come as new migrations, so an older database is migrated on open.
enum Schema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            // Promises. WITHOUT ROWID: the id is the key, stored once. Empty headers and tags are
            // NULL; `flags` bit 0 marks a timer promise. The root of a promise is the id up to its
            // first dot, so a workflow's promises are one key range.
            try db.execute(sql: """
                CREATE TABLE promises (
                    id TEXT PRIMARY KEY NOT NULL,
                    state INTEGER NOT NULL,
                    param_headers TEXT, param_data TEXT,
                    value_headers TEXT, value_data TEXT,
                    timeout INTEGER NOT NULL,
                    ikey_create TEXT, ikey_complete TEXT,
                    created_on INTEGER NOT NULL, completed_on INTEGER,
                    tags TEXT,
                    flags INTEGER NOT NULL DEFAULT 0
                ) WITHOUT ROWID;
                CREATE INDEX promises_by_state ON promises(state, id);

                -- One task per promise that a worker group runs. `awaiting` is the JSON list of
                -- promise ids a suspended task waits for; `awaits` indexes it the other way.
                CREATE TABLE tasks (
                    id TEXT PRIMARY KEY NOT NULL,
                    group_name TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    worker TEXT,
                    awaiting TEXT,
                    updated_on INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE awaits (
                    promise_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    PRIMARY KEY (promise_id, task_id)
                ) WITHOUT ROWID;

                -- Timers by due time: kind 0 is a promise timeout, kind 1 a task retry.
                CREATE TABLE timers (
                    due INTEGER NOT NULL,
                    id TEXT NOT NULL,
                    kind INTEGER NOT NULL,
                    PRIMARY KEY (due, id, kind)
                ) WITHOUT ROWID;

                -- Messages to publish, in commit order; deleted after their confirm.
                CREATE TABLE outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    exchange TEXT NOT NULL,
                    routing_key TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    headers TEXT,
                    body BLOB NOT NULL
                );
                """)
        }
        m.registerMigration("v2") { db in
            // Subscribers to a pending promise's outcome (an `rpc` caller's reply queue), told
            // and forgotten when it settles. The step whose failures a task retries, and how many.
            try db.execute(sql: """
                CREATE TABLE callbacks (
                    promise_id TEXT NOT NULL,
                    address TEXT NOT NULL,
                    correlation TEXT NOT NULL,
                    created_on INTEGER NOT NULL,
                    PRIMARY KEY (promise_id, address, correlation)
                ) WITHOUT ROWID;
                ALTER TABLE tasks ADD COLUMN retry_step TEXT;
                ALTER TABLE tasks ADD COLUMN retry_failures INTEGER NOT NULL DEFAULT 0;
                """)
        }
        m.registerMigration("v3") { db in
            // Hardening. An outbox row the broker refused is set aside with the reason (`failure`)
            // instead of blocking the rows after it. A task whose worker acked its execute message
            // for a long run holds a lease until `lease_until` (a kind-2 timer hands it out again
            // when it lapses). A redelivered command is counted in `suspects` before it is applied,
            // so one that keeps stopping the orchestrator is dead-lettered after a bounded number
            // of attempts.
            try db.execute(sql: """
                ALTER TABLE outbox ADD COLUMN failure TEXT;
                ALTER TABLE outbox ADD COLUMN failed_on INTEGER;
                ALTER TABLE tasks ADD COLUMN lease_until INTEGER;
                CREATE TABLE suspects (
                    message TEXT PRIMARY KEY NOT NULL,
                    attempts INTEGER NOT NULL,
                    first_seen INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v4") { db in
            // Long-lived workflows: why a task is blocked (state 4), for the operator.
            try db.execute(sql: "ALTER TABLE tasks ADD COLUMN blocked TEXT")
        }
        m.registerMigration("v5") { db in
            // Schedules: the definition as JSON (cron, time zone, function, group, args, timeout,
            // tags, missed-tick policy), where the schedule stands in columns. Its next tick is a
            // kind-4 timer whose id is the schedule's.
            try db.execute(sql: """
                CREATE TABLE schedules (
                    id TEXT PRIMARY KEY NOT NULL,
                    definition TEXT NOT NULL,
                    paused INTEGER NOT NULL DEFAULT 0,
                    next_tick INTEGER, last_tick INTEGER,
                    last_workflow TEXT, last_error TEXT,
                    created_on INTEGER NOT NULL, updated_on INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        return m
    }
}
