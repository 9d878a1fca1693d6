/// The Durable Promise Specification's rules as pure functions: no disk, no clock.
///
/// Both the SQLite store and the tests' in-memory model call these, so the rules live in one place.
public enum PromiseRules {
    /// How a settle request completes a promise.
    public enum Completion: String, Sendable, CaseIterable {
        case resolve, reject, cancel

        public var state: PromiseState {
            switch self {
            case .resolve: .resolved
            case .reject: .rejected
            case .cancel: .rejectedCanceled
            }
        }
    }

    /// The promise as it reads at `now`: a pending promise past its timeout is timed out (or,
    /// for a timer, resolved) at once, whether or not a timer has fired.
    public static func effective(_ p: PromiseRecord, now: Int64) -> PromiseRecord {
        guard p.state == .pending, now >= p.timeout else { return p }
        var q = p
        q.state = p.isTimer ? .resolved : .rejectedTimedout
        q.completedOn = p.timeout
        return q
    }

    /// Whether a promise belongs to a workflow's machinery: a workflow's root (its result), a
    /// step, a timer, a recorded choice, a child workflow. Only the orchestrator settles those
    /// (task completion, timers); the public APIs settle only promises a workflow made for the
    /// outside world (`ctx.promise`, tagged `warren:kind: promise`) and standalone ones.
    public static func isInternal(_ p: PromiseRecord) -> Bool {
        if p.tags["warren:function"] != nil || p.isTimer { return true }
        if let kind = p.tags["warren:kind"] { return kind != "promise" }
        return false
    }


    /// What a create does.
    public enum CreateOutcome: Equatable, Sendable {
        /// A new promise: store it (HTTP 201).
        case created(PromiseRecord)
        /// The same logical request again: return the existing promise (HTTP 200).
        case deduplicated(PromiseRecord)
        /// Refused: the id is taken (HTTP 409).
        case alreadyExists(PromiseRecord)
    }

    /// Applies a create to what exists (already made `effective`).
    public static func create(_ request: CreatePromise, existing: PromiseRecord?, now: Int64) -> CreateOutcome {
        guard let existing else {
            return .created(PromiseRecord(id: request.id, param: request.param, timeout: request.timeout,
                                          idempotencyKeyForCreate: request.idempotencyKey, createdOn: now, tags: request.tags))
        }
        if let key = request.idempotencyKey, key == existing.idempotencyKeyForCreate,
           existing.state == .pending || !request.strict {
            return .deduplicated(existing)
        }
        return .alreadyExists(existing)
    }

    /// What a resolve, reject or cancel does.
    public enum SettleOutcome: Equatable, Sendable {
        /// The promise was pending and is now settled: store it (HTTP 200/201).
        case settled(PromiseRecord)
        /// The same logical request again, or a non-strict request on a timed-out promise:
        /// return the promise as it is (HTTP 200).
        case deduplicated(PromiseRecord)
        /// Refused: the promise is already settled otherwise (HTTP 403).
        case alreadySettled(PromiseRecord)
    }

    /// Applies a settle to an existing promise (already made `effective`).
    public static func settle(_ request: SettlePromise, existing: PromiseRecord, now: Int64) -> SettleOutcome {
        switch existing.state {
        case .pending:
            var p = existing
            p.state = request.completion.state
            p.value = request.value
            p.idempotencyKeyForComplete = request.idempotencyKey
            p.completedOn = now
            return .settled(p)
        case .rejectedTimedout:
            // Nobody settled it: a non-strict request is content with the timeout.
            return request.strict ? .alreadySettled(existing) : .deduplicated(existing)
        case .resolved, .rejected, .rejectedCanceled:
            if let key = request.idempotencyKey, key == existing.idempotencyKeyForComplete,
               !request.strict || existing.state == request.completion.state {
                return .deduplicated(existing)
            }
            return .alreadySettled(existing)
        }
    }
}

extension PromiseRules {
    /// A create decided as every backend applies it: the promise to insert (`creates`), the one
    /// found (a deduplicated create), or the refusal.
    public static func decideCreate(_ r: CreatePromise, existing: PromiseRecord?, now: Int64) throws(StoreError) -> (promise: PromiseRecord, creates: Bool) {
        switch create(r, existing: existing, now: now) {
        case .created(let p): return (p, true)
        case .deduplicated(let p): return (p, false)
        case .alreadyExists(let p):
            throw StoreError(.alreadyExists, "a promise with id '\(r.id)' exists (\(p.state.rawValue)) and the request's "
                + "idempotency key does not match its create; use another id, or the same key to deduplicate", promise: p)
        }
    }

    /// A settle decided as every backend applies it, on the promise as stored: the settled
    /// promise to write (`settles`), the one found (a deduplicated settle), or the refusal.
    public static func decideSettle(_ r: SettlePromise, stored: PromiseRecord, now: Int64) throws(StoreError) -> (promise: PromiseRecord, settles: Bool) {
        switch settle(r, existing: effective(stored, now: now), now: now) {
        case .settled(let p): return (p, true)
        case .deduplicated(let p): return (p, false)
        case .alreadySettled(let p):
            throw StoreError(.alreadySettled, "the promise '\(r.id)' is already \(p.state.rawValue); the first outcome wins", promise: p)
        }
    }
}
