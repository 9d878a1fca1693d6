import Testing
@testable import WarrenStore

@Suite("Tasks")
struct TaskTests {
    @Test(arguments: Backend.allCases) func aWorkflowTaskIsClaimedSuspendedAndResumedWithARaisedVersion(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        let created = try s.create("wf", group: "workers")
        #expect(created.task == TaskRecord(id: "wf", group: "workers", state: .pending, version: 1, worker: nil, updatedOn: t0))
        _ = try s.create("wf.1")
        let claimed = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w1", now: t0) }
        #expect(claimed.state == .acquired && claimed.worker == "w1")
        // The same claim again (a redelivered message) is harmless.
        #expect(try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w1", now: t0) } == claimed)
        let suspended = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w1", awaiting: ["wf.1"], steps: [], now: t0) }
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
                                settle: SettlePromise(id: "wf", completion: .resolve, value: PromiseValue(data: "\"done\"")), steps: [], now: t0 + 5)
        }
        #expect(done.promise.state == .resolved)
        #expect(try s.writeSync { tx in try tx.task(id: "wf") }?.state == .completed)
    }

    @Test(arguments: Backend.allCases) func twoWorkersRacingOnOneVersionCannotBothCount(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "a", now: t0) }
        expectStoreError(.staleTask) { _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "b", now: t0) } }
        // A report from the loser is ignored.
        expectStoreError(.staleTask) {
            _ = try s.writeSync { tx in
                try tx.completeTask(id: "wf", version: 1, worker: "b", settle: SettlePromise(id: "wf", completion: .resolve), steps: [], now: t0)
            }
        }
        // A redelivered execute message hands the task out again: the old holder is fenced off.
        let next = try s.writeSync { tx in try tx.redispatchTask(id: "wf", now: t0) }
        #expect(next.version == 2)
        expectStoreError(.staleTask) {
            _ = try s.writeSync { tx in
                try tx.completeTask(id: "wf", version: 1, worker: "a", settle: SettlePromise(id: "wf", completion: .resolve), steps: [], now: t0)
            }
        }
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 2, worker: "b", now: t0) }
        let done = try s.writeSync { tx in
            try tx.completeTask(id: "wf", version: 2, worker: "b", settle: SettlePromise(id: "wf", completion: .resolve, value: PromiseValue(data: "1")), steps: [], now: t0)
        }
        #expect(done.settled && done.promise.value.data == "1")
    }

    @Test(arguments: Backend.allCases) func aResolveThatCameBeforeTheSuspendResumesTheTaskAtOnce(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.create("wf.1")
        _ = try s.create("wf.2")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w", now: t0) }
        // The worker saw wf.1 pending, but a human resolved it before the suspend arrived.
        _ = try s.settle("wf.1")
        let r = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w", awaiting: ["wf.2", "wf.1"], steps: [], now: t0 + 2) }
        guard case .resumed(let t) = r else { Issue.record("expected resumed, got \(r)"); return }
        #expect(t.version == 2 && t.state == .pending)
        #expect(try s.writeSync { tx in try tx.awaitedPromises(taskID: "wf") }.isEmpty)
    }

    @Test(arguments: Backend.allCases) func suspendingOnAnUnknownPromiseLeavesNoTrace(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.create("wf.1")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w", now: t0) }
        expectStoreError(.notFound) {
            _ = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w", awaiting: ["wf.1", "wf.9"], steps: [], now: t0) }
        }
        #expect(try s.writeSync { tx in try tx.task(id: "wf") }?.state == .acquired)
        #expect(try s.settle("wf.1").resumedTasks.isEmpty)
    }

    @Test(arguments: Backend.allCases) func aRetryWaitsOnADurableTimer(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w", now: t0) }
        let waiting = try s.writeSync { tx in try tx.retryTask(id: "wf", version: 1, worker: "w", due: t0 + 500, failedStep: nil, steps: [], now: t0) }
        #expect(waiting.state == .suspended)
        #expect(try s.writeSync { tx in try tx.fireTimers(now: t0 + 499, limit: 10) }.isEmpty)
        let fired = try s.writeSync { tx in try tx.fireTimers(now: t0 + 500, limit: 10) }
        guard case .taskRetry(let t)? = fired.first else { Issue.record("\(fired)"); return }
        #expect(t.id == "wf" && t.version == 2 && t.state == .pending)
    }

    @Test(arguments: Backend.allCases) func aReportForThePendingVersionIsItsClaimAndRecordsItsSteps(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        let steps = [StepOutcome(id: "wf.1", value: PromiseValue(data: "1"), tags: ["warren:kind": "run:a"]),
                     StepOutcome(id: "wf.2", completion: .reject, value: PromiseValue(data: "\"boom\""))]
        // A step outside the task, or a refused completion, leaves no trace.
        expectStoreError(.invalidArgument) {
            _ = try s.writeSync { tx in
                try tx.completeTask(id: "wf", version: 1, worker: "w", settle: SettlePromise(id: "wf", completion: .resolve),
                                    steps: steps + [StepOutcome(id: "other.1", value: .empty)], now: t0)
            }
        }
        #expect(try s.get("wf.1") == nil)
        let done = try s.writeSync { tx in
            try tx.completeTask(id: "wf", version: 1, worker: "w", settle: SettlePromise(id: "wf", completion: .resolve, value: PromiseValue(data: "3")),
                                steps: steps, now: t0 + 1)
        }
        #expect(done.settled && done.promise.state == .resolved)
        #expect(try s.get("wf.1")?.state == .resolved)
        #expect(try s.get("wf.1")?.value.data == "1")
        #expect(try s.get("wf.1")?.tags == ["warren:kind": "run:a"])
        #expect(try s.get("wf.2")?.state == .rejected)
        // A second worker's report for the same version no longer counts.
        expectStoreError(.staleTask) {
            _ = try s.writeSync { tx in
                try tx.completeTask(id: "wf", version: 1, worker: "x", settle: SettlePromise(id: "wf", completion: .resolve), steps: [], now: t0)
            }
        }
    }

    @Test(arguments: Backend.allCases) func aSuspendOnAStepRecordedWithItResumesAtOnce(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        let r = try s.writeSync { tx in
            try tx.suspendTask(id: "wf", version: 1, worker: "w", awaiting: ["wf.1"],
                               steps: [StepOutcome(id: "wf.1", value: PromiseValue(data: "1"))], now: t0)
        }
        guard case .resumed(let t) = r else { Issue.record("\(r)"); return }
        #expect(t.version == 2)
    }

    @Test(arguments: Backend.allCases) func retriesCountTheFailuresOfOneStep(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        var version: Int64 = 1
        for failures in 1...3 {
            let t = try s.writeSync { [version] tx in
                try tx.retryTask(id: "wf", version: version, worker: "w", due: t0, failedStep: "wf.2",
                                 steps: [StepOutcome(id: "wf.1", value: .empty)], now: t0)
            }
            #expect(t.retry == TaskRetry(step: "wf.2", failures: failures))
            let fired = try s.writeSync { tx in try tx.fireTimers(now: t0 + 1, limit: 10) }
            guard case .taskRetry(let next)? = fired.first else { Issue.record("\(fired)"); return }
            #expect(next.retry == TaskRetry(step: "wf.2", failures: failures))
            version = next.version
        }
        // Another step's failure starts its own count.
        let t = try s.writeSync { [version] tx in
            try tx.retryTask(id: "wf", version: version, worker: "w", due: t0, failedStep: "wf.3", steps: [], now: t0)
        }
        #expect(t.retry == TaskRetry(step: "wf.3", failures: 1))
        #expect(try s.get("wf.1")?.state == .resolved)
    }

    @Test(arguments: Backend.allCases) func subscribersAreToldOnceWhenThePromiseSettlesOrTimesOut(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("p")
        _ = try s.create("q", timeout: t0 + 10)
        for c in ["c1", "c2", "c1"] {
            let p = try s.writeSync { tx in try tx.subscribe(promiseID: "p", address: "reply.a", correlation: c, now: t0) }
            #expect(p.state == .pending)
        }
        _ = try s.writeSync { tx in try tx.subscribe(promiseID: "q", address: "reply.b", correlation: "c3", now: t0) }
        expectStoreError(.notFound) { _ = try s.writeSync { tx in try tx.subscribe(promiseID: "nope", address: "a", correlation: "c", now: t0) } }
        let settled = try s.settle("p", data: "1")
        #expect(Set(settled.subscribers) == [Subscriber(address: "reply.a", correlation: "c1"), Subscriber(address: "reply.a", correlation: "c2")])
        // Subscribing to a settled promise answers with it and keeps nothing.
        let p = try s.writeSync { tx in try tx.subscribe(promiseID: "p", address: "reply.a", correlation: "c9", now: t0) }
        #expect(p.state == .resolved)
        let fired = try s.writeSync { tx in try tx.fireTimers(now: t0 + 10, limit: 10) }
        guard case .promiseTimeout(let r)? = fired.first else { Issue.record("\(fired)"); return }
        #expect(r.subscribers == [Subscriber(address: "reply.b", correlation: "c3")])
    }

    @Test(arguments: Backend.allCases) func progressRecordsStepsAndClaimsThePendingVersion(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        try s.writeSync { tx in try tx.recordProgress(id: "wf", version: 1, worker: "w", steps: [StepOutcome(id: "wf.1", value: PromiseValue(data: "1"))], lease: nil, now: t0) }
        #expect(try s.get("wf.1")?.state == .resolved)
        #expect(try s.writeSync { tx in try tx.task(id: "wf") }?.worker == "w")
        // Another worker's progress for the same version no longer counts.
        expectStoreError(.staleTask) {
            try s.writeSync { tx in try tx.recordProgress(id: "wf", version: 1, worker: "x", steps: [StepOutcome(id: "wf.2", value: .empty)], lease: nil, now: t0) }
        }
        #expect(try s.get("wf.2") == nil)
    }
}
