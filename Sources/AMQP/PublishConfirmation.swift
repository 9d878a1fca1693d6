import Synchronization

/// The outcome of one published message: await ``wait()`` for the broker's confirm.
///
/// `basicPublish` hands the message to the connection's I/O thread and returns at once, so a
/// publisher keeps many messages in flight and awaits their confirmations later, in any order:
/// ```swift
/// var inFlight: [PublishConfirmation] = []
/// for order in orders { inFlight.append(try channel.basicPublish(order, exchange: "shop", routingKey: "order")) }
/// for c in inFlight { try await c.wait() }
/// ```
/// On a channel in confirm mode the outcome is the broker's `basic.ack`; a `basic.nack`, a
/// `basic.return` of a mandatory message, a closed channel and a lost connection are errors.
/// Without confirm mode it completes once the message is written to the socket.
public final class PublishConfirmation: Sendable {
    private enum State {
        case pending
        case waiting(UnsafeContinuation<Void, any Error>)
        case done(AMQPError?)
    }

    private let state = Mutex<State>(.pending)

    init() {}

    init(failed error: AMQPError) {
        state.withLock { $0 = .done(error) }
    }

    /// Waits for the outcome. Returns when the broker confirmed the message.
    ///
    /// - Throws: ``AMQPError`` with code `nacked`, `unroutable`, `channelClosed` or
    ///   `connectionLost` (the message may or may not have been routed: publish it again).
    public func wait() async throws {
        // Fast path: already settled, no suspension.
        let settled: AMQPError?? = state.withLock {
            if case .done(let e) = $0 { return .some(e) }
            return .none
        }
        if let settled {
            if let e = settled { throw e }
            return
        }
        try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<Void, any Error>) in
            let result: AMQPError?? = state.withLock {
                switch $0 {
                case .done(let e): return .some(e)
                case .pending: $0 = .waiting(c); return .none
                case .waiting: preconditionFailure("PublishConfirmation.wait() called concurrently twice")
                }
            }
            if let result {
                if let e = result { c.resume(throwing: e) } else { c.resume() }
            }
        }
    }

    /// `true` once the outcome is known.
    public var isSettled: Bool {
        state.withLock { if case .done = $0 { return true } else { return false } }
    }

    /// Records the outcome (called on the I/O thread); the first one counts.
    func complete(_ error: AMQPError?) {
        let waiter: UnsafeContinuation<Void, any Error>? = state.withLock {
            switch $0 {
            case .pending: $0 = .done(error); return nil
            case .waiting(let c): $0 = .done(error); return c
            case .done: return nil
            }
        }
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }
}
