import Testing
@testable import WarrenStore

@Suite("Tasks")
struct TaskTests {
    @Test func aWorkflowTaskIsClaimedSuspendedAndResumedWithARaisedVersion() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        let s = temp.store
        let created = try s.create("wf", group: "workers")
        #expect(created.task == TaskRecord(id: "wf", group: "workers", state: .pending, version: 1, worker: nil, updatedOn: t0))
        _ = try s.create("wf.1")
        let claimed = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w1", now: t0) }
        #expect(claimed.state == .acquired && claimed.worker == "w1")
        // The same claim again (a redelivered message) is harmless.
        #expect(try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w1", now: t0) } == claimed)
        let suspended = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w1", awaiting: ["wf.1"], now: t0) }
        guard case .suspended(let t) = suspended else { Issue.record("\(suspended)"); return }
        #expect(t.state == .suspended)
        #expect(try s.writeSync { tx in try tx.awaitedPromises(taskID: "wf") } == ["wf.1"])

        let settled = try s.settle("wf.1", data: "\"approved\"")
        #expect(settled.resumedTasks.map(\.id) == ["wf"])
        #expect(settled.resumedTasks[0].version == 2 && settled.resumedTasks[0].state == .pending)
        #expect(try s.writeSync { tx in try tx.awaitedPromises(taskID: "wf") }.isEmpty)
        // A second resolve is refused and resumes nothing.
        expectStoreError(.alreadySettled) { _ = try s.settle("wf.1") }

        // Version 1 is fenced off; version 2 completes the workflow.
        expectStoreError(.staleTask) { _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w1", now: t0) } }
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 2, worker: "w2", now: t0) }
        let done = try s.writeSync { tx in
            try tx.completeTask(id: "wf", version: 2, worker: "w2",
                                settle: SettlePromise(id: "wf", completion: .resolve, value: PromiseValue(data: "\"done\"")), now: t0 + 5)
        }
        #expect(done.promise.state == .resolved)
        #expect(try s.writeSync { tx in try tx.task(id: "wf") }?.state == .completed)
    }

    @Test func twoWorkersRacingOnOneVersionCannotBothCount() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "a", now: t0) }
        expectStoreError(.staleTask) { _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "b", now: t0) } }
        // A report from the loser is ignored.
        expectStoreError(.staleTask) {
            _ = try s.writeSync { tx in
                try tx.completeTask(id: "wf", version: 1, worker: "b", settle: SettlePromise(id: "wf", completion: .resolve), now: t0)
            }
        }
        // A redelivered execute message hands the task out again: the old holder is fenced off.
        let next = try s.writeSync { tx in try tx.redispatchTask(id: "wf", now: t0) }
        #expect(next.version == 2)
        expectStoreError(.staleTask) {
            _ = try s.writeSync { tx in
                try tx.completeTask(id: "wf", version: 1, worker: "a", settle: SettlePromise(id: "wf", completion: .resolve), now: t0)
            }
        }
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 2, worker: "b", now: t0) }
        let done = try s.writeSync { tx in
            try tx.completeTask(id: "wf", version: 2, worker: "b", settle: SettlePromise(id: "wf", completion: .resolve, value: PromiseValue(data: "1")), now: t0)
        }
        #expect(done.settled && done.promise.value.data == "1")
    }

    @Test func aResolveThatCameBeforeTheSuspendResumesTheTaskAtOnce() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.create("wf.1")
        _ = try s.create("wf.2")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w", now: t0) }
        // The worker saw wf.1 pending, but a human resolved it before the suspend arrived.
        _ = try s.settle("wf.1")
        let r = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w", awaiting: ["wf.2", "wf.1"], now: t0 + 2) }
        guard case .resumed(let t) = r else { Issue.record("expected resumed, got \(r)"); return }
        #expect(t.version == 2 && t.state == .pending)
        #expect(try s.writeSync { tx in try tx.awaitedPromises(taskID: "wf") }.isEmpty)
    }

    @Test func suspendingOnAnUnknownPromiseLeavesNoTrace() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.create("wf.1")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w", now: t0) }
        expectStoreError(.notFound) {
            _ = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w", awaiting: ["wf.1", "wf.9"], now: t0) }
        }
        #expect(try s.writeSync { tx in try tx.task(id: "wf") }?.state == .acquired)
        #expect(try s.settle("wf.1").resumedTasks.isEmpty)
    }

    @Test func aRetryWaitsOnADurableTimer() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w", now: t0) }
        let waiting = try s.writeSync { tx in try tx.retryTask(id: "wf", version: 1, worker: "w", due: t0 + 500, now: t0) }
        #expect(waiting.state == .suspended)
        #expect(try s.writeSync { tx in try tx.fireTimers(now: t0 + 499, limit: 10) }.isEmpty)
        let fired = try s.writeSync { tx in try tx.fireTimers(now: t0 + 500, limit: 10) }
        guard case .taskRetry(let t)? = fired.first else { Issue.record("\(fired)"); return }
        #expect(t.id == "wf" && t.version == 2 && t.state == .pending)
    }
}
