import WarrenContract
import WarrenStore

extension Kernel {
    /// Fires up to `limit` timers due at `now`: promises time out (timers resolve) and resume
    /// their waiters, retry back-offs end, blocked tasks are offered again and lapsed leases hand their tasks out
    /// again; a canceled workflow's grace period ends; schedules start their ticks' workflows. Returns
    /// how many fired, when the next is due, and what firing them causes.
    public func fireTimers(tx: any StoreTransaction, now: Int64, limit: Int) throws -> (fired: Int, nextDue: Int64?, effects: Effects) {
        let fired = try tx.fireTimers(now: now, limit: limit)
        var effects = Effects()
        for f in fired {
            switch f {
            case .promiseTimeout(let result): effects.send(try settled(result, tx: tx, now: now))
            case .taskRetry(let task), .leaseExpired(let task): effects.send(try execute(task, tx: tx, now: now))
            case .graceEnded(let task):
                // What the compensating run started and left pending goes with it.
                effects.send(try cancelBelow(task.id, tx: tx, now: now))
            case .scheduleTick(let schedule):
                effects.send(try tick(schedule, tx: tx, now: now).messages)
            }
        }
        return (fired.count, try tx.nextTimerDue(), effects)
    }
}
