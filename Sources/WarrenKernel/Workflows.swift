import WarrenContract
import WarrenStore

/// An operator's decisions on a workflow: cancel it, try a blocked one again, or fail it.
extension Kernel {
    /// `workflow.cancel` (and `POST /workflows/{id}/cancel`, `warren workflows cancel`): the
    /// workflow's promise becomes `REJECTED_CANCELED` at once (its callers and subscribers see
    /// it), every pending promise below it is canceled (child workflows, durable sleeps, promises
    /// waiting for a human), except detached children and what is below them; then the
    /// workflow's task is handed out once more, so that its code sees the cancellation at its
    /// `await` and can compensate. After the grace period (``Configuration/cancelGrace``) the task
    /// is completed whatever that run is doing.
    ///
    /// The same cancel again changes nothing; cancelling a settled workflow is refused with its state.
    public func cancelWorkflow(_ id: String, reason: String?, tx: any StoreTransaction, now: Int64) throws -> (promise: PromiseRecord, effects: Effects) {
        let root = try workflow(id, tx: tx, now: now)
        var value: [String: JSONValue] = ["error": .string("canceled")]
        if let reason { value["reason"] = .string(reason) }
        let result = try tx.settlePromise(SettlePromise(id: id, completion: .cancel, idempotencyKey: "cancel:\(id)",
                                                        value: PromiseValue(data: JSONValue.object(value).jsonText)), now: now)
        guard result.settled else { return (result.promise, Effects()) }  // the same cancel, again
        var effects = Effects(messages: try settled(result, tx: tx, now: now))
        effects.send(try cancelBelow(id, tx: tx, now: now))
        // A run that is still going sees the cancel at its next report (its promise settled):
        // its version is stale, and the compensating run below takes over.
        let compensating = try tx.compensateTask(id: root.id, graceUntil: now + configuration.cancelGrace, now: now)
        effects.send(try execute(compensating, tx: tx, now: now))
        return (result.promise, effects)
    }

    /// `workflow.retry` (and `POST /workflows/{id}/retry`): hands the workflow's task out again
    /// now if it is blocked or waiting, and every blocked task below it (a child workflow that
    /// blocked), instead of waiting for the next back-off. Refused when none is.
    public func retryWorkflow(_ id: String, tx: any StoreTransaction, now: Int64) throws -> (promise: PromiseRecord, effects: Effects) {
        let root = try workflow(id, tx: tx, now: now)
        var effects = Effects()
        var retried = 0
        if let own = try tx.task(id: id), own.state == .blocked || own.state == .suspended {
            effects.send(try execute(try tx.resumeTask(id: id, now: now), tx: tx, now: now))
            retried += 1
        }
        var cursor: String? = id
        scan: while true {
            let page = try tx.tasks(states: [.blocked], limit: PromiseSearch.maximumLimit, cursor: cursor)
            for t in page.tasks {
                guard t.id.hasPrefix(id + ".") else { break scan }
                effects.send(try execute(try tx.resumeTask(id: t.id, now: now), tx: tx, now: now))
                retried += 1
            }
            guard let next = page.cursor else { break }
            cursor = next
        }
        guard retried > 0 else {
            let state = try tx.task(id: id).map { "\($0.state)" } ?? "without a task"
            throw StoreError(.invalidTaskState, "workflow '\(id)' is \(state) and nothing below it is blocked: there is nothing to retry", promise: root)
        }
        return (try tx.promise(id: id, now: now) ?? root, effects)
    }

    /// `workflow.fail` (and `POST /workflows/{id}/fail`): the operator gives up on a workflow (a
    /// blocked one whose history no code will replay): its promise is rejected with `reason`, and
    /// every pending promise below it is canceled, as with a cancel but without a compensating run.
    public func failWorkflow(_ id: String, reason: String, tx: any StoreTransaction, now: Int64) throws -> (promise: PromiseRecord, effects: Effects) {
        _ = try workflow(id, tx: tx, now: now)
        let value = JSONValue.object(["error": .string("failed by an operator: " + reason)])
        let result = try tx.settlePromise(SettlePromise(id: id, completion: .reject, idempotencyKey: "fail:\(id)",
                                                        value: PromiseValue(data: value.jsonText)), now: now)
        guard result.settled else { return (result.promise, Effects()) }
        var effects = Effects(messages: try settled(result, tx: tx, now: now))
        effects.send(try cancelBelow(id, tx: tx, now: now))
        return (result.promise, effects)
    }

    /// The workflow's promise (one with a task), or why not.
    private func workflow(_ id: String, tx: any StoreTransaction, now: Int64) throws -> PromiseRecord {
        guard let p = try tx.promise(id: id, now: now) else {
            throw StoreError(.notFound, "no workflow with id '\(id)' (ids are case-sensitive)")
        }
        guard try tx.task(id: id) != nil else {
            throw StoreError(.invalidArgument, "'\(id)' is a promise, not a workflow: settle it with promise.cancel or PATCH /promises/\(id)", promise: p)
        }
        return p
    }

    /// Cancels every pending promise below `id` except detached children (started with
    /// `ctx.detached`) and what is below them: they outlive their parent by design.
    func cancelBelow(_ id: String, tx: any StoreTransaction, now: Int64) throws -> [OutboxMessage] {
        var out: [OutboxMessage] = []
        var detached: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try tx.search(PromiseSearch(id: id + ".*", states: [.pending], limit: PromiseSearch.maximumLimit, cursor: cursor), now: now)
            for p in page.promises {
                if p.tags[PromiseRecord.kindTag]?.hasPrefix("detached:") == true { detached.append(p.id + "."); continue }
                if detached.contains(where: { p.id.hasPrefix($0) }) { continue }
                if try isBelowDetached(p.id, root: id, tx: tx, now: now) { continue }
                let result = try tx.settlePromise(SettlePromise(id: p.id, completion: .cancel, idempotencyKey: "cancel:\(id)",
                                                                value: PromiseValue(data: #"{"error":"canceled"}"#)), now: now)
                if result.settled { out += try settled(result, tx: tx, now: now) }
            }
            cursor = page.cursor
        } while cursor != nil
        return out
    }

    /// Whether a promise between `root` and `id` (settled, so not seen by the pending search) is
    /// a detached child.
    private func isBelowDetached(_ id: String, root: String, tx: any StoreTransaction, now: Int64) throws -> Bool {
        var ancestor = id
        while let dot = ancestor.lastIndex(of: "."), ancestor.count > root.count {
            ancestor = String(ancestor[..<dot])
            guard ancestor.count > root.count else { return false }
            if try tx.promise(id: ancestor, now: now)?.tags[PromiseRecord.kindTag]?.hasPrefix("detached:") == true { return true }
        }
        return false
    }

    /// `task.block`: the worker's run of this version departed from the recorded history (the
    /// workflow's code changed under it) or it has no such function: the task is parked with the
    /// reason and offered again after ``Configuration/blockedRetry`` (a fixed deploy takes it), or
    /// when an operator retries it. The workflow is not failed.
    func blockTask(_ id: String, version: Int64, worker: String, reason: String, tx: any StoreTransaction, now: Int64) throws -> Effects {
        _ = try tx.blockTask(id: id, version: version, worker: worker, reason: reason, due: now + configuration.blockedRetry, now: now)
        return Effects()
    }
}
