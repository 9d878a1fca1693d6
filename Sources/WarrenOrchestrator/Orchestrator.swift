import AMQP
import Foundation
import Logging
import ServiceLifecycle
import WarrenStore

/// The orchestrator: consumes `<prefix>.orchestrator`, applies each batch of deliveries in one
/// SQLite transaction, acks them after the commit, and publishes what it must send through the
/// outbox. Runs as a swift-service-lifecycle `Service`; on graceful shutdown it stops consuming,
/// finishes its batch and drains the outbox.
///
/// ```swift
/// let orchestrator = Orchestrator(configuration: OrchestratorConfiguration(databasePath: "warren.db"))
/// let group = ServiceGroup(services: [orchestrator], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
public final class Orchestrator: Service {
    public let configuration: OrchestratorConfiguration
    private let logger: Logger

    public init(configuration: OrchestratorConfiguration, logger: Logger = Logger(label: "warren.orchestrator")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let config = configuration
        let store = try SQLiteStore(path: config.databasePath)
        let consuming = try await AMQPConnection.connect(url: config.amqpURL, name: "warren-orchestrator", logger: logger)
        let publishing: AMQPConnection
        do {
            publishing = try await AMQPConnection.connect(url: config.amqpURL, name: "warren-orchestrator-outbox", logger: logger)
        } catch {
            await consuming.close()
            throw error
        }
        do {
            try await serve(store: store, consuming: consuming, publishing: publishing)
        } catch {
            await consuming.close()
            await publishing.close()
            throw error
        }
        await consuming.close()
        await publishing.close()
        logger.info("orchestrator stopped")
    }

    private func serve(store: SQLiteStore, consuming: AMQPConnection, publishing: AMQPConnection) async throws {
        let config = configuration
        let channel = try await consuming.openChannel()
        try await Self.declareTopology(on: channel, config: config)
        try await channel.basicQos(prefetchCount: config.prefetch)
        let outboxChannel = try await publishing.openChannel()
        try await outboxChannel.confirmSelect()
        let relay = OutboxRelay(store: store, channel: outboxChannel, config: config, logger: logger)
        logger.info("orchestrator started", metadata: ["database": "\(config.databasePath)", "queue": "\(config.orchestratorQueue)"])

        let failure: (any Error)? = await withTaskGroup(of: Void.self) { outer in
            outer.addTask { await relay.run() }  // ends after finish(), once the outbox is drained
            let failure: (any Error)? = await withTaskGroup(of: Void.self) { inner in
                defer { inner.cancelAll() }  // stop the timers
                inner.addTask { await self.fireTimers(store: store, relay: relay) }
                do {
                    // Graceful shutdown cancels the consumer: the batch in hand still commits and acks.
                    try await cancelWhenGracefulShutdown {
                        try await self.consume(channel: channel, store: store, relay: relay)
                    }
                    return nil
                } catch is CancellationError {
                    return nil
                } catch {
                    logger.error("orchestrator stopped consuming", metadata: ["error": "\(error)"])
                    return error
                }
            }
            relay.finish()
            await outer.waitForAll()
            return failure
        }
        if let failure { throw failure }  // after draining: the process exits with an error
    }

    /// Declares the whole topology, idempotently.
    static func declareTopology(on channel: AMQPChannel, config: OrchestratorConfiguration) async throws {
        try await channel.exchangeDeclare(config.exchange, type: "topic", durable: true)
        try await channel.exchangeDeclare(config.deadLetterExchange, type: "fanout", durable: true)
        try await channel.queueDeclare(config.deadQueue, durable: true)
        try await channel.queueBind(config.deadQueue, exchange: config.deadLetterExchange, routingKey: "")
        try await channel.queueDeclare(config.orchestratorQueue, durable: true,
                                       arguments: ["x-dead-letter-exchange": .string(config.deadLetterExchange)])
        for key in ["workflow.*", "promise.*", "task.*"] {
            try await channel.queueBind(config.orchestratorQueue, exchange: config.exchange, routingKey: key)
        }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    private func consume(channel: AMQPChannel, store: SQLiteStore, relay: OutboxRelay) async throws {
        let config = configuration
        var deliveries = try await channel.basicConsume(queue: config.orchestratorQueue).makeAsyncIterator()
        while true {
            let batch = try await deliveries.next(upTo: Int(config.prefetch))
            guard let last = batch.last else { return }
            let now = Self.nowMillis()
            // Decode outside the transaction; the writer holds only what must be atomic.
            let work: [(Incoming, Result<InboundMessage, ContractError>)] = batch.map { d in
                let incoming = Incoming(delivery: d)
                do throws(ContractError) {
                    return (incoming, .success(try InboundMessage.decode(
                        routingKey: d.routingKey, type: d.properties.type, body: d.body, now: now,
                        defaultTimeout: config.defaultTimeout, maximumBodyBytes: config.maximumBodyBytes)))
                } catch {
                    return (incoming, .failure(error))
                }
            }
            let logger = self.logger
            try await store.write { tx in
                for (incoming, message) in work {
                    switch message {
                    case .failure(let e):
                        try tx.enqueue(Outbound.deadLetter(incoming.delivery, reason: e.reason, config: config))
                    case .success(let m):
                        try Self.apply(m, from: incoming, tx: tx, now: now, config: config, logger: logger)
                    }
                }
            }
            relay.notify()
            // The commit returned: everything in the batch is durable (or dead-lettered through
            // the outbox). One ack covers the batch.
            do {
                try last.ack(multiple: true)
            } catch let e as AMQPError where e.code == .staleDelivery {
                logger.info("a batch's deliveries came from a lost connection; the broker redelivers them, and they apply idempotently")
            }
        }
    }

    /// The delivery fields `apply` needs, copied so the write closure can be `Sendable`.
    struct Incoming: Sendable {
        let delivery: AMQPDelivery
        var replyTo: String? { delivery.properties.replyTo.flatMap { $0.isEmpty ? nil : $0 } }
        var correlationID: String? { delivery.properties.correlationID }
    }

    /// Applies one decoded message and writes what it causes to the outbox.
    static func apply(_ m: InboundMessage, from incoming: Incoming, tx: any StoreTransaction, now: Int64,
                      config: OrchestratorConfiguration, logger: Logger) throws {
        do {
            switch m {
            case .createPromise(let r):
                let result = try tx.createPromise(r, now: now)
                if let replyTo = incoming.replyTo {
                    try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: result.promise, created: result.created))
                }
            case .startWorkflow(let r, let function):
                let result = try tx.createPromise(r, now: now)
                if !result.created, result.promise.param.data != r.param.data {
                    throw StoreError(.alreadyExists, "workflow '\(r.id)' exists with another function or arguments than \(function)(…)", promise: result.promise)
                }
                if let task = result.task, result.created {
                    try tx.enqueue(Outbound.execute(task, promise: result.promise, config: config))
                }
                if let replyTo = incoming.replyTo {
                    try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: result.promise, created: result.created))
                }
            case .settlePromise(let r):
                let result = try tx.settlePromise(r, now: now)
                if result.settled { try settled(result, tx: tx, config: config) }
                if let replyTo = incoming.replyTo {
                    try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: result.promise, created: false))
                }
            case let .claimTask(id, version, worker, redelivered):
                // A redelivered execute may have reached another worker first: take a new version,
                // so that whatever the other one reports for the old version is ignored.
                let current = redelivered ? try tx.redispatchTask(id: id, now: now).version : version
                let task = try tx.claimTask(id: id, version: current, worker: worker, now: now)
                guard let promise = try tx.promise(id: id, now: now) else { throw StoreError(.notFound, "no promise for task '\(id)'") }
                if let replyTo = incoming.replyTo {
                    try tx.enqueue(Outbound.claimed(task, promise: promise, children: try children(of: id, tx: tx, now: now),
                                                    replyTo: replyTo, correlationID: incoming.correlationID))
                }
            case let .suspendTask(id, version, worker, awaiting):
                if case .resumed(let task) = try tx.suspendTask(id: id, version: version, worker: worker, awaiting: awaiting, now: now),
                   let promise = try tx.promise(id: id, now: now) {
                    try tx.enqueue(Outbound.execute(task, promise: promise, config: config))
                }
            case let .completeTask(id, version, worker, settle):
                let result = try tx.completeTask(id: id, version: version, worker: worker, settle: settle, now: now)
                if result.settled { try settled(result, tx: tx, config: config) }
            }
        } catch let e as StoreError {
            if let replyTo = incoming.replyTo {
                try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: e.promise,
                                              error: (e.code.description, e.message)))
            } else if e.code == .alreadyExists || e.code == .alreadySettled || e.code == .staleTask || e.code == .invalidTaskState {
                // The first outcome won, or a worker reported for a version that no longer counts
                // (a zombie, the loser of a race): not an error of the message.
                logger.debug("command refused", metadata: ["error": "\(e.message)"])
            } else {
                let reason = e.code == .notFound ? "unknown promise: \(e.message)" : e.message
                try tx.enqueue(Outbound.deadLetter(incoming.delivery, reason: reason, config: config))
            }
        }
    }

    /// What a settlement causes: its event, and an execute message for every resumed task.
    static func settled(_ result: SettleResult, tx: any StoreTransaction, config: OrchestratorConfiguration) throws {
        try tx.enqueue(Outbound.settledEvent(result.promise, config: config))
        for task in result.resumedTasks {
            guard let p = try tx.promise(id: task.id, now: result.promise.completedOn ?? 0) else { continue }
            try tx.enqueue(Outbound.execute(task, promise: p, config: config))
        }
    }

    /// The promises below a root, settled or pending, which a worker replays without asking.
    static func children(of root: String, tx: any StoreTransaction, now: Int64) throws -> [PromiseRecord] {
        var children: [PromiseRecord] = []
        var cursor: String? = nil
        repeat {
            let page = try tx.search(PromiseSearch(id: root + ".*", limit: PromiseSearch.maximumLimit, cursor: cursor), now: now)
            children += page.promises
            cursor = page.cursor
        } while cursor != nil
        return children
    }

    /// Fires due timers, a batch at a time, until cancelled.
    private func fireTimers(store: SQLiteStore, relay: OutboxRelay) async {
        let config = configuration
        while !Task.isCancelled {
            do {
                let now = Self.nowMillis()
                let (fired, next) = try await store.write { tx in
                    let fired = try tx.fireTimers(now: now, limit: 1000)
                    for f in fired {
                        switch f {
                        case .promiseTimeout(let result): try Self.settled(result, tx: tx, config: config)
                        case .taskRetry(let task):
                            if let p = try tx.promise(id: task.id, now: now) { try tx.enqueue(Outbound.execute(task, promise: p, config: config)) }
                        }
                    }
                    return (fired.count, try tx.nextTimerDue())
                }
                if fired > 0 { relay.notify() }
                if fired == 1000 { continue }
                let wait = min(max((next ?? Int64.max) - Self.nowMillis(), 5), 250)
                try await Task.sleep(for: .milliseconds(wait))
            } catch is CancellationError {
                return
            } catch {
                logger.warning("firing timers failed; will retry", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}
