import AMQP
import Foundation
import Logging
import Synchronization
import WarrenContract

/// Warren's side of the message contract: publishes commands with confirms and waits for their
/// answers (replies, and settled promises for subscriptions) by correlation id, all on one
/// connection and one reply queue named by the client (so that it is declared again when the
/// connection recovers).
final class Messenger: Sendable {
    let connection: AMQPConnection
    /// The channel commands are published on (in confirm mode), replaced after a nack or when
    /// the broker closed it (``renewChannel(ifStill:)``).
    var channel: AMQPChannel { publishing.withLock { $0 } }
    private let publishing: Mutex<AMQPChannel>
    let prefix: String
    let replyQueue: String
    /// The broker user this connection logs in as, sent as `user_id` on every message (the
    /// broker refuses a `user_id` that is not the connection's, so the orchestrator can trust
    /// it); `nil` with SASL EXTERNAL, whose user the URL does not name.
    let user: String?
    private let logger: Logger
    private let pendingReplies = Mutex<[String: PendingReply]>([:])
    private let listener = Mutex<Task<Void, Never>?>(nil)

    private init(connection: AMQPConnection, channel: AMQPChannel, prefix: String, replyQueue: String, logger: Logger) {
        self.connection = connection
        self.publishing = Mutex(channel)
        self.prefix = prefix
        self.replyQueue = replyQueue
        self.user = connection.configuration.authentication == .plain ? connection.configuration.user : nil
        self.logger = logger
    }

    static func connect(url: String, name: String, prefix: String, declare: Topology.Declare = .all, logger: Logger) async throws -> Messenger {
        let connection = try await AMQPConnection.connect(url: url, name: name, logger: logger)
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        // The exchange is the orchestrator's: checked passively, so that a user without
        // `configure` on it (a least-privilege worker or client) can connect; declared only if
        // missing (a worker started before any orchestrator).
        if declare != .none {
            let check = try await connection.openChannel()
            do {
                try await check.exchangeDeclare(prefix, type: "topic", durable: true, passive: true)
                try? await check.close()
            } catch let e as AMQPError where e.code == .notFound {
                guard declare == .all else {
                    throw WarrenError(.configuration, "declare: .verify: the broker has no exchange '\(prefix)' (warren topology export prints it)")
                }
                try await channel.exchangeDeclare(prefix, type: "topic", durable: true)
            }
        }
        let replyQueue = Topology(prefix: prefix).replyQueueName(UUID().uuidString.lowercased())
        try await channel.queueDeclare(replyQueue, durable: false, exclusive: true, autoDelete: true)
        let messenger = Messenger(connection: connection, channel: channel, prefix: prefix, replyQueue: replyQueue, logger: logger)
        let consumer = try await (try await connection.openChannel()).basicConsume(queue: replyQueue, noAck: true)
        // The listener lives as long as the messenger: it is cancelled by close().
        messenger.listener.withLock { $0 = Task { await messenger.listen(consumer) } }
        return messenger
    }

    private func listen(_ consumer: AMQPConsumer) async {
        do {
            for try await d in consumer {
                if let id = d.properties.correlationID, let pending = pendingReplies.withLock({ $0.removeValue(forKey: id) }) {
                    pending.complete(.success(d))
                }
            }
        } catch {
            logger.warning("the reply consumer ended", metadata: ["error": "\(error)"])
        }
        let error = WarrenError(.unavailable, "the connection to the broker closed")
        for p in pendingReplies.withLock({ p in defer { p.removeAll() }; return Array(p.values) }) { p.complete(.failure(error)) }
    }

    /// Publishes a command to the orchestrator; the confirmation says the broker has it.
    @discardableResult
    func publish(_ kind: MessageKind, _ body: String, replyTo: String? = nil, correlationID: String? = nil,
                 on channel: AMQPChannel? = nil) throws -> PublishConfirmation {
        try (channel ?? self.channel).basicPublish(body, exchange: prefix, routingKey: kind.rawValue, properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, correlationID: correlationID, replyTo: replyTo,
            messageID: UUID().uuidString, type: kind.rawValue, userID: user))
    }

    /// Publishes a command and waits for the orchestrator's reply.
    ///
    /// Commands are idempotent, so one whose publish was lost with the connection, whose reply
    /// does not come within `timeout`, or whose reply may have been lost while the connection
    /// recovered (the reply queue lives with the connection), is sent again (up to `attempts` times).
    /// One the broker refused at once (a nack: a quorum queue electing a leader after a node's
    /// loss; a connection being recovered) is sent again with back-off for up to
    /// ``nackPatience``, without counting as an attempt.
    /// How long a command the broker keeps refusing is sent again: longer than a cluster takes to
    /// settle after a node's loss.
    static let nackPatience: Duration = .seconds(120)

    func request(_ kind: MessageKind, _ body: String, timeout: Duration = .seconds(30), attempts: Int = 5) async throws -> AMQPDelivery {
        var lastError: any Error = WarrenError(.unavailable, "\(kind): no reply")
        var attempt = 0
        var refusedSince: ContinuousClock.Instant? = nil
        var backoff = 0
        while attempt < max(1, attempts) {
            let correlationID = UUID().uuidString
            let pending = PendingReply()
            pendingReplies.withLock { $0[correlationID] = pending }  // before publishing: a reply can be fast
            let used = channel
            do {
                let recoveries = connection.recoveryCount
                try await publish(kind, body, replyTo: replyQueue, correlationID: correlationID, on: used).wait()
                return try await pending.wait(timeout: timeout, what: kind.rawValue) { [connection] in connection.recoveryCount != recoveries }
            } catch {
                _ = pendingReplies.withLock { $0.removeValue(forKey: correlationID) }
                lastError = (error as? AMQPError).map { WarrenError(.unavailable, "\(kind): \($0.message)") } ?? error
                if let e = error as? WarrenError, e.code == .timedOut { throw e }
                if let e = error as? AMQPError, e.code == .nacked || e.code == .channelClosed { await renewChannel(ifStill: used) }
                if let e = error as? AMQPError, e.code == .nacked || e.code == .connectionLost {
                    let since = refusedSince ?? .now
                    refusedSince = since
                    if ContinuousClock.now - since >= Self.nackPatience { throw lastError }
                } else {
                    attempt += 1
                    refusedSince = nil
                }
                backoff += 1
                logger.debug("request failed; sending it again", metadata: ["kind": "\(kind.rawValue)", "attempt": "\(attempt)", "error": "\(error)"])
                try await Task.sleep(for: .milliseconds(min(50 * (1 << min(backoff, 6)), 2000)))
            }
        }
        throw lastError
    }

    /// A command answered with a promise, or the orchestrator's refusal as an error.
    func promiseRequest(_ kind: MessageKind, _ body: String) async throws -> (promise: PromiseRecord, created: Bool) {
        try Wire.promiseReply(to: kind, try await request(kind, body).body)
    }

    /// A command that subscribes to a promise (`promise.subscribe`, or `workflow.start` with
    /// `"subscribe": true`): its answer is the promise once settled, sent by the orchestrator to
    /// the reply queue when it settles. Nothing polls; the subscription is renewed only when the
    /// connection recovered (its reply queue, and a settlement sent meanwhile, may be gone).
    func settledRequest(_ kind: MessageKind, _ body: String, timeout: Duration) async throws -> PromiseRecord {
        let deadline = ContinuousClock.now + timeout
        let d = try await request(kind, body, timeout: timeout, attempts: 1000, deadline: deadline)
        if d.properties.type == MessageKind.settled.rawValue {
            do {
                return try JSONDecoder().decode(PromiseRecord.self, from: Data(d.body))
            } catch {
                throw WarrenError(.codec, "\(kind): the settled promise could not be decoded: \(error)")
            }
        }
        let reply = try JSONDecoder().decode(Wire.Reply.self, from: Data(d.body))
        if let error = reply.error { throw WarrenError(.refused, "\(kind): \(error.code): \(error.message)") }
        throw WarrenError(.refused, "\(kind): the reply holds no settled promise")
    }

    private func request(_ kind: MessageKind, _ body: String, timeout: Duration, attempts: Int, deadline: ContinuousClock.Instant) async throws -> AMQPDelivery {
        do {
            return try await request(kind, body, timeout: max(.milliseconds(1), deadline - .now), attempts: attempts)
        } catch let e as WarrenError where e.code == .unavailable && ContinuousClock.now >= deadline {
            throw WarrenError(.timedOut, "\(kind): no outcome within \(timeout)")
        }
    }

    /// Replaces the publishing channel `failed` with a new one, unless another caller already
    /// did: after a nack (RabbitMQ 3.10 was seen nacking every later publish of a channel that
    /// published to a quorum queue while it had no leader, while a new channel's went through),
    /// or when the broker closed it (a refused publish closes its channel).
    func renewChannel(ifStill failed: AMQPChannel) async {
        guard channel === failed else { return }
        do {
            let fresh = try await connection.openChannel()
            try await fresh.confirmSelect()
            let swapped = publishing.withLock { current -> Bool in
                guard current === failed else { return false }
                current = fresh
                return true
            }
            if swapped {
                logger.info("opened a new channel for commands", metadata: ["after": "\(failed.closeReason?.message ?? "a nack")"])
                try? await failed.close()
            } else {
                try? await fresh.close()
            }
        } catch {
            logger.warning("could not open a new channel for commands", metadata: ["error": "\(error)"])
        }
    }

    func close() async {
        listener.withLock { $0?.cancel() }
        await connection.close()
    }
}

/// One request's reply, filled by the listener.
final class PendingReply: Sendable {
    private enum State {
        case waiting(CheckedContinuation<AMQPDelivery, any Error>?)
        case done(Result<AMQPDelivery, any Error>)
    }
    private let state = Mutex(State.waiting(nil))

    func complete(_ result: Result<AMQPDelivery, any Error>) {
        let waiter: CheckedContinuation<AMQPDelivery, any Error>? = state.withLock { s in
            guard case .waiting(let c) = s else { return nil }
            s = .done(result)
            return c
        }
        waiter?.resume(with: result)
    }

    /// The reply, or an `unavailable` error after `timeout`, or as soon as `lost()` says the
    /// reply may have been lost (checked every second: a local check, not a request).
    func wait(timeout: Duration, what: String, lost: @escaping @Sendable () -> Bool = { false }) async throws -> AMQPDelivery {
        try await withThrowingTaskGroup(of: AMQPDelivery?.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<AMQPDelivery, any Error>) in
                    let done: Result<AMQPDelivery, any Error>? = self.state.withLock { s in
                        if case .done(let r) = s { return r }
                        s = .waiting(c)
                        return nil
                    }
                    if let done { c.resume(with: done) }
                }
            }
            group.addTask {
                let deadline = ContinuousClock.now + timeout
                while ContinuousClock.now < deadline {
                    do { try await Task.sleep(for: min(.seconds(1), deadline - .now)) } catch { return nil }
                    if lost() {
                        self.complete(.failure(WarrenError(.unavailable, "\(what): the connection recovered; the reply may be lost")))
                        return nil
                    }
                }
                self.complete(.failure(WarrenError(.unavailable, "\(what): no reply within \(timeout)")))
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let reply = next { return reply }
            }
            throw WarrenError(.unavailable, "\(what): no reply within \(timeout)")
        }
    }
}
