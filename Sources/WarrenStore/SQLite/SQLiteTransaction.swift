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
        guard (1...PromiseSearch.maximumLimit).contains(s.limit) else {
            throw StoreError(.invalidArgument, "the search limit \(s.limit) must be from 1 to \(PromiseSearch.maximumLimit)")
        }
        try limits.validateSearch(s)
        guard !s.id.isEmpty, s.id.utf8.allSatisfy({ $0 == UInt8(ascii: "*") || StoreLimits.isAllowedIDCharacter($0) }) else {
            throw StoreError(.invalidID, "the id pattern '\(s.id.prefix(64))' may hold id characters and '*' only")
        }
        var sql = "SELECT \(Self.promiseColumns) FROM promises WHERE id GLOB ?"
        var args: StatementArguments = [s.id]
        if let cursor = s.cursor { sql += " AND id > ?"; args += [cursor] }
        if let states = s.states {
            // A pending promise past its timeout reads as timed out (a timer as resolved).
            var clauses: [String] = []
            for state in states {
                switch state {
                case .pending: clauses.append("(state = 0 AND timeout > \(now))")
                case .resolved: clauses.append("state = 1 OR (state = 0 AND timeout <= \(now) AND flags & 1 = 1)")
                case .rejectedTimedout: clauses.append("state = 4 OR (state = 0 AND timeout <= \(now) AND flags & 1 = 0)")
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
            let size = p.param.byteCount + p.value.byteCount + p.id.utf8.count + 256
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
        try limits.validateID(r.id)
        try limits.validateKey(r.idempotencyKey, "idempotency key")
        try limits.validatePayload(r.param, "param")
        try limits.validateTags(r.tags)
        if let g = r.taskGroup { try limits.validateGroup(g) }
        let existing = try storedPromise(id: r.id).map { PromiseRules.effective($0, now: now) }
        switch PromiseRules.create(r, existing: existing, now: now) {
        case .deduplicated(let p):
            return CreateResult(promise: p, created: false, task: try task(id: p.id))
        case .alreadyExists(let p):
            throw StoreError(.alreadyExists, "a promise with id '\(r.id)' exists (\(p.state.rawValue)) and the request's "
                + "idempotency key does not match its create; use another id, or the same key to deduplicate", promise: p)
        case .created(let p):
            try insert(p)
            if p.timeout < Int64.max {
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (due, id, kind) VALUES (?, ?, 0)")
                    .execute(arguments: [p.timeout, p.id])
            }
            var task: TaskRecord? = nil
            if let group = r.taskGroup {
                let t = TaskRecord(id: p.id, group: group, state: .pending, version: 1, worker: nil, updatedOn: now)
                try db.cachedStatement(sql: "INSERT INTO tasks (id, group_name, state, version, worker, awaiting, updated_on) VALUES (?, ?, ?, ?, NULL, NULL, ?)")
                    .execute(arguments: [t.id, t.group, t.state.rawValue, t.version, t.updatedOn])
                task = t
            }
            return CreateResult(promise: p, created: true, task: task)
        }
    }

    func settlePromise(_ r: SettlePromise, now: Int64) throws -> SettleResult {
        try limits.validateID(r.id)
        try limits.validateKey(r.idempotencyKey, "idempotency key")
        try limits.validatePayload(r.value, "value")
        guard let stored = try storedPromise(id: r.id) else {
            throw StoreError(.notFound, "no promise with id '\(r.id)'; create it first (ids are case-sensitive)")
        }
        return try settle(r, stored: stored, now: now)
    }

    /// Settles `stored` (read in this transaction) as `r` asks.
    private func settle(_ r: SettlePromise, stored: PromiseRecord, now: Int64) throws -> SettleResult {
        let existing = PromiseRules.effective(stored, now: now)
        switch PromiseRules.settle(r, existing: existing, now: now) {
        case .deduplicated(let p):
            return SettleResult(promise: p, settled: false, resumedTasks: [])
        case .alreadySettled(let p):
            throw StoreError(.alreadySettled, "the promise '\(r.id)' is already \(p.state.rawValue); the first outcome wins", promise: p)
        case .settled(let p):
            let (resumed, subscribers) = try recordSettlement(p, wasPending: stored, now: now)
            return SettleResult(promise: p, settled: true, resumedTasks: resumed, subscribers: subscribers)
        }
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
    private func recordSettlement(_ p: PromiseRecord, wasPending stored: PromiseRecord, now: Int64) throws
        -> (resumed: [TaskRecord], subscribers: [Subscriber])
    {
        try db.cachedStatement(sql: """
            UPDATE promises SET state = ?, value_headers = ?, value_data = ?, ikey_complete = ?, completed_on = ? WHERE id = ?
            """).execute(arguments: [p.state.code, Self.encodeMap(p.value.headers), p.value.data, p.idempotencyKeyForComplete, p.completedOn, p.id])
        if stored.timeout < Int64.max {
            try db.cachedStatement(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = 0").execute(arguments: [stored.timeout, p.id])
        }
        if let own = try task(id: p.id), own.state != .completed {
            try clearAwaits(taskID: own.id)
            try db.cachedStatement(sql: "UPDATE tasks SET state = 3, worker = NULL, awaiting = NULL, lease_until = NULL, updated_on = ? WHERE id = ?")
                .execute(arguments: [now, own.id])
        }
        let waiting = try String.fetchAll(db.cachedStatement(sql: "SELECT task_id FROM awaits WHERE promise_id = ?"), arguments: [p.id])
        var resumed: [TaskRecord] = []
        for taskID in waiting {
            guard let t = try task(id: taskID), t.state == .suspended else { continue }
            resumed.append(try handOut(t, now: now))
        }
        let subscribers = try Row.fetchAll(db.cachedStatement(sql: "SELECT address, correlation FROM callbacks WHERE promise_id = ?"),
                                           arguments: [p.id]).map { Subscriber(address: $0[0], correlation: $0[1]) }
        if !subscribers.isEmpty {
            try db.cachedStatement(sql: "DELETE FROM callbacks WHERE promise_id = ?").execute(arguments: [p.id])
        }
        return (resumed, subscribers)
    }

    // MARK: Tasks

    /// Makes the task pending under a new version, forgetting what it awaited.
    private func handOut(_ t: TaskRecord, now: Int64) throws -> TaskRecord {
        try clearAwaits(taskID: t.id)
        var next = t
        next.state = .pending
        next.version = t.version + 1
        next.worker = nil
        next.updatedOn = now
        try db.cachedStatement(sql: "UPDATE tasks SET state = 0, version = ?, worker = NULL, awaiting = NULL, lease_until = NULL, updated_on = ? WHERE id = ?")
            .execute(arguments: [next.version, now, t.id])
        return next
    }

    private func clearAwaits(taskID: String) throws {
        let delete = try db.cachedStatement(sql: "DELETE FROM awaits WHERE promise_id = ? AND task_id = ?")
        for promiseID in try awaitedPromises(taskID: taskID) {
            try delete.execute(arguments: [promiseID, taskID])
        }
    }

    private func existingTask(_ id: String) throws -> TaskRecord {
        try limits.validateID(id, "task id")
        guard let t = try task(id: id) else { throw StoreError(.notFound, "no task with id '\(id)'") }
        return t
    }

    /// The task, if `worker` holds its current `version`, or may take it: a report for the
    /// current version of a pending task is its claim (the version came in the execute message).
    private func heldTask(_ id: String, version: Int64, worker: String) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        let t = try existingTask(id)
        guard t.version == version else {
            throw StoreError(.staleTask, "task '\(id)' is at version \(t.version); a report for version \(version) is ignored")
        }
        guard t.state == .pending || (t.state == .acquired && t.worker == worker) else {
            throw StoreError(.staleTask, "task '\(id)' version \(version) is not held by worker '\(worker)' (state \(t.state), worker \(t.worker ?? "none"))")
        }
        return t
    }

    /// Checks the steps a report records, before anything is written.
    private func validate(_ steps: [StepOutcome], of taskID: String) throws {
        for step in steps {
            try limits.validateID(step.id, "step id")
            guard step.id.hasPrefix(taskID + ".") else {
                throw StoreError(.invalidArgument, "the step '\(step.id.prefix(64))' is not below task '\(taskID)'")
            }
            guard step.completion == .resolve || step.completion == .reject else {
                throw StoreError(.invalidArgument, "the step '\(step.id.prefix(64))' must be resolved or rejected")
            }
            try limits.validatePayload(step.value, "value of step '\(step.id.prefix(64))'")
            try limits.validateTags(step.tags)
        }
    }

    /// Records steps as promises created settled. A step already recorded keeps its first
    /// outcome (steps run at least once; a replay may run one again before its record lands).
    private func record(_ steps: [StepOutcome], now: Int64) throws {
        for step in steps {
            try insert(PromiseRecord(
                id: step.id, state: step.completion == .resolve ? .resolved : .rejected, value: step.value, timeout: now,
                idempotencyKeyForCreate: step.id, idempotencyKeyForComplete: step.id, createdOn: now, completedOn: now,
                tags: step.tags), orIgnore: true)
        }
    }

    func redispatchTask(id: String, now: Int64) throws -> TaskRecord {
        let t = try existingTask(id)
        guard t.state == .pending || t.state == .acquired else {
            throw StoreError(.invalidTaskState, "task '\(id)' is \(t.state); only a pending or acquired task is handed out again")
        }
        return try handOut(t, now: now)
    }

    func claimTask(id: String, version: Int64, worker: String, now: Int64) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        let t = try existingTask(id)
        guard t.version == version else {
            throw StoreError(.staleTask, "task '\(id)' is at version \(t.version); version \(version) cannot be claimed")
        }
        switch t.state {
        case .acquired where t.worker == worker:
            return t  // the same claim again (a redelivered message)
        case .pending:
            var next = t
            next.state = .acquired
            next.worker = worker
            next.updatedOn = now
            try db.cachedStatement(sql: "UPDATE tasks SET state = 1, worker = ?, updated_on = ? WHERE id = ?").execute(arguments: [worker, now, id])
            return next
        default:
            throw StoreError(.staleTask, "task '\(id)' version \(version) is \(t.state)\(t.worker.map { " by worker '\($0)'" } ?? ""); it cannot be claimed")
        }
    }

    func suspendTask(id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome], now: Int64) throws -> SuspendResult {
        let t = try heldTask(id, version: version, worker: worker)
        guard !awaiting.isEmpty else { throw StoreError(.invalidArgument, "a task suspends on at least one promise") }
        try validate(steps, of: id)
        var unique: [String] = []
        var settledAlready = false
        for promiseID in awaiting where !unique.contains(promiseID) {
            try limits.validateID(promiseID)
            if let p = try promise(id: promiseID, now: now) {
                settledAlready = settledAlready || p.state.isSettled
            } else if !steps.contains(where: { $0.id == promiseID }) {
                throw StoreError(.notFound, "task '\(id)' awaits promise '\(promiseID)', which does not exist")
            } else {
                settledAlready = true  // a step recorded with this report
            }
            unique.append(promiseID)
        }
        try record(steps, now: now)
        // The resolve that came first: an awaited promise already settled resumes the task now.
        if settledAlready { return .resumed(try handOut(t, now: now)) }
        let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO awaits (promise_id, task_id) VALUES (?, ?)")
        for promiseID in unique { try insert.execute(arguments: [promiseID, id]) }
        try db.cachedStatement(sql: "UPDATE tasks SET state = 2, worker = NULL, awaiting = ?, lease_until = NULL, updated_on = ? WHERE id = ?")
            .execute(arguments: [Self.encodeList(unique), now, id])
        var next = t
        next.state = .suspended
        next.worker = nil
        next.updatedOn = now
        return .suspended(next)
    }

    func completeTask(id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome], now: Int64) throws -> SettleResult {
        _ = try heldTask(id, version: version, worker: worker)
        guard settle.id == id else {
            throw StoreError(.invalidArgument, "task '\(id)' completes its own promise, not '\(settle.id)'")
        }
        try validate(steps, of: id)
        // Everything settlePromise can refuse, checked before the steps are written.
        try limits.validateKey(settle.idempotencyKey, "idempotency key")
        try limits.validatePayload(settle.value, "value")
        guard let stored = try storedPromise(id: id) else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        if case .alreadySettled(let p) = PromiseRules.settle(settle, existing: PromiseRules.effective(stored, now: now), now: now) {
            throw StoreError(.alreadySettled, "the promise '\(id)' is already \(p.state.rawValue); the first outcome wins", promise: p)
        }
        try record(steps, now: now)
        return try self.settle(settle, stored: stored, now: now)
    }

    func recordProgress(id: String, version: Int64, worker: String, steps: [StepOutcome], lease: Int64?, now: Int64) throws {
        let t = try heldTask(id, version: version, worker: worker)
        try validate(steps, of: id)
        if let lease, lease <= 0 { throw StoreError(.invalidArgument, "a lease lasts a positive number of milliseconds, not \(lease)") }
        if t.state == .pending {
            // The first report for this version: its claim.
            try db.cachedStatement(sql: "UPDATE tasks SET state = 1, worker = ?, updated_on = ? WHERE id = ?").execute(arguments: [worker, now, id])
        }
        if let lease {
            // The worker acked its execute message and runs on under a lease it renews; if it
            // lapses (the worker died), the kind-2 timer hands the task out again.
            let until = now + lease
            if let old = try Int64.fetchOne(db.cachedStatement(sql: "SELECT lease_until FROM tasks WHERE id = ?"), arguments: [id]) {
                try db.cachedStatement(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = 2").execute(arguments: [old, id])
            }
            try db.cachedStatement(sql: "UPDATE tasks SET lease_until = ? WHERE id = ?").execute(arguments: [until, id])
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (due, id, kind) VALUES (?, ?, 2)").execute(arguments: [until, id])
        }
        try record(steps, now: now)
    }

    func retryTask(id: String, version: Int64, worker: String, due: Int64, failedStep: String?, steps: [StepOutcome], now: Int64) throws -> TaskRecord {
        var t = try heldTask(id, version: version, worker: worker)
        try validate(steps, of: id)
        if let failedStep { try limits.validateID(failedStep, "step id") }
        try record(steps, now: now)
        if let failedStep {
            t.retry = TaskRetry(step: failedStep, failures: t.retry?.step == failedStep ? t.retry!.failures + 1 : 1)
        }
        t.state = .suspended
        t.worker = nil
        t.updatedOn = now
        try db.cachedStatement(sql: "UPDATE tasks SET state = 2, worker = NULL, awaiting = NULL, lease_until = NULL, updated_on = ?, retry_step = ?, retry_failures = ? WHERE id = ?")
            .execute(arguments: [now, t.retry?.step, t.retry?.failures ?? 0, id])
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (due, id, kind) VALUES (?, ?, 1)").execute(arguments: [due, id])
        return t
    }

    // MARK: Timers

    func fireTimers(now: Int64, limit: Int) throws -> [FiredTimer] {
        let due = try Row.fetchAll(db.cachedStatement(sql: "SELECT due, id, kind FROM timers WHERE due <= ? ORDER BY due LIMIT ?"),
                                   arguments: [now, limit])
        let delete = try db.cachedStatement(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?")
        var fired: [FiredTimer] = []
        for row in due {
            let (at, id, kind): (Int64, String, Int) = (row[0], row[1], row[2])
            try delete.execute(arguments: [at, id, kind])
            if kind == 0 {
                guard let stored = try storedPromise(id: id), stored.state == .pending else { continue }
                let settled = PromiseRules.effective(stored, now: max(now, stored.timeout))
                let (resumed, subscribers) = try recordSettlement(settled, wasPending: stored, now: now)
                fired.append(.promiseTimeout(SettleResult(promise: settled, settled: true, resumedTasks: resumed, subscribers: subscribers)))
            } else if kind == 1 {
                if let t = try task(id: id), t.state == .suspended { fired.append(.taskRetry(try handOut(t, now: now))) }
            } else if let t = try task(id: id), t.state == .acquired,
                      let until = try Int64.fetchOne(db.cachedStatement(sql: "SELECT lease_until FROM tasks WHERE id = ?"), arguments: [id]),
                      until <= now {
                // A lease lapsed: its worker stopped renewing it. Another worker takes the task
                // under a new version; whatever the old one reports later is ignored.
                fired.append(.leaseExpired(try handOut(t, now: now)))
            }
        }
        return fired
    }

    func dropNextTimer() throws -> (id: String, kind: Int)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT due, id, kind FROM timers ORDER BY due LIMIT 1") else { return nil }
        let (due, id, kind): (Int64, String, Int) = (row[0], row[1], row[2])
        try db.execute(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?", arguments: [due, id, kind])
        return (id, kind)
    }

    func nextTimerDue() throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT due FROM timers ORDER BY due LIMIT 1"))
    }

    // MARK: Outbox

    func enqueue(_ m: OutboxMessage) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO outbox (exchange, routing_key, kind, headers, body) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [m.exchange, m.routingKey, m.kind, Self.encodeMap(m.headers), Data(m.body)])
        let sequence = db.lastInsertedRowID
        if let collector {
            var written = m
            written.sequence = sequence
            collector.messages.append(written)
        }
        return sequence
    }

    func setOutboxAside(sequence: Int64, reason: String, now: Int64) throws {
        try db.cachedStatement(sql: "UPDATE outbox SET failure = ?, failed_on = ? WHERE seq = ?").execute(arguments: [reason, now, sequence])
    }

    func failedOutbox(limit: Int) throws -> [FailedOutboxMessage] {
        try Row.fetchAll(db, sql: """
            SELECT seq, exchange, routing_key, kind, headers, body, failure, failed_on FROM outbox
            WHERE failure IS NOT NULL ORDER BY seq LIMIT ?
            """, arguments: [limit]).map { row in
            FailedOutboxMessage(message: OutboxMessage(sequence: row[0], exchange: row[1], routingKey: row[2], kind: row[3],
                                                       headers: Self.decodeMap(row[4]), body: [UInt8]((row[5] as Data?) ?? Data())),
                                reason: row[6], failedOn: row[7])
        }
    }

    func retryFailedOutbox(sequences: [Int64]?) throws -> Int {
        // Written again under new sequence numbers, after everything else, so that the relay,
        // which reads forward, sees them.
        let chosen = try failedOutbox(limit: Int.max >> 1).filter { sequences?.contains($0.message.sequence) ?? true }
        for f in chosen {
            try enqueue(f.message)
            try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq = ?").execute(arguments: [f.message.sequence])
        }
        return chosen.count
    }

    func countAttempt(message: String, now: Int64) throws -> Int {
        try db.cachedStatement(sql: """
            INSERT INTO suspects (message, attempts, first_seen) VALUES (?, 1, ?)
            ON CONFLICT(message) DO UPDATE SET attempts = attempts + 1
            """).execute(arguments: [message, now])
        return try Int.fetchOne(db.cachedStatement(sql: "SELECT attempts FROM suspects WHERE message = ?"), arguments: [message]) ?? 1
    }

    func forgetAttempts(messages: [String]) throws {
        let st = try db.cachedStatement(sql: "DELETE FROM suspects WHERE message = ?")
        for m in messages { try st.execute(arguments: [m]) }
    }

    func deleteOutbox(sequences: [Int64]) throws {
        let st = try db.cachedStatement(sql: "DELETE FROM outbox WHERE seq = ?")
        for s in sequences { try st.execute(arguments: [s]) }
    }

    // MARK: Retention

    func deleteSettledWorkflows(completedBefore: Int64, limit: Int) throws -> Int {
        let roots = try String.fetchAll(db, sql: """
            SELECT id FROM promises WHERE state != 0 AND completed_on < ? AND instr(id, '.') = 0 LIMIT ?
            """, arguments: [completedBefore, limit])
        var deleted = 0
        for root in roots {
            // A workflow with a pending promise below its root (a detached child) is not finished.
            let range: StatementArguments = [root + ".", root + "/"]
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM promises WHERE id > ? AND id < ? AND state = 0 LIMIT 1", arguments: range) == true {
                continue
            }
            for taskID in try String.fetchAll(db, sql: "SELECT id FROM tasks WHERE id = ? OR (id > ? AND id < ?)", arguments: [root] + range) {
                try clearAwaits(taskID: taskID)
            }
            try db.execute(sql: "DELETE FROM tasks WHERE id = ? OR (id > ? AND id < ?)", arguments: [root] + range)
            try db.execute(sql: "DELETE FROM promises WHERE id = ? OR (id > ? AND id < ?)", arguments: [root] + range)
            deleted += 1
        }
        return deleted
    }

    // MARK: Rows

    /// Inserts a promise; with `orIgnore`, one whose id exists is left as it is.
    private func insert(_ p: PromiseRecord, orIgnore: Bool = false) throws {
        try db.cachedStatement(sql: """
            INSERT \(orIgnore ? "OR IGNORE " : "")INTO promises (id, state, param_headers, param_data, value_headers, value_data, timeout, ikey_create,
                                  ikey_complete, created_on, completed_on, tags, flags)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                p.id, p.state.code, Self.encodeMap(p.param.headers), p.param.data, Self.encodeMap(p.value.headers), p.value.data,
                p.timeout, p.idempotencyKeyForCreate, p.idempotencyKeyForComplete, p.createdOn, p.completedOn,
                Self.encodeMap(p.tags), p.isTimer ? 1 : 0,
            ])
    }

    // Rows are read by column index, in the order these lists give: reading by name makes
    // GRDB look each name up (case-insensitively) for every column of every row.
    static let promiseColumns = "id, state, param_headers, param_data, value_headers, value_data, timeout, ikey_create, ikey_complete, created_on, completed_on, tags"
    static let taskColumns = "id, group_name, state, version, worker, updated_on, retry_step, retry_failures"

    static func promise(from row: Row) -> PromiseRecord {
        PromiseRecord(
            id: row[0], state: PromiseState(code: row[1]) ?? .pending,
            param: PromiseValue(headers: decodeMap(row[2]), data: row[3]),
            value: PromiseValue(headers: decodeMap(row[4]), data: row[5]),
            timeout: row[6], idempotencyKeyForCreate: row[7], idempotencyKeyForComplete: row[8],
            createdOn: row[9], completedOn: row[10], tags: decodeMap(row[11]))
    }

    static func task(from row: Row) -> TaskRecord {
        let retryStep: String? = row[6]
        return TaskRecord(id: row[0], group: row[1], state: TaskRecord.State(rawValue: row[2]) ?? .pending,
                          version: row[3], worker: row[4], updatedOn: row[5],
                          retry: retryStep.map { TaskRetry(step: $0, failures: row[7]) })
    }

    static func encodeMap(_ map: [String: String]) -> String? {
        map.isEmpty ? nil : JSONValue.object(map)
    }

    static func decodeMap(_ text: String?) -> [String: String] {
        guard let text, case .object(let o)? = try? JSONValue.parse(text) else { return [:] }
        return o.compactMapValues(\.stringValue)
    }

    static func encodeList(_ list: [String]) -> String? {
        JSONValue.array(list.map { .string($0) }).jsonText
    }

    static func decodeList(_ text: String?) -> [String] {
        guard let text, case .array(let a)? = try? JSONValue.parse(text) else { return [] }
        return a.compactMap(\.stringValue)
    }
}

/// The outbox messages one transaction wrote. Used on the transaction's own thread only.
final class OutboxCollector: @unchecked Sendable {
    var messages: [OutboxMessage] = []
}
