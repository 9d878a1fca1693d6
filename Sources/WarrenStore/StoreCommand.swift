/// One command of a batch, as the orchestrator receives them from messages.
public enum StoreCommand: Sendable, Equatable {
    case createPromise(CreatePromise)
    case settlePromise(SettlePromise)
    case claimTask(id: String, version: Int64, worker: String)
    case suspendTask(id: String, version: Int64, worker: String, awaiting: [String])
    case completeTask(id: String, version: Int64, worker: String, settle: SettlePromise)
}

/// What one command of a batch did.
public enum StoreOutcome: Sendable, Equatable {
    case created(CreateResult)
    case settled(SettleResult)
    case claimed(TaskRecord)
    case suspended(SuspendResult)
}

extension StoreTransaction {
    /// Applies one command.
    public func apply(_ command: StoreCommand, now: Int64) throws -> StoreOutcome {
        switch command {
        case .createPromise(let r): return .created(try createPromise(r, now: now))
        case .settlePromise(let r): return .settled(try settlePromise(r, now: now))
        case let .claimTask(id, version, worker): return .claimed(try claimTask(id: id, version: version, worker: worker, now: now))
        case let .suspendTask(id, version, worker, awaiting):
            return .suspended(try suspendTask(id: id, version: version, worker: worker, awaiting: awaiting, now: now))
        case let .completeTask(id, version, worker, settle):
            return .settled(try completeTask(id: id, version: version, worker: worker, settle: settle, now: now))
        }
    }

    /// Applies commands in order, each with its own result: a refused command leaves no trace
    /// (see ``StoreTransaction``) and does not affect the others. A database failure throws and
    /// aborts the whole batch.
    public func apply(_ commands: [StoreCommand], now: Int64) throws -> [Result<StoreOutcome, StoreError>] {
        try commands.map { command in
            do {
                return .success(try apply(command, now: now))
            } catch let e as StoreError {
                return .failure(e)
            }
        }
    }
}

extension PromiseStore {
    /// Applies a batch of commands in one transaction, each with its own result.
    public func apply(_ commands: [StoreCommand], now: Int64) async throws -> [Result<StoreOutcome, StoreError>] {
        try await write { tx in try tx.apply(commands, now: now) }
    }
}
