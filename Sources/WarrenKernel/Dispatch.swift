import WarrenContract
import WarrenStore

extension Kernel {
    /// An execute message for a task handed out (again): its root promise and every promise
    /// below it, so that the worker replays without asking.
    func execute(_ task: TaskRecord, tx: any StoreTransaction, now: Int64) throws -> [OutboxMessage] {
        guard let p = try tx.promise(id: task.id, now: now) else { return [] }
        return try send(messages.execute(task, promise: p, children: try children(of: task.id, tx: tx, now: now)), for: task, tx: tx, now: now)
    }

    /// The execute message, or, when it is larger than a message may be (a workflow whose
    /// history outgrew `maximumMessageBytes`), the workflow rejected with the reason: it could
    /// never be run again, and waiting would only hide that.
    func send(_ message: OutboxMessage, for task: TaskRecord, tx: any StoreTransaction, now: Int64) throws -> [OutboxMessage] {
        let limit = configuration.maximumMessageBytes
        guard message.body.count > limit else { return [message] }
        let reason = "the workflow's execute message (its history) is \(message.body.count) bytes; the limit is "
            + "\(limit) (--max-message-bytes, below the broker's max_message_size): keep large data "
            + "outside the workflow and pass references"
        let value = PromiseValue(data: JSONValue.object(["error": .string(reason)]).jsonText)
        let result = try tx.settlePromise(SettlePromise(id: task.id, completion: .reject, value: value), now: now)
        return result.settled ? try settled(result, tx: tx, now: now) : []
    }

    /// The promises below a root, settled or pending, which a worker replays without asking: for a
    /// workflow that continued as new (``RunMarker``), only its latest run's, with its markers (its
    /// code version, the latest run's arguments), so that a resume costs the same in run 10,000 as
    /// in run 1.
    func children(of root: String, tx: any StoreTransaction, now: Int64) throws -> [PromiseRecord] {
        guard let (run, marker) = try latestRun(of: root, tx: tx, now: now) else { return try all(root + ".*", tx: tx, now: now) }
        let code = try tx.promise(id: CodeVersion.markerID(of: root), now: now)
        return (code.map { [$0] } ?? []) + [marker] + (try all(RunMarker.prefix(of: root, run: run) + ".*", tx: tx, now: now))
    }

    /// The latest run of a workflow that continued as new, and its marker; `nil` for one that did
    /// not (one lookup). Run `k`'s marker exists only if run `k - 1`'s does, so the latest is found
    /// by doubling, then halving: about 2 log2(k) lookups by id, never a scan of the markers.
    func latestRun(of root: String, tx: any StoreTransaction, now: Int64) throws -> (run: Int, marker: PromiseRecord)? {
        func marker(_ k: Int) throws -> PromiseRecord? { try tx.promise(id: RunMarker.markerID(of: root, run: k), now: now) }
        guard var found = try marker(2).map({ (run: 2, marker: $0) }) else { return nil }
        var missing = 0
        var k = 4
        while missing == 0 {
            if let m = try marker(k) { found = (k, m); k *= 2 } else { missing = k }
        }
        // found.run exists, missing does not: halve the gap.
        while missing - found.run > 1 {
            let mid = (found.run + missing) / 2
            if let m = try marker(mid) { found = (mid, m) } else { missing = mid }
        }
        return found
    }

    private func all(_ pattern: String, tx: any StoreTransaction, now: Int64) throws -> [PromiseRecord] {
        var found: [PromiseRecord] = []
        var cursor: String? = nil
        repeat {
            let page = try tx.search(PromiseSearch(id: pattern, limit: PromiseSearch.maximumLimit, cursor: cursor), now: now)
            found += page.promises
            cursor = page.cursor
        } while cursor != nil
        return found
    }
}
