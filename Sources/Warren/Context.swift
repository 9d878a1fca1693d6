import Foundation
import Logging
import Synchronization
import WarrenContract
import WarrenLinks

/// What a workflow's code uses to make its steps durable.
///
/// Every call gets a deterministic id (`<workflow>.<n>`, in call order), so that when the workflow
/// runs again from the top (after a suspension, a crash, a redelivery), calls whose outcome is
/// recorded return it without running again. Call `ctx` in an order that depends only on the
/// workflow's inputs and on values `ctx` returned: start parallel steps with ``beginRun(_:_:name:retry:)``
/// from the workflow's own task, then await their handles.
///
/// Step outcomes travel with the task's next report (its suspension, retry or completion), so a
/// workflow costs one message per run, not two per step; a run that goes on for longer sends the
/// outcomes it has every second (`task.progress`), so a long step is not run again because a
/// later one failed with its worker. A step whose outcome was not sent when the worker died runs
/// again: steps run at least once.
public final class Context: Sendable {
    /// The workflow's id (its root promise), or the id of this function's promise for a child.
    public let id: String
    /// Where its commands go: the worker's messenger, or a test's recorded answers.
    let transport: any Transport
    let retry: TaskRetryInfo?
    /// Where finished steps go while the run goes on (the task's version and this worker), or
    /// `nil` (a replay against a given history, in tests).
    let progress: ProgressReporter?
    /// Signs approval links, if the worker has a key.
    let links: LinkSigner?
    /// Where ``logger`` writes when the run does not replay: the worker's logger.
    let baseLogger: Logger

    /// Whether the workflow was canceled (`warren workflows cancel`, ``Warren/cancel(_:reason:)``):
    /// this run is its compensating run. What it waited for is canceled, so its `await`s throw
    /// ``WarrenError/Code/canceled``; catch it to clean up (steps still run), then return or throw:
    /// the workflow stays canceled either way. The run has the orchestrator's `--cancel-grace`.
    public let isCanceled: Bool

    /// Whether this worker can sign approval links (``DurablePromise/link(outcomes:expires:)``):
    /// it was given the orchestrator's address and a link key.
    public var canSignLinks: Bool { links != nil }

    /// How long finished steps may wait for the report before they are sent on their own.
    static let progressInterval: Duration = .seconds(1)
    private struct State {
        var counter = 0
        var history: [String: PromiseRecord]
        /// The highest call number recorded in the history (`<id>.<n>`), 0 for a first run.
        var lastRecorded = 0
        /// The run has gone past what an earlier run did: a wait settled since, or a new call.
        var resumed = false
        /// Outcomes of the steps run now, as JSON objects, for the next report.
        var steps: [String] = []
        /// Why the run must stop (a suspension or a retry), even if the workflow's code caught it.
        var interrupt: (any Error)?
        /// The run departed from its recorded history: the task is blocked, whatever else happened.
        var departure: WarrenError?
        /// Child workflows started with `beginRpc` that were pending when this run saw them.
        var children: [String] = []
        /// When steps were last sent (or the run began), and the progress messages sent.
        var lastSent = ContinuousClock.now
        var sent: [any Receipt] = []
    }
    private let state: Mutex<State>
    /// The time `now()` records, in epoch milliseconds: the wall clock, or a test's virtual one.
    let clock: @Sendable () -> Int64
    /// The steps started with `beginRun`: children of the run (``run(_:)``).
    private let scope = StepScope()

    /// Which run of the workflow this is: 1, or the number of ``continueAsNew(_:)`` calls before it, plus one.
    public let runNumber: Int
    /// The prefix of this run's calls: the workflow's id, or `<id>.r<k>` in run `k` (``RunMarker``).
    let callPrefix: String
    /// The argument this run starts with, as JSON, when it is a continued run (its marker holds it).
    let continuedArgument: String?
    /// The most calls (steps, promises, waits) one run may make.
    let maximumCalls: Int

    init(id: String, history: [PromiseRecord], retry: TaskRetryInfo? = nil, transport: any Transport, links: LinkSigner? = nil,
         progress: ProgressReporter? = nil, canceled: Bool = false, logger: Logger = Logger(label: "warren.workflow"),
         clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }, maximumCalls: Int = Context.defaultMaximumCalls) {
        self.id = id
        self.clock = clock
        self.maximumCalls = maximumCalls
        let latest = RunMarker.latest(of: id, in: history)
        self.runNumber = latest?.run ?? 1
        self.callPrefix = RunMarker.prefix(of: id, run: runNumber)
        self.continuedArgument = latest.flatMap { m in
            (try? JSONValue.parse(m.marker.value.data ?? ""))?.objectValue?["args"].flatMap { args -> String? in
                if case .array(let a) = args { return (a.first ?? .null).jsonText }
                return nil
            }
        }
        self.baseLogger = logger
        self.isCanceled = canceled
        self.links = links
        self.transport = transport
        self.retry = retry
        self.progress = progress
        var initial = State(history: Dictionary(history.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }))
        let prefix = callPrefix + "."
        initial.lastRecorded = history.reduce(0) { last, p in
            guard p.id.hasPrefix(prefix), let n = Int(p.id.dropFirst(prefix.count)) else { return last }
            return max(last, n)
        }
        self.state = Mutex(initial)
    }

    /// Whether the run is replaying what an earlier run of the workflow already did: true from
    /// the top until it makes a call no run made before, or gets past the wait where the last
    /// run stopped. ``logger`` is quiet meanwhile.
    public var isReplaying: Bool {
        state.withLock { s in s.lastRecorded > 0 && !s.resumed && s.counter <= s.lastRecorded }
    }

    /// A logger that stays quiet while the run replays (``isReplaying``), so a line before an
    /// `await` is printed once, not on every resume. Its metadata names the workflow.
    ///
    /// ```swift
    /// ctx.logger.info("waiting on human interaction")
    /// let decision: String = try await approval.value()
    /// ```
    public var logger: Logger {
        var logger = Logger(label: baseLogger.label) { _ in ReplayQuietLogHandler(base: self.baseLogger, context: self) }
        logger[metadataKey: "workflow"] = "\(id)"
        return logger
    }

    /// A wait (an awaited promise, a timer) returned a settled outcome: at the last recorded call
    /// or beyond it, the run is past where the previous one stopped.
    func passedWait() {
        state.withLock { s in if s.counter >= s.lastRecorded { s.resumed = true } }
    }

    // MARK: Patches

    /// Whether this run takes the new branch of a code change named `change`, so that a change
    /// can be deployed under workflows that are waiting:
    ///
    /// ```swift
    /// if ctx.patched("manager-cc") {
    ///     try await ctx.run(notifyManager, order, name: "notifyManager")   // the new line
    /// }
    /// ```
    ///
    /// True when the run reaches this line for the first time under the new code (a marker is
    /// recorded, so every later replay says true as well); false when it replays a history an
    /// earlier run recorded here without the change, so old workflows keep their old path and
    /// never see a step in the history that the new code did not make. Once no workflow that
    /// started before the change is left, replace the `if` by its body and the call by
    /// ``deprecatePatch(_:)``; once none that recorded the marker is left, remove that too.
    public func patched(_ change: String) -> Bool {
        let kind = Self.patchKind(change)
        let marker: String? = state.withLock { s in
            let next = s.counter + 1
            let slot = "\(callPrefix).\(next)"
            if let recorded = s.history[slot] {
                guard recorded.tags[PromiseRecord.kindTag] == kind else { return nil }  // recorded before the change
                s.counter = next
                return ""
            }
            // Inside the history (a call that left nothing at its number): the old path.
            guard next > s.lastRecorded else { return nil }
            s.counter = next
            s.resumed = true
            return slot
        }
        guard let marker else { return false }
        if !marker.isEmpty { record(marker, kind: kind, state: "resolved", value: "true") }
        return true
    }

    /// Marks where ``patched(_:)`` was, once its old branch is removed: histories that recorded
    /// the patch's marker replay past it, and new runs record nothing.
    public func deprecatePatch(_ change: String) {
        let kind = Self.patchKind(change)
        state.withLock { s in
            if s.history["\(callPrefix).\(s.counter + 1)"]?.tags[PromiseRecord.kindTag] == kind { s.counter += 1 }
        }
    }

    static func patchKind(_ change: String) -> String { "patch:" + change }

    /// The most calls one run may make by default: a run that passes it blocks (docs/workflows.md),
    /// telling its code to continue as new.
    public static let defaultMaximumCalls = 10_000

    func nextID() throws -> (id: String, recorded: PromiseRecord?) {
        let next: (id: String, recorded: PromiseRecord?)? = state.withLock { s in
            guard s.counter < maximumCalls else { return nil }
            s.counter += 1
            let id = "\(callPrefix).\(s.counter)"
            if s.counter > s.lastRecorded { s.resumed = true }
            return (id, s.history[id])
        }
        guard let next else {
            throw departed(WarrenError(.nondeterminism, "run \(runNumber) of workflow \(id) passed \(maximumCalls) calls, the most one run may "
                + "make (maximumCallsPerRun): end a long loop with ctx.continueAsNew(...) to start a fresh run with a short history, "
                + "or raise the limit and retry the workflow"))
        }
        return next
    }

    // MARK: Continuing as new

    /// Ends this run and starts a fresh one of the same workflow (same id, same promise,
    /// same code version) with `argument`, and no history: for a workflow that loops for ever (a
    /// reminder every day, a poll every hour), so that its history, and the cost of resuming it,
    /// stay bounded. The new run's calls are recorded as `<id>.r<k>.<n>`; the run before it
    /// stays in the store, linked by the marker `<id>.warren:run:<k>`, which holds `argument`.
    ///
    /// ```swift
    /// warren.register("daily-digest") { (ctx: Context, day: Int) async throws -> String in
    ///     try await ctx.run(sendDigest, day, name: "send")
    ///     try await ctx.sleep(for: .seconds(86_400))
    ///     return try await ctx.continueAsNew(day + 1)
    /// }
    /// ```
    ///
    /// It never returns: the run stops here (return its result to keep the types simple). Steps
    /// still running are awaited first, as at any suspension.
    public func continueAsNew<A: Encodable, R>(_ argument: A, as: R.Type = R.self) async throws -> R {
        let next = runNumber + 1
        record(RunMarker.markerID(of: id, run: next), kind: RunMarker.kind, state: "resolved",
               value: "{\"run\":\(next),\"args\":[\(try Wire.json(argument))]}")
        throw interrupt(ContinuedAsNew(run: next))
    }

    /// Checks that a recorded outcome was made by the same kind of call.
    func check(_ recorded: PromiseRecord, kind: String) throws {
        let was = recorded.tags[PromiseRecord.kindTag] ?? "?"
        guard was == kind else {
            throw departed(WarrenError(.nondeterminism, "step \(recorded.id) of workflow \(id) was recorded as \(was), but the replay reached it as \(kind): "
                + "the workflow's code must make the same ctx calls in the same order on every run"))
        }
    }

    /// Remembers a child workflow the run must wait for before it completes.
    func awaitChild(_ id: String) {
        state.withLock { $0.children.append(id) }
    }

    /// Remembers that the run departed from its history (the task blocks, even if the code caught
    /// the error), and returns the error to throw through the workflow's code.
    func departed(_ e: WarrenError) -> WarrenError {
        state.withLock { s in if s.departure == nil { s.departure = e } }
        return e
    }

    /// Remembers why the run stops, and returns the error to throw through the workflow's code.
    func interrupt(_ e: any Error) -> any Error {
        state.withLock { s in if s.interrupt == nil { s.interrupt = e } }
        return e
    }

    // MARK: Steps

    /// Runs `step` durably: its outcome is recorded, and a replay returns the recorded outcome
    /// without running it again. A step that throws is retried after a back-off on a durable
    /// timer (the worker lets the workflow go meanwhile), up to the policy's attempts; then the
    /// error reaches the workflow as ``WarrenError/Code/failed``.
    ///
    /// ```swift
    /// let receipt = try await ctx.run(sendEmail, approval.id, name: "sendEmail")
    /// ```
    @discardableResult
    public func run<A: Sendable, R: Codable & Sendable>(_ step: @escaping @Sendable (Context, A) async throws -> R, _ argument: A,
                                                        name: String = "step", retry: RetryPolicy = .default) async throws -> R {
        try await beginRun(step, argument, name: name, retry: retry).value()
    }

    /// Starts `step` and returns a handle to await later, so that steps can run in parallel.
    /// The workflow does not complete before every step it started has finished.
    ///
    /// ```swift
    /// let a = try await ctx.beginRun(fetchQuote, "a")
    /// let b = try await ctx.beginRun(fetchQuote, "b")
    /// let best = min(try await a.value(), try await b.value())
    /// ```
    public func beginRun<A: Sendable, R: Codable & Sendable>(_ step: @escaping @Sendable (Context, A) async throws -> R, _ argument: A,
                                                             name: String = "step", retry: RetryPolicy = .default) async throws -> StepHandle<R> {
        let kind = "run:" + name
        let (stepID, recorded) = try nextID()
        if let recorded {
            try check(recorded, kind: kind)
            // A step recorded as pending runs again (steps are at least once).
            if recorded.isSettled { return StepHandle(id: stepID, outcome: Outcome(Result { try Self.outcome(of: recorded, as: R.self) })) }
        }
        let failures = self.retry?.step == stepID ? self.retry!.failures : 0
        let outcome = Outcome<R>()
        scope.start {
            do {
                outcome.set(.success(try await self.attempt(step, argument, id: stepID, kind: kind, name: name, retry: retry, failures: failures)))
            } catch {
                outcome.set(.failure(error))
            }
        }
        return StepHandle(id: stepID, outcome: outcome)
    }

    /// One attempt of a step: its value recorded, or its failure turned into a retry request
    /// (the run stops and a durable timer brings it back) or, once the policy is spent, recorded.
    private func attempt<A: Sendable, R: Codable & Sendable>(_ step: @escaping @Sendable (Context, A) async throws -> R, _ argument: A,
                                                             id stepID: String, kind: String, name: String, retry: RetryPolicy,
                                                             failures: Int) async throws -> R {
        let result: R
        let json: String
        do {
            result = try await step(self, argument)
            json = try Wire.json(result)
        } catch let e as WarrenError where e.code == .nondeterminism {
            throw e
        } catch {
            if retry.shouldRetry(error, afterFailures: failures + 1) {
                throw self.interrupt(RetryRequest(step: stepID, delay: retry.delay(afterFailures: failures + 1)))
            }
            let reason = "step \(name) (\(stepID)) failed after \(failures + 1) attempt\(failures == 0 ? "" : "s"): \(error)"
            self.record(stepID, kind: kind, state: "rejected", value: try Wire.json(["error": reason]))
            throw WarrenError(.failed, reason)
        }
        guard json.utf8.count <= Wire.maximumValueBytes else {
            // Retrying would return as much again: the step fails for good, saying why.
            let reason = "step \(name) (\(stepID)) returned \(json.utf8.count) bytes; a step's value may hold "
                + "\(Wire.maximumValueBytes) (keep large data elsewhere and return a reference)"
            self.record(stepID, kind: kind, state: "rejected", value: try Wire.json(["error": reason]))
            throw WarrenError(.failed, reason)
        }
        self.record(stepID, kind: kind, state: "resolved", value: json)
        return result
    }

    /// The current time, recorded: a replay returns the same instant.
    public func now() async throws -> Date {
        let millis = try await recorded(kind: "now") { clock() }
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    /// A random number in `0..<1`, recorded: a replay returns the same number.
    public func random() async throws -> Double {
        try await recorded(kind: "random") { Double.random(in: 0..<1) }
    }

    /// A value made once and recorded (no retries: making it cannot fail).
    private func recorded<R: Codable & Sendable>(kind: String, _ make: () -> R) async throws -> R {
        let (stepID, recorded) = try nextID()
        if let recorded {
            try check(recorded, kind: kind)
            if recorded.isSettled { return try Self.outcome(of: recorded, as: R.self) }
        }
        let value = make()
        record(stepID, kind: kind, state: "resolved", value: try Wire.json(value))
        return value
    }

    func record(_ id: String, kind: String, state stepState: String, value: String) {
        let step = Wire.object([("id", Wire.quote(id)), ("state", Wire.quote(stepState)), ("value", value),
                                ("tags", Wire.object([(PromiseRecord.kindTag, Wire.quote(kind))]))])
        let due: [String] = state.withLock { s in
            s.steps.append(step)
            guard progress != nil, ContinuousClock.now - s.lastSent >= Self.progressInterval else { return [] }
            s.lastSent = .now
            defer { s.steps.removeAll() }
            return s.steps
        }
        guard let progress, !due.isEmpty else { return }
        // Sent without waiting; the report that follows on the same channel waits for it.
        if let sent = try? progress.sendInChunks(due) {
            state.withLock { $0.sent += sent }
        } else {
            state.withLock { $0.steps.insert(contentsOf: due, at: 0) }  // they go with the report
        }
    }

    // MARK: For the worker

    /// Runs the workflow's code `body` with the steps it starts as children: returns its
    /// outcome once every step has finished too (a parent finishes what it started before it
    /// reports). Cancelling the caller cancels the code and its steps.
    func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error> {
        await scope.run(body)
    }

    /// The step outcomes to report, why the run stopped early if it did, and the child
    /// workflows it must still wait for.
    func takeReport() -> (steps: [String], interrupt: (any Error)?, children: [String], progressSent: [any Receipt], departure: WarrenError?) {
        state.withLock { s in
            defer { s.steps.removeAll(); s.sent.removeAll() }
            return (s.steps, s.interrupt, s.children, s.sent, s.departure)
        }
    }

    static func outcome<R: Decodable>(of p: PromiseRecord, as: R.Type) throws -> R {
        switch p.state {
        case .resolved: return try Wire.decode(R.self, from: p.value.data)
        case .rejectedTimedout: throw WarrenError(.timedOut, "promise \(p.id) timed out")
        case .rejectedCanceled: throw WarrenError(.canceled, "promise \(p.id) was canceled (its workflow was canceled, or someone canceled it)")
        case .pending: throw WarrenError(.codec, "promise \(p.id) is pending")
        case .rejected:
            if let data = p.value.data, case .object(let o)? = try? JSONValue.parse(data), let reason = o["error"]?.stringValue {
                throw WarrenError(.failed, reason)
            }
            throw WarrenError(.failed, "promise \(p.id) was rejected: \(p.value.data ?? "no reason")")
        }
    }
}

/// Forwards to the worker's logging while the run does not replay (``Context/logger``).
struct ReplayQuietLogHandler: LogHandler {
    var base: Logger
    let context: Context

    var metadata: Logger.Metadata {
        get { base.handler.metadata }
        set { base.handler.metadata = newValue }
    }
    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        guard !context.isReplaying else { return }
        base.log(level: event.level, event.message, metadata: event.metadata, source: event.source, file: event.file,
                 function: event.function, line: event.line)
    }
}

/// A step started with ``Context/beginRun(_:_:name:retry:)``: await its value later.
