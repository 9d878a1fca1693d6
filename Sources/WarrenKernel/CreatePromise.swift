import WarrenContract
import WarrenStore

extension Kernel {
    /// `promise.create`: a promise that something settles later (`ctx.promise`, a timer, one of
    /// the outside world's). Creating it again with the same idempotency key finds it.
    func createPromise(_ r: CreatePromise, from caller: Caller, tx: any StoreTransaction, now: Int64) throws -> Effects {
        let result = try tx.createPromise(r, now: now)
        var effects = Effects()
        if let replyTo = caller.replyTo {
            effects.send(messages.reply(to: replyTo, correlationID: caller.correlationID, promise: result.promise, created: result.created))
        }
        return effects
    }
}
