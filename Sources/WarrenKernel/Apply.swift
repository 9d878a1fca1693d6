import WarrenContract
import WarrenStore

extension Kernel {
    /// Applies one command from `caller`: what it changes is written through `tx`, what it
    /// causes is returned. A command the store refuses changes nothing; its caller is answered
    /// with the error, or, when no one waits for an answer, the command is dead-lettered with
    /// the reason (or ignored, when the refusal is no one's mistake). Only a storage fault (or
    /// a bug) throws, and aborts the transaction.
    public func apply(_ command: Command, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        do {
            try authorize(command, from: caller, tx: tx, now: now)
            return try perform(command, from: caller, tx: tx, now: now)
        } catch let e as StoreError where e.code != .storageUnavailable {
            var effects = Effects()
            if let replyTo = caller.replyTo {
                effects.send(messages.reply(to: replyTo, correlationID: caller.correlationID, promise: e.promise,
                                            error: (e.code.description, e.message)))
            } else if e.code == .alreadySettled || e.code == .staleTask || e.code == .invalidTaskState {
                effects.ignored = e.message
            } else {
                effects.deadLetter = e.code == .notFound ? "unknown promise: \(e.message)" : "\(e.code): \(e.message)"
            }
            return effects
        }
    }

    /// Applies `workflow.cancel|retry|fail`: the workflow's promise after it, and what it causes.
    public func workflowDecision(_ command: Command, tx: any StoreTransaction, now: Int64) throws -> (promise: PromiseRecord, effects: Effects) {
        switch command {
        case let .cancelWorkflow(id, reason): return try cancelWorkflow(id, reason: reason, tx: tx, now: now)
        case let .retryWorkflow(id): return try retryWorkflow(id, tx: tx, now: now)
        case let .failWorkflow(id, reason): return try failWorkflow(id, reason: reason, tx: tx, now: now)
        default: throw StoreError(.invalidArgument, "not a decision on a workflow")
        }
    }

    private func answered(_ effects: Effects, promise: PromiseRecord, caller: Caller) -> Effects {
        var effects = effects
        if let replyTo = caller.replyTo {
            effects.send(messages.reply(to: replyTo, correlationID: caller.correlationID, promise: promise, created: false))
        }
        return effects
    }

    private func perform(_ command: Command, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        switch command {
        case .createPromise(let r):
            return try createPromise(r, from: caller, tx: tx, now: now)
        case .startWorkflow(let r, let function, let subscribe):
            return try startWorkflow(r, function: function, subscribe: subscribe, from: caller, tx: tx, now: now)
        case .getPromise(let id):
            return try getPromise(id, from: caller, tx: tx, now: now)
        case .subscribe(let id):
            return try subscribe(try caller.subscriber(), to: id, tx: tx, now: now)
        case .searchPromises(let search):
            return try searchPromises(search, from: caller, tx: tx, now: now)
        case .settlePromise(let r):
            var (result, effects) = try settlePromise(r, tx: tx, now: now)
            if let replyTo = caller.replyTo {
                effects.send(messages.reply(to: replyTo, correlationID: caller.correlationID, promise: result.promise, created: false))
            }
            return effects
        case let .claimTask(id, version, worker, redelivered):
            return try claimTask(id, version: version, worker: worker, redelivered: redelivered, from: caller, tx: tx, now: now)
        case let .suspendTask(id, version, worker, awaiting, steps):
            return try suspendTask(id, version: version, worker: worker, awaiting: awaiting, steps: steps, tx: tx, now: now)
        case let .completeTask(id, version, worker, settle, steps):
            return try completeTask(id, version: version, worker: worker, settle: settle, steps: steps, tx: tx, now: now)
        case let .recordProgress(id, version, worker, steps, lease):
            return try recordProgress(id, version: version, worker: worker, steps: steps, lease: lease, tx: tx, now: now)
        case let .retryTask(id, version, worker, delay, failedStep, steps):
            return try retryTask(id, version: version, worker: worker, delay: delay, failedStep: failedStep, steps: steps, tx: tx, now: now)
        case let .blockTask(id, version, worker, reason):
            return try blockTask(id, version: version, worker: worker, reason: reason, tx: tx, now: now)
        case .cancelWorkflow, .retryWorkflow, .failWorkflow:
            let (promise, effects) = try workflowDecision(command, tx: tx, now: now)
            return answered(effects, promise: promise, caller: caller)
        case .createSchedule, .getSchedule, .listSchedules, .pauseSchedule, .resumeSchedule, .deleteSchedule:
            return try schedule(command, from: caller, tx: tx, now: now)
        }
    }
}
