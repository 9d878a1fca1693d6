import WarrenContract
import WarrenStore

extension Kernel {
    /// `promise.get`: the promise, in a reply.
    func getPromise(_ id: String, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        let replyTo = try caller.requireReplyTo()
        guard let p = try tx.promise(id: id, now: now) else {
            throw StoreError(.notFound, "no promise with id '\(id)'; create it first (ids are case-sensitive)")
        }
        return Effects(messages: [messages.reply(to: replyTo, correlationID: caller.correlationID, promise: p)])
    }

    /// `promise.search`: a page of promises, in a reply.
    func searchPromises(_ search: PromiseSearch, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        let replyTo = try caller.requireReplyTo()
        return Effects(messages: [messages.searchReply(to: replyTo, correlationID: caller.correlationID,
                                                       page: search.publicPage(try tx.search(search, now: now)))])
    }
}
