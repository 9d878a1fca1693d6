import Foundation
import WarrenContract

extension Context {
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
        let (slotID, recorded) = try nextID()
        if customID == nil, let recorded {
            try check(recorded, kind: "promise")
            return DurablePromise(id: slotID, snapshot: recorded, context: self)
        }
        let promiseID = customID ?? slotID
        var allTags = tags
        allTags[PromiseRecord.kindTag] = "promise"
        allTags["warren:workflow"] = PromiseRecord.rootID(of: id)
        let seconds = max(1, Int(timeout.components.seconds))
        let (snapshot, _) = try await transport.promiseRequest(.createPromise, Wire.object([
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
        let (childID, recorded) = try nextID()
        let snapshot: PromiseRecord
        if let recorded {
            try check(recorded, kind: kind)
            snapshot = recorded
        } else {
            snapshot = try await transport.promiseRequest(.startWorkflow, Wire.object([
                ("id", Wire.quote(childID)), ("function", Wire.quote(function)), ("args", "[" + (try Wire.json(argument)) + "]"),
                ("group", Wire.quote(target)), ("timeout", Wire.quote("\(max(1, timeout.components.seconds))s")),
                ("tags", Wire.object([(PromiseRecord.kindTag, Wire.quote(kind))])),
            ])).promise
        }
        if awaited, !snapshot.isSettled { awaitChild(childID) }
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
        passedWait()
    }

    /// The next id as a timer promise (created now, or as recorded).
    private func timerPromise(timeout: String) async throws -> PromiseRecord {
        let (timerID, recorded) = try nextID()
        if let recorded {
            try check(recorded, kind: "sleep")
            return recorded
        }
        return try await transport.promiseRequest(.createPromise, Wire.object([
            ("id", Wire.quote(timerID)), ("idempotencyKey", Wire.quote(timerID)), ("timeout", timeout),
            ("tags", Wire.object([(PromiseRecord.kindTag, "\"sleep\""), (PromiseRecord.timerTag, "\"true\"")])),
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
        let (decisionID, recorded) = try nextID()
        if let recorded {
            try check(recorded, kind: "race")
            if recorded.isSettled {
                // Decided by an earlier run: still replaying.
                return try Self.outcome(of: recorded, as: String.self) == "promise" ? try Self.outcome(of: promise.snapshot, as: T.self) : nil
            }
        }
        if promise.snapshot.isSettled {
            record(decisionID, kind: "race", state: "resolved", value: "\"promise\"")
            return try await promise.value(as: T.self)
        }
        if timer.isSettled {
            record(decisionID, kind: "race", state: "resolved", value: "\"timer\"")
            passedWait()
            return nil
        }
        throw interrupt(Suspension(awaiting: [promise.id, timer.id]))
    }
}
