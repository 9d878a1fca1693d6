import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import WarrenStore

/// The store on a PostgreSQL server (postgres-nio): the same protocol, rules and answers as
/// ``SQLiteStore``, for teams that run PostgreSQL (with its replication and failover) and want
/// the control plane off one machine's disk.
///
/// The protocol's transactions are synchronous closures (the kernel decides as it reads), so a
/// transaction runs on a thread of the store's own, never on Swift's cooperative pool or on an
/// event loop: each statement is sent on the connection and waited for there. Writes are
/// serialised on one connection (one writer, as with SQLite); reads use a second one, in
/// `REPEATABLE READ` snapshots.
///
/// ```swift
/// let store = try await PostgresStore.open(url: "postgres://warren@127.0.0.1:5432/warren")
/// ```
///
/// `?schema=NAME` in the URL keeps Warren's tables in that schema (created if missing), so that
/// one database can hold several installations (the tests use one schema each).
public final class PostgresStore: PromiseStore, @unchecked Sendable {
    public let limits: StoreLimits
    private let configuration: PostgresConnection.Configuration
    /// The schema Warren's tables live in, if not the database's default.
    public let schema: String?
    private let logger: Logger
    /// The writer's and the reader's connection, each used on its own queue only.
    private var writer: PostgresConnection?
    private var reader: PostgresConnection?
    private let writeQueue = DispatchQueue(label: "warren.postgres.writer")
    /// Whether writes need the database's writer lock (``takeWriterLock()``): held by the writer
    /// connection's session, so it is the server that says who writes.
    private var exclusive = false
    /// Whether the loss of the writer lock was logged (once per loss).
    private var lossLogged = false
    /// How long the writer's session may be idle (or idle in a transaction) before the server
    /// ends it, dropping the writer lock: the lease of an orchestrator that stopped (`SIGSTOP`, a
    /// frozen VM, a lost network) without its connection closing. The orchestrator writes at
    /// least every 250 ms (its timer loop), so a live one never comes near it.
    public static let writerLease: Duration = .seconds(5)
    private let readQueue = DispatchQueue(label: "warren.postgres.reader")

    /// Connects, and migrates the database (creating Warren's tables the first time).
    ///
    /// - Throws: ``StoreError/Code/incompatibleDatabase`` when the database was migrated by a
    ///   newer Warren, ``StoreError/Code/storageUnavailable`` when the server cannot be reached.
    ///
    /// This initialiser blocks its thread while it connects and migrates; from async code use
    /// ``open(url:limits:logger:)``.
    public init(url: String, limits: StoreLimits = .default, logger: Logger = Logger(label: "warren.postgres")) throws {
        (self.configuration, self.schema) = try Self.configuration(url: url)
        self.limits = limits
        self.logger = logger
        try PostgresSchema.migrate(try writerTransaction(), schema: schema)
    }

    /// Connects and migrates off Swift's cooperative pool.
    public static func open(url: String, limits: StoreLimits = .default, logger: Logger = Logger(label: "warren.postgres")) async throws -> PostgresStore {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<PostgresStore, any Error>) in
            DispatchQueue.global().async { c.resume(with: Result { try PostgresStore(url: url, limits: limits, logger: logger) }) }
        }
    }

    /// Whether `text` names a PostgreSQL database (`postgres://` or `postgresql://`).
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses `postgres://user[:password]@host[:port]/database[?schema=NAME]`.
    static func configuration(url: String) throws -> (PostgresConnection.Configuration, schema: String?) {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql", let host = c.host, !host.isEmpty else {
            throw StoreError(.invalidArgument, "the database URL '\(url.prefix(80))' is not postgres://user@host[:port]/database")
        }
        let database = String(c.path.drop { $0 == "/" })
        var config = PostgresConnection.Configuration(host: host, port: c.port ?? 5432, username: c.user ?? "warren",
                                                      password: c.password, database: database.isEmpty ? "warren" : database, tls: .disable)
        let schema = c.queryItems?.first { $0.name == "schema" }?.value
        if let schema {
            guard !schema.isEmpty, schema.utf8.count <= 63, schema.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw StoreError(.invalidArgument, "the schema '\(schema.prefix(70))' must be 1 to 63 lower-case letters, digits and _")
            }
            config.options.additionalStartupParameters = [("search_path", schema)]
        }
        return (config, schema)
    }

    /// Drops the store's schema and everything in it (for tests; only with `?schema=`).
    public func dropSchema() throws {
        guard let schema else { return }
        try writeQueue.sync { _ = try writerTransaction().execute("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        try await writeReturningOutbox(body).value
    }

    public func writeReturningOutbox<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws
        -> (value: T, outbox: [OutboxMessage])
    {
        try await onQueue(writeQueue) { try self.transact(body) }
    }

    /// ``write(_:)`` on the calling thread (which must not be an event loop's), for tests.
    public func writeSync<T>(_ body: (any StoreTransaction) throws -> T) throws -> T {
        try writeQueue.sync { try transact(body) }.value
    }

    /// One write transaction, on the writer's queue.
    private func transact<T>(_ body: (any StoreTransaction) throws -> T) throws -> (value: T, outbox: [OutboxMessage]) {
        let tx = try writerTransaction()
        do {
            try tx.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            let value = try body(tx)
            try tx.execute("COMMIT")
            return (value, tx.written)
        } catch let e as StoreError where tx.connectionBroken {
            // The connection is gone or wedged (a statement past its deadline): never used
            // again; the server rolls the transaction back with its session.
            Self.discard(writer)
            writer = nil
            throw e
        } catch {
            _ = try? tx.execute("ROLLBACK")
            throw error
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        try await onQueue(readQueue) {
            let tx = try self.readerTransaction()
            do {
                try tx.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                let value = try body(tx)
                try tx.execute("COMMIT")
                return value
            } catch let e as StoreError where tx.connectionBroken {
                Self.discard(self.reader)
                self.reader = nil
                throw e
            } catch {
                _ = try? tx.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Closes the connections (a later call connects again).
    public func close() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { self.closeSync(); c.resume() }
        }
    }

    /// ``close()`` on the calling thread (not an event loop's).
    public func closeSync() {
        writeQueue.sync { _ = try? writer?.close().wait(); writer = nil }
        readQueue.sync { _ = try? reader?.close().wait(); reader = nil }
    }

    deinit {
        _ = try? writer?.close().wait()
        _ = try? reader?.close().wait()
    }

    // MARK: Connections

    private func writerTransaction() throws -> PostgresTransaction {
        if writer == nil || writer!.isClosed {
            let fresh = try connect()
            if exclusive {
                try Self.setLease(PostgresTransaction(connection: fresh, limits: limits, logger: logger))
                // A new session holds nothing: the lock is taken again, or no write happens (another
                // orchestrator took over while this one's session was gone).
                guard try Self.tryLock(PostgresTransaction(connection: fresh, limits: limits, logger: logger)) else {
                    Self.discard(fresh)
                    if !lossLogged {
                        logger.error("lost the writer lock: this orchestrator's session ended and another orchestrator holds the lock now; this one writes nothing (it takes the lock again only if the other stops)")
                        lossLogged = true
                    }
                    throw StoreError(.storageUnavailable, "another orchestrator holds this database's writer lock; this one writes nothing")
                }
                if lossLogged {
                    logger.notice("took the writer lock again; writing")
                    lossLogged = false
                }
            }
            writer = fresh
        }
        return PostgresTransaction(connection: writer!, limits: limits, logger: logger)
    }

    /// The session-level advisory lock that makes one orchestrator the only writer of Warren's
    /// tables: one per schema (advisory locks are the database's, so the schema's name is half
    /// of the key).
    static let writerLockKey: Int32 = 73_610_002

    private static func setLease(_ tx: PostgresTransaction) throws {
        let ms = writerLease.components.seconds * 1000
        try tx.execute("SET idle_session_timeout = \(ms)")
        try tx.execute("SET idle_in_transaction_session_timeout = \(ms)")
    }

    private static func tryLock(_ tx: PostgresTransaction) throws -> Bool {
        let row = try tx.execute("SELECT pg_try_advisory_lock(\(writerLockKey), hashtext(current_schema()))").first
        return try row?.makeRandomAccess()[0].decode(Bool.self) ?? false
    }

    /// Makes this store the database's only writer: takes a session-level advisory lock on the
    /// writer connection, held until the connection closes (the process exits or dies: the
    /// server drops the lock with the session). Returns `false` if another process holds it.
    /// From then on, a writer connection that was lost writes again only after taking the lock
    /// again, so an orchestrator whose session was gone can never write beside the one that
    /// took over.
    public func takeWriterLock() async throws -> Bool {
        try await onQueue(writeQueue) {
            let tx = try self.writerTransaction()
            let taken = try Self.tryLock(tx)
            if taken {
                try Self.setLease(tx)
                self.exclusive = true
            }
            return taken
        }
    }

    private func readerTransaction() throws -> PostgresTransaction {
        if reader == nil || reader!.isClosed { reader = try connect() }
        return PostgresTransaction(connection: reader!, limits: limits, logger: logger)
    }

    /// Closes a connection without waiting for it (a wedged one might never answer).
    private static func discard(_ connection: PostgresConnection?) {
        guard let connection else { return }
        let _: EventLoopFuture<Void> = connection.close()
    }

    private func connect() throws -> PostgresConnection {
        do {
            return try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration,
                                                  id: Int.random(in: 0..<Int.max), logger: logger).wait()
        } catch {
            throw StoreError(.storageUnavailable, "cannot connect to PostgreSQL at \(configuration.host ?? "?"):\(configuration.port ?? 5432): "
                + PostgresTransaction.describe(error))
        }
    }

    private func onQueue<T: Sendable>(_ queue: DispatchQueue, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            queue.async { c.resume(with: Result { try body() }) }
        }
    }
}
