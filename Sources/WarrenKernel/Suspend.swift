import WarrenContract
import WarrenStore

extension Kernel {
    /// `task.suspend`: the worker records its steps and lets the task go until one of `awaiting`
    /// settles. If one is settled already (a resolve that raced the suspension), the task is
    /// handed out again at once.
    func suspendTask(_ id: String, version: Int64, worker: String, awaiting: [String], steps: [StepOutcome], tx: any StoreTransaction,
                     now: Int64) throws -> Effects {
        switch try tx.suspendTask(id: id, version: version, worker: worker, awaiting: awaiting, steps: steps, now: now) {
        case .resumed(let task): return Effects(messages: try execute(task, tx: tx, now: now))
        case .suspended: return Effects()
        }
    }
}
