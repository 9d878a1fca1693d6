import Foundation
import GRDB

/// The store's operations on one open SQLite transaction (or read snapshot).
/// Statements are cached per connection, so a batch prepares each SQL text once.
struct SQLiteTransaction: StoreTransaction {
    let db: Database
    let limits: StoreLimits
    /// Collects what `enqueue` writes, for ``SQLiteStore/writeReturningOutbox(_:)``.
    var collector: OutboxCollector? = nil

    // MARK: Reading

    func promise(id: String, now: Int64) throws -> PromiseRecord? {
        try storedPromise(id: id).map { PromiseRules.effective($0, now: now) }
    }

    /// The promise as stored, without the lazy timeout.
    func storedPromise(id: String) throws -> PromiseRecord? {
        // A cursor's row reads the statement's columns in place, without copying the row first.
        let st = try db.cachedStatement(sql: "SELECT \(Self.promiseColumns) FROM promises WHERE id = ?")
        let cursor = try Row.fetchCursor(st, arguments: [id])
        return try withExtendedLifetime(cursor) { try cursor.next().map(Self.promise(from:)) }
    }

    func search(_ s: PromiseSearch, now: Int64) throws -> PromisePage {
        try limits.validateSearch(s)
        var sql = "SELECT \(Self.promiseColumns) FROM promises WHERE id GLOB ?"
        var args: StatementArguments = [s.id]
        if let cursor = s.cursor { sql += " AND id > ?"; args += [cursor] }
        if let states = s.states {
            // A pending promise past its timeout reads as timed out (a timer as resolved).
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
            sql += clauses.isEmpty ? " AND 0" : " AND (" + clauses.joined(separator: " OR ") + ")"
        }
        for (key, value) in s.tags.sorted(by: { $0.key < $1.key }) {
            sql += " AND json_extract(tags, ?) = ?"
            args += ["$.\"" + key.replacingOccurrences(of: "\"", with: "\\\"") + "\"", value]
        }
        sql += " ORDER BY id LIMIT ?"
        args += [s.limit + 1]
        // A page stops at `limit` rows or `maximumPageBytes`, whichever comes first (at least one
        // row, which the payload limit bounds), so that a reply always fits a message.
        var rows: [PromiseRecord] = []
        var bytes = 0
        var cursor: String? = nil
        let fetched = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: args)
        while let row = try fetched.next() {
            let p = PromiseRules.effective(Self.promise(from: row), now: now)
            let size = PromisePage.bytes(of: p)
            if rows.count == s.limit || (!rows.isEmpty && bytes + size > limits.maximumPageBytes) {
                cursor = rows.last?.id
                break
            }
            rows.append(p)
            bytes += size
        }
        return PromisePage(promises: rows, cursor: cursor)
    }

    func task(id: String) throws -> TaskRecord? {
        let st = try db.cachedStatement(sql: "SELECT \(Self.taskColumns) FROM tasks WHERE id = ?")
        let cursor = try Row.fetchCursor(st, arguments: [id])
        return try withExtendedLifetime(cursor) { try cursor.next().map(Self.task(from:)) }
    }

    func awaitedPromises(taskID: String) throws -> [String] {
        let st = try db.cachedStatement(sql: "SELECT awaiting FROM tasks WHERE id = ?")
        return Self.decodeList(try String.fetchOne(st, arguments: [taskID]))
    }

    func tasks(states: Set<TaskRecord.State>?, limit: Int, cursor: String?) throws -> (tasks: [TaskRecord], cursor: String?) {
        guard (1...PromiseSearch.maximumLimit).contains(limit) else {
            throw StoreError(.invalidArgument, "the limit \(limit) must be from 1 to \(PromiseSearch.maximumLimit)")
        }
        var sql = "SELECT \(Self.taskColumns) FROM tasks WHERE id > ?"
        if let states { sql += " AND state IN (" + (states.isEmpty ? "-1" : states.map { "\($0.rawValue)" }.joined(separator: ",")) + ")" }
        sql += " ORDER BY id LIMIT ?"
        var rows = try Row.fetchAll(db, sql: sql, arguments: [cursor ?? "", limit + 1]).map(Self.task(from:))
        var next: String? = nil
        if rows.count > limit {
            rows.removeLast()
            next = rows.last?.id
        }
        return (rows, next)
    }

    func outbox(after sequence: Int64, limit: Int) throws -> [OutboxMessage] {
        let st = try db.cachedStatement(sql: "SELECT seq, exchange, routing_key, kind, headers, body FROM outbox WHERE seq > ? AND failure IS NULL ORDER BY seq LIMIT ?")
        return try Row.fetchAll(st, arguments: [sequence, limit]).map { row in
            OutboxMessage(sequence: row[0], exchange: row[1], routingKey: row[2], kind: row[3],
                          headers: Self.decodeMap(row[4]), body: [UInt8]((row[5] as Data?) ?? Data()))
        }
    }

    // MARK: Promises

    func createPromise(_ r: CreatePromise, now: Int64) throws -> CreateResult {
        try limits.validateCreate(r)
        let existing = try storedPromise(id: r.id).map { PromiseRules.effective($0, now: now) }
        let (p, creates) = try PromiseRules.decideCreate(r, existing: existing, now: now)
        guard creates else { return CreateResult(promise: p, created: false, task: try task(id: p.id)) }
        try insert(p)
        if p.timeout < Int64.max { try addTimer(due: p.timeout, id: p.id, kind: .promiseTimeout) }
        let task = r.taskGroup.map { TaskRecord(id: p.id, group: $0, state: .pending, version: 1, worker: nil, updatedOn: now) }
        if let task { try insertTask(task) }
        return CreateResult(promise: p, created: true, task: task)
    }

    func settlePromise(_ r: SettlePromise, now: Int64) throws -> SettleResult {
        try limits.validateSettle(r)
        guard let stored = try storedPromise(id: r.id) else {
            throw StoreError(.notFound, "no promise with id '\(r.id)'; create it first (ids are case-sensitive)")
        }
        return try settle(r, stored: stored, now: now)
    }

    /// Settles `stored` (read in this transaction) as `r` asks.
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
        // A settled promise (or one past its timeout, whose timer fires soon) answers now.
        if p.state == .pending {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO callbacks (promise_id, address, correlation, created_on) VALUES (?, ?, ?, ?)")
                .execute(arguments: [promiseID, address, correlation, now])
        }
        return p
    }

    /// Writes a settlement and its consequences: the timer goes, the promise's own task is
    /// completed, and every suspended task that awaited it is handed out again.
    func recordSettlement(_ p: PromiseRecord, wasPending stored: PromiseRecord, now: Int64) throws
        -> (resumed: [TaskRecord], subscribers: [Subscriber])
    {
        try db.cachedStatement(sql: """
            UPDATE promises SET state = ?, value_headers = ?, value_data = ?, ikey_complete = ?, completed_on = ? WHERE id = ?
            """).execute(arguments: [p.state.code, Self.encodeMap(p.value.headers), p.value.data, p.idempotencyKeyForComplete, p.completedOn, p.id])
        if stored.timeout < Int64.max {
            try db.cachedStatement(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?")
                .execute(arguments: [stored.timeout, p.id, TimerKind.promiseTimeout.rawValue])
        }
        if let own = try task(id: p.id), own.state != .completed {
            try clearAwaits(taskID: own.id)
            try save(TaskRules.complete(own, now: now))
        }
        let waiting = try String.fetchAll(db.cachedStatement(sql: "SELECT task_id FROM awaits WHERE promise_id = ?"), arguments: [p.id])
        var resumed: [TaskRecord] = []
        for taskID in waiting {
            guard let t = try task(id: taskID), TaskRules.resumes(t) else { continue }
            resumed.append(try handOut(t, now: now))
        }
        let subscribers = try Row.fetchAll(db.cachedStatement(sql: "SELECT address, correlation FROM callbacks WHERE promise_id = ?"),
                                           arguments: [p.id]).map { Subscriber(address: $0[0], correlation: $0[1]) }
        if !subscribers.isEmpty {
            try db.cachedStatement(sql: "DELETE FROM callbacks WHERE promise_id = ?").execute(arguments: [p.id])
        }
        return (resumed, subscribers)
    }
}
