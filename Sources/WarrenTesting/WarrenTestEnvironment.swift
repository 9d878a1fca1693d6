import Foundation
import Logging
import Synchronization
import Warren
import WarrenKernel
import WarrenStore

/// Runs registered workflows in-process, for a user's tests: the orchestrator's kernel on the
/// in-memory store, the worker's runner, and a virtual clock. No broker, no processes, no waiting:
/// a workflow that sleeps for a week or waits three days for a manager finishes its test in
/// milliseconds.
///
/// ```swift
/// let env = WarrenTestEnvironment()
/// env.register("refund", refundWorkflow)
/// try await env.start("refund-1", "refund", Refund(id: "refund-1", customer: "ada", amount: 500))
/// let approval = try #require(env.waiting(for: "refund-1", tags: ["human": "true"]).first)
/// try await env.advance(by: .seconds(8 * 3600))         // two reminders go out
/// try await env.resolve(approval.id, "approved")
/// try await env.advanceUntilSettled("refund-1")         // the hold after the approval: skipped
/// #expect(try env.result(of: "refund-1", as: String.self) == "refund refund-1: 500 paid after approval (approved)")
/// ```
///
/// Everything goes through the same code as in production: the messages the worker's `ctx` calls
/// and reports send are decoded by the orchestrator's contract, applied by its kernel, and the
/// execute messages it causes are run by the worker's runner, one at a time, in order. Time moves
/// only when the test moves it (``advance(by:)``, ``advanceUntilSettled(_:limit:)``): timers,
/// promise timeouts, retry back-offs and `ctx.now()` all follow the virtual clock.
public final class WarrenTestEnvironment: Sendable {
    /// The worker group workflows run on (every registered function serves it).
    public let group: String
    private let maximumCallsPerRun: Int
    private let store = MemoryStore()
    private let kernel: Kernel
    private let registry = Registry()
    private let links: LinkSigner?
    private let logger: Logger

    private struct State {
        var now: Int64
        /// Execute messages to run, in the order the kernel caused them.
        var runnable: [[UInt8]] = []
        /// Commands the kernel dead-lettered (a bug in a report, or a refused command).
        var deadLetters: [String] = []
        var correlation = 0
    }
    private let state: Mutex<State>
    private static let replyTo = "warren.reply.test-environment"

    /// A new environment.
    /// - Parameters:
    ///   - group: the worker group of ``start(_:_:_:timeout:)`` and of the registered functions.
    ///   - startingAt: the virtual clock's first reading.
    ///   - links: signs approval links (`approval.link(...)`) if given; a test can make one with
    ///     `LinkSigner(baseURL:keys:)`.
    ///   - blockedRetry: how long a blocked task waits before it is offered again, in virtual time
    ///     (a year by default, so that advancing a week does not run a blocked task 10,000 times).
    ///   - maximumCallsPerRun: as ``Warren``'s: a run that makes more calls blocks.
    public init(group: String = "workers", startingAt: Date = Date(timeIntervalSince1970: 1_800_000_000), links: LinkSigner? = nil,
                blockedRetry: Duration = .seconds(365 * 86_400), maximumCallsPerRun: Int = Context.defaultMaximumCalls,
                logger: Logger = Logger(label: "warren.test")) {
        self.group = group
        self.maximumCallsPerRun = maximumCallsPerRun
        self.links = links
        self.logger = logger
        self.kernel = Kernel(Kernel.Configuration(blockedRetry: Self.millis(blockedRetry)))
        self.state = Mutex(State(now: Int64(startingAt.timeIntervalSince1970 * 1000)))
    }

    // MARK: Registering

    /// Registers a workflow, as ``Warren/register(_:_:)`` does.
    public func register<A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, _ function: @escaping @Sendable (Context, A) async throws -> R
    ) {
        registry.register(name, version: nil, function)
    }

    /// Registers a version of a workflow, as ``Warren/register(_:version:_:)`` does: a new
    /// workflow starts under the highest version registered, and keeps it.
    public func register<A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, version: Int, _ function: @escaping @Sendable (Context, A) async throws -> R
    ) {
        registry.register(name, version: version, function)
    }

    // MARK: Driving

    /// The virtual clock's reading.
    public var now: Date { Date(timeIntervalSince1970: Double(state.withLock { $0.now }) / 1000) }

    /// Starts workflow `id` running `function(argument)` and runs until nothing is left to run
    /// at this instant (it waits, or it finished). Starting an id that exists changes nothing.
    @discardableResult
    public func start<A: Encodable>(_ id: String, _ function: String, _ argument: A,
                                    timeout: Duration = .seconds(86_400 * 365)) async throws -> PromiseRecord {
        let body = try Wire.startBody(id, function, argument, group: group, timeout: timeout)
        let promise = try request(.startWorkflow, body)
        try await runUntilIdle()
        return try self.promise(id) ?? promise
    }

    /// Resolves promise `id` (an approval, an event) with `value`, and runs what it resumes.
    @discardableResult
    public func resolve<T: Encodable>(_ id: String, _ value: T) async throws -> PromiseRecord {
        _ = try request(.resolvePromise, Wire.object([("id", Wire.quote(id)), ("value", try Wire.json(value))]))
        try await runUntilIdle()
        return try promise(id)!
    }

    /// Rejects promise `id` with `value` as the reason, and runs what it resumes.
    @discardableResult
    public func reject<T: Encodable>(_ id: String, _ value: T) async throws -> PromiseRecord {
        _ = try request(.rejectPromise, Wire.object([("id", Wire.quote(id)), ("value", try Wire.json(value))]))
        try await runUntilIdle()
        return try promise(id)!
    }

    /// Moves the clock to promise `id`'s deadline (firing, in order, every timer due before it),
    /// so that it times out, and runs what that resumes.
    @discardableResult
    public func timeOut(_ id: String) async throws -> PromiseRecord {
        guard let p = try promise(id) else { throw WarrenError(.refused, "no promise \(id)") }
        guard !p.isSettled else { return p }
        try await advance(by: .milliseconds(max(0, p.timeout - state.withLock { $0.now })))
        return try promise(id)!
    }

    /// Cancels workflow `id` (``Warren/cancel(_:reason:)``) and runs its compensating run.
    @discardableResult
    public func cancel(_ id: String, reason: String? = nil) async throws -> PromiseRecord {
        _ = try request(.cancelWorkflow, Wire.object([("id", Wire.quote(id)), ("reason", reason.map(Wire.quote))]))
        try await runUntilIdle()
        return try promise(id)!
    }

    /// Creates schedule `id` (as `warren schedules create` does): every tick of `cron` the virtual
    /// clock passes starts `function(argument)` as workflow `<id>:<tick>`
    /// (``ScheduleRecord/workflowID(schedule:tick:)``), and ``advance(by:)`` runs it.
    @discardableResult
    public func schedule<A: Encodable>(_ id: String, cron: String, timeZone: String? = nil, _ function: String, _ argument: A,
                                       missedTicks: ScheduleDefinition.MissedTicks = .once) throws -> ScheduleRecord {
        let definition = ScheduleDefinition(cron: cron, timeZone: timeZone, function: function, group: group,
                                            args: "[" + (try Wire.json(argument)) + "]", timeout: 365 * 86_400_000, missed: missedTicks)
        let now = state.withLock { $0.now }
        do {
            return try store.writeSync { tx in try self.kernel.createSchedule(id: id, definition, tx: tx, now: now) }.schedule
        } catch let e as StoreError {
            throw WarrenError(.refused, "schedule.create: \(e.message)")
        }
    }

    /// Schedule `id` as it is now (its next tick, its last workflow), or `nil`.
    public func schedule(_ id: String) throws -> ScheduleRecord? {
        try store.writeSync { tx in try tx.schedule(id: id) }
    }

    /// Moves the virtual clock forward by `duration`, firing every timer that comes due on the
    /// way, in order, and running what each resumes before the clock moves on.
    public func advance(by duration: Duration) async throws {
        let target = state.withLock { $0.now } + Self.millis(duration)
        try await runUntilIdle()
        while let due = try store.writeSync({ tx in try tx.nextTimerDue() }), due <= target {
            try fire(at: due)
            try await runUntilIdle()
        }
        state.withLock { $0.now = max($0.now, target) }
    }

    /// Skips time until workflow `id` settles: fires the next timer, runs, again, until the
    /// workflow is settled. Throws if it waits for something no timer settles (an approval the
    /// test must give), or after `limit` timers.
    @discardableResult
    public func advanceUntilSettled(_ id: String, limit: Int = 10_000) async throws -> PromiseRecord {
        try await runUntilIdle()
        for _ in 0..<limit {
            guard let p = try promise(id) else { throw WarrenError(.refused, "no workflow \(id)") }
            if p.isSettled { return p }
            guard let due = try store.writeSync({ tx in try tx.nextTimerDue() }) else {
                throw WarrenError(.timedOut, "workflow \(id) waits for \(try waiting(for: id).map(\.id).joined(separator: ", ")), "
                    + "which no timer settles: resolve, reject or time it out in the test")
            }
            try fire(at: due)
            try await runUntilIdle()
        }
        throw WarrenError(.timedOut, "workflow \(id) is not settled after \(limit) timers")
    }

    /// Runs every task that can run now, until none can.
    public func runUntilIdle() async throws {
        let runner = runner(transport: Link(environment: self))
        while let next = state.withLock({ s in s.runnable.isEmpty ? nil : s.runnable.removeFirst() }) {
            try await runner.run(executeBody: next)
        }
    }

    /// The worker's runner, with this environment's functions and clock, over `transport`.
    func runner(transport: any Transport) -> TaskRunner {
        TaskRunner(registry: registry, transport: transport, workerID: "test-worker", group: group,
                   links: links, logger: logger, clock: { [self] in self.state.withLock { $0.now } }, maximumCallsPerRun: maximumCallsPerRun)
    }

    // MARK: Looking

    /// Promise `id` as it is now, or `nil` if there is none.
    public func promise(_ id: String) throws -> PromiseRecord? {
        let now = state.withLock { $0.now }
        return try store.writeSync { tx in try tx.promise(id: id, now: now) }
    }

    /// The promises below workflow `id`, in id order: its steps, waits, timers and child
    /// workflows, and theirs (the call tree, flattened; a promise's parent is its id up to the last
    /// `.`).
    public func tree(_ id: String) throws -> [PromiseRecord] {
        let now = state.withLock { $0.now }
        return try store.writeSync { tx in
            var all: [PromiseRecord] = []
            var cursor: String? = nil
            repeat {
                let page = try tx.search(PromiseSearch(id: id + ".*", limit: PromiseSearch.maximumLimit, cursor: cursor), now: now)
                all += page.promises
                cursor = page.cursor
            } while cursor != nil
            return all.sorted { $0.id < $1.id }
        }
    }

    /// The pending promises below workflow `id` no timer settles first, with all of `tags`
    /// (`["human": "true"]`: what waits for a person).
    public func waiting(for id: String, tags: [String: String] = [:]) throws -> [PromiseRecord] {
        try tree(id).filter { p in
            p.state == .pending && p.tags[PromiseRecord.timerTag] == nil && tags.allSatisfy { p.tags[$0.key] == $0.value }
        }
    }

    /// The task of workflow `id`: its state, and why it is blocked if it is.
    public func task(_ id: String) throws -> (state: String, blocked: String?)? {
        try store.writeSync { tx in try tx.task(id: id) }.map { ($0.state.name, $0.blocked) }
    }

    /// The value workflow `id` returned; throws the error it failed with (a `WarrenError`:
    /// `.failed`, `.canceled`, `.timedOut`), or if it has not finished.
    public func result<R: Decodable>(of id: String, as: R.Type = R.self) throws -> R {
        guard let p = try promise(id) else { throw WarrenError(.refused, "no workflow \(id)") }
        guard p.isSettled else {
            let task = try task(id)
            throw WarrenError(.refused, "workflow \(id) has not finished: its task is \(task?.state ?? "gone")"
                + (task?.blocked.map { " (\($0))" } ?? "") + "; it waits for \(try waiting(for: id).map(\.id).joined(separator: ", "))")
        }
        return try Wire.outcome(of: p, as: R.self)
    }

    /// Commands the kernel refused with no one to tell (dead-lettered): empty unless something
    /// sent a malformed report.
    public var deadLetters: [String] { state.withLock { $0.deadLetters } }

    // MARK: The in-process orchestrator

    private func fire(at due: Int64) throws {
        let now = state.withLock { s in s.now = max(s.now, due); return s.now }
        let effects = try store.writeSync { tx in try kernel.fireTimers(tx: tx, now: now, limit: 10_000).effects }
        take(effects)
    }

    /// Applies a command as the orchestrator would, and returns the promise its reply holds.
    fileprivate func request(_ kind: MessageKind, _ body: String) throws -> PromiseRecord {
        try requestWithCreated(kind, body).promise
    }

    fileprivate func requestWithCreated(_ kind: MessageKind, _ body: String) throws -> (promise: PromiseRecord, created: Bool) {
        let (now, correlation) = state.withLock { s in s.correlation += 1; return (s.now, "c\(s.correlation)") }
        let effects = try apply(kind, body, caller: Caller(replyTo: Self.replyTo, correlationID: correlation), now: now)
        guard let reply = effects.messages.first(where: { $0.routingKey == Self.replyTo && $0.headers[Messages.correlationIDKey] == correlation })
        else { throw WarrenError(.refused, "\(kind): no answer") }
        return try Wire.promiseReply(to: kind, reply.body)
    }

    fileprivate func send(_ kind: MessageKind, _ body: String) throws {
        _ = try apply(kind, body, caller: .none, now: state.withLock { $0.now })
    }

    /// A worker's command as the orchestrator's contract decodes it; a refusal as the SDK sees one.
    static func decode(_ kind: MessageKind, _ body: String, now: Int64) throws -> Command {
        do {
            return try Command.decode(routingKey: kind.rawValue, type: nil, body: Array(body.utf8), now: now,
                                      defaultTimeout: 86_400_000, maximumBodyBytes: 16 << 20)
        } catch {
            throw WarrenError(.refused, "\(kind): \(error.reason)")
        }
    }

    private func apply(_ kind: MessageKind, _ body: String, caller: Caller, now: Int64) throws -> Effects {
        let command = try Self.decode(kind, body, now: now)
        let effects = try store.writeSync { tx in try kernel.apply(command, from: caller, tx: tx, now: now) }
        take(effects)
        return effects
    }

    private func take(_ effects: Effects) {
        state.withLock { s in
            if let reason = effects.deadLetter { s.deadLetters.append(reason) }
            for m in effects.messages where Topology.route(ofExecuteRoutingKey: m.routingKey) != nil && !m.exchange.isEmpty {
                s.runnable.append(m.body)
            }
        }
    }

    static func millis(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }

    /// The worker's transport, in-process: commands go straight to the kernel.
    private struct Link: Transport {
        let environment: WarrenTestEnvironment

        func promiseRequest(_ kind: MessageKind, _ body: String) async throws -> (promise: PromiseRecord, created: Bool) {
            try environment.requestWithCreated(kind, body)
        }

        func send(_ kind: MessageKind, _ body: String) throws -> any Receipt {
            try environment.send(kind, body)
            return Delivered()
        }
    }

    private struct Delivered: Receipt {
        func wait() async throws {}
    }
}
