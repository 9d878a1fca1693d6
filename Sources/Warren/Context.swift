import AMQP
import Foundation
import Synchronization

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
    let messenger: Messenger
    let retry: TaskRetryInfo?
    /// Where finished steps go while the run goes on (the task's version and this worker), or
    /// `nil` (a replay against a given history, in tests).
    let progress: ProgressReporter?
    /// Signs approval links, if the worker has a key.
    let links: LinkSigner?

    /// Whether this worker can sign approval links (``DurablePromise/link(outcomes:expires:)``):
    /// it was given the orchestrator's address and a link key.
    public var canSignLinks: Bool { links != nil }

    /// How long finished steps may wait for the report before they are sent on their own.
    static let progressInterval: Duration = .seconds(1)
    private struct State {
        var counter = 0
        var history: [String: PromiseSnapshot]
        /// Outcomes of the steps run now, as JSON objects, for the next report.
        var steps: [String] = []
        /// Steps started with `beginRun` that have not finished.
        var running: [Task<Void, Never>] = []
        /// Why the run must stop (a suspension or a retry), even if the workflow's code caught it.
        var interrupt: (any Error)?
        /// Child workflows started with `beginRpc` that were pending when this run saw them.
        var children: [String] = []
        /// When steps were last sent (or the run began), and the progress messages sent.
        var lastSent = ContinuousClock.now
        var sent: [PublishConfirmation] = []
    }
    private let state: Mutex<State>

    init(id: String, history: [PromiseSnapshot], retry: TaskRetryInfo? = nil, messenger: Messenger, links: LinkSigner? = nil,
         progress: ProgressReporter? = nil) {
        self.id = id
        self.links = links
        self.messenger = messenger
        self.retry = retry
        self.progress = progress
        self.state = Mutex(State(history: Dictionary(history.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })))
    }

    private func nextID() -> (id: String, recorded: PromiseSnapshot?) {
        state.withLock { s in
            s.counter += 1
            let id = "\(self.id).\(s.counter)"
            return (id, s.history[id])
        }
    }

    /// Checks that a recorded outcome was made by the same kind of call.
    private func check(_ recorded: PromiseSnapshot, kind: String) throws {
        let was = recorded.tags?["warren:kind"] ?? "?"
        guard was == kind else {
            throw WarrenError(.nondeterminism, "step \(recorded.id) of workflow \(id) was recorded as \(was), but the replay reached it as \(kind): "
                + "the workflow's code must make the same ctx calls in the same order on every run")
        }
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
        let (stepID, recorded) = nextID()
        if let recorded {
            try check(recorded, kind: kind)
            // A step recorded as pending runs again (steps are at least once).
            if recorded.isSettled { return StepHandle(id: stepID, task: Task { try Self.outcome(of: recorded, as: R.self) }) }
        }
        let failures = self.retry?.step == stepID ? self.retry!.failures : 0
        let task = Task<R, any Error> {
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
        state.withLock { $0.running.append(Task { _ = try? await task.value }) }
        return StepHandle(id: stepID, task: task)
    }

    /// The current time, recorded: a replay returns the same instant.
    public func now() async throws -> Date {
        let millis = try await recorded(kind: "now") { Int64(Date().timeIntervalSince1970 * 1000) }
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    /// A random number in `0..<1`, recorded: a replay returns the same number.
    public func random() async throws -> Double {
        try await recorded(kind: "random") { Double.random(in: 0..<1) }
    }

    /// A value made once and recorded (no retries: making it cannot fail).
    private func recorded<R: Codable & Sendable>(kind: String, _ make: () -> R) async throws -> R {
        let (stepID, recorded) = nextID()
        if let recorded {
            try check(recorded, kind: kind)
            if recorded.isSettled { return try Self.outcome(of: recorded, as: R.self) }
        }
        let value = make()
        record(stepID, kind: kind, state: "resolved", value: try Wire.json(value))
        return value
    }

    private func record(_ id: String, kind: String, state stepState: String, value: String) {
        let step = Wire.object([("id", Wire.quote(id)), ("state", Wire.quote(stepState)), ("value", value),
                                ("tags", Wire.object([("warren:kind", Wire.quote(kind))]))])
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

    // MARK: Promises

    /// A promise that something outside settles (a person, another service). It is durable
    /// before this returns, so its id may be mailed at once.
    ///
    /// ```swift
    /// let approval = try await ctx.promise(timeout: .seconds(86_400), tags: ["human": "true"])
    /// ```
    ///
    /// With `id`, the promise has that id (one an outside system knows, such as
    /// `"approval-order-7"`) instead of `<workflow>.<n>`; it is asked for on every run (creating
    /// it is idempotent for this workflow; an id another workflow created is refused).
    public func promise(id customID: String? = nil, timeout: Duration = .seconds(86_400 * 7),
                        tags: [String: String] = [:]) async throws -> DurablePromise {
        let (slotID, recorded) = nextID()
        if customID == nil, let recorded {
            try check(recorded, kind: "promise")
            return DurablePromise(id: slotID, snapshot: recorded, context: self)
        }
        let promiseID = customID ?? slotID
        var allTags = tags
        allTags["warren:kind"] = "promise"
        allTags["warren:workflow"] = PromiseSnapshot.rootID(of: id)
        let seconds = max(1, Int(timeout.components.seconds))
        let (snapshot, _) = try await messenger.promiseRequest("promise.create", Wire.object([
            ("id", Wire.quote(promiseID)), ("idempotencyKey", Wire.quote(slotID)), ("timeout", Wire.quote("\(seconds)s")),
            ("tags", try Wire.json(allTags)),
        ]))
        return DurablePromise(id: promiseID, snapshot: snapshot, context: self)
    }

    /// Starts `function(argument)` as a child workflow on the workers of `target` and returns
    /// its promise, to await later. The child is durable before this returns.
    ///
    /// The workflow does not complete before its children do: if it returns while one is still
    /// running, it waits for it first (use ``detached(_:_:target:timeout:)`` for a child that may
    /// outlive it).
    public func beginRpc<A: Encodable>(_ function: String, _ argument: A, target: String,
                                       timeout: Duration = .seconds(86_400)) async throws -> DurablePromise {
        try await child(function, argument, target: target, timeout: timeout, kind: "rpc:" + function, awaited: true)
    }

    /// Starts `function(argument)` as a workflow of its own on the workers of `target`, which may
    /// outlive this one (it is not awaited when this one completes). Its id is below this
    /// workflow's (`<id>.<n>`), so this workflow is kept (not deleted by retention) while it runs.
    @discardableResult
    public func detached<A: Encodable>(_ function: String, _ argument: A, target: String,
                                       timeout: Duration = .seconds(86_400)) async throws -> DurablePromise {
        try await child(function, argument, target: target, timeout: timeout, kind: "detached:" + function, awaited: false)
    }

    private func child<A: Encodable>(_ function: String, _ argument: A, target: String, timeout: Duration, kind: String,
                                     awaited: Bool) async throws -> DurablePromise {
        let (childID, recorded) = nextID()
        let snapshot: PromiseSnapshot
        if let recorded {
            try check(recorded, kind: kind)
            snapshot = recorded
        } else {
            snapshot = try await messenger.promiseRequest("workflow.start", Wire.object([
                ("id", Wire.quote(childID)), ("function", Wire.quote(function)), ("args", "[" + (try Wire.json(argument)) + "]"),
                ("group", Wire.quote(target)), ("timeout", Wire.quote("\(max(1, timeout.components.seconds))s")),
                ("tags", Wire.object([("warren:kind", Wire.quote(kind))])),
            ])).promise
        }
        if awaited, !snapshot.isSettled { state.withLock { $0.children.append(childID) } }
        return DurablePromise(id: childID, snapshot: snapshot, context: self)
    }

    /// Runs `function(argument)` as a child workflow on the workers of `target` and returns its
    /// result; the workflow suspends (no worker holds it) until the child completes.
    public func rpc<A: Encodable, R: Decodable>(_ function: String, _ argument: A, target: String,
                                                timeout: Duration = .seconds(86_400), as: R.Type = R.self) async throws -> R {
        try await beginRpc(function, argument, target: target, timeout: timeout).value(as: R.self)
    }

    /// Waits, durably, for `duration`: the workflow suspends and a worker resumes it afterwards.
    public func sleep(for duration: Duration) async throws {
        let millis = max(1, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        try await sleep(timeout: "\"\(millis)ms\"")
    }

    /// Waits, durably, until `date`.
    public func sleep(until date: Date) async throws {
        try await sleep(timeout: "\(max(1, Int64(date.timeIntervalSince1970 * 1000)))")
    }

    private func sleep(timeout: String) async throws {
        let timer = try await timerPromise(timeout: timeout)
        if !timer.isSettled { throw interrupt(Suspension(awaiting: [timer.id])) }
    }

    /// The next id as a timer promise (created now, or as recorded).
    private func timerPromise(timeout: String) async throws -> PromiseSnapshot {
        let (timerID, recorded) = nextID()
        if let recorded {
            try check(recorded, kind: "sleep")
            return recorded
        }
        return try await messenger.promiseRequest("promise.create", Wire.object([
            ("id", Wire.quote(timerID)), ("idempotencyKey", Wire.quote(timerID)), ("timeout", timeout),
            ("tags", Wire.object([("warren:kind", "\"sleep\""), ("warren:timer", "\"true\"")])),
        ])).promise
    }

    /// Waits for `promise` at most `duration`: its value, or `nil` if the time passed first.
    /// Durable both ways (a timer promise, and the recorded winner), so a replay takes the same
    /// branch even if the promise settled later. For reminders, escalations, soft deadlines:
    ///
    /// ```swift
    /// while try await ctx.wait(for: approval, atMost: .seconds(3600), as: String.self) == nil {
    ///     try await ctx.run(sendReminder, approval.id, name: "remind")
    /// }
    /// ```
    public func wait<T: Decodable>(for promise: DurablePromise, atMost duration: Duration, as: T.Type = T.self) async throws -> T? {
        let millis = max(1, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        let timer = try await timerPromise(timeout: "\"\(millis)ms\"")
        let (decisionID, recorded) = nextID()
        if let recorded {
            try check(recorded, kind: "race")
            if recorded.isSettled {
                return try Self.outcome(of: recorded, as: String.self) == "promise" ? try await promise.value(as: T.self) : nil
            }
        }
        if promise.snapshot.isSettled {
            record(decisionID, kind: "race", state: "resolved", value: "\"promise\"")
            return try await promise.value(as: T.self)
        }
        if timer.isSettled {
            record(decisionID, kind: "race", state: "resolved", value: "\"timer\"")
            return nil
        }
        throw interrupt(Suspension(awaiting: [promise.id, timer.id]))
    }

    // MARK: For the worker

    /// Waits for every step started with `beginRun` to finish.
    func finishSteps() async {
        while let next = state.withLock({ s in s.running.isEmpty ? nil : s.running.removeFirst() }) {
            await next.value
        }
    }

    /// The step outcomes to report, why the run stopped early if it did, and the child
    /// workflows it must still wait for.
    func takeReport() -> (steps: [String], interrupt: (any Error)?, children: [String], progressSent: [PublishConfirmation]) {
        state.withLock { s in
            defer { s.steps.removeAll(); s.sent.removeAll() }
            return (s.steps, s.interrupt, s.children, s.sent)
        }
    }

    static func outcome<R: Decodable>(of p: PromiseSnapshot, as: R.Type) throws -> R {
        switch p.state {
        case "RESOLVED": return try Wire.decode(R.self, from: p.value?.data)
        case "REJECTED_TIMEDOUT": throw WarrenError(.timedOut, "promise \(p.id) timed out")
        case "REJECTED_CANCELED": throw WarrenError(.canceled, "promise \(p.id) was canceled")
        default:
            if let data = p.value?.data, let reason = try? JSONDecoder().decode([String: String].self, from: Data(data.utf8))["error"] {
                throw WarrenError(.failed, reason)
            }
            throw WarrenError(.failed, "promise \(p.id) was rejected: \(p.value?.data ?? "no reason")")
        }
    }
}

/// A step started with ``Context/beginRun(_:_:name:retry:)``: await its value later.
public struct StepHandle<R: Sendable>: Sendable {
    /// The step's promise id.
    public let id: String
    let task: Task<R, any Error>

    /// The step's result, or its error once its retries are exhausted.
    public func value() async throws -> R { try await task.value }
}

/// A durable promise handle: await its value, here or after any number of restarts.
public struct DurablePromise: Sendable {
    /// The promise's id, to give to whoever settles it.
    public let id: String
    let snapshot: PromiseSnapshot
    let context: Context?

    init(id: String, snapshot: PromiseSnapshot, context: Context? = nil) {
        self.id = id
        self.snapshot = snapshot
        self.context = context
    }

    /// Whether it was settled when this run of the workflow began (or when it was created).
    /// Read it only through recorded calls (``Context/wait(for:atMost:as:)``): it may differ
    /// on a replay.
    public var isSettled: Bool { snapshot.isSettled }

    /// A signed link that settles this promise: opening it shows a confirmation page on the
    /// orchestrator (it settles nothing: mail scanners open links), whose buttons resolve the
    /// promise with the outcome's name (`"approved"`). It works for this promise only, only
    /// until `expires` (by default the promise's own timeout) and only while the promise is
    /// pending. Made from the promise's id and timeout alone, it is the same on every replay.
    ///
    /// ```swift
    /// let approval = try await ctx.promise(tags: ["human": "true", "title": "Refund 120 EUR to Ada"])
    /// try await ctx.run(sendEmail, try approval.link(), name: "sendEmail")
    /// let decision: String = try await approval.value()   // "approved" or "rejected"
    /// ```
    ///
    /// The worker needs the orchestrator's public address and a link key it holds
    /// (`WARREN_LINK_URL`, `WARREN_LINK_KEY`; see docs/http.md#approval-links).
    public func link(outcomes: [String] = ["approved", "rejected"], expires: Date? = nil) throws -> String {
        let expiry = expires.map { Int64($0.timeIntervalSince1970 * 1000) } ?? snapshot.timeout
        return try Warren.link(context?.links, id, outcomes: outcomes, expires: expiry)
    }

    /// The value the promise was resolved with. While it is pending, the workflow suspends here:
    /// the worker lets go of it, and a worker continues from this line once it settles.
    public func value<T: Decodable>(as type: T.Type = T.self) async throws -> T {
        guard snapshot.isSettled else {
            let suspension = Suspension(awaiting: [id])
            throw context?.interrupt(suspension) ?? suspension
        }
        return try Context.outcome(of: snapshot, as: T.self)
    }
}

/// How a failing step is retried: exponential back-off on durable timers.
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included (1: never retried).
    public var maximumAttempts: Int
    /// The wait after the first failure.
    public var initialDelay: Duration
    /// Each further wait is this many times the one before.
    public var backoffCoefficient: Double
    /// No wait is longer.
    public var maximumDelay: Duration
    /// Whether an error may be retried; by default every error but a ``NonRetryableError``.
    public var isRetryable: @Sendable (any Error) -> Bool

    public init(maximumAttempts: Int = 5, initialDelay: Duration = .seconds(1), backoffCoefficient: Double = 2,
                maximumDelay: Duration = .seconds(60), isRetryable: @escaping @Sendable (any Error) -> Bool = { !($0 is any NonRetryableError) }) {
        self.maximumAttempts = max(1, maximumAttempts)
        self.initialDelay = initialDelay
        self.backoffCoefficient = max(1, backoffCoefficient)
        self.maximumDelay = maximumDelay
        self.isRetryable = isRetryable
    }

    /// Five attempts, waiting 1 s, 2 s, 4 s, 8 s between them.
    public static let `default` = RetryPolicy()
    /// One attempt: a failure reaches the workflow at once.
    public static let never = RetryPolicy(maximumAttempts: 1)

    func shouldRetry(_ error: any Error, afterFailures failures: Int) -> Bool {
        failures < maximumAttempts && isRetryable(error)
    }

    /// The wait before the next attempt, in milliseconds.
    func delay(afterFailures failures: Int) -> Int64 {
        let initial = Double(initialDelay.components.seconds) * 1000 + Double(initialDelay.components.attoseconds) / 1e15
        let cap = Double(maximumDelay.components.seconds) * 1000 + Double(maximumDelay.components.attoseconds) / 1e15
        return Int64(min(cap, initial * pow(backoffCoefficient, Double(max(0, failures - 1)))))
    }
}

/// An error that a step's retry policy never retries (by default): the workflow sees it at once.
public protocol NonRetryableError: Error {}

/// Sends `task.progress` for the task version a worker runs.
struct ProgressReporter: Sendable {
    let taskID: String
    let version: Int64
    let worker: String
    let messenger: Messenger

    func send(_ steps: [String]) throws -> PublishConfirmation {
        try messenger.publish("task.progress", Wire.object([
            ("id", Wire.quote(taskID)), ("version", "\(version)"), ("worker", Wire.quote(worker)),
            ("steps", "[" + steps.joined(separator: ",") + "]"),
        ]))
    }

    /// Sends `steps` in as many messages as keep each within ``Wire/reportBudget``, in order.
    func sendInChunks(_ steps: [String]) throws -> [PublishConfirmation] {
        var sent: [PublishConfirmation] = []
        var chunk: [String] = []
        var bytes = 0
        for step in steps {
            if !chunk.isEmpty, bytes + step.utf8.count + 1 > Wire.reportBudget {
                sent.append(try send(chunk))
                chunk.removeAll()
                bytes = 0
            }
            chunk.append(step)
            bytes += step.utf8.count + 1
        }
        if !chunk.isEmpty { sent.append(try send(chunk)) }
        return sent
    }
}

/// The failures of the step a task retries, from its execute message.
struct TaskRetryInfo: Decodable, Sendable {
    var step: String
    var failures: Int
}

/// Thrown through the workflow's code when a step failed and will be retried after `delay`.
struct RetryRequest: Error {
    var step: String
    var delay: Int64
}
