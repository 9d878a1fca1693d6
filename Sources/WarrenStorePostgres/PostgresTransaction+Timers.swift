import PostgresNIO
import WarrenStore

/// Timers, the outbox, redelivery attempts and retention.
extension PostgresTransaction {
    func addTimer(due: Int64, id: String, kind: TimerKind) throws {
        try execute("INSERT INTO timers (due, id, kind) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [.int(due), .text(id), .int(Int64(kind.rawValue))])
    }

    func deleteTimer(due: Int64, id: String, kind: TimerKind) throws {
        try execute("DELETE FROM timers WHERE due = $1 AND id = $2 AND kind = $3", [.int(due), .text(id), .int(Int64(kind.rawValue))])
    }

    func fireTimers(now: Int64, limit: Int) throws -> [FiredTimer] {
        let due = try execute("DELETE FROM timers WHERE (due, id, kind) IN (SELECT due, id, kind FROM timers WHERE due <= $1 ORDER BY due, id, kind LIMIT $2) "
                              + "RETURNING due, id, kind", [.int(now), .int(Int64(limit))]).map { row in
            let r = row.makeRandomAccess()
            return (due: try r[0].decode(Int64.self), id: try r[1].decode(String.self), kind: Int(try r[2].decode(Int16.self)))
        }.sorted { ($0.due, $0.id, $0.kind) < ($1.due, $1.id, $1.kind) }
        var fired: [FiredTimer] = []
        for timer in due {
            switch TimerKind(rawValue: timer.kind) {
            case .promiseTimeout?:
                guard let stored = try storedPromise(id: timer.id), stored.state == .pending else { continue }
                let settled = PromiseRules.effective(stored, now: max(now, stored.timeout))
                let (resumed, subscribers) = try recordSettlement(settled, wasPending: stored, now: now)
                fired.append(.promiseTimeout(SettleResult(promise: settled, settled: true, resumedTasks: resumed, subscribers: subscribers)))
            case .taskRetry?:
                if let t = try task(id: timer.id), TaskRules.backOffEnds(t) { fired.append(.taskRetry(try handOut(t, now: now))) }
            case .cancelGrace?:
                if let t = try task(id: timer.id), TaskRules.graceEnds(t) {
                    try clearAwaits(taskID: t.id)
                    let done = TaskRules.complete(t, now: now)
                    try save(done)
                    fired.append(.graceEnded(done))
                }
            case .lease?:
                let until = try execute("SELECT lease_until FROM tasks WHERE id = $1", [.text(timer.id)]).first?.makeRandomAccess()[0].decode(Int64?.self)
                if let t = try task(id: timer.id), TaskRules.leaseLapsed(t, until: until, now: now) {
                    fired.append(.leaseExpired(try handOut(t, now: now)))
                }
            case .scheduleTick?:
                if let s = ScheduleRules.ticks(try schedule(id: timer.id), due: timer.due) { fired.append(.scheduleTick(s)) }
            case nil:
                continue  // a kind a newer Warren wrote: left for it
            }
        }
        return fired
    }

    func nextTimerDue() throws -> Int64? {
        try execute("SELECT due FROM timers ORDER BY due LIMIT 1").first?.makeRandomAccess()[0].decode(Int64.self)
    }

    func dropNextTimer() throws -> (id: String, kind: TimerKind?)? {
        guard let row = try execute("""
            DELETE FROM timers WHERE (due, id, kind) IN (SELECT due, id, kind FROM timers ORDER BY due LIMIT 1) RETURNING id, kind
            """).first else { return nil }
        let r = row.makeRandomAccess()
        return (try r[0].decode(String.self), TimerKind(rawValue: Int(try r[1].decode(Int16.self))))
    }

    func enqueue(_ m: OutboxMessage) throws -> Int64 {
        let row = try execute("INSERT INTO outbox (exchange, routing_key, kind, headers, body) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                              [.text(m.exchange), .text(m.routingKey), .text(m.kind), .text(ColumnCoding.encodeMap(m.headers)), .bytes(m.body)])
        let sequence = try row[0].makeRandomAccess()[0].decode(Int64.self)
        var w = m
        w.sequence = sequence
        written.append(w)
        return sequence
    }

    func setOutboxAside(sequence: Int64, reason: String, now: Int64) throws {
        try execute("UPDATE outbox SET failure = $1, failed_on = $2 WHERE seq = $3", [.text(reason), .int(now), .int(sequence)])
    }

    func retryFailedOutbox(sequences: [Int64]?) throws -> Int {
        let chosen = try failedOutbox(limit: Int(Int32.max)).filter { sequences?.contains($0.message.sequence) ?? true }
        for f in chosen {
            _ = try enqueue(f.message)
            try execute("DELETE FROM outbox WHERE seq = $1", [.int(f.message.sequence)])
        }
        return chosen.count
    }

    func countAttempt(message: String, now: Int64) throws -> Int {
        let row = try execute("""
            INSERT INTO suspects (message, attempts, first_seen) VALUES ($1, 1, $2)
            ON CONFLICT (message) DO UPDATE SET attempts = suspects.attempts + 1 RETURNING attempts
            """, [.text(message), .int(now)])
        return Int(try row[0].makeRandomAccess()[0].decode(Int32.self))
    }

    func forgetAttempts(messages: [String]) throws {
        for m in messages { try execute("DELETE FROM suspects WHERE message = $1", [.text(m)]) }
    }

    func deleteOutbox(sequences: [Int64]) throws {
        guard !sequences.isEmpty else { return }
        try execute("DELETE FROM outbox WHERE seq IN (" + sequences.map { "\($0)" }.joined(separator: ",") + ")")
    }

    func deleteSettledWorkflows(completedBefore: Int64, limit: Int) throws -> Int {
        let roots = try execute("""
            SELECT id FROM promises WHERE state != \(PromiseState.pending.code) AND completed_on < $1 AND strpos(id, '.') = 0 ORDER BY id LIMIT $2
            """, [.int(completedBefore), .int(Int64(limit))]).map { try $0.makeRandomAccess()[0].decode(String.self) }
        var deleted = 0
        for root in roots {
            let range: [PostgresTransaction.Bind] = [.text(root), .text(root + "."), .text(root + "/")]
            let pendingBelow = try execute("SELECT 1 FROM promises WHERE id > $1 AND id < $2 AND state = \(PromiseState.pending.code) LIMIT 1",
                                           [.text(root + "."), .text(root + "/")])
            if !pendingBelow.isEmpty { continue }
            try execute("DELETE FROM awaits WHERE task_id = $1 OR (task_id > $2 AND task_id < $3)", range)
            try execute("DELETE FROM tasks WHERE id = $1 OR (id > $2 AND id < $3)", range)
            try execute("DELETE FROM promises WHERE id = $1 OR (id > $2 AND id < $3)", range)
            deleted += 1
        }
        return deleted
    }
}
