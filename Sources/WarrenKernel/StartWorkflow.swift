import WarrenContract
import WarrenStore

extension Kernel {
    /// `workflow.start` (and `POST /workflows`): creates the workflow's root promise and task and
    /// sends its execute message. The same workflow again is found; another function or
    /// arguments under its id is refused. With `subscribe`, the caller is answered with the
    /// settled root (now, or when it settles) instead of an immediate reply.
    public func startWorkflow(_ r: CreatePromise, function: String, tx: any StoreTransaction, now: Int64) throws
        -> (result: CreateResult, effects: Effects)
    {
        let result = try tx.createPromise(r, now: now)
        if !result.created, result.promise.param.data != r.param.data {
            throw StoreError(.alreadyExists, "workflow '\(r.id)' exists with another function or arguments than \(function)(…)", promise: result.promise)
        }
        var effects = Effects()
        if let task = result.task, result.created {
            // A new workflow has no children yet: the execute message is all a worker needs.
            effects.send(try send(messages.execute(task, promise: result.promise, children: []), for: task, tx: tx, now: now))
        }
        return (result, effects)
    }

    func startWorkflow(_ r: CreatePromise, function: String, subscribe: Bool, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        let subscriber = subscribe ? try caller.subscriber() : nil
        var (result, effects) = try startWorkflow(r, function: function, tx: tx, now: now)
        if let subscriber {
            effects.send(try self.subscribe(subscriber, to: r.id, tx: tx, now: now).messages)
        } else if let replyTo = caller.replyTo {
            effects.send(messages.reply(to: replyTo, correlationID: caller.correlationID, promise: result.promise, created: result.created))
        }
        return effects
    }
}
