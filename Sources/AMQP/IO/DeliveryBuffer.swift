import DequeModule
import Synchronization

/// The deliveries of one consumer between the I/O thread and the task iterating them.
///
/// The I/O thread pushes what one read of the socket brought, in one lock and at most one
/// resumption, and the consumer takes deliveries one by one without suspending while any are
/// buffered. The buffer holds at most the channel's prefetch count when one is set.
final class DeliveryBuffer: Sendable {
    private struct State {
        var buffer = Deque<AMQPDelivery>()
        var waiter: UnsafeContinuation<AMQPDelivery?, any Error>?
        /// Set when the consumer ends: `nil` error for a normal end.
        var end: Result<Void, AMQPError>?
        /// The iterating task was cancelled: nothing more is accepted.
        var abandoned = false
    }

    private let state = Mutex(State())
    /// Called (once) when the iterating task is cancelled, to cancel the consumer at the broker.
    private let onAbandon: Mutex<(@Sendable ([AMQPDelivery]) -> Void)?> = Mutex(nil)

    init() {}

    func setOnAbandon(_ body: @escaping @Sendable ([AMQPDelivery]) -> Void) {
        onAbandon.withLock { $0 = body }
    }

    /// Adds deliveries; returns `false` if the consumer was abandoned (give them back).
    func push(_ deliveries: [AMQPDelivery]) -> Bool {
        guard !deliveries.isEmpty else { return true }
        let resume: (UnsafeContinuation<AMQPDelivery?, any Error>, AMQPDelivery)?? = state.withLock { s in
            guard !s.abandoned, s.end == nil else { return .none }
            if let waiter = s.waiter {
                s.waiter = nil
                s.buffer.append(contentsOf: deliveries.dropFirst())
                return .some((waiter, deliveries[0]))
            }
            s.buffer.append(contentsOf: deliveries)
            return .some(nil)
        }
        guard let resume else { return false }
        if let (waiter, first) = resume { waiter.resume(returning: first) }
        return true
    }

    /// Ends the sequence after what is buffered, normally or with `error`.
    func finish(_ error: AMQPError?) {
        let waiter: UnsafeContinuation<AMQPDelivery?, any Error>? = state.withLock { s in
            guard s.end == nil else { return nil }
            s.end = error.map { .failure($0) } ?? .success(())
            defer { s.waiter = nil }
            return s.waiter
        }
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    func next() async throws -> AMQPDelivery? {
        enum Immediate { case delivery(AMQPDelivery), end(Result<Void, AMQPError>), wait }
        let immediate: Immediate = state.withLock { s in
            if let d = s.buffer.popFirst() { return .delivery(d) }
            if s.abandoned { return .end(.success(())) }
            if let end = s.end { return .end(end) }
            return .wait
        }
        switch immediate {
        case .delivery(let d): return d
        case .end(.success): return nil
        case .end(.failure(let e)): throw e
        case .wait: break
        }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<AMQPDelivery?, any Error>) in
                let now: Immediate = state.withLock { s in
                    if let d = s.buffer.popFirst() { return .delivery(d) }
                    if s.abandoned { return .end(.success(())) }
                    if let end = s.end { return .end(end) }
                    s.waiter = c
                    return .wait
                }
                switch now {
                case .delivery(let d): c.resume(returning: d)
                case .end(.success): c.resume(returning: nil)
                case .end(.failure(let e)): c.resume(throwing: e)
                case .wait: break
                }
            }
        } onCancel: {
            abandon()
        }
    }

    /// The next delivery and, without waiting, up to `max - 1` more already buffered.
    func nextBatch(max: Int) async throws -> [AMQPDelivery] {
        guard let first = try await next() else { return [] }
        var batch = [first]
        if max > 1 {
            state.withLock { s in
                while batch.count < max, let d = s.buffer.popFirst() { batch.append(d) }
            }
        }
        return batch
    }

    /// The iterating task was cancelled, or the sequence dropped: end its wait, refuse further deliveries, and let the
    /// connection cancel the consumer and give back the deliveries the task never saw.
    func abandon() {
        let (waiter, unseen): (UnsafeContinuation<AMQPDelivery?, any Error>?, [AMQPDelivery]) = state.withLock { s in
            guard !s.abandoned else { return (nil, []) }
            s.abandoned = true
            let unseen = Array(s.buffer)
            s.buffer.removeAll()
            defer { s.waiter = nil }
            return (s.waiter, unseen)
        }
        waiter?.resume(returning: nil)
        let hook = onAbandon.withLock { h in defer { h = nil }; return h }
        hook?(unseen)
    }
}
