import Testing
import WarrenContract
import WarrenKernel
import WarrenStore

/// Blocked tasks, cancellation and an operator's retry or fail, on the in-memory store with the
/// kernel's own rules: no broker, no disk.
@Suite("Workflow decisions")
struct WorkflowDecisionTests {
    let t0: Int64 = 1_800_000_000_000
    let store = MemoryStore()
    let kernel = Kernel(Kernel.Configuration(topology: Topology(prefix: "w"), blockedRetry: 10_000, cancelGrace: 5_000))

    func apply(_ command: Command, from caller: Caller = .none, at now: Int64) async throws -> Effects {
        try await store.write { [kernel] tx in
            let effects = try kernel.apply(command, from: caller, tx: tx, now: now)
            try tx.enqueue(effects)
            return effects
        }
    }

    func fire(at now: Int64) async throws -> Effects {
        try await store.write { [kernel] tx in try kernel.fireTimers(tx: tx, now: now, limit: 100).effects }
    }

    func task(_ id: String) async throws -> TaskRecord? { try await store.read { try $0.task(id: id) } }
    func promise(_ id: String, at now: Int64) async throws -> PromiseRecord? { try await store.read { try $0.promise(id: id, now: now) } }

    func start(_ id: String, at now: Int64) async throws {
        let create = CreatePromise(id: id, idempotencyKey: id, param: PromiseValue(data: #"{"function":"refund","args":[]}"#),
                                   timeout: now + 86_400_000, tags: ["warren:function": "refund"], taskGroup: "g")
        _ = try await apply(.startWorkflow(create, function: "refund", subscribe: false), at: now)
    }

    func create(_ id: String, kind: String, group: String? = nil, at now: Int64) async throws {
        _ = try await apply(.createPromise(CreatePromise(id: id, idempotencyKey: id, timeout: now + 86_400_000, tags: [PromiseRecord.kindTag: kind],
                                                         taskGroup: group)), at: now)
    }

    @Test func aBlockedTaskWaitsIsOfferedAgainAndAnOperatorRetriesIt() async throws {
        try await start("wf", at: t0)
        let blocked = try await apply(.blockTask(id: "wf", version: 1, worker: "w1", reason: "step wf.2 was recorded as run:mail, but the replay reached it as sleep"),
                                      at: t0 + 1)
        #expect(blocked.messages.isEmpty && blocked.deadLetter == nil)
        let parked = try #require(try await task("wf"))
        #expect(parked.state == .blocked && parked.worker == nil && parked.blocked?.contains("wf.2") == true)
        #expect(try await promise("wf", at: t0 + 1)?.state == .pending, "the workflow is not failed")
        let listed = try await store.read { try $0.tasks(states: [.blocked], limit: 10, cursor: nil).tasks.map(\.id) }
        #expect(listed == ["wf"])

        // A report for the old version no longer counts.
        let late = try await apply(.completeTask(id: "wf", version: 1, worker: "w1", settle: SettlePromise(id: "wf", completion: .resolve), steps: []), at: t0 + 2)
        #expect(late.ignored != nil)

        // The back-off offers it again (a fixed deploy takes it).
        #expect(try await fire(at: t0 + 5_000).messages.isEmpty)
        let again = try await fire(at: t0 + 10_001)
        #expect(again.messages.map(\.routingKey) == ["execute.g"])
        let offered = try #require(try await task("wf"))
        #expect(offered.state == .pending && offered.version == 2 && offered.blocked == nil)

        // Blocked again; the operator retries it at once.
        _ = try await apply(.blockTask(id: "wf", version: 2, worker: "w2", reason: "still broken"), at: t0 + 10_002)
        let retried = try await apply(.retryWorkflow(id: "wf"), from: Caller(replyTo: "w.reply.op", correlationID: "1"), at: t0 + 10_003)
        #expect(retried.messages.map(\.routingKey) == ["execute.g", "w.reply.op"])
        #expect(try await task("wf")?.version == 3)

        // Nothing to retry: refused with the state.
        let refused = try await apply(.retryWorkflow(id: "wf"), from: Caller(replyTo: "w.reply.op", correlationID: "2"), at: t0 + 10_004)
        #expect(refused.messages.map(\.kind) == ["error"])
    }

    @Test func cancellingCancelsWhatTheWorkflowWaitsForButNotDetachedChildrenAndRunsItOnceMore() async throws {
        try await start("wf", at: t0)
        try await create("wf.1", kind: "promise", at: t0 + 1)              // a person's approval
        try await create("wf.2", kind: "rpc:audit", group: "g", at: t0 + 1) // an awaited child workflow
        try await create("wf.2.1", kind: "sleep", at: t0 + 1)              // the child's durable sleep
        try await create("wf.3", kind: "detached:report", group: "g", at: t0 + 1)
        try await create("wf.3.1", kind: "promise", at: t0 + 1)
        _ = try await apply(.suspendTask(id: "wf", version: 1, worker: "w1", awaiting: ["wf.1"], steps: []), at: t0 + 2)

        let canceled = try await apply(.cancelWorkflow(id: "wf", reason: "customer withdrew"), from: Caller(replyTo: "w.reply.c", correlationID: "1"),
                                       at: t0 + 3)
        let root = try #require(try await promise("wf", at: t0 + 3))
        #expect(root.state == .rejectedCanceled && root.value.data?.contains("customer withdrew") == true)
        for id in ["wf.1", "wf.2", "wf.2.1"] { #expect(try await promise(id, at: t0 + 3)?.state == .rejectedCanceled, "\(id)") }
        for id in ["wf.3", "wf.3.1"] { #expect(try await promise(id, at: t0 + 3)?.state == .pending, "\(id) is detached") }
        #expect(try await task("wf.2")?.state == .completed)
        // One execute message: the compensating run, whose history shows what was canceled.
        #expect(canceled.messages.filter { $0.kind == "task.execute" }.map(\.routingKey) == ["execute.g"])
        #expect(canceled.messages.last?.routingKey == "w.reply.c")
        let compensating = try #require(try await task("wf"))
        #expect(compensating.state == .pending && compensating.version == 2)

        // The same cancel again changes nothing.
        let again = try await apply(.cancelWorkflow(id: "wf", reason: nil), at: t0 + 4)
        #expect(again.messages.isEmpty)

        // The compensating run records its step and completes; the workflow stays canceled.
        _ = try await apply(.completeTask(id: "wf", version: 2, worker: "w1", settle: SettlePromise(id: "wf", completion: .resolve, idempotencyKey: "complete:wf"),
                                          steps: [StepOutcome(id: "wf.4", value: PromiseValue(data: #""withdrawn mail sent""#), tags: [PromiseRecord.kindTag: "run:mail"])]),
                            at: t0 + 5)
        #expect(try await task("wf")?.state == .completed)
        #expect(try await promise("wf", at: t0 + 5)?.state == .rejectedCanceled)
        #expect(try await promise("wf.4", at: t0 + 5)?.state == .resolved)
        // The grace timer finds it done.
        #expect(try await fire(at: t0 + 10_000).messages.isEmpty)
    }

    @Test func aCompensationThatOverrunsItsGraceIsEndedAndWhatItLeftPendingCanceled() async throws {
        try await start("wf", at: t0)
        _ = try await apply(.cancelWorkflow(id: "wf", reason: nil), at: t0 + 1)
        // The compensating run waits for something new, and never finishes.
        try await create("wf.1", kind: "promise", at: t0 + 2)
        _ = try await apply(.suspendTask(id: "wf", version: 2, worker: "w1", awaiting: ["wf.1"], steps: []), at: t0 + 3)
        _ = try await fire(at: t0 + 1 + 5_000)
        #expect(try await task("wf")?.state == .completed)
        #expect(try await promise("wf.1", at: t0 + 5_002)?.state == .rejectedCanceled)
    }

    @Test func failingRejectsTheWorkflowWithTheReasonAndCancelsWhatItWaitsFor() async throws {
        try await start("wf", at: t0)
        try await create("wf.1", kind: "promise", at: t0 + 1)
        _ = try await apply(.blockTask(id: "wf", version: 1, worker: "w1", reason: "departed"), at: t0 + 2)
        let failed = try await apply(.failWorkflow(id: "wf", reason: "no code replays this history"), at: t0 + 3)
        #expect(failed.messages.allSatisfy { $0.kind != "task.execute" }, "no compensating run")
        let root = try #require(try await promise("wf", at: t0 + 3))
        #expect(root.state == .rejected && root.value.data?.contains("failed by an operator: no code replays this history") == true)
        #expect(try await promise("wf.1", at: t0 + 3)?.state == .rejectedCanceled)
        #expect(try await task("wf")?.state == .completed)
        // A blocked task's back-off timer finds nothing to do.
        #expect(try await fire(at: t0 + 20_000).messages.isEmpty)
    }

    @Test func decisionsOnWhatIsNotAWorkflowAreRefusedWithAReason() async throws {
        try await create("loose", kind: "promise", at: t0)
        let op = Caller(replyTo: "w.reply.op", correlationID: "1")
        for command in [Command.cancelWorkflow(id: "nope", reason: nil), .cancelWorkflow(id: "loose", reason: nil), .retryWorkflow(id: "nope"),
                        .failWorkflow(id: "loose", reason: "x")] {
            let effects = try await apply(command, from: op, at: t0 + 1)
            #expect(effects.messages.map(\.kind) == ["error"], "\(command)")
        }
        // Without a reply queue, a caller's mistake is dead-lettered with the reason.
        #expect(try await apply(.cancelWorkflow(id: "nope", reason: nil), at: t0 + 2).deadLetter?.contains("no workflow") == true)
        // A settled workflow cannot be canceled: the first outcome won.
        try await start("done", at: t0)
        _ = try await apply(.completeTask(id: "done", version: 1, worker: "w", settle: SettlePromise(id: "done", completion: .resolve, idempotencyKey: "complete:done"),
                                          steps: []), at: t0 + 3)
        let late = try await apply(.cancelWorkflow(id: "done", reason: nil), from: op, at: t0 + 4)
        #expect(late.messages.map(\.kind) == ["error"])
        #expect(try await promise("done", at: t0 + 4)?.state == .resolved)
    }

    @Test func theContractDecodesTheNewCommandsAndRefusesBadOnes() throws {
        func decode(_ kind: MessageKind, _ json: String) throws -> Command {
            try Command.decode(routingKey: kind.rawValue, type: nil, body: Array(json.utf8), now: t0, defaultTimeout: 1000, maximumBodyBytes: 1 << 16)
        }
        #expect(try decode(.blockTask, #"{"id":"a","version":2,"worker":"w","reason":"why"}"#) == .blockTask(id: "a", version: 2, worker: "w", reason: "why"))
        #expect(try decode(.cancelWorkflow, #"{"id":"a"}"#) == .cancelWorkflow(id: "a", reason: nil))
        #expect(try decode(.retryWorkflow, #"{"id":"a"}"#) == .retryWorkflow(id: "a"))
        #expect(try decode(.failWorkflow, #"{"id":"a","reason":"r"}"#) == .failWorkflow(id: "a", reason: "r"))
        #expect(throws: ContractError.self) { try decode(.blockTask, #"{"id":"a","version":2,"worker":"w"}"#) }
        #expect(throws: ContractError.self) { try decode(.blockTask, #"{"id":"a","version":2,"worker":"w","reason":""}"#) }
        #expect(throws: ContractError.self) { try decode(.cancelWorkflow, #"{"id":"a","reason":7}"#) }
        let long = String(repeating: "x", count: 10_000)
        guard case .blockTask(_, _, _, let reason) = try decode(.blockTask, #"{"id":"a","version":1,"worker":"w","reason":"\#(long)"}"#) else { return }
        #expect(reason.count == TaskRules.maximumReasonCharacters)
    }
}
