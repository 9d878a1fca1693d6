import Foundation
import GRDB

/// Timers, the outbox, redelivery attempts and retention.
extension SQLiteTransaction {
    // MARK: Timers

    func fireTimers(now: Int64, limit: Int) throws -> [FiredTimer] {
        let due = try Row.fetchAll(db.cachedStatement(sql: "SELECT due, id, kind FROM timers WHERE due <= ? ORDER BY due LIMIT ?"),
                                   arguments: [now, limit])
        let delete = try db.cachedStatement(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?")
        var fired: [FiredTimer] = []
        for row in due {
            let (at, id, code): (Int64, String, Int) = (row[0], row[1], row[2])
            try delete.execute(arguments: [at, id, code])
            switch TimerKind(rawValue: code) {
            case .promiseTimeout?:
                guard let stored = try storedPromise(id: id), stored.state == .pending else { continue }
                let settled = PromiseRules.effective(stored, now: max(now, stored.timeout))
                let (resumed, subscribers) = try recordSettlement(settled, wasPending: stored, now: now)
                fired.append(.promiseTimeout(SettleResult(promise: settled, settled: true, resumedTasks: resumed, subscribers: subscribers)))
            case .taskRetry?:
                if let t = try task(id: id), TaskRules.backOffEnds(t) { fired.append(.taskRetry(try handOut(t, now: now))) }
            case .cancelGrace?:
                if let t = try task(id: id), TaskRules.graceEnds(t) {
                    try clearAwaits(taskID: id)
                    let done = TaskRules.complete(t, now: now)
                    try save(done)
                    fired.append(.graceEnded(done))
                }
            case .lease?:
                // A lease lapsed: its worker stopped renewing it. Another worker takes the task
                // under a new version; whatever the old one reports later is ignored.
                if let t = try task(id: id),
                   TaskRules.leaseLapsed(t, until: try Int64.fetchOne(db.cachedStatement(sql: "SELECT lease_until FROM tasks WHERE id = ?"), arguments: [id]), now: now) {
                    fired.append(.leaseExpired(try handOut(t, now: now)))
                }
            case .scheduleTick?:
                if let s = ScheduleRules.ticks(try schedule(id: id), due: at) { fired.append(.scheduleTick(s)) }
            case nil:
                continue  // a kind a newer Warren wrote: left for it
            }
        }
        return fired
    }

    func dropNextTimer() throws -> (id: String, kind: TimerKind?)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT due, id, kind FROM timers ORDER BY due LIMIT 1") else { return nil }
        let (due, id, code): (Int64, String, Int) = (row[0], row[1], row[2])
        try db.execute(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?", arguments: [due, id, code])
        return (id, TimerKind(rawValue: code))
    }

    func addTimer(due: Int64, id: String, kind: TimerKind) throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (due, id, kind) VALUES (?, ?, ?)").execute(arguments: [due, id, kind.rawValue])
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
            _ = try enqueue(f.message)
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
            SELECT id FROM promises WHERE state != \(PromiseState.pending.code) AND completed_on < ? AND instr(id, '.') = 0 LIMIT ?
            """, arguments: [completedBefore, limit])
        var deleted = 0
        for root in roots {
            // A workflow with a pending promise below its root (a detached child) is not finished.
            let range: StatementArguments = [root + ".", root + "/"]
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM promises WHERE id > ? AND id < ? AND state = \(PromiseState.pending.code) LIMIT 1", arguments: range) == true {
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
}
