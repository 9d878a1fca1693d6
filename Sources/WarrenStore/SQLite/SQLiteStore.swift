import Foundation
import GRDB

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so that every
/// commit survives a crash or a power loss.
///
/// ```swift
/// let store = try SQLiteStore(path: "warren.db")
/// let result = try await store.write { tx in
///     try tx.createPromise(CreatePromise(id: "approval-1", timeout: now + 3_600_000), now: now)
/// }
/// ```
public final class SQLiteStore: PromiseStore {
    public let limits: StoreLimits
    private let pool: DatabasePool
    /// The file's path.
    public let path: String

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Throws: ``StoreError/Code/incompatibleDatabase`` when the file was written by a newer
    ///   version of Warren (it has migrations this one does not know), or is not a database.
    public init(path: String, limits: StoreLimits = .default, busyTimeout: TimeInterval = 5) throws {
        self.path = path
        self.limits = limits
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // GRDB sets synchronous=NORMAL on the WAL writer after every configuration hook;
            // Warren wants every commit on disk before it acks, so it is set on the writer here.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw StoreError(.incompatibleDatabase, "cannot open the database '\(path)': \(error)")
        }
        let migrator = Schema.migrator
        do {
            let superseded = try pool.read { db in try migrator.hasBeenSuperseded(db) }
            if superseded {
                let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
                throw StoreError(.incompatibleDatabase, "the database '\(path)' was written by a newer version of Warren "
                    + "(migrations \(applied.sorted().joined(separator: ", ")); this version knows "
                    + "\(migrator.migrations.joined(separator: ", "))). Upgrade Warren, or use another file.")
            }
            try migrator.migrate(pool)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.incompatibleDatabase, "cannot migrate the database '\(path)': \(error)")
        }
    }

    /// The migrations applied to the file, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Schema.migrator.appliedIdentifiers(db) }.sorted()
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        let limits = self.limits
        return try await mapErrors { try await pool.write { db in try body(SQLiteTransaction(db: db, limits: limits)) } }
    }

    public func writeReturningOutbox<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws
        -> (value: T, outbox: [OutboxMessage])
    {
        let limits = self.limits
        return try await mapErrors {
            try await pool.write { db in
                let collector = OutboxCollector()
                let value = try body(SQLiteTransaction(db: db, limits: limits, collector: collector))
                return (value, collector.messages)
            }
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        let limits = self.limits
        return try await mapErrors { try await pool.read { db in try body(SQLiteTransaction(db: db, limits: limits)) } }
    }

    /// A synchronous write, for tools and tests that are not async.
    public func writeSync<T>(_ body: (any StoreTransaction) throws -> T) throws -> T {
        do {
            return try pool.write { db in try body(SQLiteTransaction(db: db, limits: limits)) }
        } catch let e as DatabaseError {
            throw Self.storeError(e)
        }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as StoreError {
            throw e
        } catch let e as DatabaseError {
            throw Self.storeError(e)
        }
    }

    /// A storage fault (the disk, the file, a lock) or a statement refused for its content.
    static func storeError(_ e: DatabaseError) -> StoreError {
        let what = "SQLite failed: \(e.message ?? "\(e.resultCode)") (\(e.resultCode))"
        switch e.resultCode.primaryResultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_BUSY, .SQLITE_LOCKED,
             .SQLITE_NOMEM, .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_PROTOCOL, .SQLITE_PERM, .SQLITE_AUTH:
            return StoreError(.storageUnavailable, what)
        default:
            return StoreError(.databaseError, what)
        }
    }

    /// Writes a consistent copy of the database to `destination` with SQLite's online backup,
    /// while the orchestrator keeps working. The copy is a complete database: open it with
    /// `warren serve --db` to restore.
    public func backup(to destination: String) throws {
        if FileManager.default.fileExists(atPath: destination) {
            throw StoreError(.invalidArgument, "'\(destination)' exists; back up to a new file")
        }
        do {
            let target = try DatabaseQueue(path: destination)
            try pool.backup(to: target)
            try target.close()
        } catch let e as DatabaseError {
            try? FileManager.default.removeItem(atPath: destination)
            throw Self.storeError(e)
        }
    }

    /// Whether the storage takes a write now: a tiny transaction that touches the file.
    public func probeWrite() async throws {
        try await mapErrors {
            try await pool.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO suspects (message, attempts, first_seen) VALUES ('warren:probe', 0, 0)")
                try db.execute(sql: "DELETE FROM suspects WHERE message = 'warren:probe'")
            }
        }
    }

    /// Runs a checkpoint that moves the WAL into the database file (for size measurements).
    public func checkpoint() throws {
        _ = try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
    }

    /// The value of a pragma on the writer connection, for tests (`synchronous`, `journal_mode`).
    public func pragma(_ name: String) throws -> String? {
        try pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
    }
}
