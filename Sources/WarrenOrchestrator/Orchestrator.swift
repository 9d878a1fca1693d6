import AMQP
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import ServiceLifecycle
import WarrenAMQP
import WarrenContract
import WarrenKernel
import WarrenStore
import WarrenStorePostgres

/// Why the orchestrator cannot start.
public struct OrchestratorError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

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

    /// Whether it consumes its queue (`GET /ready`).
    let readiness = Readiness()

    public init(configuration: OrchestratorConfiguration, logger: Logger = Logger(label: "warren.orchestrator")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Who may call the HTTP API: the tokens, and the hosts and origins it answers to.
    func accessPolicy() -> AccessPolicy {
        let c = configuration
        var hosts = c.allowedHosts
        if hosts.isEmpty, c.tokens.isEmpty, AccessPolicy.isLoopback(c.httpHost) { hosts = AccessPolicy.loopbackNames }
        return AccessPolicy(tokens: c.tokens, openReady: c.openReady, allowedHosts: hosts, allowedOrigins: c.allowedOrigins)
    }

    /// The HTTP server, if one is configured. A port in use fails the start, with a clear error.
    private func startHTTP(store: any PromiseStore, batcher: WriteBatcher) async throws -> (any Service)? {
        guard let port = configuration.httpPort else { return nil }
        if let problem = Self.cannotBind(host: configuration.httpHost, port: port) {
            throw OrchestratorError("the HTTP API cannot listen on \(configuration.httpHost):\(port): \(problem) "
                + "(choose another with --http-port, or --no-http)")
        }
        let api = HTTPAPI(store: store, batcher: batcher, config: configuration, readiness: readiness,
                          access: accessPolicy(), logger: logger)
        // Idle connections are closed after `httpIdleTimeout`, and at most `maximumHTTPConnections` are open.
        let open = ConnectionLimiter.Counter()
        let maximum = configuration.maximumHTTPConnections
        let server = HTTPServerBuilder.http1(configuration: .init(
            additionalChannelHandlers: [ConnectionLimiter(sharing: open, maximum: maximum)], idleTimeout: .seconds(configuration.httpIdleTimeout)))
        return Application(router: api.router(), server: server,
                           configuration: ApplicationConfiguration(address: .hostname(configuration.httpHost, port: port)), logger: logger)
    }

    public func run() async throws {
        let config = configuration
        try config.validate()
        // A standby waits here until shutdown cancels it, consuming nothing.
        let (store, lock) = try await cancelWhenGracefulShutdown { try await self.openStore(config.databasePath, standby: config.standby) }
        defer { withExtendedLifetime(lock) {} }
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

    /// The store `--db` names: a SQLite file (one orchestrator per file: an exclusive `flock`), or
    /// a PostgreSQL database (one writer per database: the server's advisory lock).
    ///
    /// With `standby` (PostgreSQL only), an orchestrator that finds another holding the writer
    /// lock waits for it instead of exiting, and takes over within about a second of the other's
    /// session ending: at once when it dies (its connection closes), after
    /// ``PostgresStore/writerLease`` when it stops without closing it. Until then it consumes
    /// nothing and writes nothing.
    func openStore(_ database: String, standby: Bool) async throws -> (any PromiseStore, DatabaseLock?) {
        guard PostgresStore.isURL(database) else {
            if standby { throw OrchestratorError("--standby needs a PostgreSQL database (--db postgres://…): a SQLite file has one orchestrator") }
            let lock = try DatabaseLock(databasePath: database)
            return (try SQLiteStore(path: database), lock)
        }
        let store = try await PostgresStore.open(url: database)
        var waiting = false
        while try await !store.takeWriterLock() {
            guard standby else {
                await store.close()
                throw OrchestratorError("the database \(Self.redacted(database)) is in use by another orchestrator (it holds the writer lock); "
                    + "stop it first, give this one another --db, or start it with --standby to take over when the other stops")
            }
            if !waiting {
                readiness.problem("standby", "another orchestrator holds the database's writer lock; this one takes over when it stops")
                logger.notice("standby: another orchestrator holds the database's writer lock; waiting to take over")
                waiting = true
            }
            do {
                try await Task.sleep(for: .milliseconds(500))
            } catch {
                await store.close()
                throw error
            }
        }
        if waiting {
            readiness.problem("standby", nil)
            logger.notice("standby: took the writer lock; this orchestrator is now the active one")
        }
        return (store, nil)
    }

    /// A database URL without its password, for logs and errors.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.password != nil else { return url }
        c.password = "…"
        return c.string ?? url
    }

    private func serve(store: any PromiseStore, consuming: AMQPConnection, publishing: AMQPConnection) async throws {
        readiness.problem("consumer", "starting")
        let config = configuration
        let channel = try await Self.declareTopology(on: try await consuming.openChannel(), connection: consuming, config: config, logger: logger)
        try await channel.basicQos(prefetchCount: config.prefetch)
        let outboxChannel = try await publishing.openChannel()
        try await outboxChannel.confirmSelect()
        let relay = OutboxRelay(store: store, connection: publishing, channel: outboxChannel, readiness: readiness, config: config, logger: logger)
        let batcher = WriteBatcher(write: { body in try await relay.write(body) })
        let http = try await startHTTP(store: store, batcher: batcher)
        logger.info("orchestrator started", metadata: [
            "database": "\(Self.redacted(config.databasePath))", "queue": "\(config.orchestratorQueue)",
            "http": "\(config.httpPort.map { "\(config.httpHost):\($0)" } ?? "off")",
        ])

        let failure: (any Error)? = await withTaskGroup(of: Void.self) { outer in
            outer.addTask { await relay.run() }  // ends after finish(), once the outbox is drained
            let batching = Task { await batcher.run() }  // ends after finish(), once its queue is applied
            let failure: (any Error)? = await withTaskGroup(of: Void.self) { inner in
                defer { inner.cancelAll() }  // stop the timers and the HTTP server
                inner.addTask { await self.fireTimers(store: store, relay: relay) }
                if let retention = config.retention { inner.addTask { await self.deleteOldWorkflows(after: retention, relay: relay) } }
                if let http {
                    inner.addTask {
                        do { try await http.run() } catch { self.logger.error("the HTTP server stopped", metadata: ["error": "\(error)"]) }
                    }
                }
                defer { self.readiness.set(false, "stopping") }
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
            // The HTTP API's last writes first, then the relay's last pass: a row written after
            // that pass would wait for the next start.
            batcher.finish()
            await batching.value
            relay.finish()
            await outer.waitForAll()
            return failure
        }
        if let failure { throw failure }  // after draining: the process exits with an error
    }

    /// Why `host:port` cannot be bound now, or `nil` if it can.
    static func cannotBind(host: String, port: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else { return "'\(host)' is not an IPv4 address" }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0 ? nil : String(cString: strerror(errno))
    }

    /// Declares the whole topology, idempotently (`--declare all`); checks that it exists
    /// (`verify`); or trusts the operator (`none`). Returns the channel to go on with (a refused
    /// declaration closes the one it was made on).
    static func declareTopology(on channel: AMQPChannel, connection: AMQPConnection, config: OrchestratorConfiguration,
                                logger: Logger) async throws -> AMQPChannel {
        let topology = config.topology
        switch config.declare {
        case .none:
            return channel
        case .verify:
            let missing = try await TopologyDeclarer.missing(topology.exchanges, [topology.deadQueue, topology.orchestratorQueue],
                                                             connection: connection)
            guard missing.isEmpty else {
                throw OrchestratorError("--declare verify: the broker has no \(missing.joined(separator: ", ")). Create them "
                    + "(`warren topology export --prefix \(config.prefix)` prints definitions for `rabbitmqctl import_definitions`), "
                    + "or let Warren declare them with --declare all")
            }
            return channel
        case .all:
            var channel = channel
            for e in topology.exchanges { try await channel.exchangeDeclare(e.name, type: e.type, durable: true) }
            for q in [topology.deadQueue, topology.orchestratorQueue] {
                channel = try await TopologyDeclarer.declare(q, on: channel, connection: connection, topology: topology, logger: logger)
            }
            return channel
        }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Consumes the queue until graceful shutdown. While the store refuses writes it stops
    /// consuming (the deliveries stay in the queue), reports not ready, and tries a small write
    /// with back-off until one succeeds; then it consumes again.
    private func consume(channel: AMQPChannel, store: any PromiseStore, relay: OutboxRelay) async throws {
        let config = configuration
        let intake = CommandIntake(config: config, relay: relay, logger: logger)
        while true {
            do {
                var deliveries = try await channel.basicConsume(queue: config.orchestratorQueue, maximumBodyBytes: config.maximumBodyBytes)
                    .makeAsyncIterator()
                readiness.set(true, "consuming \(config.orchestratorQueue)")
                while true {
                    let batch = try await deliveries.next(upTo: Int(config.prefetch))
                    if batch.isEmpty { return }
                    try await intake.handle(batch)
                }
            } catch let fault as CommandIntake.StorageFault {
                readiness.problem("storage", "the database refuses writes (\(fault)); commands wait in the queue")
                logger.error("the database refuses writes; stopped consuming until it takes them again", metadata: ["error": "\(fault)"])
                try await waitForStorage(store)
                readiness.problem("storage", nil)
                logger.notice("the database takes writes again; consuming")
            }
        }
    }

    /// Returns once the store takes a write, trying with back-off (100 ms doubling to 5 s).
    private func waitForStorage(_ store: any PromiseStore) async throws {
        var delay = 100
        while true {
            try await Task.sleep(for: .milliseconds(delay))
            do {
                try await store.probeWrite()
                return
            } catch {
                logger.debug("the database still refuses writes", metadata: ["error": "\(error)"])
            }
            delay = min(delay * 2, 5000)
        }
    }

    /// Deletes workflows settled more than `retention` milliseconds ago (with every promise and
    /// task below them), a thousand at a time, once a minute, until cancelled.
    private func deleteOldWorkflows(after retention: Int64, relay: OutboxRelay) async {
        while !Task.isCancelled {
            do {
                let before = Self.nowMillis() - retention
                let deleted = try await relay.write { tx in try tx.deleteSettledWorkflows(completedBefore: before, limit: 1000) }
                if deleted > 0 { logger.info("retention: deleted settled workflows", metadata: ["count": "\(deleted)"]) }
                if deleted == 1000 { continue }
                try await Task.sleep(for: .milliseconds(min(60_000, max(retention / 2, 100))))
            } catch is CancellationError {
                return
            } catch {
                logger.warning("retention failed; will retry", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }

    /// Fires due timers, a batch at a time, until cancelled.
    private func fireTimers(store: any PromiseStore, relay: OutboxRelay) async {
        let kernel = Kernel(configuration.kernel)
        var limit = 1000
        var failing = false
        while !Task.isCancelled {
            do {
                let now = Self.nowMillis()
                let batch = limit
                let (fired, next) = try await relay.write { tx in
                    let (fired, next, effects) = try kernel.fireTimers(tx: tx, now: now, limit: batch)
                    try tx.enqueue(effects)
                    return (fired, next)
                }
                if failing { logger.notice("timers fire again") }
                (limit, failing) = (1000, false)
                if fired == batch { continue }
                let wait = min(max((next ?? Int64.max) - Self.nowMillis(), 5), 250)
                try await Task.sleep(for: .milliseconds(wait))
            } catch is CancellationError {
                return
            } catch let e as StoreError where e.code == .storageUnavailable {
                // The storage's fault: the same timers fire once it takes writes again.
                if !failing { logger.warning("firing timers failed; will retry", metadata: ["error": "\(e)"]) }
                failing = true
                try? await Task.sleep(for: .milliseconds(250))
            } catch {
                // A timer whose consequences cannot be written fails alone: fire one at a time,
                // and set aside the first due if it fails on its own.
                if limit > 1 {
                    limit = 1
                    continue
                }
                do {
                    if let dropped = try await relay.write({ tx in try tx.dropNextTimer() }) {
                        logger.error("a timer could not fire and is dropped", metadata: [
                            "promise or task": "\(dropped.id)", "kind": "\(dropped.kind.map { "\($0)" } ?? "unknown")", "error": "\(error)",
                        ])
                    }
                } catch {
                    try? await Task.sleep(for: .milliseconds(250))
                }
                limit = 1000
            }
        }
    }
}
