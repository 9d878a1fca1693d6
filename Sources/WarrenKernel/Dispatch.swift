import WarrenContract
import WarrenStore

extension Kernel {
    /// An execute message for a task handed out (again): its root promise and every promise
    /// below it, so that the worker replays without asking.
    func execute(_ task: TaskRecord, tx: any StoreTransaction, now: Int64) throws -> [OutboxMessage] {
        guard let p = try tx.promise(id: task.id, now: now) else { return [] }
        return try send(messages.execute(task, promise: p, children: try children(of: task.id, tx: tx, now: now)), for: task, tx: tx, now: now)
    }

    /// The execute message, or, when it is larger than a message may be (a workflow whose
    /// history outgrew `maximumMessageBytes`), the workflow rejected with the reason: it could
    /// never be run again, and waiting would only hide that.
    func send(_ message: OutboxMessage, for task: TaskRecord, tx: any StoreTransaction, now: Int64) throws -> [OutboxMessage] {
        let limit = configuration.maximumMessageBytes
        guard message.body.count > limit else { return [message] }
        let reason = "the workflow's execute message (its history) is \(message.body.count) bytes; the limit is "
            + "\(limit) (--max-message-bytes, below the broker's max_message_size): keep large data "
            + "outside the workflow and pass references"
        let value = PromiseValue(data: JSONValue.object(["error": .string(reason)]).jsonText)
        let result = try tx.settlePromise(SettlePromise(id: task.id, completion: .reject, value: value), now: now)
        return result.settled ? try settled(result, tx: tx, now: now) : []
    }

    /// The promises below a root, settled or pending, which a worker replays without asking.
    func children(of root: String, tx: any StoreTransaction, now: Int64) throws -> [PromiseRecord] {
        var children: [PromiseRecord] = []
        var cursor: String? = nil
        repeat {
            let page = try tx.search(PromiseSearch(id: root + ".*", limit: PromiseSearch.maximumLimit, cursor: cursor), now: now)
            children += page.promises
            cursor = page.cursor
        } while cursor != nil
        return children
    }
}
