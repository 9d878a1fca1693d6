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
import WarrenStore

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
    private func startHTTP(store: SQLiteStore, batcher: WriteBatcher) async throws -> (any Service)? {
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
        let lock = try DatabaseLock(databasePath: config.databasePath)
        defer { withExtendedLifetime(lock) {} }
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
            "database": "\(config.databasePath)", "queue": "\(config.orchestratorQueue)",
            "http": "\(config.httpPort.map { "\(config.httpHost):\($0)" } ?? "off")",
        ])

        let failure: (any Error)? = await withTaskGroup(of: Void.self) { outer in
            outer.addTask { await relay.run() }  // ends after finish(), once the outbox is drained
            outer.addTask { await batcher.run() }  // ends after finish(), once its queue is applied
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
            batcher.finish()
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
    private func consume(channel: AMQPChannel, store: SQLiteStore, relay: OutboxRelay) async throws {
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
    private func waitForStorage(_ store: SQLiteStore) async throws {
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

    /// The delivery fields `apply` needs, copied so the write closure can be `Sendable`.
    struct Incoming: Sendable {
        let delivery: AMQPDelivery
        /// Whether its `reply_to` names a reply queue (or it has none).
        let replyToIsAllowed: Bool

        init(delivery: AMQPDelivery, config: OrchestratorConfiguration) {
            self.delivery = delivery
            let r = delivery.properties.replyTo ?? ""
            replyToIsAllowed = r.isEmpty || config.isReplyQueue(r)
        }

        /// Where to answer: its `reply_to`, only when that names a reply queue (a command naming
        /// any other queue is refused before it is applied: no caller can make the orchestrator
        /// publish into a queue of its choosing).
        var replyTo: String? {
            guard replyToIsAllowed else { return nil }
            return delivery.properties.replyTo.flatMap { $0.isEmpty ? nil : $0 }
        }
        var correlationID: String? { delivery.properties.correlationID }
        /// The sender's broker user, as the broker validated it (`user_id`), if it said one.
        var user: String? { delivery.properties.userID.flatMap { $0.isEmpty ? nil : $0 } }

        func requireReplyTo() throws -> String {
            guard let replyTo else { throw StoreError(.invalidArgument, "this command answers in a reply: set the reply_to property") }
            return replyTo
        }

        /// The sender as a subscriber: its `reply_to` and `correlation_id`.
        func subscriber() throws -> Subscriber {
            guard let replyTo, let correlationID, !correlationID.isEmpty else {
                throw StoreError(.invalidArgument, "a subscription answers in a reply: set the reply_to and correlation_id properties")
            }
            return Subscriber(address: replyTo, correlation: correlationID)
        }
    }

    /// Applies one decoded message and writes what it causes to the outbox.
    static func apply(_ m: InboundMessage, from incoming: Incoming, tx: any StoreTransaction, now: Int64,
                      config: OrchestratorConfiguration, logger: Logger) throws {
        do {
            try authorize(m, from: incoming, tx: tx, now: now, config: config)
            switch m {
            case .createPromise(let r):
                let result = try tx.createPromise(r, now: now)
                if let replyTo = incoming.replyTo {
                    try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: result.promise, created: result.created))
                }
            case .startWorkflow(let r, let function, let subscribe):
                let subscriber = subscribe ? try incoming.subscriber() : nil
                let result = try startWorkflow(r, function: function, tx: tx, now: now, config: config)
                if let subscriber {
                    try Self.subscribe(subscriber, to: r.id, tx: tx, now: now)
                } else if let replyTo = incoming.replyTo {
                    try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: result.promise, created: result.created))
                }
            case .getPromise(let id):
                let replyTo = try incoming.requireReplyTo()
                guard let p = try tx.promise(id: id, now: now) else {
                    throw StoreError(.notFound, "no promise with id '\(id)'; create it first (ids are case-sensitive)")
                }
                try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: p))
            case .subscribe(let id):
                try Self.subscribe(try incoming.subscriber(), to: id, tx: tx, now: now)
            case .searchPromises(let search):
                let replyTo = try incoming.requireReplyTo()
                try tx.enqueue(Outbound.searchReply(to: replyTo, correlationID: incoming.correlationID, page: try tx.search(search, now: now)))
            case .settlePromise(let r):
                try refuseInternal(r.id, tx: tx, now: now)
                let result = try tx.settlePromise(r, now: now)
                if result.settled { try settled(result, tx: tx, now: now, config: config) }
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
            case let .suspendTask(id, version, worker, awaiting, steps):
                if case .resumed(let task) = try tx.suspendTask(id: id, version: version, worker: worker, awaiting: awaiting, steps: steps, now: now) {
                    try execute(task, tx: tx, now: now, config: config)
                }
            case let .completeTask(id, version, worker, settle, steps):
                let result = try tx.completeTask(id: id, version: version, worker: worker, settle: settle, steps: steps, now: now)
                if result.settled { try settled(result, tx: tx, now: now, config: config) }
            case let .recordProgress(id, version, worker, steps, lease):
                try tx.recordProgress(id: id, version: version, worker: worker, steps: steps, lease: lease, now: now)
            case let .retryTask(id, version, worker, delay, failedStep, steps):
                _ = try tx.retryTask(id: id, version: version, worker: worker, due: now + delay, failedStep: failedStep, steps: steps, now: now)
            }
        } catch let e as StoreError where e.code != .storageUnavailable {
            if let replyTo = incoming.replyTo {
                try tx.enqueue(Outbound.reply(to: replyTo, correlationID: incoming.correlationID, promise: e.promise,
                                              error: (e.code.description, e.message)))
            } else if e.code == .alreadySettled || e.code == .staleTask || e.code == .invalidTaskState {
                // The first outcome won, or a worker reported for a version that no longer counts
                // (a zombie, the loser of a race): not an error of the message.
                logger.debug("command refused", metadata: ["error": "\(e.message)"])
            } else {
                // A caller's mistake with no one to answer: kept, with its reason, where an
                // operator looks.
                let reason = e.code == .notFound ? "unknown promise: \(e.message)" : "\(e.code): \(e.message)"
                try tx.enqueue(Outbound.deadLetter(incoming.delivery, reason: reason, config: config))
            }
        }
    }

    /// Refuses, when `--group-users` is set, a report from a broker user not allowed for the
    /// task's group, and a promise or child workflow created inside a workflow by such a user:
    /// a worker of one group cannot settle, read or extend another group's workflows.
    static func authorize(_ m: InboundMessage, from incoming: Incoming, tx: any StoreTransaction, now: Int64,
                          config: OrchestratorConfiguration) throws {
        guard config.groupUsers != nil else { return }
        let (taskID, what): (String, String)
        switch m {
        case let .claimTask(id, _, _, _), let .suspendTask(id, _, _, _, _), let .completeTask(id, _, _, _, _),
             let .recordProgress(id, _, _, _, _), let .retryTask(id, _, _, _, _, _):
            (taskID, what) = (id, "report for task '\(id)'")
        case .createPromise(let r), .startWorkflow(let r, _, _):
            // The nearest enclosing workflow owns the id: a child workflow (`<root>.<n>`, perhaps
            // of another group) owns what its own code creates (`<root>.<n>.<m>`).
            var owner = r.id
            var found: TaskRecord? = nil
            while let dot = owner.lastIndex(of: ".") {
                owner = String(owner[..<dot])
                if let t = try tx.task(id: owner) { found = t; break }
            }
            guard let found else { return }
            guard config.mayAct(user: incoming.user, forGroup: found.group) else {
                throw StoreError(.forbidden, "the broker user \(incoming.user.map { "'\($0)'" } ?? "(no user_id property)") may not create "
                    + "'\(r.id)' inside workflow '\(owner)' of group '\(found.group)' (--group-users)")
            }
            return
        default:
            return
        }
        guard let task = try tx.task(id: taskID) else { return }  // the command fails on its own (notFound)
        guard config.mayAct(user: incoming.user, forGroup: task.group) else {
            throw StoreError(.forbidden, "the broker user \(incoming.user.map { "'\($0)'" } ?? "(no user_id property)") may not \(what) "
                + "of group '\(task.group)' (--group-users)")
        }
    }

    /// Refuses to settle, through a public API, a promise of a workflow's machinery (its result, a
    /// step, a timer): only task completions and timers settle those.
    static func refuseInternal(_ id: String, tx: any StoreTransaction, now: Int64) throws {
        guard let p = try tx.promise(id: id, now: now), PromiseRules.isInternal(p) else { return }
        let what = p.tags["warren:function"] != nil ? "the result of workflow '\(id)'" : "a step, timer or choice of workflow '\(PromiseRules.root(of: id))'"
        throw StoreError(.internalPromise, "'\(id)' is \(what): only the workflow's own run settles it; "
            + "settle the promise the workflow waits on (made with ctx.promise) instead", promise: p)
    }

    /// Creates a workflow's root promise and task and sends its execute message; the same
    /// workflow again is found, another function or arguments under its id refused.
    static func startWorkflow(_ r: CreatePromise, function: String, tx: any StoreTransaction, now: Int64,
                              config: OrchestratorConfiguration) throws -> CreateResult {
        let result = try tx.createPromise(r, now: now)
        if !result.created, result.promise.param.data != r.param.data {
            throw StoreError(.alreadyExists, "workflow '\(r.id)' exists with another function or arguments than \(function)(…)", promise: result.promise)
        }
        if let task = result.task, result.created {
            // A new workflow has no children yet: the execute message is all a worker needs.
            try send(Outbound.execute(task, promise: result.promise, children: [], config: config), for: task, tx: tx, now: now, config: config)
        }
        return result
    }

    /// Answers `subscriber` with the promise once it is settled: now, or when it settles.
    static func subscribe(_ subscriber: Subscriber, to id: String, tx: any StoreTransaction, now: Int64) throws {
        let p = try tx.subscribe(promiseID: id, address: subscriber.address, correlation: subscriber.correlation, now: now)
        if p.state.isSettled { try tx.enqueue(Outbound.notify(subscriber, of: p)) }
    }

    /// What a settlement causes: its event, the answers to its subscribers, and an execute
    /// message for every resumed task.
    static func settled(_ result: SettleResult, tx: any StoreTransaction, now: Int64, config: OrchestratorConfiguration) throws {
        try tx.enqueue(Outbound.settledEvent(result.promise, config: config))
        for subscriber in result.subscribers { try tx.enqueue(Outbound.notify(subscriber, of: result.promise)) }
        for task in result.resumedTasks { try execute(task, tx: tx, now: now, config: config) }
    }

    /// An execute message for a task handed out (again): its root promise and every promise
    /// below it, so that the worker replays without asking.
    static func execute(_ task: TaskRecord, tx: any StoreTransaction, now: Int64, config: OrchestratorConfiguration) throws {
        guard let p = try tx.promise(id: task.id, now: now) else { return }
        try send(Outbound.execute(task, promise: p, children: try children(of: task.id, tx: tx, now: now), config: config),
                 for: task, tx: tx, now: now, config: config)
    }

    /// Enqueues an execute message, or, when it is larger than a message may be (a workflow whose
    /// history outgrew `maximumMessageBytes`), rejects the workflow with the reason: it could never
    /// be run again, and waiting would only hide that.
    static func send(_ message: OutboxMessage, for task: TaskRecord, tx: any StoreTransaction, now: Int64,
                     config: OrchestratorConfiguration) throws {
        guard message.body.count > config.maximumMessageBytes else {
            try tx.enqueue(message)
            return
        }
        let reason = "the workflow's execute message (its history) is \(message.body.count) bytes; the limit is "
            + "\(config.maximumMessageBytes) (--max-message-bytes, below the broker's max_message_size): keep large data "
            + "outside the workflow and pass references"
        let value = PromiseValue(data: JSONValue.object(["error": .string(reason)]).jsonText)
        let result = try tx.settlePromise(SettlePromise(id: task.id, completion: .reject, value: value), now: now)
        if result.settled { try settled(result, tx: tx, now: now, config: config) }
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
    private func fireTimers(store: SQLiteStore, relay: OutboxRelay) async {
        let config = configuration
        var limit = 1000
        var failing = false
        while !Task.isCancelled {
            do {
                let now = Self.nowMillis()
                let batch = limit
                let (fired, next) = try await relay.write { tx in
                    let fired = try tx.fireTimers(now: now, limit: batch)
                    for f in fired {
                        switch f {
                        case .promiseTimeout(let result): try Self.settled(result, tx: tx, now: now, config: config)
                        case .taskRetry(let task), .leaseExpired(let task): try Self.execute(task, tx: tx, now: now, config: config)
                        }
                    }
                    return (fired.count, try tx.nextTimerDue())
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
                            "promise or task": "\(dropped.id)", "kind": "\(dropped.kind)", "error": "\(error)",
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
