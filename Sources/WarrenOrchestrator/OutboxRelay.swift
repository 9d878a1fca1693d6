import AMQP
import Logging
import Synchronization
import WarrenStore

/// Publishes the outbox with pipelined confirms, deleting each row only after its confirm.
///
/// Every write of the orchestrator goes through ``write(_:)``, which hands the rows the
/// transaction wrote to the relay after the commit: they are published at once, without reading
/// them back. The relay reads the table only when it must: at start (what a crash left), every
/// 250 ms as a safety net, after a failed publish, and when handed rows that do not follow the
/// last ones it published. Every message goes out at least once.
///
/// Publishing never waits for confirms: rows committed while earlier ones await their confirm go
/// out at once (a confirm of a persistent message can take milliseconds, and a resumed workflow's
/// next message must not queue behind it). A confirmer task awaits the confirms in order and
/// marks the rows confirmed. Confirmed rows are not deleted in a transaction of their own: the
/// next write of the orchestrator deletes them with its own changes, so a busy orchestrator
/// spends one commit per batch, not two; when no write comes within 50 ms the relay deletes them
/// itself. A failed confirm makes the relay start again from the oldest row left.
final class OutboxRelay: Sendable {
    private let store: SQLiteStore
    private let channel: AMQPChannel
    private let config: OrchestratorConfiguration
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let declaredGroups = Mutex(Set<String>())
    private let shuttingDown = Mutex(false)

    private struct Progress {
        /// Rows confirmed, waiting to be deleted, and since when the oldest waits.
        var confirmed: [Int64] = []
        var since: ContinuousClock.Instant?
        /// The last sequence published; reading resumes after it.
        var publishedThrough: Int64 = 0
        /// Published rows whose confirm has not come yet.
        var inFlight = 0
        /// A confirm failed: publish again from the oldest row left.
        var failed = false
        /// Rows handed over after their commit, not yet published.
        var committed: [[OutboxMessage]] = []
        /// The table must be read (start, the periodic look, a gap in what was handed over).
        var needsRead = true
    }
    private let progress = Mutex(Progress())
    private let confirms: AsyncStream<[(Int64, PublishConfirmation)]>
    private let confirmQueue: AsyncStream<[(Int64, PublishConfirmation)]>.Continuation

    /// At most this many published rows await their confirm; publishing waits beyond it.
    static let maximumInFlight = 20_000

    init(store: SQLiteStore, channel: AMQPChannel, config: OrchestratorConfiguration, logger: Logger) {
        self.store = store
        self.channel = channel
        self.config = config
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (confirms, confirmQueue) = AsyncStream.makeStream()
    }

    /// Asks the relay to read the outbox now (for rows written other than through ``write(_:)``).
    func notify() {
        progress.withLock { $0.needsRead = true }
        wake.yield()
    }

    /// Stops after a last pass. If the broker is away then, the rows stay for the next start.
    func finish() {
        shuttingDown.withLock { $0 = true }
        wake.finish()
    }

    /// Publishes until ``finish()`` is called and the outbox is empty.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            // Look again every 250 ms even without a wake-up (timers, a wake-up lost to a crash).
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    self.notify()
                }
            }
            wake.yield()  // the first pass reads what a previous run left
            group.addTask { await self.deleteLeftovers() }
            group.addTask { await self.awaitConfirms() }
            for await _ in wakeups { await drain() }
            await drain()
            // The last confirms, then the last deletes.
            while progress.withLock({ $0.inFlight > 0 }) { try? await Task.sleep(for: .milliseconds(5)) }
            confirmQueue.finish()
            await deleteConfirmed()
            group.cancelAll()
        }
    }

    /// Runs a write transaction that also deletes the confirmed rows, and publishes what it
    /// wrote to the outbox once it committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreTransaction) throws -> T) async throws -> T {
        let confirmed = progress.withLock { p in
            defer { p.confirmed.removeAll(); p.since = nil }
            return p.confirmed
        }
        do {
            let (value, written) = try await store.writeReturningOutbox { tx in
                if !confirmed.isEmpty { try tx.deleteOutbox(sequences: confirmed) }
                return try body(tx)
            }
            if !written.isEmpty {
                progress.withLock { $0.committed.append(written) }
                wake.yield()
            }
            return value
        } catch {
            if !confirmed.isEmpty {
                progress.withLock { p in
                    p.confirmed += confirmed
                    p.since = p.since ?? .now
                }
            }
            throw error
        }
    }

    /// Publishes what was handed over, and reads the table when it must, until neither has
    /// anything left.
    private func drain() async {
        while true {
            let (batches, mustRead) = progress.withLock { p in
                defer { p.committed.removeAll(); p.needsRead = false }
                return (p.committed, p.needsRead || p.failed)
            }
            if batches.isEmpty && !mustRead { return }
            var read = mustRead
            if !read {
                for batch in batches.sorted(by: { $0[0].sequence < $1[0].sequence }) {
                    let through = progress.withLock { $0.publishedThrough }
                    if batch.last!.sequence <= through { continue }  // a read published it
                    guard batch[0].sequence == through + 1 else { read = true; break }
                    do {
                        try await publish(batch)
                    } catch {
                        progress.withLock { $0.failed = true }
                        logger.warning("outbox relay: publishing failed; will retry", metadata: ["error": "\(error)"])
                        read = true
                        break
                    }
                }
            }
            if read { await readAndPublish() }
        }
    }

    /// Reads the table after what was published and publishes it, until it is all out; after a
    /// failure, first starts again from the oldest row left.
    private func readAndPublish() async {
        while true {
            if progress.withLock({ $0.failed }) {
                // Once what is in flight has settled and what was confirmed is deleted: only what
                // was not confirmed may go out twice.
                while progress.withLock({ $0.inFlight > 0 }) { try? await Task.sleep(for: .milliseconds(5)) }
                await deleteConfirmed()
                progress.withLock { p in
                    p.publishedThrough = 0
                    p.failed = false
                }
                if shuttingDown.withLock({ $0 }) {
                    logger.warning("outbox relay: stopping with messages left; they go out at the next start")
                    return
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
            do {
                while progress.withLock({ $0.inFlight >= Self.maximumInFlight && !$0.failed }) {
                    try await Task.sleep(for: .milliseconds(1))
                }
                let after = progress.withLock { $0.publishedThrough }
                let rows = try await store.read { tx in try tx.outbox(after: after, limit: 1000) }
                if rows.isEmpty { return }
                try await publish(rows)
            } catch {
                progress.withLock { $0.failed = true }
                logger.warning("outbox relay: publishing failed; will retry", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Publishes rows (in sequence order, following what was published); their confirms are
    /// awaited by ``awaitConfirms()``.
    private func publish(_ rows: [OutboxMessage]) async throws {
        var published: [(Int64, PublishConfirmation)] = []
        published.reserveCapacity(rows.count)
        defer {
            // Whatever went out is awaited, even if a later publish of the page failed.
            if !published.isEmpty {
                let last = published.last!.0
                progress.withLock { p in
                    p.inFlight += published.count
                    p.publishedThrough = max(p.publishedThrough, last)
                }
                confirmQueue.yield(published)
            }
        }
        for row in rows {
            if row.routingKey.hasPrefix("execute.") { try await declareGroup(String(row.routingKey.dropFirst("execute.".count))) }
            published.append((row.sequence, try channel.basicPublish(row.body, exchange: row.exchange, routingKey: row.routingKey,
                                                                     properties: Outbound.properties(of: row))))
        }
    }

    /// Awaits confirms in publishing order and marks the rows confirmed; a failed confirm makes
    /// the relay publish again from the oldest row left.
    private func awaitConfirms() async {
        for await page in confirms {
            var confirmed: [Int64] = []
            var failure: (any Error)?
            for (sequence, confirmation) in page {
                do {
                    try await confirmation.wait()
                    confirmed.append(sequence)
                } catch {
                    failure = failure ?? error
                }
            }
            progress.withLock { p in
                p.inFlight -= page.count
                p.confirmed += confirmed
                if !p.confirmed.isEmpty { p.since = p.since ?? .now }
                if failure != nil { p.failed = true }
            }
            if let failure {
                logger.warning("outbox relay: a publish was not confirmed; publishing again", metadata: ["error": "\(failure)"])
                wake.yield()
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
