import WarrenContract
import WarrenStore

extension Kernel {
    /// `task.progress`: the worker records the steps it finished and goes on running; with a
    /// `lease`, it has let go of its execute message and holds the task until the lease lapses.
    func recordProgress(_ id: String, version: Int64, worker: String, steps: [StepOutcome], lease: Int64?, tx: any StoreTransaction,
                        now: Int64) throws -> Effects {
        try tx.recordProgress(id: id, version: version, worker: worker, steps: steps, lease: lease, now: now)
        return Effects()
    }
}
