import Foundation
import Logging
import Synchronization

/// The workflow functions a worker (or a test environment) has, by name and version.
package final class Registry: Sendable {
    typealias Function = @Sendable (Context, String) async throws -> String
    /// The functions registered without a version, by name.
    private let functions = Mutex<[String: Function]>([:])
    /// The functions registered with a version, by name and version.
    private let versioned = Mutex<[String: [Int: Function]]>([:])

    package init() {}

    package func register<A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, version: Int?, _ function: @escaping @Sendable (Context, A) async throws -> R
    ) {
        let erased: Function = { ctx, argumentJSON in
            let argument = try Wire.decode(A.self, from: argumentJSON)
            return try Wire.json(try await function(ctx, argument))
        }
        if let version {
            versioned.withLock { $0[name, default: [:]][version] = erased }
        } else {
            functions.withLock { $0[name] = erased }
        }
    }

    /// The (function, version) pairs registered with a version, in order.
    var versions: [(String, Int)] {
        versioned.withLock { v in v.flatMap { name, versions in versions.keys.map { (name, $0) } } }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    enum Choice {
        /// Run this function; record `pin` first (a first run of a versioned function).
        case run(Function, pin: CodeVersion?)
        /// This worker cannot run it, for this reason.
        case block(String)
    }

    /// Which registered function runs workflow `id` of function `name`, given its history:
    ///
    /// - one that recorded a code version runs on that version, or nowhere here;
    /// - a new one (no history) of a versioned function starts under the highest version here;
    /// - one that started before its function had versions (a history, no marker), and every
    ///   workflow of a function without versions, runs on the function registered without one.
    func choose(_ name: String, for id: String, history: [PromiseRecord], here: String) -> Choice {
        let versions = versioned.withLock { $0[name] ?? [:] }
        if let pin = CodeVersion.recorded(by: id, in: history) {
            if let function = versions[pin.version] { return .run(function, pin: nil) }
            let serves = versions.keys.sorted().map { "v\($0)" }.joined(separator: ", ")
            return .block("workflow \(id) started under \(pin), which \(here) does not serve (it serves \(name) "
                + "\(serves.isEmpty ? "without versions" : serves)); register(\"\(name)\", version: \(pin.version)) on a worker")
        }
        if history.isEmpty, let newest = versions.keys.max(), let function = versions[newest] {
            return .run(function, pin: CodeVersion(function: name, version: newest))
        }
        if let function = functions.withLock({ $0[name] }) { return .run(function, pin: nil) }
        if !versions.isEmpty {
            return .block("workflow \(id) started before \(name) had versions, and \(here) has \(name) only with versions "
                + "(\(versions.keys.sorted().map { "v\($0)" }.joined(separator: ", "))); register the code it started under "
                + "without a version: register(\"\(name)\") { ... }")
        }
        let known = Set(functions.withLock { Array($0.keys) } + versioned.withLock { Array($0.keys) }).sorted()
        return .block("no function '\(name)' is registered on \(here) (it has: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
    }
}

/// Runs one task: its workflow from the top, replaying what is recorded, to its next suspension
/// or its end, and reports the outcome through `transport` (with the fencing: task, version,
/// worker). The worker runs it for each execute message over AMQP; the test kit runs it in-process.
package struct TaskRunner: Sendable {
    let registry: Registry
    let transport: any Transport
    let workerID: String
    let group: String
    let links: LinkSigner?
    let logger: Logger
    /// The time a run's `ctx.now()` records, in epoch milliseconds.
    let clock: @Sendable () -> Int64
    /// The most calls one run may make before it blocks.
    let maximumCallsPerRun: Int

    package init(registry: Registry, transport: any Transport, workerID: String, group: String, links: LinkSigner?, logger: Logger,
                 clock: @escaping @Sendable () -> Int64, maximumCallsPerRun: Int = Context.defaultMaximumCalls) {
        self.maximumCallsPerRun = maximumCallsPerRun
        self.registry = registry
        self.transport = transport
        self.workerID = workerID
        self.group = group
        self.links = links
        self.logger = logger
        self.clock = clock
    }

    /// Runs the task of an execute message's body (`task.execute`, docs/messages.md).
    package func run(executeBody body: [UInt8]) async throws {
        try await run(try JSONDecoder().decode(Wire.TaskMessage.self, from: Data(body)))
    }

    func run(_ message: Wire.TaskMessage) async throws {
        let task = message.task
        let invocation = try Wire.decode(Wire.Invocation.self, from: message.promise.param.data)
        let ctx = Context(id: task.id, history: message.children, retry: task.retry, transport: transport, links: links,
                          progress: ProgressReporter(taskID: task.id, version: task.version, worker: workerID, transport: transport),
                          canceled: message.promise.state == .rejectedCanceled, logger: logger, clock: clock,
                          maximumCalls: maximumCallsPerRun)
        var outcome: (kind: MessageKind, fields: [(String, String?)])
        switch registry.choose(invocation.function, for: task.id, history: message.children, here: "worker \(workerID) of group '\(group)'") {
        case .run(let function, let pin):
            // A first run of a versioned function records the version it starts under.
            if let pin { ctx.record(CodeVersion.markerID(of: task.id), kind: CodeVersion.markerKind, state: "resolved", value: pin.markerValue) }
            // A continued run starts with the arguments its marker holds.
            let argument = ctx.continuedArgument ?? invocation.args.first?.jsonText ?? "null"
            // The steps it starts run as children of the run, and finish before it reports.
            switch await ctx.run({ try await function(ctx, argument) }) {
            case .success(let value) where value.utf8.count > Wire.maximumValueBytes:
                outcome = (.completeTask, [("state", "\"rejected\""), ("value", try Wire.json(["error":
                    "the workflow returned \(value.utf8.count) bytes; a value may hold \(Wire.maximumValueBytes) (keep large data elsewhere and return a reference)"]))])
            case .success(let value):
                outcome = (.completeTask, [("state", "\"resolved\""), ("value", value)])
            case .failure(let error):
                outcome = (.completeTask, [("state", "\"rejected\""), ("value", try Wire.json(["error": "\(error)"]))])
            }
        case .block(let reason):
            // A rolling deploy: this worker does not have the function (or its version) yet, or
            // any more. The task waits, blocked, for a worker that has it; the workflow is not
            // failed for it.
            try await block(task, reason: reason + "; the task waits for a worker that has it")
            return
        }
        let report = ctx.takeReport()
        if let departure = report.departure {
            // The code changed under a recorded history: park the task (nothing of this run is
            // recorded); a fixed deploy, or `warren workflows retry|fail`, decides.
            for sent in report.progressSent { try await sent.wait() }
            try await block(task, reason: departure.message)
            return
        }
        // A suspension or a retry stops the run even if the workflow's code caught it; a
        // workflow that returned with children still running waits for them before it completes
        // (a replay then returns the same outcome).
        switch report.interrupt {
        case let s as Suspension: outcome = (.suspendTask, [("awaiting", try Wire.json(s.awaiting))])
        case let r as RetryRequest: outcome = (.retryTask, [("step", Wire.quote(r.step)), ("delay", "\(r.delay)")])
        // A retry of no step, at once: the task runs again from the top, as the new run (its marker is in the steps).
        case is ContinuedAsNew: outcome = (.retryTask, [("delay", "0")])
        default: if !report.children.isEmpty { outcome = (.suspendTask, [("awaiting", try Wire.json(report.children))]) }
        }
        // One message: the steps' outcomes and the report, with the fencing (task, version, worker).
        // Steps that would make it larger than a command may be go first, in progress messages.
        let fencing = [("id", Wire.quote(task.id)), ("version", "\(task.version)"), ("worker", Wire.quote(workerID))]
        var steps = report.steps
        var progressSent = report.progressSent
        if steps.reduce(0, { $0 + $1.utf8.count + 1 }) > Wire.reportBudget {
            let reporter = ProgressReporter(taskID: task.id, version: task.version, worker: workerID, transport: transport)
            progressSent += try reporter.sendInChunks(steps)
            steps = []
        }
        let body = Wire.object(fencing + outcome.fields + [("steps", steps.isEmpty ? nil : "[" + steps.joined(separator: ",") + "]")])
        let confirmation = try transport.send(outcome.kind, body)
        for sent in progressSent { try await sent.wait() }
        try await confirmation.wait()
        logger.debug(outcome.kind == .suspendTask ? "task suspended" : outcome.kind == .retryTask ? "task retries a step" : "task completed",
                     metadata: ["task": "\(task.id)", "version": "\(task.version)"])
    }

    /// Reports that the task cannot go on here (`task.block`), with the reason an operator reads.
    func block(_ task: Wire.TaskMessage.Task, reason: String) async throws {
        let body = Wire.object([("id", Wire.quote(task.id)), ("version", "\(task.version)"), ("worker", Wire.quote(workerID)),
                                ("reason", Wire.quote(reason))])
        try await transport.send(.blockTask, body).wait()
        logger.warning("task blocked", metadata: ["task": "\(task.id)", "version": "\(task.version)", "reason": "\(reason)"])
    }
}
