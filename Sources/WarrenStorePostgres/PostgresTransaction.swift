import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import WarrenStore

/// The store's operations on one PostgreSQL transaction (or read snapshot), statement by
/// statement on the store's own thread. It decides with the same rules as the other backends
/// and writes what they return.
final class PostgresTransaction: StoreTransaction {
    let connection: PostgresConnection
    let limits: StoreLimits
    let logger: Logger
    /// What ``enqueue(_:)`` wrote, with sequence numbers.
    var written: [OutboxMessage] = []
    /// Whether the connection failed (closed, or a statement past its deadline) rather than a
    /// statement: it must not be used again.
    private(set) var connectionBroken = false

    init(connection: PostgresConnection, limits: StoreLimits, logger: Logger) {
        self.connection = connection
        self.limits = limits
        self.logger = logger
    }

    /// A statement's parameter.
    enum Bind {
        case text(String?)
        case int(Int64?)
        case bytes([UInt8])
    }

    /// Runs one statement and returns its rows; errors become ``StoreError``s.
    @discardableResult
    func execute(_ sql: String, _ binds: [Bind] = []) throws -> [PostgresRow] {
        var bindings = PostgresBindings(capacity: binds.count)
        for b in binds {
            switch b {
            case .text(let s?): bindings.append(s)
            case .int(let i?): bindings.append(i)
            case .bytes(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            case .text(nil), .int(nil): bindings.appendNull()
            }
        }
        // Waited for with a deadline: a server that stopped answering (a partition, a stopped
        // process on either side) must not hold the writer's thread for ever. The connection is
        // closed then, and the next transaction opens a new one.
        let answered = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<Result<PostgresQueryResult, any Error>?>(nil)
        connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).whenComplete { result in
            outcome.withLockedValue { $0 = result }
            answered.signal()
        }
        guard answered.wait(timeout: .now() + Self.statementDeadline) == .success else {
            connectionBroken = true
            let _: EventLoopFuture<Void> = connection.close()
            throw StoreError(.storageUnavailable, "PostgreSQL did not answer within \(Self.statementDeadline) s; the connection is closed")
        }
        switch outcome.withLockedValue({ $0 })! {
        case .success(let result): return result.rows
        case .failure(let error):
            if (error as? PSQLError)?.code != .server { connectionBroken = true }
            throw Self.storeError(error)
        }
    }

    /// How long one statement may take before the connection is given up.
    static let statementDeadline: Double = 10

    /// A storage fault (the server gone, a full disk, a read-only standby, a conflict to retry)
    /// or a statement refused for what it holds.
    static func storeError(_ error: any Error) -> StoreError {
        if let e = error as? StoreError { return e }
        guard let psql = error as? PSQLError else { return StoreError(.storageUnavailable, "PostgreSQL: \(error)") }
        guard psql.code == .server, let state = psql.serverInfo?[.sqlState] else {
            return StoreError(.storageUnavailable, "PostgreSQL: \(describe(psql))")
        }
        // 08 connection, 25 read-only transaction (a standby), 40 serialization or deadlock,
        // 53 insufficient resources (disk full), 57 operator intervention (shutdown), 58 system.
        let unavailable = ["08", "25", "40", "53", "57", "58"].contains(String(state.prefix(2)))
        return StoreError(unavailable ? .storageUnavailable : .databaseError, "PostgreSQL \(state): \(describe(psql))")
    }

    static func describe(_ error: any Error) -> String {
        guard let psql = error as? PSQLError else { return "\(error)" }
        if let message = psql.serverInfo?[.message] { return message }
        return "\(psql.code)\(psql.underlying.map { ": \($0)" } ?? "")"
    }

    // MARK: Rows

    static let promiseColumns = "id, state, param_headers, param_data, value_headers, value_data, timeout, ikey_create, ikey_complete, created_on, completed_on, tags"
    static let taskColumns = "id, group_name, state, version, worker, updated_on, retry_step, retry_failures, blocked"

    static func promise(from row: PostgresRow) throws -> PromiseRecord {
        let r = row.makeRandomAccess()
        return PromiseRecord(
            id: try r[0].decode(String.self), state: PromiseState(code: Int(try r[1].decode(Int16.self))) ?? .pending,
            param: PromiseValue(headers: ColumnCoding.decodeMap(try r[2].decode(String?.self)), data: try r[3].decode(String?.self)),
            value: PromiseValue(headers: ColumnCoding.decodeMap(try r[4].decode(String?.self)), data: try r[5].decode(String?.self)),
            timeout: try r[6].decode(Int64.self), idempotencyKeyForCreate: try r[7].decode(String?.self),
            idempotencyKeyForComplete: try r[8].decode(String?.self), createdOn: try r[9].decode(Int64.self),
            completedOn: try r[10].decode(Int64?.self), tags: ColumnCoding.decodeMap(try r[11].decode(String?.self)))
    }

    static func task(from row: PostgresRow) throws -> TaskRecord {
        let r = row.makeRandomAccess()
        let retryStep = try r[6].decode(String?.self)
        return TaskRecord(id: try r[0].decode(String.self), group: try r[1].decode(String.self),
                          state: TaskRecord.State(rawValue: Int(try r[2].decode(Int16.self))) ?? .pending,
                          version: try r[3].decode(Int64.self), worker: try r[4].decode(String?.self), updatedOn: try r[5].decode(Int64.self),
                          retry: try retryStep.map { TaskRetry(step: $0, failures: Int(try r[7].decode(Int32.self))) },
                          blocked: try r[8].decode(String?.self))
    }

    static func outboxMessage(from row: PostgresRow) throws -> OutboxMessage {
        let r = row.makeRandomAccess()
        var body = try r[5].decode(ByteBuffer.self)
        return OutboxMessage(sequence: try r[0].decode(Int64.self), exchange: try r[1].decode(String.self), routingKey: try r[2].decode(String.self),
                             kind: try r[3].decode(String.self), headers: ColumnCoding.decodeMap(try r[4].decode(String?.self)),
                             body: body.readBytes(length: body.readableBytes) ?? [])
    }

    func insert(_ p: PromiseRecord, orIgnore: Bool = false) throws {
        try execute("""
            INSERT INTO promises (id, state, param_headers, param_data, value_headers, value_data, timeout, ikey_create, ikey_complete,
                                  created_on, completed_on, tags, flags)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)\(orIgnore ? " ON CONFLICT (id) DO NOTHING" : "")
            """, [.text(p.id), .int(Int64(p.state.code)), .text(ColumnCoding.encodeMap(p.param.headers)), .text(p.param.data),
                  .text(ColumnCoding.encodeMap(p.value.headers)), .text(p.value.data), .int(p.timeout), .text(p.idempotencyKeyForCreate),
                  .text(p.idempotencyKeyForComplete), .int(p.createdOn), .int(p.completedOn), .text(ColumnCoding.encodeMap(p.tags)),
                  .int(p.isTimer ? 1 : 0)])
    }

    // MARK: Reading

    func promise(id: String, now: Int64) throws -> PromiseRecord? {
        try storedPromise(id: id).map { PromiseRules.effective($0, now: now) }
    }

    func storedPromise(id: String) throws -> PromiseRecord? {
        try execute("SELECT \(Self.promiseColumns) FROM promises WHERE id = $1", [.text(id)]).first.map(Self.promise(from:))
    }

    func search(_ s: PromiseSearch, now: Int64) throws -> PromisePage {
        try limits.validateSearch(s)
        // The pattern's `*` as LIKE's `%`; ids may hold `_`, which LIKE must take literally.
        let like = s.id.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_").replacingOccurrences(of: "*", with: "%")
        var sql = "SELECT \(Self.promiseColumns) FROM promises WHERE id LIKE $1 ESCAPE '\\'"
        var binds: [Bind] = [.text(like)]
        if let cursor = s.cursor {
            binds.append(.text(cursor))
            sql += " AND id > $\(binds.count)"
        }
        if let states = s.states {
            var clauses: [String] = []
            let (pending, resolved, timedOut) = (PromiseState.pending.code, PromiseState.resolved.code, PromiseState.rejectedTimedout.code)
            for state in states {
                switch state {
                case .pending: clauses.append("(state = \(pending) AND timeout > \(now))")
                case .resolved: clauses.append("state = \(resolved) OR (state = \(pending) AND timeout <= \(now) AND flags & 1 = 1)")
                case .rejectedTimedout: clauses.append("state = \(timedOut) OR (state = \(pending) AND timeout <= \(now) AND flags & 1 = 0)")
                case .rejected, .rejectedCanceled: clauses.append("state = \(state.code)")
                }
            }
            sql += clauses.isEmpty ? " AND FALSE" : " AND (" + clauses.joined(separator: " OR ") + ")"
        }
        for (key, value) in s.tags.sorted(by: { $0.key < $1.key }) {
            binds += [.text(key), .text(value)]
            sql += " AND (tags::jsonb ->> $\(binds.count - 1)) = $\(binds.count)"
        }
        binds.append(.int(Int64(s.limit + 1)))
        sql += " ORDER BY id LIMIT $\(binds.count)"
        var rows: [PromiseRecord] = []
        var bytes = 0
        for row in try execute(sql, binds) {
            let p = PromiseRules.effective(try Self.promise(from: row), now: now)
            let size = PromisePage.bytes(of: p)
            if rows.count == s.limit || (!rows.isEmpty && bytes + size > limits.maximumPageBytes) {
                return PromisePage(promises: rows, cursor: rows.last?.id)
            }
            rows.append(p)
            bytes += size
        }
        return PromisePage(promises: rows, cursor: nil)
    }

    func task(id: String) throws -> TaskRecord? {
        try execute("SELECT \(Self.taskColumns) FROM tasks WHERE id = $1", [.text(id)]).first.map(Self.task(from:))
    }

    func awaitedPromises(taskID: String) throws -> [String] {
        let row = try execute("SELECT awaiting FROM tasks WHERE id = $1", [.text(taskID)]).first
        return ColumnCoding.decodeList(try row?.makeRandomAccess()[0].decode(String?.self))
    }

    func tasks(states: Set<TaskRecord.State>?, limit: Int, cursor: String?) throws -> (tasks: [TaskRecord], cursor: String?) {
        guard (1...PromiseSearch.maximumLimit).contains(limit) else {
            throw StoreError(.invalidArgument, "the limit \(limit) must be from 1 to \(PromiseSearch.maximumLimit)")
        }
        var sql = "SELECT \(Self.taskColumns) FROM tasks WHERE id > $1"
        if let states { sql += " AND state IN (" + (states.isEmpty ? "-1" : states.map { "\($0.rawValue)" }.joined(separator: ",")) + ")" }
        sql += " ORDER BY id LIMIT $2"
        var rows = try execute(sql, [.text(cursor ?? ""), .int(Int64(limit + 1))]).map(Self.task(from:))
        var next: String? = nil
        if rows.count > limit {
            rows.removeLast()
            next = rows.last?.id
        }
        return (rows, next)
    }

    func outbox(after sequence: Int64, limit: Int) throws -> [OutboxMessage] {
        try execute("SELECT seq, exchange, routing_key, kind, headers, body FROM outbox WHERE seq > $1 AND failure IS NULL ORDER BY seq LIMIT $2",
                    [.int(sequence), .int(Int64(limit))]).map(Self.outboxMessage(from:))
    }

    func failedOutbox(limit: Int) throws -> [FailedOutboxMessage] {
        try execute("""
            SELECT seq, exchange, routing_key, kind, headers, body, failure, failed_on FROM outbox
            WHERE failure IS NOT NULL ORDER BY seq LIMIT $1
            """, [.int(Int64(limit))]).map { row in
            let r = row.makeRandomAccess()
            return FailedOutboxMessage(message: try Self.outboxMessage(from: row), reason: try r[6].decode(String.self), failedOn: try r[7].decode(Int64.self))
        }
    }

    // MARK: Promises

    func createPromise(_ r: CreatePromise, now: Int64) throws -> CreateResult {
        try limits.validateCreate(r)
        let (p, creates) = try PromiseRules.decideCreate(r, existing: try promise(id: r.id, now: now), now: now)
        guard creates else { return CreateResult(promise: p, created: false, task: try task(id: p.id)) }
        try insert(p)
        if p.timeout < Int64.max { try addTimer(due: p.timeout, id: p.id, kind: .promiseTimeout) }
        let task = r.taskGroup.map { TaskRecord(id: p.id, group: $0, state: .pending, version: 1, worker: nil, updatedOn: now) }
        if let task {
            try execute("INSERT INTO tasks (id, group_name, state, version, updated_on) VALUES ($1, $2, $3, $4, $5)",
                        [.text(task.id), .text(task.group), .int(Int64(task.state.rawValue)), .int(task.version), .int(now)])
        }
        return CreateResult(promise: p, created: true, task: task)
    }

    func settlePromise(_ r: SettlePromise, now: Int64) throws -> SettleResult {
        try limits.validateSettle(r)
        guard let stored = try storedPromise(id: r.id) else {
            throw StoreError(.notFound, "no promise with id '\(r.id)'; create it first (ids are case-sensitive)")
        }
        return try settle(r, stored: stored, now: now)
    }

    func settle(_ r: SettlePromise, stored: PromiseRecord, now: Int64) throws -> SettleResult {
        let (p, settles) = try PromiseRules.decideSettle(r, stored: stored, now: now)
        guard settles else { return SettleResult(promise: p, settled: false, resumedTasks: []) }
        let (resumed, subscribers) = try recordSettlement(p, wasPending: stored, now: now)
        return SettleResult(promise: p, settled: true, resumedTasks: resumed, subscribers: subscribers)
    }

    func subscribe(promiseID: String, address: String, correlation: String, now: Int64) throws -> PromiseRecord {
        try limits.validateID(promiseID)
        try limits.validateKey(address, "subscriber address")
        try limits.validateKey(correlation, "correlation id")
        guard let p = try promise(id: promiseID, now: now) else {
            throw StoreError(.notFound, "no promise with id '\(promiseID)'; create it first (ids are case-sensitive)")
        }
        if p.state == .pending {
            try execute("INSERT INTO callbacks (promise_id, address, correlation, created_on) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        [.text(promiseID), .text(address), .text(correlation), .int(now)])
        }
        return p
    }

    /// Writes a settlement and its consequences: the timer goes, the promise's own task is
    /// completed, and every suspended task that awaited it is handed out again.
    func recordSettlement(_ p: PromiseRecord, wasPending stored: PromiseRecord, now: Int64) throws -> (resumed: [TaskRecord], subscribers: [Subscriber]) {
        try execute("UPDATE promises SET state = $1, value_headers = $2, value_data = $3, ikey_complete = $4, completed_on = $5 WHERE id = $6",
                    [.int(Int64(p.state.code)), .text(ColumnCoding.encodeMap(p.value.headers)), .text(p.value.data), .text(p.idempotencyKeyForComplete),
                     .int(p.completedOn), .text(p.id)])
        if stored.timeout < Int64.max { try deleteTimer(due: stored.timeout, id: p.id, kind: .promiseTimeout) }
        if let own = try task(id: p.id), own.state != .completed {
            try clearAwaits(taskID: own.id)
            try save(TaskRules.complete(own, now: now))
        }
        var resumed: [TaskRecord] = []
        for row in try execute("SELECT task_id FROM awaits WHERE promise_id = $1 ORDER BY task_id", [.text(p.id)]) {
            guard let t = try task(id: try row.makeRandomAccess()[0].decode(String.self)), TaskRules.resumes(t) else { continue }
            resumed.append(try handOut(t, now: now))
        }
        let subscribers = try execute("DELETE FROM callbacks WHERE promise_id = $1 RETURNING address, correlation", [.text(p.id)]).map { row in
            let r = row.makeRandomAccess()
            return Subscriber(address: try r[0].decode(String.self), correlation: try r[1].decode(String.self))
        }
        return (resumed, subscribers)
    }
}
