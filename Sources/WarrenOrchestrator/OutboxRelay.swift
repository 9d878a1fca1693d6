import AMQP
import Logging
import Synchronization
import WarrenAMQP
import WarrenContract
import WarrenKernel
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
///
/// **No row can wedge it.** Execute messages are published `mandatory`. A row the broker refuses
/// (a routing key AMQP cannot carry, a body over the broker's `max_message_size`, an execute
/// message no queue takes, a repeated `basic.nack`) is found and set aside with the reason
/// (`warren outbox`, `GET /outbox`, the log), and every other row goes out: after a failed confirm
/// on a closed channel, the relay opens a new channel and publishes the rows that were in flight
/// one at a time, each awaiting its confirm, so the one the broker refuses is known. While the
/// outbox cannot make progress, `/ready` says so.
final class OutboxRelay: Sendable {
    private let store: any PromiseStore
    private let connection: AMQPConnection
    private let currentChannel: Mutex<AMQPChannel>
    private var channel: AMQPChannel { currentChannel.withLock { $0 } }
    private let readiness: Readiness
    private let config: OrchestratorConfiguration
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let declaredGroups = Mutex(Set<String>())
    private let shuttingDown = Mutex(false)
    /// The broker user the messages go out as (their `user_id`), when the URL names it.
    private let userID: String?

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
        /// Rows up to this sequence were in flight when a publish failed: they go out one at a
        /// time, each awaiting its confirm, so that a row the broker refuses is found.
        var carefulThrough: Int64 = 0
        /// Since when publishing fails, and the last failure, for `/ready`.
        var failingSince: ContinuousClock.Instant?
        var lastFailure = ""
    }
    private let progress = Mutex(Progress())
    private let confirms: AsyncStream<[(Int64, PublishConfirmation)]>
    private let confirmQueue: AsyncStream<[(Int64, PublishConfirmation)]>.Continuation

    /// At most this many published rows await their confirm; publishing waits beyond it.
    static let maximumInFlight = 20_000

    /// How many times a row is tried on its own before it is set aside, for refusals that may
    /// pass (a `basic.nack`, an unroutable execute message whose queue is declared again).
    static let attemptsBeforeSettingAside = 3
    /// How long a row the broker nacks is tried again before it is set aside: longer than a
    /// cluster takes to settle after a node's loss (a quorum queue elects a leader in seconds,
    /// but RabbitMQ 3.10 was seen nacking publishes to a queue for a minute after a node died
    /// shortly after the cluster formed).
    static let nackPatience: Duration = .seconds(120)
    /// How long publishing may fail before `/ready` reports the outbox stuck.
    static let stuckAfter: Duration = .seconds(2)

    init(store: any PromiseStore, connection: AMQPConnection, channel: AMQPChannel, readiness: Readiness,
         config: OrchestratorConfiguration, logger: Logger) {
        self.store = store
        self.connection = connection
        self.currentChannel = Mutex(channel)
        self.readiness = readiness
        self.config = config
        self.logger = logger
        // With SASL EXTERNAL the broker's user is the certificate's, which the URL does not name.
        self.userID = connection.configuration.authentication == .plain ? connection.configuration.user : nil
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
                    self.reportHealth()
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
                        failed(error)
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
                try await reopenIfClosed()
                let (after, careful) = progress.withLock { ($0.publishedThrough, $0.carefulThrough) }
                let rows = try await store.read { tx in try tx.outbox(after: after, limit: 1000) }
                if rows.isEmpty {
                    // Caught up: whatever failed before has gone out or been set aside.
                    progress.withLock { p in if p.inFlight == 0 { p.failingSince = nil } }
                    return
                }
                let suspects = rows.prefix { $0.sequence <= careful }
                if suspects.isEmpty {
                    try await publish(rows)
                } else {
                    for row in suspects { try await publishAlone(row) }
                }
            } catch {
                failed(error)
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
        var channel = self.channel
        for row in rows {
            do {
                if let group = Self.group(of: row), !declaredGroups.withLock({ $0.contains(group) }) {
                    try await declareGroup(group)
                    channel = self.channel  // a new one if the declaration closed it
                }
                published.append((row.sequence, try send(row, on: channel)))
            } catch let refused as Refused {
                // Certain before anything was sent (a key AMQP cannot carry, a body too large):
                // set aside, and the rows after it go on.
                try await setAside(row, reason: refused.reason)
            }
        }
    }

    /// A row that cannot be published as it is, and why.
    struct Refused: Error {
        var reason: String
    }

    /// The route (`execute.<group>`, or `execute.<group>,<function>,v<n>` for a workflow pinned
    /// to a code version) an execute message goes to, or `nil` for any other row.
    static func group(of row: OutboxMessage) -> String? {
        row.exchange.isEmpty || Topology.route(ofExecuteRoutingKey: row.routingKey) == nil ? nil : row.routingKey
    }

    /// Publishes one row (execute messages `mandatory`; its group's queue is declared first);
    /// throws ``Refused`` when the row itself is the problem.
    private func send(_ row: OutboxMessage, on channel: AMQPChannel) throws -> PublishConfirmation {
        if row.body.count > config.maximumMessageBytes {
            throw Refused(reason: "the message is \(row.body.count) bytes; the limit is \(config.maximumMessageBytes) (--max-message-bytes)")
        }
        do {
            return try channel.basicPublish(row.body, exchange: row.exchange, routingKey: row.routingKey, mandatory: Self.group(of: row) != nil,
                                            properties: Outbound.properties(of: row, userID: userID))
        } catch let e as AMQPError where e.code == .invalidArgument {
            throw Refused(reason: e.message)
        }
    }

    /// Publishes one row and waits for its confirm. A refusal that is the row's (its channel
    /// closed by the broker, no queue for it) sets it aside after ``attemptsBeforeSettingAside``
    /// tries; a lost connection is no row's fault and is retried. A nack is what a quorum queue
    /// answers while it has no leader (a node of the cluster just died, an election is under way):
    /// it is retried with back-off for ``nackPatience`` before the row is set aside.
    private func publishAlone(_ row: OutboxMessage) async throws {
        var attempt = 1
        let firstTry = ContinuousClock.now
        while true {
            try await reopenIfClosed()
            let confirmation: PublishConfirmation
            do {
                if let group = Self.group(of: row) { try await declareGroup(group) }
                confirmation = try send(row, on: channel)
            } catch let refused as Refused {
                return try await setAside(row, reason: refused.reason)
            }
            do {
                try await confirmation.wait()
                progress.withLock { p in
                    p.publishedThrough = max(p.publishedThrough, row.sequence)
                    p.confirmed.append(row.sequence)
                    p.since = p.since ?? .now
                    p.failingSince = nil
                }
                return
            } catch let e as AMQPError where e.code == .channelClosed || e.code == .unroutable || e.code == .nacked {
                if e.code == .unroutable, let group = Self.group(of: row) {
                    // The queue may have been deleted since it was declared: declare it again.
                    _ = declaredGroups.withLock { $0.remove(group) }
                }
                if e.code == .nacked, ContinuousClock.now - firstTry < Self.nackPatience {
                    try await renewChannel()
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(min(100 * (1 << min(attempt, 5)), 2000)))
                    continue
                }
                if attempt >= Self.attemptsBeforeSettingAside {
                    if e.code == .unroutable, let group = Self.group(of: row), config.declare != .all {
                        return try await setAside(row, reason: "no queue takes \(row.routingKey) and --declare \(config.declare.rawValue) "
                            + "declares none: create the queue '\(Self.queue(of: group, in: config.topology).name)' bound to '\(config.exchange)' with '\(row.routingKey)' "
                            + "(warren topology export \(Self.exportArgument(of: group))), then warren outbox retry")
                    }
                    return try await setAside(row, reason: e.message)
                }
                attempt += 1
                try await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
    }

    /// Marks a row set aside with `reason`; the relay goes on after it.
    private func setAside(_ row: OutboxMessage, reason: String) async throws {
        let now = Orchestrator.nowMillis()
        try await write { tx in try tx.setOutboxAside(sequence: row.sequence, reason: reason, now: now) }
        progress.withLock { p in
            p.publishedThrough = max(p.publishedThrough, row.sequence)
            p.failingSince = nil  // the way is clear again
        }
        logger.error("outbox relay: the broker refused a message; it is set aside (warren outbox lists it)", metadata: [
            "sequence": "\(row.sequence)", "routingKey": "\(row.routingKey.prefix(80))", "kind": "\(row.kind)", "reason": "\(reason)",
        ])
    }

    /// A failed publish: start again from the oldest row left, the rows in flight one at a time.
    private func failed(_ error: any Error) {
        let connectionLost = (error as? AMQPError).map { $0.code == .connectionLost || $0.code == .connectionClosed } ?? false
        progress.withLock { p in
            p.failed = true
            p.failingSince = p.failingSince ?? .now
            p.lastFailure = "\(error)"
            // A row may be the cause: those in flight go out one at a time. A lost connection is
            // no row's doing.
            if !connectionLost { p.carefulThrough = max(p.carefulThrough, p.publishedThrough) }
        }
        logger.warning("outbox relay: publishing failed; will retry", metadata: ["error": "\(error)"])
    }

    /// Opens a new channel in confirm mode when the broker closed this one.
    private func reopenIfClosed() async throws {
        guard let reason = channel.closeReason else { return }
        let fresh = try await connection.openChannel()
        try await fresh.confirmSelect()
        currentChannel.withLock { $0 = fresh }
        logger.info("outbox relay: opened a new channel", metadata: ["closed because": "\(reason.message)"])
    }

    /// Replaces the channel with a new one after a nack: RabbitMQ 3.10 was seen nacking every
    /// later publish of a channel that published to a quorum queue while it had no leader (a
    /// node of the cluster just died), while a new channel's publishes went through.
    private func renewChannel() async throws {
        let old = channel
        let fresh = try await connection.openChannel()
        try await fresh.confirmSelect()
        currentChannel.withLock { $0 = fresh }
        try? await old.close()
        logger.info("outbox relay: opened a new channel after a nack")
    }

    /// Tells `/ready` whether the outbox makes progress.
    private func reportHealth() {
        let (since, failure) = progress.withLock { ($0.failingSince, $0.lastFailure) }
        if let since, ContinuousClock.now - since >= Self.stuckAfter {
            readiness.problem("outbox", "cannot publish: \(failure)")
        } else {
            readiness.problem("outbox", nil)
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
                if failure == nil, !confirmed.isEmpty { p.failingSince = nil }
            }
            if let failure {
                failed(failure)
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
    /// to nowhere (workers declare it too, with the same arguments). With `--declare verify` or
    /// `none` nothing is declared: the operator's queue takes it, or the message is set aside
    /// saying which queue is missing.
    ///
    /// A queue that someone declared first with other arguments (another type, a length limit)
    /// is used as it is, with a warning that says what differs: the broker refuses the
    /// declaration (closing the channel), so the relay opens a new channel, checks that the
    /// queue exists and binds it.
    private func declareGroup(_ group: String) async throws {
        guard !declaredGroups.withLock({ $0.contains(group) }) else { return }
        guard config.declare == .all else {
            _ = declaredGroups.withLock { $0.insert(group) }
            return
        }
        let topology = config.topology
        let queue = Self.queue(of: group, in: topology)
        do {
            try await channel.queueDeclare(queue.name, durable: true, arguments: TopologyDeclarer.fieldTable(queue.arguments))
        } catch let e as AMQPError where e.code == .preconditionFailed {
            try await reopenIfClosed()
            do {
                try await channel.queueDeclare(queue.name, passive: true)
            } catch let missing as AMQPError where missing.code == .notFound || missing.code == .channelClosed {
                try await reopenIfClosed()
                throw Refused(reason: "the queue '\(queue.name)' cannot be declared: \(e.message)")
            }
            logger.warning("\(topology.explainMismatch(queue: queue.name, brokerMessage: e.message))")
        }
        for b in queue.bindings { try await channel.queueBind(queue.name, exchange: b.exchange, routingKey: b.routingKey) }
        _ = declaredGroups.withLock { $0.insert(group) }
    }

    /// What `warren topology export` needs to include an execute route's queue: `--group g`, or
    /// `--code g,f,vN` for a code version's.
    static func exportArgument(of route: String) -> String {
        guard let parsed = Topology.route(ofExecuteRoutingKey: route) else { return "--group \(route)" }
        guard let code = parsed.code else { return "--group \(parsed.group)" }
        return "--code \(parsed.group),\(code.function),v\(code.version)"
    }

    /// The queue of an execute route (see ``group(of:)``): the group's, or its code version's.
    static func queue(of route: String, in topology: Topology) -> Topology.Queue {
        let parsed = Topology.route(ofExecuteRoutingKey: route)
        return topology.groupQueue(parsed?.group ?? route, code: parsed?.code)
    }
}
