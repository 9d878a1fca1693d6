import WarrenContract
import WarrenStore

extension Kernel {
    /// `task.retry`: the worker records its steps and lets the task go for `delay` milliseconds
    /// because `failedStep` failed; a durable timer hands it out again (``fireTimers(tx:now:limit:)``).
    ///
    /// With no failed step and no delay, the task runs again from the top at once: a workflow that
    /// continues as new (`ctx.continueAsNew`, whose steps hold the new run's marker). The timers
    /// due now fire in this transaction, so the next run does not wait for the timer loop.
    func retryTask(_ id: String, version: Int64, worker: String, delay: Int64, failedStep: String?, steps: [StepOutcome],
                   tx: any StoreTransaction, now: Int64) throws -> Effects {
        _ = try tx.retryTask(id: id, version: version, worker: worker, due: now + delay, failedStep: failedStep, steps: steps, now: now)
        guard delay <= 0, failedStep == nil else { return Effects() }
        return try fireTimers(tx: tx, now: now, limit: 100).effects
    }
}
