import WarrenContract
import WarrenStore

extension Kernel {
    /// `task.complete`: the worker records its steps and settles the task's promise with the
    /// function's outcome; the settlement resumes whoever waited for it (a parent workflow, a
    /// subscribed client).
    func completeTask(_ id: String, version: Int64, worker: String, settle: SettlePromise, steps: [StepOutcome], tx: any StoreTransaction,
                      now: Int64) throws -> Effects {
        let result = try tx.completeTask(id: id, version: version, worker: worker, settle: settle, steps: steps, now: now)
        return Effects(messages: result.settled ? try settled(result, tx: tx, now: now) : [])
    }
}
