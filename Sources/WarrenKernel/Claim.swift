import WarrenContract
import WarrenStore

extension Kernel {
    /// `task.claim`: a worker takes the task version its execute message named, and is answered
    /// with the task, its promise and everything below it. A redelivered execute message may
    /// have reached another worker first: the task is handed out under a new version before it
    /// is claimed, so whatever the other one reports for the old version is ignored.
    func claimTask(_ id: String, version: Int64, worker: String, redelivered: Bool, from caller: Caller, tx: any StoreTransaction,
                   now: Int64) throws -> Effects {
        let current = redelivered ? try tx.redispatchTask(id: id, now: now).version : version
        let task = try tx.claimTask(id: id, version: current, worker: worker, now: now)
        guard let promise = try tx.promise(id: id, now: now) else { throw StoreError(.notFound, "no promise for task '\(id)'") }
        guard let replyTo = caller.replyTo else { return Effects() }
        return Effects(messages: [messages.claimed(task, promise: promise, children: try children(of: id, tx: tx, now: now),
                                                   replyTo: replyTo, correlationID: caller.correlationID)])
    }
}
