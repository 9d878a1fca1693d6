import WarrenContract
import WarrenStore

extension Kernel {
    /// `promise.resolve|reject|cancel` (and `PATCH /promises/{id}`, a signed link, a team's own
    /// event): settles a promise the outside world may settle. The first outcome wins; a
    /// workflow's machinery (its result, a step, a timer) is refused.
    public func settlePromise(_ r: SettlePromise, tx: any StoreTransaction, now: Int64) throws -> (result: SettleResult, effects: Effects) {
        try Self.refuseInternal(r.id, tx: tx, now: now)
        let result = try tx.settlePromise(r, now: now)
        return (result, Effects(messages: result.settled ? try settled(result, tx: tx, now: now) : []))
    }

    /// What a settlement causes, however it came (a command, a task's completion, a timeout):
    /// its event, the answers to its subscribers, and an execute message for every task that
    /// waited for it.
    func settled(_ result: SettleResult, tx: any StoreTransaction, now: Int64) throws -> [OutboxMessage] {
        var out = [messages.settledEvent(result.promise)]
        for subscriber in result.subscribers { out.append(messages.notify(subscriber, of: result.promise)) }
        for task in result.resumedTasks { out += try execute(task, tx: tx, now: now) }
        return out
    }
}
