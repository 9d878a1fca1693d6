import AMQP
import Foundation
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
    let logger: Logger
    typealias Function = @Sendable (Context, String) async throws -> String
    let functions = Mutex<[String: Function]>([:])

    /// Connects to the broker.
    /// - Parameters:
    ///   - group: the worker group to serve with ``run()``; clients that only start workflows can leave the default.
    ///   - prefix: the prefix of Warren's exchange and queues (as `warren serve --prefix`).
    public init(url: String, group: String = "workers", prefix: String = "warren", concurrency: Int = 16,
                logger: Logger = Logger(label: "warren.worker")) async throws {
        self.group = group
        self.concurrency = max(1, concurrency)
        self.logger = logger
        self.workerID = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UUID().uuidString.prefix(8))"
        self.messenger = try await Messenger.connect(url: url, name: "warren-\(group)", prefix: prefix, logger: logger)
    }

    /// Registers a workflow under `name`: an async function of a context and one Codable argument.
    public func register<A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, _ function: @escaping @Sendable (Context, A) async throws -> R
    ) {
        functions.withLock {
            $0[name] = { ctx, argumentJSON in
                let argument = try Wire.decode(A.self, from: argumentJSON)
                return try Wire.json(try await function(ctx, argument))
            }
        }
    }

    /// Closes the connection.
    public func close() async {
        await messenger.close()
    }

    // MARK: Client

    /// Starts workflow `id` running `function(argument)` on the workers of `target` and waits for
    /// its result, by listening for its settled event (never by polling). Starting an id that
    /// exists returns that workflow's result; another function or argument under it is refused.
    public func rpc<A: Encodable, R: Decodable>(_ id: String, _ function: String, _ argument: A,
                                                target: String = "workers", timeout: Duration = .seconds(86_400),
                                                as: R.Type = R.self) async throws -> R {
        let watch = try await messenger.watchSettled(id)
        let (promise, _): (PromiseSnapshot, Bool)
        do {
            (promise, _) = try await messenger.promiseRequest("workflow.start", Wire.object([
                ("id", Wire.quote(id)), ("function", Wire.quote(function)), ("args", "[" + (try Wire.json(argument)) + "]"),
                ("group", Wire.quote(target)), ("timeout", Wire.quote("\(max(1, timeout.components.seconds))s")),
            ]))
        } catch {
            await watch.cancel()
            throw error
        }
        let settled = promise.isSettled ? promise : try await watch.wait()
        if promise.isSettled { await watch.cancel() }
        switch settled.state {
        case "RESOLVED": return try Wire.decode(R.self, from: settled.value?.data)
        default: throw WarrenError(.failed, "workflow \(id) ended \(settled.state): \(settled.value?.data ?? "")")
        }
    }

    /// Settles promises from outside a workflow.
    public var promises: Promises { Promises(messenger: messenger) }

    /// The promise operations of the client.
    public struct Promises: Sendable {
        let messenger: Messenger

        /// Resolves promise `id` with `value`; the first outcome wins.
        @discardableResult
        public func resolve<T: Encodable>(_ id: String, value: T) async throws -> PromiseSnapshot {
            try await messenger.promiseRequest("promise.resolve", Wire.object([("id", Wire.quote(id)), ("value", try Wire.json(value))])).promise
        }

        /// Rejects promise `id` with `value` as the reason.
        @discardableResult
        public func reject<T: Encodable>(_ id: String, value: T) async throws -> PromiseSnapshot {
            try await messenger.promiseRequest("promise.reject", Wire.object([("id", Wire.quote(id)), ("value", try Wire.json(value))])).promise
        }
    }
}
