/// The store's operations on a copy of a ``MemoryStore``'s state. It decides exactly as
/// ``SQLiteTransaction`` does (the same ``PromiseRules`` and ``TaskRules``, the same checks in
/// the same order), so the two answer alike; the tests hold them to it.
final class MemoryTransaction: StoreTransaction {
    var state: MemoryState
    let limits: StoreLimits
    /// What ``enqueue(_:)`` wrote, with sequence numbers.
    var written: [OutboxMessage] = []

    init(state: MemoryState, limits: StoreLimits) {
        self.state = state
        self.limits = limits
    }

    // MARK: Reading

    func promise(id: String, now: Int64) throws -> PromiseRecord? {
        state.promises[id].map { PromiseRules.effective($0, now: now) }
    }

    func search(_ s: PromiseSearch, now: Int64) throws -> PromisePage {
        try limits.validateSearch(s)
        let ids = state.promises.keys.filter { id in Self.glob(s.id, matches: id) && s.cursor.map { id > $0 } ?? true }.sorted()
        var rows: [PromiseRecord] = []
        var bytes = 0
        for id in ids {
            let p = PromiseRules.effective(state.promises[id]!, now: now)
            if let states = s.states, !states.contains(p.state) { continue }
            if s.tags.contains(where: { p.tags[$0.key] != $0.value }) { continue }
            let size = PromisePage.bytes(of: p)
            if rows.count == s.limit || (!rows.isEmpty && bytes + size > limits.maximumPageBytes) {
                return PromisePage(promises: rows, cursor: rows.last?.id)
            }
            rows.append(p)
            bytes += size
        }
        return PromisePage(promises: rows, cursor: nil)
    }

    func task(id: String) throws -> TaskRecord? { state.tasks[id]?.task }

    func awaitedPromises(taskID: String) throws -> [String] { state.tasks[taskID]?.awaiting ?? [] }

    func tasks(states: Set<TaskRecord.State>?, limit: Int, cursor: String?) throws -> (tasks: [TaskRecord], cursor: String?) {
        guard (1...PromiseSearch.maximumLimit).contains(limit) else {
            throw StoreError(.invalidArgument, "the limit \(limit) must be from 1 to \(PromiseSearch.maximumLimit)")
        }
        var rows = state.tasks.values.map(\.task)
            .filter { $0.id > (cursor ?? "") && (states?.contains($0.state) ?? true) }
            .sorted { $0.id < $1.id }
            .prefix(limit + 1).map { $0 }
        var next: String? = nil
        if rows.count > limit {
            rows.removeLast()
            next = rows.last?.id
        }
        return (rows, next)
    }

    func outbox(after sequence: Int64, limit: Int) throws -> [OutboxMessage] {
        state.outbox.lazy.filter { $0.message.sequence > sequence && $0.failure == nil }.prefix(limit).map(\.message)
    }

    func failedOutbox(limit: Int) throws -> [FailedOutboxMessage] {
        state.outbox.lazy.compactMap { row in row.failure.map { FailedOutboxMessage(message: row.message, reason: $0.reason, failedOn: $0.on) } }
            .prefix(limit).map { $0 }
    }

    func schedule(id: String) throws -> ScheduleRecord? { state.schedules[id] }

    func schedules(limit: Int, cursor: String?) throws -> (schedules: [ScheduleRecord], cursor: String?) {
        let after = state.schedules.values.filter { $0.id > (cursor ?? "") }.sorted { $0.id < $1.id }
        let page = Array(after.prefix(limit))
        return (page, after.count > limit ? page.last?.id : nil)
    }

    func createSchedule(_ schedule: ScheduleRecord, now: Int64) throws -> (schedule: ScheduleRecord, created: Bool) {
        let result = try ScheduleRules.create(schedule, existing: state.schedules[schedule.id])
        if result.created { try saveSchedule(schedule, creating: true) }
        return result
    }

    func saveSchedule(_ schedule: ScheduleRecord) throws { try saveSchedule(schedule, creating: false) }

    private func saveSchedule(_ schedule: ScheduleRecord, creating: Bool) throws {
        let old = state.schedules[schedule.id]
        if old == nil, !creating { throw ScheduleRules.notFound(schedule.id) }
        if let due = old?.nextTick { state.timers.remove(MemoryState.Timer(due: due, id: schedule.id, kind: TimerKind.scheduleTick.rawValue)) }
        state.schedules[schedule.id] = schedule
        if !schedule.paused, let due = schedule.nextTick { addTimer(due: due, id: schedule.id, kind: .scheduleTick) }
    }

    func deleteSchedule(id: String) throws -> ScheduleRecord? {
        guard let old = state.schedules.removeValue(forKey: id) else { return nil }
        if let due = old.nextTick { state.timers.remove(MemoryState.Timer(due: due, id: id, kind: TimerKind.scheduleTick.rawValue)) }
        return old
    }

    /// SQLite's `GLOB` for the patterns a search allows: ids have no `?` or `[`, so only `*` is special.
    static func glob(_ pattern: String, matches id: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        guard parts.count > 1 else { return pattern == id }
        var rest = Substring(id)
        guard rest.hasPrefix(parts.first!) else { return false }
        rest = rest.dropFirst(parts.first!.count)
        for part in parts.dropFirst().dropLast() where !part.isEmpty {
            guard let r = rest.range(of: part) else { return false }
            rest = rest[r.upperBound...]
        }
        return rest.hasSuffix(parts.last!)
    }

    // MARK: Promises

    func createPromise(_ r: CreatePromise, now: Int64) throws -> CreateResult {
        try limits.validateCreate(r)
        let (p, creates) = try PromiseRules.decideCreate(r, existing: try promise(id: r.id, now: now), now: now)
        guard creates else { return CreateResult(promise: p, created: false, task: state.tasks[p.id]?.task) }
        state.promises[p.id] = p
        if p.timeout < Int64.max { addTimer(due: p.timeout, id: p.id, kind: .promiseTimeout) }
        let task = r.taskGroup.map { TaskRecord(id: p.id, group: $0, state: .pending, version: 1, worker: nil, updatedOn: now) }
        if let task { state.tasks[task.id] = MemoryState.TaskRow(task: task) }
        return CreateResult(promise: p, created: true, task: task)
    }

    func settlePromise(_ r: SettlePromise, now: Int64) throws -> SettleResult {
        try limits.validateSettle(r)
        guard let stored = state.promises[r.id] else {
            throw StoreError(.notFound, "no promise with id '\(r.id)'; create it first (ids are case-sensitive)")
        }
        return try settle(r, stored: stored, now: now)
    }

    private func settle(_ r: SettlePromise, stored: PromiseRecord, now: Int64) throws -> SettleResult {
        let (p, settles) = try PromiseRules.decideSettle(r, stored: stored, now: now)
        guard settles else { return SettleResult(promise: p, settled: false, resumedTasks: []) }
        let (resumed, subscribers) = recordSettlement(p, wasPending: stored, now: now)
        return SettleResult(promise: p, settled: true, resumedTasks: resumed, subscribers: subscribers)
    }

    func subscribe(promiseID: String, address: String, correlation: String, now: Int64) throws -> PromiseRecord {
        try limits.validateID(promiseID)
        try limits.validateKey(address, "subscriber address")
        try limits.validateKey(correlation, "correlation id")
        guard let p = try promise(id: promiseID, now: now) else {
            throw StoreError(.notFound, "no promise with id '\(promiseID)'; create it first (ids are case-sensitive)")
        }
        let subscriber = Subscriber(address: address, correlation: correlation)
        if p.state == .pending, !(state.callbacks[promiseID] ?? []).contains(subscriber) {
            state.callbacks[promiseID, default: []].append(subscriber)
        }
        return p
    }

    private func recordSettlement(_ p: PromiseRecord, wasPending stored: PromiseRecord, now: Int64) -> (resumed: [TaskRecord], subscribers: [Subscriber]) {
        state.promises[p.id] = p
        state.timers.remove(MemoryState.Timer(due: stored.timeout, id: p.id, kind: TimerKind.promiseTimeout.rawValue))
        if let own = state.tasks[p.id]?.task, own.state != .completed {
            clearAwaits(taskID: own.id)
            state.tasks[own.id] = MemoryState.TaskRow(task: TaskRules.complete(own, now: now))
        }
        var resumed: [TaskRecord] = []
        for taskID in (state.awaits[p.id] ?? []).sorted() {
            guard let t = state.tasks[taskID]?.task, TaskRules.resumes(t) else { continue }
            resumed.append(handOut(t, now: now))
        }
        return (resumed, state.callbacks.removeValue(forKey: p.id) ?? [])
    }

    // MARK: Tasks

    private func handOut(_ t: TaskRecord, now: Int64) -> TaskRecord {
        clearAwaits(taskID: t.id)
        let next = TaskRules.handOut(t, now: now)
        state.tasks[t.id] = MemoryState.TaskRow(task: next)
        return next
    }

    private func clearAwaits(taskID: String) {
        for promiseID in state.tasks[taskID]?.awaiting ?? [] {
            state.awaits[promiseID]?.remove(taskID)
            if state.awaits[promiseID]?.isEmpty == true { state.awaits[promiseID] = nil }
        }
        state.tasks[taskID]?.awaiting = []
    }

    private func existingTask(_ id: String) throws -> TaskRecord {
        try limits.validateID(id, "task id")
        guard let t = state.tasks[id]?.task else { throw StoreError(.notFound, "no task with id '\(id)'") }
        return t
    }

    private func heldTask(_ id: String, version: Int64, worker: String) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        return try TaskRules.fence(try existingTask(id), version: version, worker: worker)
    }

    private func record(_ steps: [StepOutcome], now: Int64) {
        for step in steps where state.promises[step.id] == nil { state.promises[step.id] = TaskRules.record(step, now: now) }
    }

    private func addTimer(due: Int64, id: String, kind: TimerKind) {
        state.timers.insert(MemoryState.Timer(due: due, id: id, kind: kind.rawValue))
    }

    func redispatchTask(id: String, now: Int64) throws -> TaskRecord {
        let t = try TaskRules.redispatch(try existingTask(id), now: now)
        clearAwaits(taskID: id)
        state.tasks[id] = MemoryState.TaskRow(task: t)
        return t
    }

    func claimTask(id: String, version: Int64, worker: String, now: Int64) throws -> TaskRecord {
        try limits.validateID(worker, "worker id")
        let (t, changed) = try TaskRules.claim(try existingTask(id), version: version, worker: worker, now: now)
        if changed { state.tasks[id]?.task = t }
        return t
    }

    func suspendTask(id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome], now: Int64) throws -> SuspendResult {
        let t = try heldTask(id, version: version, worker: worker)
        let unique = try TaskRules.awaitList(awaiting, limits: limits)
        try TaskRules.validate(steps, of: id, limits: limits)
        let settledAlready = try TaskRules.resumesAtOnce(id, awaiting: unique, steps: steps) { try promise(id: $0, now: now) }
        record(steps, now: now)
        if settledAlready { return .resumed(handOut(t, now: now)) }
        for promiseID in unique { state.awaits[promiseID, default: []].insert(id) }
        let next = TaskRules.suspend(t, now: now)
        state.tasks[id] = MemoryState.TaskRow(task: next, awaiting: unique)
        return .suspended(next)
    }

    func completeTask(id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome], now: Int64) throws -> SettleResult {
        _ = try heldTask(id, version: version, worker: worker)
        try TaskRules.validateCompletion(settle, steps: steps, of: id, limits: limits)
        guard let stored = state.promises[id] else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        if TaskRules.completionAfterCancel(stored) {
            record(steps, now: now)
            clearAwaits(taskID: id)
            state.tasks[id] = MemoryState.TaskRow(task: TaskRules.complete(try existingTask(id), now: now))
            return SettleResult(promise: PromiseRules.effective(stored, now: now), settled: false, resumedTasks: [])
        }
        _ = try PromiseRules.decideSettle(settle, stored: stored, now: now)
        record(steps, now: now)
        return try self.settle(settle, stored: stored, now: now)
    }

    func blockTask(id: String, version: Int64, worker: String, reason: String, due: Int64, now: Int64) throws -> TaskRecord {
        let next = TaskRules.block(try heldTask(id, version: version, worker: worker), reason: reason, now: now)
        state.tasks[id] = MemoryState.TaskRow(task: next)
        addTimer(due: due, id: id, kind: .taskRetry)
        return next
    }

    func resumeTask(id: String, now: Int64) throws -> TaskRecord {
        let next = try TaskRules.resume(try existingTask(id), now: now)
        clearAwaits(taskID: id)
        state.tasks[id] = MemoryState.TaskRow(task: next)
        return next
    }

    func compensateTask(id: String, graceUntil: Int64, now: Int64) throws -> TaskRecord {
        guard let stored = state.promises[id] else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        let next = try TaskRules.compensate(try existingTask(id), promise: stored, now: now)
        state.tasks[id] = MemoryState.TaskRow(task: next)
        addTimer(due: graceUntil, id: id, kind: .cancelGrace)
        return next
    }

    func recordProgress(id: String, version: Int64, worker: String, steps: [StepOutcome], lease: Int64?, now: Int64) throws {
        let t = try heldTask(id, version: version, worker: worker)
        try TaskRules.validate(steps, of: id, limits: limits)
        if let lease, lease <= 0 { throw StoreError(.invalidArgument, "a lease lasts a positive number of milliseconds, not \(lease)") }
        if t.state == .pending { state.tasks[id]?.task = TaskRules.acquire(t, worker: worker, now: now) }
        if let lease {
            if let old = state.tasks[id]?.leaseUntil {
                state.timers.remove(MemoryState.Timer(due: old, id: id, kind: TimerKind.lease.rawValue))
            }
            state.tasks[id]?.leaseUntil = now + lease
            addTimer(due: now + lease, id: id, kind: .lease)
        }
        record(steps, now: now)
    }

    func retryTask(id: String, version: Int64, worker: String, due: Int64, failedStep: String?, steps: [StepOutcome], now: Int64) throws -> TaskRecord {
        let t = try heldTask(id, version: version, worker: worker)
        try TaskRules.validate(steps, of: id, limits: limits)
        if let failedStep { try limits.validateID(failedStep, "step id") }
        record(steps, now: now)
        let next = TaskRules.retry(t, failedStep: failedStep, now: now)
        state.tasks[id] = MemoryState.TaskRow(task: next)
        addTimer(due: due, id: id, kind: .taskRetry)
        return next
    }

    // MARK: Timers

    func fireTimers(now: Int64, limit: Int) throws -> [FiredTimer] {
        let due = state.timers.filter { $0.due <= now }.sorted().prefix(limit)
        var fired: [FiredTimer] = []
        for timer in due {
            state.timers.remove(timer)
            switch TimerKind(rawValue: timer.kind) {
            case .promiseTimeout?:
                guard let stored = state.promises[timer.id], stored.state == .pending else { continue }
                let settled = PromiseRules.effective(stored, now: max(now, stored.timeout))
                let (resumed, subscribers) = recordSettlement(settled, wasPending: stored, now: now)
                fired.append(.promiseTimeout(SettleResult(promise: settled, settled: true, resumedTasks: resumed, subscribers: subscribers)))
            case .taskRetry?:
                if let t = state.tasks[timer.id]?.task, TaskRules.backOffEnds(t) { fired.append(.taskRetry(handOut(t, now: now))) }
            case .cancelGrace?:
                if let t = state.tasks[timer.id]?.task, TaskRules.graceEnds(t) {
                    clearAwaits(taskID: t.id)
                    let done = TaskRules.complete(t, now: now)
                    state.tasks[t.id] = MemoryState.TaskRow(task: done)
                    fired.append(.graceEnded(done))
                }
            case .lease?:
                if let row = state.tasks[timer.id], TaskRules.leaseLapsed(row.task, until: row.leaseUntil, now: now) {
                    fired.append(.leaseExpired(handOut(row.task, now: now)))
                }
            case .scheduleTick?:
                if let s = ScheduleRules.ticks(state.schedules[timer.id], due: timer.due) { fired.append(.scheduleTick(s)) }
            case nil:
                continue
            }
        }
        return fired
    }

    func nextTimerDue() throws -> Int64? { state.timers.min()?.due }

    func dropNextTimer() throws -> (id: String, kind: TimerKind?)? {
        guard let first = state.timers.min() else { return nil }
        state.timers.remove(first)
        return (first.id, TimerKind(rawValue: first.kind))
    }

    // MARK: Outbox, attempts, retention

    func enqueue(_ message: OutboxMessage) throws -> Int64 {
        state.lastSequence += 1
        var m = message
        m.sequence = state.lastSequence
        state.outbox.append(MemoryState.OutboxRow(message: m))
        written.append(m)
        return m.sequence
    }

    func setOutboxAside(sequence: Int64, reason: String, now: Int64) throws {
        if let i = state.outbox.firstIndex(where: { $0.message.sequence == sequence }) { state.outbox[i].failure = (reason, now) }
    }

    func retryFailedOutbox(sequences: [Int64]?) throws -> Int {
        let chosen = state.outbox.filter { $0.failure != nil && (sequences?.contains($0.message.sequence) ?? true) }
        for row in chosen {
            _ = try enqueue(row.message)
            state.outbox.removeAll { $0.message.sequence == row.message.sequence }
        }
        return chosen.count
    }

    func countAttempt(message: String, now: Int64) throws -> Int {
        state.attempts[message, default: 0] += 1
        return state.attempts[message]!
    }

    func forgetAttempts(messages: [String]) throws {
        for m in messages { state.attempts[m] = nil }
    }

    func deleteOutbox(sequences: [Int64]) throws {
        let gone = Set(sequences)
        state.outbox.removeAll { gone.contains($0.message.sequence) }
    }

    func deleteSettledWorkflows(completedBefore: Int64, limit: Int) throws -> Int {
        let roots = state.promises.values
            .filter { $0.state != .pending && ($0.completedOn ?? .max) < completedBefore && !$0.id.contains(".") }
            .map(\.id).sorted().prefix(limit)
        var deleted = 0
        for root in roots {
            let below = { (id: String) in id == root || id.hasPrefix(root + ".") }
            // A workflow with a pending promise below its root (a detached child) is not finished.
            if state.promises.values.contains(where: { $0.id.hasPrefix(root + ".") && $0.state == .pending }) { continue }
            for taskID in state.tasks.keys where below(taskID) { clearAwaits(taskID: taskID) }
            state.tasks = state.tasks.filter { !below($0.key) }
            state.promises = state.promises.filter { !below($0.key) }
            deleted += 1
        }
        return deleted
    }
}
