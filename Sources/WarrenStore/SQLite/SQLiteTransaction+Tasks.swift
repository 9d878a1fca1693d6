import GRDB

/// Tasks: the rules decide (``TaskRules``), these write what they return.
extension SQLiteTransaction {
    /// Writes a task's row as `t` says, with what it awaits and its lease.
    func save(_ t: TaskRecord, awaiting: [String] = [], leaseUntil: Int64? = nil) throws {
        try db.cachedStatement(sql: """
            UPDATE tasks SET state = ?, version = ?, worker = ?, awaiting = ?, lease_until = ?, updated_on = ?, retry_step = ?,
                             retry_failures = ?, blocked = ? WHERE id = ?
            """).execute(arguments: [
                t.state.rawValue, t.version, t.worker, awaiting.isEmpty ? nil : Self.encodeList(awaiting), leaseUntil, t.updatedOn,
                t.retry?.step, t.retry?.failures ?? 0, t.blocked, t.id,
            ])
    }

    func insertTask(_ t: TaskRecord) throws {
        try db.cachedStatement(sql: "INSERT INTO tasks (id, group_name, state, version, worker, awaiting, updated_on) VALUES (?, ?, ?, ?, NULL, NULL, ?)")
            .execute(arguments: [t.id, t.group, t.state.rawValue, t.version, t.updatedOn])
    }

    /// Makes the task pending under a new version, forgetting what it awaited.
    func handOut(_ t: TaskRecord, now: Int64) throws -> TaskRecord {
        try clearAwaits(taskID: t.id)
        let next = TaskRules.handOut(t, now: now)
        try save(next)
        return next
    }

    func clearAwaits(taskID: String) throws {
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

    /// The task, if `worker` may report on its `version` (``TaskRules/fence(_:version:worker:)``).
    private func heldTask(_ id: String, version: Int64, worker: String) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        return try TaskRules.fence(try existingTask(id), version: version, worker: worker)
    }

    /// Records steps as promises created settled; one recorded already keeps its first outcome.
    private func record(_ steps: [StepOutcome], now: Int64) throws {
        for step in steps { try insert(TaskRules.record(step, now: now), orIgnore: true) }
    }

    private func leaseUntil(_ id: String) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT lease_until FROM tasks WHERE id = ?"), arguments: [id])
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
        if changed { try save(t) }
        return t
    }

    func suspendTask(id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome], now: Int64) throws -> SuspendResult {
        let t = try heldTask(id, version: version, worker: worker)
        let unique = try TaskRules.awaitList(awaiting, limits: limits)
        try TaskRules.validate(steps, of: id, limits: limits)
        let settledAlready = try TaskRules.resumesAtOnce(id, awaiting: unique, steps: steps) { try promise(id: $0, now: now) }
        try record(steps, now: now)
        // The resolve that came first: an awaited promise already settled resumes the task now.
        if settledAlready { return .resumed(try handOut(t, now: now)) }
        let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO awaits (promise_id, task_id) VALUES (?, ?)")
        for promiseID in unique { try insert.execute(arguments: [promiseID, id]) }
        let next = TaskRules.suspend(t, now: now)
        try save(next, awaiting: unique)
        return .suspended(next)
    }

    func completeTask(id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome], now: Int64) throws -> SettleResult {
        _ = try heldTask(id, version: version, worker: worker)
        try TaskRules.validateCompletion(settle, steps: steps, of: id, limits: limits)
        guard let stored = try storedPromise(id: id) else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        if TaskRules.completionAfterCancel(stored) {
            // A canceled workflow's compensating run finished: its steps count, its outcome does not.
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
        // The first report for this version is its claim.
        let held = t.state == .pending ? TaskRules.acquire(t, worker: worker, now: now) : t
        if let lease {
            // The worker acked its execute message and runs on under a lease it renews; if it
            // lapses (the worker died), the lease timer hands the task out again.
            let until = now + lease
            if let old = try leaseUntil(id) {
                try db.cachedStatement(sql: "DELETE FROM timers WHERE due = ? AND id = ? AND kind = ?").execute(arguments: [old, id, TimerKind.lease.rawValue])
            }
            try save(held, leaseUntil: until)
            try addTimer(due: until, id: id, kind: .lease)
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
