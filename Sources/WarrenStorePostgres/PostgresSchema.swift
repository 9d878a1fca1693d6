import WarrenStore

/// The PostgreSQL schema, as versioned migrations (the same tables as SQLite's, in one step):
/// a migration is never edited once released; a database with a migration this build does not
/// know was written by a newer Warren and is refused. Ids use the `C` collation, so that they
/// sort by bytes as in SQLite and a workflow's promises are one key range (`root.` to `root/`).
enum PostgresSchema {
    static let migrations: [(id: String, sql: String)] = [
        ("v1", """
            CREATE TABLE promises (
                id TEXT COLLATE "C" PRIMARY KEY,
                state SMALLINT NOT NULL,
                param_headers TEXT, param_data TEXT,
                value_headers TEXT, value_data TEXT,
                timeout BIGINT NOT NULL,
                ikey_create TEXT, ikey_complete TEXT,
                created_on BIGINT NOT NULL, completed_on BIGINT,
                tags TEXT,
                flags SMALLINT NOT NULL DEFAULT 0
            );
            CREATE INDEX promises_by_state ON promises (state, id);
            CREATE TABLE tasks (
                id TEXT COLLATE "C" PRIMARY KEY,
                group_name TEXT NOT NULL,
                state SMALLINT NOT NULL,
                version BIGINT NOT NULL,
                worker TEXT,
                awaiting TEXT,
                updated_on BIGINT NOT NULL,
                retry_step TEXT,
                retry_failures INTEGER NOT NULL DEFAULT 0,
                lease_until BIGINT
            );
            CREATE TABLE awaits (
                promise_id TEXT COLLATE "C" NOT NULL,
                task_id TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (promise_id, task_id)
            );
            CREATE TABLE timers (
                due BIGINT NOT NULL,
                id TEXT COLLATE "C" NOT NULL,
                kind SMALLINT NOT NULL,
                PRIMARY KEY (due, id, kind)
            );
            CREATE TABLE outbox (
                seq BIGSERIAL PRIMARY KEY,
                exchange TEXT NOT NULL,
                routing_key TEXT NOT NULL,
                kind TEXT NOT NULL,
                headers TEXT,
                body BYTEA NOT NULL,
                failure TEXT,
                failed_on BIGINT
            );
            CREATE TABLE callbacks (
                promise_id TEXT COLLATE "C" NOT NULL,
                address TEXT NOT NULL,
                correlation TEXT NOT NULL,
                created_on BIGINT NOT NULL,
                PRIMARY KEY (promise_id, address, correlation)
            );
            CREATE TABLE suspects (
                message TEXT PRIMARY KEY,
                attempts INTEGER NOT NULL,
                first_seen BIGINT NOT NULL
            );
            """),
        // Long-lived workflows: why a task is blocked (state 4), for the operator.
        ("v2", "ALTER TABLE tasks ADD COLUMN blocked TEXT"),
        // Schedules: the definition as JSON, where the schedule stands in columns; its next tick
        // is a kind-4 timer whose id is the schedule's.
        ("v3", """
            CREATE TABLE schedules (
                id TEXT COLLATE "C" PRIMARY KEY,
                definition TEXT NOT NULL,
                paused SMALLINT NOT NULL DEFAULT 0,
                next_tick BIGINT, last_tick BIGINT,
                last_workflow TEXT, last_error TEXT,
                created_on BIGINT NOT NULL, updated_on BIGINT NOT NULL
            )
            """),
    ]

    /// Applies the migrations not yet applied, each in its own transaction; refuses a database a
    /// newer Warren migrated. Two orchestrators starting at once take turns (an advisory lock).
    static func migrate(_ tx: PostgresTransaction, schema: String?) throws {
        try tx.execute("BEGIN")
        do {
            try tx.execute("SELECT pg_advisory_xact_lock(73610001)")
            if let schema { try tx.execute("CREATE SCHEMA IF NOT EXISTS \(schema)") }
            try tx.execute("CREATE TABLE IF NOT EXISTS warren_migrations (id TEXT PRIMARY KEY, applied_on BIGINT NOT NULL)")
            let applied = Set(try tx.execute("SELECT id FROM warren_migrations").map { try $0.makeRandomAccess()[0].decode(String.self) })
            let known = Set(migrations.map(\.id))
            if !applied.isSubset(of: known) {
                throw StoreError(.incompatibleDatabase, "the database was migrated by a newer version of Warren (migrations "
                    + "\(applied.sorted().joined(separator: ", ")); this version knows \(known.sorted().joined(separator: ", "))). "
                    + "Upgrade Warren, or use another database.")
            }
            for m in migrations where !applied.contains(m.id) {
                // One statement at a time: the extended protocol takes one per query.
                for statement in m.sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                    try tx.execute(String(statement))
                }
                try tx.execute("INSERT INTO warren_migrations (id, applied_on) VALUES ($1, $2)", [.text(m.id), .int(Int64(Date().timeIntervalSince1970 * 1000))])
            }
            try tx.execute("COMMIT")
        } catch {
            _ = try? tx.execute("ROLLBACK")
            throw error
        }
    }
}

import Foundation
