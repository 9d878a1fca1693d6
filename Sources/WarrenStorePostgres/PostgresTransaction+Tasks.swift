import PostgresNIO
import WarrenStore

/// Tasks: the rules decide (``TaskRules``), these write what they return.
extension PostgresTransaction {
    func save(_ t: TaskRecord, awaiting: [String] = [], leaseUntil: Int64? = nil) throws {
        try execute("""
            UPDATE tasks SET state = $1, version = $2, worker = $3, awaiting = $4, lease_until = $5, updated_on = $6, retry_step = $7,
                             retry_failures = $8, blocked = $9 WHERE id = $10
            """, [.int(Int64(t.state.rawValue)), .int(t.version), .text(t.worker), .text(awaiting.isEmpty ? nil : ColumnCoding.encodeList(awaiting)),
                  .int(leaseUntil), .int(t.updatedOn), .text(t.retry?.step), .int(Int64(t.retry?.failures ?? 0)), .text(t.blocked), .text(t.id)])
    }

    func handOut(_ t: TaskRecord, now: Int64) throws -> TaskRecord {
        try clearAwaits(taskID: t.id)
        let next = TaskRules.handOut(t, now: now)
        try save(next)
        return next
    }

    func clearAwaits(taskID: String) throws {
        try execute("DELETE FROM awaits WHERE task_id = $1", [.text(taskID)])
    }

    private func existingTask(_ id: String) throws -> TaskRecord {
        try limits.validateID(id, "task id")
        guard let t = try task(id: id) else { throw StoreError(.notFound, "no task with id '\(id)'") }
        return t
    }

    private func heldTask(_ id: String, version: Int64, worker: String) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        return try TaskRules.fence(try existingTask(id), version: version, worker: worker)
    }

    private func record(_ steps: [StepOutcome], now: Int64) throws {
        for step in steps { try insert(TaskRules.record(step, now: now), orIgnore: true) }
    }

    private func leaseUntil(_ id: String) throws -> Int64? {
        try execute("SELECT lease_until FROM tasks WHERE id = $1", [.text(id)]).first?.makeRandomAccess()[0].decode(Int64?.self)
    }

    func redispatchTask(id: String, now: Int64) throws -> TaskRecord {
        let t = try TaskRules.redispatch(try existingTask(id), now: now)
        try clearAwaits(taskID: id)
        try save(t)
        return t
    }

    func claimTask(id: String, version: Int64, worker: String, now: Int64) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        let (t, changed) = try TaskRules.claim(try existingTask(id), version: version, worker: worker, now: now)
        if changed { try save(t, leaseUntil: try leaseUntil(id)) }
        return t
    }

    func suspendTask(id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome], now: Int64) throws -> SuspendResult {
        let t = try heldTask(id, version: version, worker: worker)
        let unique = try TaskRules.awaitList(awaiting, limits: limits)
        try TaskRules.validate(steps, of: id, limits: limits)
        let settledAlready = try TaskRules.resumesAtOnce(id, awaiting: unique, steps: steps) { try promise(id: $0, now: now) }
        try record(steps, now: now)
        if settledAlready { return .resumed(try handOut(t, now: now)) }
        for promiseID in unique {
            try execute("INSERT INTO awaits (promise_id, task_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [.text(promiseID), .text(id)])
        }
        let next = TaskRules.suspend(t, now: now)
        try save(next, awaiting: unique)
        return .suspended(next)
    }

    func completeTask(id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome], now: Int64) throws -> SettleResult {
        _ = try heldTask(id, version: version, worker: worker)
        try TaskRules.validateCompletion(settle, steps: steps, of: id, limits: limits)
        guard let stored = try storedPromise(id: id) else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        if TaskRules.completionAfterCancel(stored) {
            try record(steps, now: now)
            try clearAwaits(taskID: id)
            try save(TaskRules.complete(try existingTask(id), now: now))
            return SettleResult(promise: PromiseRules.effective(stored, now: now), settled: false, resumedTasks: [])
        }
        _ = try PromiseRules.decideSettle(settle, stored: stored, now: now)
        try record(steps, now: now)
        return try self.settle(settle, stored: stored, now: now)
    }

    func blockTask(id: String, version: Int64, worker: String, reason: String, due: Int64, now: Int64) throws -> TaskRecord {
        let next = TaskRules.block(try heldTask(id, version: version, worker: worker), reason: reason, now: now)
        try save(next)
        try addTimer(due: due, id: id, kind: .taskRetry)
        return next
    }

    func resumeTask(id: String, now: Int64) throws -> TaskRecord {
        let next = try TaskRules.resume(try existingTask(id), now: now)
        try clearAwaits(taskID: id)
        try save(next)
        return next
    }

    func compensateTask(id: String, graceUntil: Int64, now: Int64) throws -> TaskRecord {
        guard let stored = try storedPromise(id: id) else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        let next = try TaskRules.compensate(try existingTask(id), promise: stored, now: now)
        try save(next)
        try addTimer(due: graceUntil, id: id, kind: .cancelGrace)
        return next
    }

    func recordProgress(id: String, version: Int64, worker: String, steps: [StepOutcome], lease: Int64?, now: Int64) throws {
        let t = try heldTask(id, version: version, worker: worker)
        try TaskRules.validate(steps, of: id, limits: limits)
        if let lease, lease <= 0 { throw StoreError(.invalidArgument, "a lease lasts a positive number of milliseconds, not \(lease)") }
        let held = t.state == .pending ? TaskRules.acquire(t, worker: worker, now: now) : t
        if let lease {
            if let old = try leaseUntil(id) { try deleteTimer(due: old, id: id, kind: .lease) }
            try save(held, leaseUntil: now + lease)
            try addTimer(due: now + lease, id: id, kind: .lease)
        } else if held != t {
            try save(held, leaseUntil: try leaseUntil(id))
        }
        try record(steps, now: now)
    }

    func retryTask(id: String, version: Int64, worker: String, due: Int64, failedStep: String?, steps: [StepOutcome], now: Int64) throws -> TaskRecord {
        let t = try heldTask(id, version: version, worker: worker)
        try TaskRules.validate(steps, of: id, limits: limits)
        if let failedStep { try limits.validateID(failedStep, "step id") }
        try record(steps, now: now)
        let next = TaskRules.retry(t, failedStep: failedStep, now: now)
        try save(next)
        try addTimer(due: due, id: id, kind: .taskRetry)
        return next
    }
}
