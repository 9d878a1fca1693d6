import WarrenContract
import WarrenStore

extension Kernel {
    /// `promise.subscribe` (and `workflow.start` with `subscribe`): answers `subscriber` with the
    /// promise once it is settled: now, or when it settles. Nothing polls.
    func subscribe(_ subscriber: Subscriber, to id: String, tx: any StoreTransaction, now: Int64) throws -> Effects {
        let p = try tx.subscribe(promiseID: id, address: subscriber.address, correlation: subscriber.correlation, now: now)
        return Effects(messages: p.state.isSettled ? [messages.notify(subscriber, of: p)] : [])
    }
}
