import AMQP
import Logging
import Synchronization
import WarrenStore

/// Publishes the outbox with pipelined confirms, deleting each row only after its confirm.
///
/// Woken after every commit that wrote rows (and every 250 ms in any case); after a crash it
/// simply finds the rows that are left and publishes them again, so every message goes out at
/// least once.
final class OutboxRelay: Sendable {
    private let store: SQLiteStore
    private let channel: AMQPChannel
    private let config: OrchestratorConfiguration
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let declaredGroups = Mutex(Set<String>())

    init(store: SQLiteStore, channel: AMQPChannel, config: OrchestratorConfiguration, logger: Logger) {
        self.store = store
        self.channel = channel
        self.config = config
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the relay to look at the outbox now.
    func notify() { wake.yield() }

    /// Stops after a last pass. If the broker is away then, the rows stay for the next start.
    func finish() {
        shuttingDown.withLock { $0 = true }
        wake.finish()
    }

    private let shuttingDown = Mutex(false)

    /// Publishes until ``finish()`` is called and the outbox is empty.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            // Look again every 250 ms even without a wake-up (timers, a wake-up lost to a crash).
            group.addTask { [wake] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    wake.yield()
                }
            }
            for await _ in wakeups { await drain() }
            await drain()
            group.cancelAll()
        }
    }

    /// Publishes until the outbox is empty, retrying while the broker is away.
    private func drain() async {
        while true {
            do {
                if try await publishOnce() == 0 { return }
            } catch {
                if shuttingDown.withLock({ $0 }) {
                    logger.warning("outbox relay: stopping with messages left; they go out at the next start", metadata: ["error": "\(error)"])
                    return
                }
                logger.warning("outbox relay: publishing failed; will retry", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Publishes one page of the outbox; returns how many rows went out.
    private func publishOnce() async throws -> Int {
        let rows = try await store.read { tx in try tx.outbox(after: 0, limit: 1000) }
        guard !rows.isEmpty else { return 0 }
        var confirmations: [PublishConfirmation] = []
        confirmations.reserveCapacity(rows.count)
        for row in rows {
            if row.routingKey.hasPrefix("execute.") { try await declareGroup(String(row.routingKey.dropFirst("execute.".count))) }
            confirmations.append(try channel.basicPublish(row.body, exchange: row.exchange, routingKey: row.routingKey,
                                                          properties: Outbound.properties(of: row)))
        }
        var confirmed: [Int64] = []
        var firstError: (any Error)?
        for (row, c) in zip(rows, confirmations) {
            do {
                try await c.wait()
                confirmed.append(row.sequence)
            } catch {
                firstError = firstError ?? error
            }
        }
        if !confirmed.isEmpty {
            let sequences = confirmed
            try await store.write { tx in try tx.deleteOutbox(sequences: sequences) }
        }
        if let firstError { throw firstError }
        return rows.count
    }

    /// Declares a group's queue before the first execute message for it, so it is never routed
    /// to nowhere (workers declare it too, with the same arguments).
    private func declareGroup(_ group: String) async throws {
        guard !declaredGroups.withLock({ $0.contains(group) }) else { return }
        let queue = config.groupQueue(group)
        try await channel.queueDeclare(queue, durable: true, arguments: ["x-dead-letter-exchange": .string(config.deadLetterExchange)])
        try await channel.queueBind(queue, exchange: config.exchange, routingKey: "execute." + group)
        _ = declaredGroups.withLock { $0.insert(group) }
    }
}

