import AMQP
import Logging
import Synchronization
import WarrenStore

/// Publishes the outbox with pipelined confirms, deleting each row only after its confirm.
///
/// Woken after every commit that wrote rows (and every 250 ms in any case); after a crash it
/// simply finds the rows that are left and publishes them again, so every message goes out at
/// least once.
///
/// Confirmed rows are not deleted in a transaction of their own: the next write of the
/// orchestrator (a batch, a timer pass, HTTP writes) deletes them with its own changes
/// (``takeConfirmed()``), so a busy orchestrator spends one commit per batch, not two. When no
/// write comes within 50 ms the relay deletes them itself. The relay remembers how far it has
/// published, so rows confirmed but not yet deleted are not sent again (after a crash they are:
/// at least once).
final class OutboxRelay: Sendable {
    private let store: SQLiteStore
    private let channel: AMQPChannel
    private let config: OrchestratorConfiguration
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let declaredGroups = Mutex(Set<String>())
    /// Rows published and confirmed, waiting to be deleted; and the last sequence published.
    private let progress = Mutex<(confirmed: [Int64], publishedThrough: Int64, since: ContinuousClock.Instant?)>(([], 0, nil))

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
            group.addTask { await self.deleteLeftovers() }
            for await _ in wakeups { await drain() }
            await drain()
            await deleteConfirmed()
            group.cancelAll()
        }
    }

    /// Confirmed rows for the caller's transaction to delete. If that transaction fails, give
    /// them back with ``restore(_:)``.
    func takeConfirmed() -> [Int64] {
        progress.withLock { p in
            defer { p.confirmed.removeAll(); p.since = nil }
            return p.confirmed
        }
    }

    func restore(_ sequences: [Int64]) {
        guard !sequences.isEmpty else { return }
        progress.withLock { p in
            p.confirmed += sequences
            p.since = p.since ?? .now
        }
    }

    /// Runs a write transaction that also deletes the confirmed rows.
    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        let confirmed = takeConfirmed()
        do {
            return try await store.write { tx in
                if !confirmed.isEmpty { try tx.deleteOutbox(sequences: confirmed) }
                return try body(tx)
            }
        } catch {
            restore(confirmed)
            throw error
        }
    }

    /// Publishes until the outbox is empty, retrying while the broker is away.
    private func drain() async {
        while true {
            do {
                if try await publishOnce() == 0 { break }
            } catch {
                // Start again from the oldest row left: what was confirmed is deleted first, so
                // only what was not may go out twice.
                await deleteConfirmed()
                progress.withLock { $0.publishedThrough = 0 }
                if shuttingDown.withLock({ $0 }) {
                    logger.warning("outbox relay: stopping with messages left; they go out at the next start", metadata: ["error": "\(error)"])
                    return
                }
                logger.warning("outbox relay: publishing failed; will retry", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Deletes confirmed rows that no write of the orchestrator took along within 50 ms.
    private func deleteLeftovers() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(25))
            guard let since = progress.withLock({ $0.since }), ContinuousClock.now - since >= .milliseconds(50) else { continue }
            await deleteConfirmed()
        }
    }

    /// Deletes the confirmed rows in a transaction of their own, if there are any.
    private func deleteConfirmed() async {
        guard progress.withLock({ !$0.confirmed.isEmpty }) else { return }
        do {
            try await write { _ in }
        } catch {
            logger.warning("outbox relay: deleting published rows failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// Publishes one page of the outbox after what this relay published; returns how many rows went out.
    private func publishOnce() async throws -> Int {
        let after = progress.withLock { $0.publishedThrough }
        let rows = try await store.read { tx in try tx.outbox(after: after, limit: 1000) }
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
        let last = rows.last!.sequence
        progress.withLock { p in
            p.confirmed += confirmed
            if !p.confirmed.isEmpty { p.since = p.since ?? .now }
            if firstError == nil { p.publishedThrough = max(p.publishedThrough, last) }
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

