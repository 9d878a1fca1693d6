/// The task state machine as pure functions: no disk, no clock. Every backend decides with
/// these and only writes what they return, so the rules (claiming, fencing, suspending,
/// completing, retrying, handing out again) live in one place and are tested without a store.
///
/// ```text
///            hand out (version + 1)                 report: suspend / retry
///   ┌──────────────────────────────┐   ┌───────────────────────────────────────┐
///   ▼                              │   │                                       ▼
/// pending ──claim / first report──► acquired ──────────────────────────► suspended
///   │                              │   ▲   lease lapsed: hand out              │
///   │                              └───┘                                       │
///   │  report: complete                      an awaited promise settles, or    │
///   └────────────► completed ◄──────────     the retry back-off ends: hand out ┘
/// ```
///
/// A run that departs from its recorded history (or reaches a worker without its function)
/// **blocks** the task instead of failing the workflow: ``block(_:reason:now:)`` parks it, a back-off
/// timer or an operator hands it out again (``resume(_:now:)``). A canceled workflow's task is
/// handed out once more after its promise settled (``compensate(_:promise:now:)``), so that its
/// code can catch the cancellation and clean up within a grace period.
///
/// Fencing: every hand-out raises the version; a report counts only for the current version,
/// from the worker holding it (or, for a pending task, from the first worker that reports: the
/// version came in the execute message, so a report is its claim).
public enum TaskRules {
    /// The task as `worker` may report on it for `version`, or why not (a zombie after a
    /// redelivery, the loser of a race, a report for a finished task).
    public static func fence(_ t: TaskRecord, version: Int64, worker: String) throws(StoreError) -> TaskRecord {
        guard t.version == version else {
            throw StoreError(.staleTask, "task '\(t.id)' is at version \(t.version); a report for version \(version) is ignored")
        }
        guard t.state == .pending || (t.state == .acquired && t.worker == worker) else {
            throw StoreError(.staleTask, "task '\(t.id)' version \(version) is not held by worker '\(worker)' "
                + "(state \(t.state), worker \(t.worker ?? "none"))")
        }
        return t
    }

    /// What a claim does: the task taken by `worker` (unchanged if it holds it already: a
    /// redelivered claim), or why not.
    public static func claim(_ t: TaskRecord, version: Int64, worker: String, now: Int64) throws(StoreError) -> (task: TaskRecord, changed: Bool) {
        guard t.version == version else {
            throw StoreError(.staleTask, "task '\(t.id)' is at version \(t.version); version \(version) cannot be claimed")
        }
        switch t.state {
        case .acquired where t.worker == worker:
            return (t, false)
        case .pending:
            return (acquire(t, worker: worker, now: now), true)
        default:
            throw StoreError(.staleTask, "task '\(t.id)' version \(version) is \(t.state)\(t.worker.map { " by worker '\($0)'" } ?? ""); it cannot be claimed")
        }
    }

    /// A pending task taken by `worker` (its claim, explicit or by its first report).
    public static func acquire(_ t: TaskRecord, worker: String, now: Int64) -> TaskRecord {
        var next = t
        next.state = .acquired
        next.worker = worker
        next.updatedOn = now
        return next
    }

    /// The task handed out again under a new version: whatever was reported for the old one no
    /// longer counts.
    public static func handOut(_ t: TaskRecord, now: Int64) -> TaskRecord {
        var next = t
        next.state = .pending
        next.version = t.version + 1
        next.worker = nil
        next.blocked = nil
        next.updatedOn = now
        return next
    }

    /// The task parked because its run cannot go on under the code that ran it: no worker holds
    /// it, and the reason is kept for the operator. Nothing the run recorded is kept.
    public static func block(_ t: TaskRecord, reason: String, now: Int64) -> TaskRecord {
        var next = t
        next.state = .blocked
        next.worker = nil
        next.blocked = String(reason.prefix(maximumReasonCharacters))
        next.updatedOn = now
        return next
    }

    /// The longest reason a blocked task keeps.
    public static let maximumReasonCharacters = 2000

    /// An operator's "try again now" (`warren workflows retry`): a blocked task, or one waiting
    /// (for promises or a back-off), handed out at once. A task being run or finished is not.
    public static func resume(_ t: TaskRecord, now: Int64) throws(StoreError) -> TaskRecord {
        guard t.state == .blocked || t.state == .suspended else {
            throw StoreError(.invalidTaskState, "task '\(t.id)' is \(t.state); only a blocked or waiting task is handed out again")
        }
        return handOut(t, now: now)
    }

    /// A canceled workflow's compensating run: its task, completed when its promise was canceled,
    /// handed out once more so that the code sees the cancellation at its `await` and can clean up.
    public static func compensate(_ t: TaskRecord, promise: PromiseRecord, now: Int64) throws(StoreError) -> TaskRecord {
        guard promise.state == .rejectedCanceled, t.state == .completed else {
            throw StoreError(.invalidTaskState, "task '\(t.id)' is \(t.state) and its promise \(promise.state.rawValue); "
                + "only a canceled workflow's task runs to compensate")
        }
        return handOut(t, now: now)
    }

    /// Whether a task's completion only finishes a compensating run: its promise was canceled
    /// while it ran or waited, so the run's outcome is not written (the first outcome won), but
    /// its steps are and the task is completed.
    public static func completionAfterCancel(_ stored: PromiseRecord) -> Bool { stored.state == .rejectedCanceled }

    /// A redelivered execute message: the task handed out again, if it is being run (pending or
    /// acquired); a suspended or completed task is not.
    public static func redispatch(_ t: TaskRecord, now: Int64) throws(StoreError) -> TaskRecord {
        guard t.state == .pending || t.state == .acquired else {
            throw StoreError(.invalidTaskState, "task '\(t.id)' is \(t.state); only a pending or acquired task is handed out again")
        }
        return handOut(t, now: now)
    }

    /// The task waiting (for promises, or for a retry back-off); no worker holds it.
    public static func suspend(_ t: TaskRecord, now: Int64) -> TaskRecord {
        var next = t
        next.state = .suspended
        next.worker = nil
        next.updatedOn = now
        return next
    }

    /// The task waiting for its retry back-off because `failedStep` failed: that step's failures
    /// are counted (from 1 again for another step).
    public static func retry(_ t: TaskRecord, failedStep: String?, now: Int64) -> TaskRecord {
        var next = suspend(t, now: now)
        if let failedStep {
            next.retry = TaskRetry(step: failedStep, failures: t.retry?.step == failedStep ? t.retry!.failures + 1 : 1)
        }
        return next
    }

    /// The task once its promise settled: nothing more to do.
    public static func complete(_ t: TaskRecord, now: Int64) -> TaskRecord {
        var next = t
        next.state = .completed
        next.worker = nil
        next.blocked = nil
        next.updatedOn = now
        return next
    }

    /// Whether a settled promise hands the task out again.
    public static func resumes(_ t: TaskRecord) -> Bool { t.state == .suspended }

    /// Whether a back-off timer hands the task out again: a retry's back-off ended, or a blocked
    /// task is offered again (a deploy since may have fixed it).
    public static func backOffEnds(_ t: TaskRecord) -> Bool { t.state == .suspended || t.state == .blocked }

    /// Whether a canceled workflow's grace period ending completes its task: its compensating run
    /// has not finished.
    public static func graceEnds(_ t: TaskRecord) -> Bool { t.state != .completed }

    /// Whether a lapsed lease hands the task out again: its worker stopped renewing it.
    public static func leaseLapsed(_ t: TaskRecord, until: Int64?, now: Int64) -> Bool {
        guard t.state == .acquired, let until else { return false }
        return until <= now
    }

    /// The promises a suspension waits for, each once, checked; or why it cannot suspend.
    public static func awaitList(_ awaiting: [String], limits: StoreLimits) throws(StoreError) -> [String] {
        guard !awaiting.isEmpty else { throw StoreError(.invalidArgument, "a task suspends on at least one promise") }
        var unique: [String] = []
        for id in awaiting where !unique.contains(id) {
            try limits.validateID(id)
            unique.append(id)
        }
        return unique
    }

    /// Whether a suspension on `awaiting` resumes at once: one of them is settled already (a
    /// resolve that raced the suspension), or is a step recorded with the same report. Refused
    /// when one does not exist.
    public static func resumesAtOnce(_ taskID: String, awaiting: [String], steps: [StepOutcome],
                                     promise: (String) throws -> PromiseRecord?) throws -> Bool {
        var settledAlready = false
        for id in awaiting {
            if let p = try promise(id) {
                settledAlready = settledAlready || p.state.isSettled
            } else if steps.contains(where: { $0.id == id }) {
                settledAlready = true
            } else {
                throw StoreError(.notFound, "task '\(taskID)' awaits promise '\(id)', which does not exist")
            }
        }
        return settledAlready
    }

    /// Checks a completion before anything is written: it settles the task's own promise, its
    /// steps are valid, and so is everything a settle could refuse.
    public static func validateCompletion(_ settle: SettlePromise, steps: [StepOutcome], of taskID: String, limits: StoreLimits) throws(StoreError) {
        guard settle.id == taskID else {
            throw StoreError(.invalidArgument, "task '\(taskID)' completes its own promise, not '\(settle.id)'")
        }
        try validate(steps, of: taskID, limits: limits)
        try limits.validateKey(settle.idempotencyKey, "idempotency key")
        try limits.validatePayload(settle.value, "value")
    }

    /// Checks the steps a report records, before anything is written: each below the task,
    /// resolved or rejected, within the limits.
    public static func validate(_ steps: [StepOutcome], of taskID: String, limits: StoreLimits) throws(StoreError) {
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

    /// A step's outcome as the promise it is recorded as: created settled. A step recorded
    /// already keeps its first outcome (steps run at least once).
    public static func record(_ step: StepOutcome, now: Int64) -> PromiseRecord {
        PromiseRecord(id: step.id, state: step.completion == .resolve ? .resolved : .rejected, value: step.value, timeout: now,
                      idempotencyKeyForCreate: step.id, idempotencyKeyForComplete: step.id, createdOn: now, completedOn: now,
                      tags: step.tags)
    }
}

/// What a timer does when it comes due.
public enum TimerKind: Int, Sendable, CaseIterable {
    /// A pending promise's timeout: it times out (a timer promise resolves).
    case promiseTimeout = 0
    /// A task's retry back-off ended: hand it out again.
    case taskRetry = 1
    /// A long run's lease: if it lapsed, hand the task out again.
    case lease = 2
    /// A canceled workflow's grace period: if its compensating run has not finished, complete it.
    case cancelGrace = 3
    /// A schedule's next tick (the timer's id is the schedule's): start its workflow.
    case scheduleTick = 4
}
