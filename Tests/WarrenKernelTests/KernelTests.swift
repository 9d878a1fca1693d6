import Testing
import WarrenContract
import WarrenKernel
import WarrenStore

/// The orchestrator's operations, with the in-memory store: no broker, no disk. Each test sends
/// commands as a transport would and checks the messages they cause.
@Suite("Kernel")
struct KernelTests {
    let t0: Int64 = 1_800_000_000_000
    let store = MemoryStore()
    let kernel = Kernel(Kernel.Configuration(topology: Topology(prefix: "w")))
    let client = Caller(replyTo: "w.reply.client", correlationID: "c-1")

    /// Applies `command` in its own transaction and returns what it caused (its messages written to the outbox too).
    func apply(_ command: Command, from caller: Caller = .none, at now: Int64) async throws -> Effects {
        try await store.write { [kernel] tx in
            let effects = try kernel.apply(command, from: caller, tx: tx, now: now)
            try tx.enqueue(effects)
            return effects
        }
    }

    func decode(_ kind: MessageKind, _ json: String, at now: Int64) throws -> Command {
        try Command.decode(routingKey: kind.rawValue, type: nil, body: Array(json.utf8), now: now, defaultTimeout: 3_600_000, maximumBodyBytes: 1 << 20)
    }

    /// The task, promise and children of an execute message (or a claim reply).
    func taskMessage(_ m: OutboxMessage) throws -> (id: String, version: Int64, children: [String: String]) {
        let o = try #require(try JSONValue.parse(m.body).objectValue)
        let task = try #require(o["task"]?.objectValue)
        guard case .int(let version)? = task["version"], case .array(let children)? = o["children"] else { throw ContractError(reason: "no task") }
        var states: [String: String] = [:]
        for c in children { if let c = c.objectValue, let id = c["id"]?.stringValue { states[id] = c["state"]?.stringValue } }
        return (task["id"]?.stringValue ?? "", version, states)
    }

    @Test func aWorkflowThatContinuesAsNewRunsAgainAtOnceWithOnlyItsLatestRunsHistory() async throws {
        let started = try await apply(try decode(.startWorkflow, #"{"id": "loop-1", "function": "loop", "args": [0], "group": "g"}"#, at: t0),
                                      from: client, at: t0)
        var version = try taskMessage(started.messages[0]).version
        for run in 1...3 {
            // Each run records a step and the next run's marker, and asks to run again at once.
            let prefix = run == 1 ? "loop-1" : "loop-1.r\(run)"
            let marker = StepOutcome(id: "loop-1.warren:run:\(run + 1)", value: PromiseValue(data: #"{"run":\#(run + 1),"args":[\#(run)]}"#),
                                     tags: ["warren:kind": "continue"])
            let step = StepOutcome(id: "\(prefix).1", value: PromiseValue(data: "\(run)"), tags: ["warren:kind": "run:tick"])
            let continued = try await apply(.retryTask(id: "loop-1", version: version, worker: "w1", delay: 0, failedStep: nil, steps: [step, marker]),
                                            at: t0 + Int64(run))
            #expect(continued.messages.map(\.routingKey) == ["execute.g"], "the next run is handed out in the same transaction")
            let next = try taskMessage(continued.messages[0])
            #expect(next.version == version + 1)
            // Only the markers of the latest run travel: none of the runs before it.
            #expect(next.children == ["loop-1.warren:run:\(run + 1)": "RESOLVED"], "\(next.children)")
            version = next.version
        }
    }

    @Test func aResolveResumesTheWorkflowThatAwaitsIt() async throws {
        // workflow.start: the root promise, its task, and an execute message for its group.
        let started = try await apply(try decode(.startWorkflow, #"{"id": "hitl-1", "function": "approve", "args": ["x"], "group": "g"}"#, at: t0),
                                      from: client, at: t0)
        #expect(started.messages.map(\.routingKey) == ["execute.g", "w.reply.client"])
        let first = try taskMessage(started.messages[0])
        #expect(first.id == "hitl-1" && first.version == 1 && first.children.isEmpty)

        // The worker makes the approval promise, runs a step, and suspends on the approval.
        _ = try await apply(try decode(.createPromise, #"{"id": "hitl-1.1", "idempotencyKey": "hitl-1.1", "tags": {"warren:kind": "promise"}}"#, at: t0 + 1),
                            at: t0 + 1)
        let suspended = try await apply(.suspendTask(id: "hitl-1", version: 1, worker: "w1", awaiting: ["hitl-1.1"],
                                                     steps: [StepOutcome(id: "hitl-1.2", value: PromiseValue(data: #""mailed""#), tags: ["warren:kind": "run:mail"])]),
                                        at: t0 + 2)
        #expect(suspended.messages.isEmpty, "a suspended workflow costs no message")

        // promise.resolve from anywhere: its event, its reply, and the execute message of the resumed task.
        let resolved = try await apply(try decode(.resolvePromise, #"{"id": "hitl-1.1", "value": "approved"}"#, at: t0 + 3), from: client, at: t0 + 3)
        #expect(resolved.messages.map(\.routingKey) == ["settled.hitl-1.1", "execute.g", "w.reply.client"])
        #expect(resolved.messages.map(\.kind) == ["promise.settled", "task.execute", "reply"])
        let resumed = try taskMessage(resolved.messages[1])
        #expect(resumed.version == 2, "the hand-out raised the version")
        #expect(resumed.children == ["hitl-1.1": "RESOLVED", "hitl-1.2": "RESOLVED"], "the history travels with it")

        // The old version's report no longer counts; the new one completes the workflow.
        let zombie = try await apply(.completeTask(id: "hitl-1", version: 1, worker: "w1", settle: SettlePromise(id: "hitl-1", completion: .resolve), steps: []),
                                     at: t0 + 4)
        #expect(zombie.messages.isEmpty && zombie.deadLetter == nil && zombie.ignored != nil)
        let done = try await apply(.completeTask(id: "hitl-1", version: 2, worker: "w2",
                                                 settle: SettlePromise(id: "hitl-1", completion: .resolve, value: PromiseValue(data: #""ok""#)), steps: []),
                                   at: t0 + 5)
        #expect(done.messages.map(\.routingKey) == ["settled.hitl-1"])
        let outbox = try await store.read { tx in try tx.outbox(after: 0, limit: 100) }
        #expect(outbox.count == 6, "everything the commands caused is in the outbox, in order")
    }

    @Test func theMachineryOfAWorkflowIsNotSettledFromOutside() async throws {
        _ = try await apply(.startWorkflow(CreatePromise(id: "wf", param: PromiseValue(data: "{}"), timeout: t0 + 3_600_000,
                                                         tags: ["warren:function": "f"], taskGroup: "g"), function: "f", subscribe: false), at: t0)
        let answered = try await apply(.settlePromise(SettlePromise(id: "wf", completion: .resolve)), from: client, at: t0 + 1)
        let first = try #require(answered.messages.first)
        let reply = try #require(try JSONValue.parse(first.body).objectValue)
        #expect(reply["error"]?.objectValue?["code"]?.stringValue == "internalPromise")
        let silent = try await apply(.settlePromise(SettlePromise(id: "wf", completion: .resolve)), at: t0 + 1)
        #expect(silent.deadLetter?.hasPrefix("internalPromise") == true, "no one to answer: set aside with the reason")
        #expect(try await store.read { tx in try tx.promise(id: "wf", now: t0 + 2) }?.state == .pending)
    }

    @Test func timersTimeOutPromisesAndEndRetryBackOffs() async throws {
        _ = try await apply(.startWorkflow(CreatePromise(id: "wf", param: PromiseValue(data: "{}"), timeout: t0 + 3_600_000, taskGroup: "g"),
                                           function: "f", subscribe: false), at: t0)
        _ = try await apply(.createPromise(CreatePromise(id: "wf.1", timeout: t0 + 100, tags: ["warren:kind": "promise"])), at: t0)
        _ = try await apply(.suspendTask(id: "wf", version: 1, worker: "w", awaiting: ["wf.1"], steps: []), at: t0 + 1)
        let (fired, next, effects) = try await store.write { [kernel] tx in try kernel.fireTimers(tx: tx, now: t0 + 100, limit: 10) }
        #expect(fired == 1 && next == t0 + 3_600_000)
        #expect(effects.messages.map(\.routingKey) == ["settled.wf.1", "execute.g"])
        #expect(try JSONValue.parse(effects.messages[0].body).objectValue?["state"]?.stringValue == "REJECTED_TIMEDOUT")

        // A failed step: the task waits for its back-off on a timer, then goes out again with the failures counted.
        _ = try await apply(.retryTask(id: "wf", version: 2, worker: "w", delay: 500, failedStep: "wf.2", steps: []), at: t0 + 200)
        let early = try await store.write { [kernel] tx in try kernel.fireTimers(tx: tx, now: t0 + 699, limit: 10) }
        #expect(early.fired == 0)
        let due = try await store.write { [kernel] tx in try kernel.fireTimers(tx: tx, now: t0 + 700, limit: 10) }
        let execute = try #require(due.effects.messages.first)
        let retried = try #require(try JSONValue.parse(execute.body).objectValue?["task"]?.objectValue)
        #expect(retried["version"] == .int(3) && retried["retry"] == .object(["step": .string("wf.2"), "failures": .int(1)]))
    }

    @Test func aWorkflowWhoseHistoryOutgrewAMessageIsRejectedWithTheReason() async throws {
        let small = Kernel(Kernel.Configuration(topology: Topology(prefix: "w"), maximumMessageBytes: 2048))
        let big = String(repeating: "x", count: 4096)
        let effects = try await store.write { tx in
            try small.apply(.startWorkflow(CreatePromise(id: "wf", param: PromiseValue(data: JSONValue.string(big).jsonText), timeout: t0 + 1000,
                                                         taskGroup: "g"), function: "f", subscribe: false), from: .none, tx: tx, now: t0)
        }
        #expect(effects.messages.map(\.routingKey) == ["settled.wf"])
        let p = try await store.read { tx in try tx.promise(id: "wf", now: t0) }
        #expect(p?.state == .rejected && p?.value.data?.contains("--max-message-bytes") == true)
    }

    @Test func aSubscriberIsAnsweredNowOrWhenThePromiseSettles() async throws {
        _ = try await apply(.createPromise(CreatePromise(id: "p", timeout: t0 + 1000)), at: t0)
        let waiting = try await apply(.subscribe(id: "p"), from: client, at: t0)
        #expect(waiting.messages.isEmpty)
        let settled = try await apply(.settlePromise(SettlePromise(id: "p", completion: .resolve)), at: t0 + 1)
        #expect(settled.messages.map(\.routingKey) == ["settled.p", "w.reply.client"])
        #expect(settled.messages[1].headers[Messages.correlationIDKey] == "c-1")
        let late = try await apply(.subscribe(id: "p"), from: Caller(replyTo: "w.reply.late", correlationID: "c-2"), at: t0 + 2)
        #expect(late.messages.map(\.routingKey) == ["w.reply.late"])
        let unanswerable = try await apply(.subscribe(id: "p"), at: t0 + 2)
        #expect(unanswerable.deadLetter?.contains("reply_to") == true)
    }

    @Test func groupUsersKeepOneGroupsWorkersFromAnothersWorkflows() async throws {
        let guarded = Kernel(Kernel.Configuration(topology: Topology(prefix: "w"), groupUsers: ["billing": ["carol"]]))
        let effects = try await store.write { tx in
            _ = try guarded.apply(.startWorkflow(CreatePromise(id: "bill", param: PromiseValue(data: "{}"), timeout: t0 + 1000, taskGroup: "billing"),
                                                 function: "f", subscribe: false), from: .none, tx: tx, now: t0)
            let forged = try guarded.apply(.completeTask(id: "bill", version: 1, worker: "x", settle: SettlePromise(id: "bill", completion: .resolve), steps: []),
                                           from: Caller(user: "mallory"), tx: tx, now: t0 + 1)
            let inside = try guarded.apply(.createPromise(CreatePromise(id: "bill.1", timeout: t0 + 1000)), from: Caller(user: "mallory"), tx: tx, now: t0 + 1)
            let allowed = try guarded.apply(.createPromise(CreatePromise(id: "bill.1", timeout: t0 + 1000)), from: Caller(user: "carol"), tx: tx, now: t0 + 1)
            return [forged, inside, allowed]
        }
        #expect(effects[0].deadLetter?.hasPrefix("forbidden") == true)
        #expect(effects[1].deadLetter?.hasPrefix("forbidden") == true)
        #expect(effects[2].deadLetter == nil)
        #expect(try await store.read { tx in try tx.promise(id: "bill", now: t0 + 2) }?.state == .pending)
    }

    @Test func aRedeliveredClaimFencesOffTheWorkerThatHadIt() async throws {
        _ = try await apply(.startWorkflow(CreatePromise(id: "wf", param: PromiseValue(data: "{}"), timeout: t0 + 1000, taskGroup: "g"),
                                           function: "f", subscribe: false), at: t0)
        _ = try await apply(.recordProgress(id: "wf", version: 1, worker: "a", steps: [], lease: nil), at: t0 + 1)
        let claim = try await apply(.claimTask(id: "wf", version: 1, worker: "b", redelivered: true), from: client, at: t0 + 2)
        let reply = try #require(claim.messages.first)
        #expect(try taskMessage(reply).version == 2)
        let old = try await apply(.suspendTask(id: "wf", version: 1, worker: "a", awaiting: ["wf"], steps: []), at: t0 + 3)
        #expect(old.ignored?.contains("version") == true)
    }
}
