import AMQP
import Foundation
@_exported import WarrenContract
@_exported import WarrenLinks
import Logging
import ServiceLifecycle
import Synchronization

/// Warren's worker SDK and client: register workflows and serve them for a group, or start
/// workflows and settle promises from anywhere.
///
/// ```swift
/// let warren = try await Warren(url: "amqp://guest:guest@localhost:5672/%2f", group: "workers")
/// warren.register("foo-workflow") { (ctx: Context, workflowID: String) async throws -> String in
///     let approval = try await ctx.promise()
///     _ = try await ctx.run(sendEmail, approval.id)
///     let decision: String = try await approval.value()
///     return "foo workflow \(workflowID) complete: \(decision)"
/// }
/// try await warren.run()   // a swift-service-lifecycle Service: consumes the group's tasks
/// ```
public final class Warren: Service {
    /// The worker group this instance serves.
    public let group: String
    /// How many tasks run at once.
    public let concurrency: Int
    let messenger: Messenger
    let workerID: String
    /// When a run lets go of its execute message and takes a lease, and how long a lease lasts.
    let leaseAfter: Duration
    let lease: Duration
    /// The runs that may outlast `leaseAfter`.
    let leases = LeaseKeeper()
    let logger: Logger
    /// Signs approval links (``DurablePromise/link(outcomes:expires:)``), if configured.
    public let links: LinkSigner?
    /// The queues it declares (the group's): their type and arguments, as the orchestrator's.
    public let topology: Topology
    /// How much of the topology it declares (`WARREN_DECLARE`): its group's queue and binding
    /// (`all`), nothing but a check that the queue exists (`verify`), or nothing (`none`).
    public let declare: Topology.Declare
    /// The broker user whose execute messages this worker runs (their broker-validated
    /// `user_id`); `nil` runs anyone's.
    public let orchestratorUser: String?
    /// The workflow functions registered on this instance.
    let registry = Registry()
    /// The most calls one run of a workflow may make.
    public let maximumCallsPerRun: Int

    /// Connects to the broker.
    /// - Parameters:
    ///   - group: the worker group to serve with ``run()``; clients that only start workflows can leave the default.
    ///   - prefix: the prefix of Warren's exchange and queues (as `warren serve --prefix`).
    ///   - leaseAfter: a run still going after this long lets go of its execute message (the
    ///     broker's `consumer_timeout` would otherwise close the channel) and holds the task with a
    ///     lease it renews instead; keep it well under the broker's `consumer_timeout` (30 minutes
    ///     by default).
    ///   - lease: how long a lease lasts without renewal: if the worker dies during a long run,
    ///     another worker gets the task this long after its last renewal. Renewed every third of it.
    ///   - links: signs approval links: the orchestrator's public address and a key it holds
    ///     (`warren serve --link-keys-file`). By default from the environment (`WARREN_LINK_URL`,
    ///     and `WARREN_LINK_KEY` or `WARREN_LINK_KEY_FILE`); without it, `link` throws.
    ///   - queueType: the type of the group's queue, as `warren serve --queue-type`: by default
    ///     `WARREN_QUEUE_TYPE`, else classic; quorum on a cluster.
    ///   - declare: what of the topology to declare, as `warren serve --declare`: by default
    ///     `WARREN_DECLARE`, else `all`.
    ///   - orchestratorUser: the broker user the orchestrator logs in as: execute messages from
    ///     anyone else (their `user_id`, which the broker validates) are refused and dead-lettered.
    ///     By default `WARREN_ORCHESTRATOR_USER`, else this connection's own user; `"*"` runs
    ///     execute messages from anyone (only where the broker's permissions keep others from
    ///     publishing `execute.<group>`).
    ///   - maximumCallsPerRun: the most calls (steps, promises, waits) one run of a workflow may
    ///     make: a run that passes it blocks, with a reason that says to end a long loop with
    ///     ``Context/continueAsNew(_:as:)``.
    public init(url: String, group: String = "workers", prefix: String = "warren", concurrency: Int = 16,
                leaseAfter: Duration = .seconds(60), lease: Duration = .seconds(60), links: LinkSigner? = nil,
                queueType: Topology.QueueType? = nil, declare: Topology.Declare? = nil,
                orchestratorUser: String? = nil, maximumCallsPerRun: Int = Context.defaultMaximumCalls,
                logger: Logger = Logger(label: "warren.worker")) async throws {
        self.maximumCallsPerRun = max(1, maximumCallsPerRun)
        let env = ProcessInfo.processInfo.environment
        guard let type = queueType ?? Topology.QueueType(rawValue: env["WARREN_QUEUE_TYPE"] ?? "classic") else {
            throw WarrenError(.configuration, "WARREN_QUEUE_TYPE must be classic or quorum, not '\(env["WARREN_QUEUE_TYPE"] ?? "")'")
        }
        guard let mode = declare ?? Topology.Declare(rawValue: env["WARREN_DECLARE"] ?? "all") else {
            throw WarrenError(.configuration, "WARREN_DECLARE must be all, verify or none, not '\(env["WARREN_DECLARE"] ?? "")'")
        }
        let limit = Int64(env["WARREN_DELIVERY_LIMIT"] ?? "") ?? Topology.defaultDeliveryLimit
        self.topology = Topology(prefix: prefix, queueType: type, deliveryLimit: limit)
        self.declare = mode
        if let links {
            self.links = links
        } else {
            do {
                self.links = try LinkSigner.fromEnvironment()
            } catch {
                throw WarrenError(.configuration, "approval links: \(error.message)")
            }
        }
        self.group = group
        self.leaseAfter = max(leaseAfter, .milliseconds(100))
        self.lease = max(lease, .milliseconds(300))
        self.concurrency = max(1, concurrency)
        self.logger = logger
        self.workerID = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UUID().uuidString.prefix(8))"
        self.messenger = try await Messenger.connect(url: url, name: "warren-\(group)", prefix: prefix, declare: mode, logger: logger)
        // An empty setting is no setting (a variable exported empty must not refuse every execute message).
        let configured = (orchestratorUser ?? ProcessInfo.processInfo.environment["WARREN_ORCHESTRATOR_USER"]).flatMap { $0.isEmpty ? nil : $0 }
        let trusted = configured ?? messenger.user
        self.orchestratorUser = trusted == "*" ? nil : trusted
    }

    /// Registers a workflow under `name`: an async function of a context and one Codable argument.
    public func register<A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, _ function: @escaping @Sendable (Context, A) async throws -> R
    ) {
        registry.register(name, version: nil, function)
    }

    /// Registers version `version` of workflow `name`, for deploys under waiting workflows
    /// (docs/workflows.md#code-versions). A workflow records the version it started under (the
    /// highest this worker serves, when it first runs) and its tasks go only to workers that serve
    /// that version: a worker serving versions 1 and 2 finishes the workflows of both, each under
    /// its own code, and one serving only version 2 never takes a workflow of version 1, which
    /// waits in its version's queue for a worker that has it.
    ///
    /// ```swift
    /// warren.register("refund", version: 1, refundV1)   // until no refund of version 1 is left
    /// warren.register("refund", version: 2, refundV2)
    /// ```
    ///
    /// `version` is at least 1, and `name` uses letters, digits and `-_.:/@+=~` (it names a queue);
    /// ``run()`` throws a configuration error otherwise. A workflow that started before its function
    /// had versions runs on the function registered without one.
    public func register<A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, version: Int, _ function: @escaping @Sendable (Context, A) async throws -> R
    ) {
        registry.register(name, version: version, function)
    }

    /// The code versions registered, which ``run()`` consumes a queue for each of; throws for a
    /// version that cannot name one.
    func codeVersions() throws -> [CodeVersion] {
        try registry.versions.map { name, version in
            guard let code = CodeVersion(function: name, version: version) else {
                throw WarrenError(.configuration, "register(\"\(name)\", version: \(version)): "
                    + (CodeVersion.problem(function: name, version: version) ?? "not a code version"))
            }
            let queue = topology.groupQueueName(group, code: code)
            guard queue.utf8.count <= 255 else {
                throw WarrenError(.configuration, "register(\"\(name)\", version: \(version)): its queue's name '\(queue)' is "
                    + "\(queue.utf8.count) bytes; AMQP allows 255 (use a shorter group, prefix or function name)")
            }
            return code
        }
    }

    /// How this worker runs a task: with its functions, reporting over its connection.
    var runner: TaskRunner {
        TaskRunner(registry: registry, transport: messenger, workerID: workerID, group: group, links: links, logger: logger,
                   clock: { Int64(Date().timeIntervalSince1970 * 1000) }, maximumCallsPerRun: maximumCallsPerRun)
    }

    /// Closes the connection.
    public func close() async {
        await messenger.close()
    }

    // MARK: Client

    /// Starts workflow `id` running `function(argument)` on the workers of `target` and waits for
    /// its result. The orchestrator sends the settled workflow to this client when it completes
    /// (a subscription kept with the promise; nothing polls). Starting an id that exists returns
    /// that workflow's result, running or finished, without running it twice; another function or
    /// argument under it is refused.
    public func rpc<A: Encodable, R: Decodable>(_ id: String, _ function: String, _ argument: A,
                                                target: String = "workers", timeout: Duration = .seconds(86_400),
                                                as: R.Type = R.self) async throws -> R {
        let settled = try await messenger.settledRequest(.startWorkflow, try Self.startBody(
            id, function, argument, target: target, timeout: timeout, subscribe: true), timeout: timeout)
        return try Context.outcome(of: settled, as: R.self)
    }

    /// Runs workflow `id` with a function registered on this instance's group (``group``) and
    /// waits for its result: ``rpc(_:_:_:target:timeout:as:)`` with this group as the target.
    public func run<A: Encodable, R: Decodable>(_ id: String, _ function: String, _ argument: A,
                                                timeout: Duration = .seconds(86_400), as: R.Type = R.self) async throws -> R {
        try await rpc(id, function, argument, target: group, timeout: timeout, as: R.self)
    }

    /// Starts workflow `id` on this instance's group and returns a handle to its result.
    public func beginRun<A: Encodable>(_ id: String, _ function: String, _ argument: A,
                                       timeout: Duration = .seconds(86_400)) async throws -> WorkflowHandle {
        try await beginRpc(id, function, argument, target: group, timeout: timeout)
    }

    /// Starts workflow `id` (or finds it, if it exists with the same function and argument) and
    /// returns a handle to its result. The workflow is durable when this returns.
    public func beginRpc<A: Encodable>(_ id: String, _ function: String, _ argument: A,
                                       target: String = "workers", timeout: Duration = .seconds(86_400)) async throws -> WorkflowHandle {
        _ = try await messenger.promiseRequest(.startWorkflow, try Self.startBody(
            id, function, argument, target: target, timeout: timeout, subscribe: false))
        return WorkflowHandle(id: id, messenger: messenger)
    }

    /// Cancels workflow `id`: it becomes `REJECTED_CANCELED` at once, what it waits for is
    /// canceled (child workflows, sleeps, promises for a person; detached children are not), and
    /// its code runs once more with ``Context/isCanceled`` set, seeing the cancellation at its
    /// `await`, to compensate. Returns the workflow's promise; cancelling it again changes nothing.
    @discardableResult
    public func cancel(_ id: String, reason: String? = nil) async throws -> PromiseRecord {
        try await messenger.promiseRequest(.cancelWorkflow, Wire.object([("id", Wire.quote(id)), ("reason", reason.map(Wire.quote))])).promise
    }

    /// A handle to workflow `id`, started anywhere: attach to it, running or finished.
    public func get(_ id: String) -> WorkflowHandle {
        WorkflowHandle(id: id, messenger: messenger)
    }

    static func startBody<A: Encodable>(_ id: String, _ function: String, _ argument: A, target: String,
                                        timeout: Duration, subscribe: Bool) throws -> String {
        Wire.object([
            ("id", Wire.quote(id)), ("function", Wire.quote(function)), ("args", "[" + (try Wire.json(argument)) + "]"),
            ("group", Wire.quote(target)), ("timeout", Wire.quote("\(max(1, timeout.components.seconds))s")),
            ("subscribe", subscribe ? "true" : nil),
        ])
    }

    /// A signed approval link for promise `id` (one made with `promises.create`, or by a
    /// workflow): whoever opens it can settle that promise with one of `outcomes`, until
    /// `expires`. See ``DurablePromise/link(outcomes:expires:)``.
    public func link(for id: String, outcomes: [String] = ["approved", "rejected"], expires: Date) throws -> String {
        try Self.link(links, id, outcomes: outcomes, expires: Int64(expires.timeIntervalSince1970 * 1000))
    }

    static func link(_ signer: LinkSigner?, _ id: String, outcomes: [String], expires: Int64) throws -> String {
        guard let signer else {
            throw WarrenError(.configuration, "approval links need WARREN_LINK_URL and WARREN_LINK_KEY (or the links: parameter "
                + "of Warren(url:…)), with a key the orchestrator holds (warren serve --link-keys-file)")
        }
        do {
            return try signer.link(promiseID: id, outcomes: outcomes, expires: expires)
        } catch {
            throw WarrenError(.configuration, "approval link for \(id): \(error.message)")
        }
    }

    /// The promise operations of the client.
    public var promises: Promises { Promises(messenger: messenger) }

    /// The promise operations of the client, over AMQP request/reply.
    public struct Promises: Sendable {
        let messenger: Messenger

        /// Creates promise `id`; with the same `idempotencyKey`, creating it again returns it.
        @discardableResult
        public func create(_ id: String, timeout: Duration = .seconds(86_400), idempotencyKey: String? = nil,
                           tags: [String: String] = [:]) async throws -> PromiseRecord {
            try await messenger.promiseRequest(.createPromise, Wire.object([
                ("id", Wire.quote(id)), ("timeout", Wire.quote("\(max(1, timeout.components.seconds))s")),
                ("idempotencyKey", idempotencyKey.map(Wire.quote)), ("tags", tags.isEmpty ? nil : try Wire.json(tags)),
            ])).promise
        }

        /// The promise `id` as it is now.
        public func get(_ id: String) async throws -> PromiseRecord {
            try await messenger.promiseRequest(.getPromise, Wire.object([("id", Wire.quote(id))])).promise
        }

        /// Resolves promise `id` with `value`; the first outcome wins.
        @discardableResult
        public func resolve<T: Encodable>(_ id: String, value: T) async throws -> PromiseRecord {
            try await messenger.promiseRequest(.resolvePromise, Wire.object([("id", Wire.quote(id)), ("value", try Wire.json(value))])).promise
        }

        /// Rejects promise `id` with `value` as the reason.
        @discardableResult
        public func reject<T: Encodable>(_ id: String, value: T) async throws -> PromiseRecord {
            try await messenger.promiseRequest(.rejectPromise, Wire.object([("id", Wire.quote(id)), ("value", try Wire.json(value))])).promise
        }

        /// Cancels promise `id`.
        @discardableResult
        public func cancel(_ id: String) async throws -> PromiseRecord {
            try await messenger.promiseRequest(.cancelPromise, Wire.object([("id", Wire.quote(id))])).promise
        }

        /// One page of the promises whose id matches `pattern` (`*` matches any run of
        /// characters), in id order; pass the returned cursor for the next page.
        public func search(_ pattern: String = "*", state: String? = nil, tags: [String: String] = [:], limit: Int = 100,
                           cursor: String? = nil) async throws -> (promises: [PromiseRecord], cursor: String?) {
            let reply = try JSONDecoder().decode(Wire.SearchReply.self, from: Data(try await messenger.request(.searchPromises, Wire.object([
                ("id", Wire.quote(pattern)), ("state", state.map(Wire.quote)), ("tags", tags.isEmpty ? nil : try Wire.json(tags)),
                ("limit", "\(limit)"), ("cursor", cursor.map(Wire.quote)),
            ])).body))
            if let error = reply.error { throw WarrenError(.refused, "promise.search: \(error.code): \(error.message)") }
            return (reply.promises ?? [], reply.cursor)
        }
    }
}

/// A workflow started elsewhere or earlier: wait for its result.
public struct WorkflowHandle: Sendable {
    /// The workflow's id.
    public let id: String
    let messenger: Messenger

    /// The workflow's result, once it completes (at once if it has). The orchestrator sends the
    /// settled workflow to this client; nothing polls.
    public func result<R: Decodable>(as: R.Type = R.self, timeout: Duration = .seconds(86_400)) async throws -> R {
        let settled = try await messenger.settledRequest(.subscribe, Wire.object([("id", Wire.quote(id))]), timeout: timeout)
        return try Context.outcome(of: settled, as: R.self)
    }
}
