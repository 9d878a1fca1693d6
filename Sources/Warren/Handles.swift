import Foundation
import WarrenContract

public struct StepHandle<R: Sendable>: Sendable {
    /// The step's promise id.
    public let id: String
    let outcome: Outcome<R>

    /// The step's result, or its error once its retries are exhausted.
    public func value() async throws -> R { try await outcome.value }
}

/// A durable promise handle: await its value, here or after any number of restarts.
public struct DurablePromise: Sendable {
    /// The promise's id, to give to whoever settles it.
    public let id: String
    let snapshot: PromiseRecord
    let context: Context?

    init(id: String, snapshot: PromiseRecord, context: Context? = nil) {
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
        context?.passedWait()
        return try Context.outcome(of: snapshot, as: T.self)
    }
}

/// How a failing step is retried: exponential back-off on durable timers.
