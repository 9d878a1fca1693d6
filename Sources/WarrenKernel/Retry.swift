import WarrenContract
import WarrenStore

extension Kernel {
    /// `task.retry`: the worker records its steps and lets the task go for `delay` milliseconds
    /// because `failedStep` failed; a durable timer hands it out again (``fireTimers(tx:now:limit:)``).
    func retryTask(_ id: String, version: Int64, worker: String, delay: Int64, failedStep: String?, steps: [StepOutcome],
                   tx: any StoreTransaction, now: Int64) throws -> Effects {
        _ = try tx.retryTask(id: id, version: version, worker: worker, due: now + delay, failedStep: failedStep, steps: steps, now: now)
        return Effects()
    }
}
