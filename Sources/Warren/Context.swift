import AMQP
import Foundation
import Synchronization

/// What a workflow's code uses to make its steps durable.
///
/// Every call gets a deterministic id (`<root>.<n>`, in call order), so that when the workflow
/// runs again from the top (after a suspension, a crash, a redelivery), calls whose outcome is
/// recorded return it without running again. Call `ctx` from the workflow's own task, in an order
/// that depends only on the workflow's inputs and on values `ctx` returned.
public final class Context: Sendable {
    /// The workflow's id (its root promise).
    public let id: String
    let messenger: Messenger
    private struct State {
        var counter = 0
        var history: [String: PromiseSnapshot]
        /// Step and promise messages sent while running, awaited before the final report.
        var confirmations: [PublishConfirmation] = []
    }
    private let state: Mutex<State>

    init(id: String, history: [PromiseSnapshot], messenger: Messenger) {
        self.id = id
        self.messenger = messenger
        self.state = Mutex(State(history: Dictionary(history.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })))
    }

    private func nextID(kind: String) -> (id: String, recorded: PromiseSnapshot?) {
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

    /// Runs `step` once, durably: its result is recorded, and a replay returns the recorded result
    /// without running it again. A step that throws fails the workflow (retries come later).
    ///
    /// ```swift
    /// let receipt = try await ctx.run(sendEmail, approval.id)
    /// ```
    @discardableResult
    public func run<A: Sendable, R: Codable & Sendable>(_ step: @Sendable (Context, A) async throws -> R, _ argument: A,
                                                        name: String = "step") async throws -> R {
        let kind = "run:" + name
        let (stepID, recorded) = nextID(kind: kind)
        if let recorded {
            try check(recorded, kind: kind)
            // A step recorded as created but not yet resolved runs again (steps are at least once).
            if recorded.isSettled { return try outcome(of: recorded, as: R.self) }
        }
        let result = try await step(self, argument)
        let value = try Wire.json(result)
        // Recorded as a promise created and resolved at once; the messages travel in order on one
        // channel, so what is durable is always a prefix of the run.
        let created = try messenger.publish("promise.create", Wire.object([
            ("id", Wire.quote(stepID)), ("idempotencyKey", Wire.quote(stepID)), ("timeout", "\"3650d\""),
            ("tags", Wire.object([("warren:kind", Wire.quote(kind))])),
        ]))
        let resolved = try messenger.publish("promise.resolve", Wire.object([
            ("id", Wire.quote(stepID)), ("idempotencyKey", Wire.quote(stepID)), ("value", value),
        ]))
        state.withLock { $0.confirmations += [created, resolved] }
        return result
    }

    /// A promise that something outside settles (a person, another service). It is durable
    /// before this returns, so its id may be mailed at once.
    ///
    /// ```swift
    /// let approval = try await ctx.promise(timeout: .seconds(86_400), tags: ["human": "true"])
    /// ```
    public func promise(timeout: Duration = .seconds(86_400 * 7), tags: [String: String] = [:]) async throws -> DurablePromise {
        let (promiseID, recorded) = nextID(kind: "promise")
        if let recorded {
            try check(recorded, kind: "promise")
            return DurablePromise(id: promiseID, snapshot: recorded)
        }
        var allTags = tags
        allTags["warren:kind"] = "promise"
        let seconds = max(1, Int(timeout.components.seconds))
        let (snapshot, _) = try await messenger.promiseRequest("promise.create", Wire.object([
            ("id", Wire.quote(promiseID)), ("idempotencyKey", Wire.quote(promiseID)), ("timeout", Wire.quote("\(seconds)s")),
            ("tags", try Wire.json(allTags)),
        ]))
        return DurablePromise(id: promiseID, snapshot: snapshot)
    }

    /// Waits, durably, for `duration`: the workflow suspends and a worker resumes it afterwards.
    public func sleep(for duration: Duration) async throws {
        let (timerID, recorded) = nextID(kind: "sleep")
        if let recorded {
            try check(recorded, kind: "sleep")
            if recorded.isSettled { return }
            throw Suspension(awaiting: [timerID])
        }
        let millis = max(1, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        let (snapshot, _) = try await messenger.promiseRequest("promise.create", Wire.object([
            ("id", Wire.quote(timerID)), ("idempotencyKey", Wire.quote(timerID)), ("timeout", Wire.quote("\(millis)ms")),
            ("tags", Wire.object([("warren:kind", "\"sleep\""), ("warren:timer", "\"true\"")])),
        ]))
        if !snapshot.isSettled { throw Suspension(awaiting: [timerID]) }
    }

    /// The messages sent while running, for the worker to await before it reports.
    func takeConfirmations() -> [PublishConfirmation] {
        state.withLock { s in defer { s.confirmations.removeAll() }; return s.confirmations }
    }

    func outcome<R: Decodable>(of p: PromiseSnapshot, as: R.Type) throws -> R {
        switch p.state {
        case "RESOLVED": return try Wire.decode(R.self, from: p.value?.data)
        case "REJECTED_TIMEDOUT": throw WarrenError(.timedOut, "promise \(p.id) timed out")
        case "REJECTED_CANCELED": throw WarrenError(.timedOut, "promise \(p.id) was cancelled")
        default: throw WarrenError(.failed, "promise \(p.id) was rejected: \(p.value?.data ?? "no reason")")
        }
    }
}

/// A durable promise handle: await its value, here or after any number of restarts.
public struct DurablePromise: Sendable {
    /// The promise's id, to give to whoever settles it.
    public let id: String
    let snapshot: PromiseSnapshot

    /// The value the promise was resolved with. While it is pending, the workflow suspends here:
    /// the worker lets go of it, and a worker continues from this line once it settles.
    public func value<T: Decodable>(as type: T.Type = T.self) async throws -> T {
        guard snapshot.isSettled else { throw Suspension(awaiting: [id]) }
        switch snapshot.state {
        case "RESOLVED": return try Wire.decode(T.self, from: snapshot.value?.data)
        case "REJECTED_TIMEDOUT": throw WarrenError(.timedOut, "promise \(id) timed out")
        case "REJECTED_CANCELED": throw WarrenError(.timedOut, "promise \(id) was cancelled")
        default: throw WarrenError(.failed, "promise \(id) was rejected: \(snapshot.value?.data ?? "no reason")")
        }
    }
}
