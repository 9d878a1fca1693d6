import Testing
import WarrenContract
import WarrenStore
@testable import WarrenKernel

/// The message contract's decoding, without a broker.
@Suite("Message contract")
struct ContractTests {
    let now: Int64 = 1_800_000_000_000

    func decode(_ kind: String, _ body: String, type: String? = nil) throws(ContractError) -> Command {
        try Command.decode(routingKey: kind, type: type, body: Array(body.utf8), now: now,
                                  defaultTimeout: 86_400_000, maximumBodyBytes: 1000)
    }

    @Test func reportsCarryTheStepsTheWorkerRan() throws {
        guard case let .completeTask(_, _, _, settle, steps) = try decode("task.complete", #"{"id": "w", "version": 2, "worker": "x", "value": 3, "steps": [{"id": "w.1", "value": {"a": 1}, "tags": {"warren:kind": "run:a"}}, {"id": "w.2", "state": "rejected", "value": "boom"}]}"#) else {
            Issue.record("not a completion"); return
        }
        #expect(settle.value.data == "3")
        #expect(steps == [StepOutcome(id: "w.1", value: PromiseValue(data: #"{"a":1}"#), tags: ["warren:kind": "run:a"]),
                          StepOutcome(id: "w.2", completion: .reject, value: PromiseValue(data: #""boom""#))])
        guard case let .retryTask(_, _, _, delay, step, _) = try decode("task.retry", #"{"id": "w", "version": 2, "worker": "x", "delay": 1500, "step": "w.3"}"#) else {
            Issue.record("not a retry"); return
        }
        #expect(delay == 1500 && step == "w.3")
        guard case .startWorkflow(_, _, true) = try decode("workflow.start", #"{"id": "w", "function": "f", "group": "g", "subscribe": true}"#) else {
            Issue.record("not a subscribing start"); return
        }
    }

    @Test(arguments: [("500ms", 500), ("90s", 90_000), ("15m", 900_000), ("24h", 86_400_000), ("7d", 604_800_000)] as [(String, Int64)])
    func durations(text: String, millis: Int64) throws {
        guard case .createPromise(let r) = try decode("promise.create", #"{"id": "p", "timeout": "\#(text)"}"#) else {
            Issue.record("not a create"); return
        }
        #expect(r.timeout == now + millis)
    }

    @Test func anyJSONValueIsStoredAsItsJSONText() throws {
        guard case .settlePromise(let r) = try decode("promise.resolve", #"{"id": "p", "value": {"ok": true, "n": 3}, "headers": {"h": "v"}, "idempotencyKey": "k", "strict": true}"#) else {
            Issue.record("not a settle"); return
        }
        #expect(r.completion == .resolve && r.idempotencyKey == "k" && r.strict)
        #expect(r.value == PromiseValue(headers: ["h": "v"], data: #"{"n":3,"ok":true}"#))
        guard case .settlePromise(let plain) = try decode("promise.resolve", #"{"id": "p", "value": "approved"}"#) else { return }
        #expect(plain.value.data == #""approved""#)
        guard case .settlePromise(let none) = try decode("promise.reject", #"{"id": "p"}"#) else { return }
        #expect(none.value.data == nil && none.completion == .reject)
    }

    @Test func epochMillisecondsAndTheDefaultTimeout() throws {
        guard case .createPromise(let r) = try decode("promise.create", #"{"id": "p", "timeout": 4102444800000}"#),
              case .createPromise(let d) = try decode("promise.create", #"{"id": "q"}"#) else { Issue.record("not creates"); return }
        #expect(r.timeout == 4_102_444_800_000)
        #expect(d.timeout == now + 86_400_000)
    }

    @Test func aWorkflowStartIsARootPromiseWithATask() throws {
        guard case .startWorkflow(let r, let function, _) = try decode("workflow.start", #"{"id": "hitl-001", "function": "foo-workflow", "args": ["hitl-001"], "group": "workers"}"#) else {
            Issue.record("not a start"); return
        }
        #expect(function == "foo-workflow")
        #expect(r.taskGroup == "workers" && r.idempotencyKey == "hitl-001")
        #expect(r.param.data == #"{"args":["hitl-001"],"function":"foo-workflow"}"#)
        #expect(r.tags["warren:function"] == "foo-workflow")
    }

    @Test(arguments: [
        ("promise.create", "[1, 2]", "JSON object"),
        ("promise.create", "{", "not valid JSON"),
        ("promise.create", #"{"id": 7}"#, "'id' must be a string"),
        ("promise.create", #"{"id": "p", "timeout": -5}"#, "positive"),
        ("promise.create", #"{"id": "p", "timeout": "5 minutes"}"#, "duration"),
        ("promise.create", #"{"id": "p", "tags": {"a": 1}}"#, "tag 'a'"),
        ("promise.resolve", #"{"id": "p", "headers": {"h": 1}}"#, "header 'h'"),
        ("promise.create", #"{"id": "p", "strict": "yes"}"#, "true or false"),
        ("workflow.start", #"{"id": "w", "group": "g"}"#, "'function' is missing"),
        ("workflow.start", #"{"id": "w", "function": "f", "group": "g", "args": "x"}"#, "array"),
        ("task.unknown", #"{"id": "p"}"#, "unknown kind"),
        ("task.complete", #"{"id": "w", "version": 1, "worker": "x", "steps": {"id": "w.1"}}"#, "'steps' must be an array"),
        ("task.complete", #"{"id": "w", "version": 1, "worker": "x", "steps": [{"id": "w.1", "state": "pending"}]}"#, "step's 'state'"),
        ("task.suspend", #"{"id": "w", "version": 1, "worker": "x", "awaiting": [], "steps": []}"#, "'awaiting'"),
        ("task.retry", #"{"id": "w", "version": 1, "worker": "x", "delay": -1}"#, "'delay'"),
        ("task.progress", #"{"id": "w", "version": 1, "steps": []}"#, "'worker' is missing"),
    ])
    func badMessagesSayWhatIsWrong(kind: String, body: String, mentions: String) {
        do {
            _ = try decode(kind, body)
            Issue.record("decoded")
        } catch {
            #expect(error.reason.contains(mentions), "\(error.reason)")
        }
    }

    @Test func theTypePropertyMustAgreeAndTheSizeIsLimited() {
        #expect(throws: ContractError.self) { try decode("promise.create", #"{"id": "p"}"#, type: "promise.resolve") }
        #expect((try? decode("promise.create", #"{"id": "p"}"#, type: "promise.create")) != nil)
        #expect(throws: ContractError.self) { try decode("promise.create", #"{"id": "p", "param": ""# + String(repeating: "x", count: 1000) + #""}"#) }
    }
}

/// Code versions: the marker a workflow's first run records, and the routes it pins.
@Suite("Code versions")
struct CodeVersionTests {
    @Test func aPinnedRouteNamesItsGroupFunctionAndVersionAndNoOtherRoute() throws {
        let code = try #require(CodeVersion(function: "refund", version: 2))
        let key = Topology.executeRoutingKey("workers", code: code)
        #expect(key == "execute.workers,refund,v2")
        #expect(Topology(prefix: "w").groupQueueName("workers", code: code) == "w.group.workers,refund,v2")
        let parsed = try #require(Topology.route(ofExecuteRoutingKey: key))
        #expect(parsed.group == "workers" && parsed.code == code)
        // Groups and functions may have dots: the commas keep every route apart.
        let dotted = try #require(Topology.route(ofExecuteRoutingKey: Topology.executeRoutingKey("a.b", code: CodeVersion(function: "c.d", version: 1))))
        #expect(dotted.group == "a.b" && dotted.code?.function == "c.d")
        #expect(Topology.route(ofExecuteRoutingKey: "execute.workers")?.code == nil)
        #expect(Topology.group(ofExecuteRoutingKey: "execute.workers") == "workers")
        for bad in ["execute.w,f", "execute.w,f,2", "execute.w,f,v0", "execute.w,f,vx", "execute.w,,v1", "execute.w,f,v1,x", "settled.x"] {
            #expect(Topology.route(ofExecuteRoutingKey: bad) == nil, "\(bad)")
        }
    }

    @Test func onlyNamesAQueueCanCarryMakeACodeVersion() {
        #expect(CodeVersion(function: "refund", version: 0) == nil)
        #expect(CodeVersion(function: "re fund", version: 1) == nil)
        #expect(CodeVersion(function: "a,b", version: 1) == nil)
        #expect(CodeVersion(function: String(repeating: "f", count: 65), version: 1) == nil)
        #expect(CodeVersion.problem(function: "a#b", version: 1)?.contains("letters, digits") == true)
        #expect(CodeVersion.problem(function: "refund", version: 0)?.contains("from 1") == true)
        #expect(CodeVersion.problem(function: "refund", version: 3) == nil)
    }

    @Test func theExecuteMessageOfAPinnedWorkflowGoesToItsVersionsQueue() throws {
        let messages = Messages(topology: Topology())
        let task = TaskRecord(id: "r-1", group: "workers", state: .pending, version: 3, worker: nil, updatedOn: 0)
        let root = PromiseRecord(id: "r-1", timeout: 0, createdOn: 0)
        let code = try #require(CodeVersion(function: "refund", version: 2))
        let marker = PromiseRecord(id: CodeVersion.markerID(of: "r-1"), state: .resolved, value: PromiseValue(data: code.markerValue),
                                   timeout: 0, createdOn: 0, tags: [PromiseRecord.kindTag: CodeVersion.markerKind])
        #expect(CodeVersion(marker: marker) == code)
        #expect(messages.execute(task, promise: root, children: [PromiseRecord(id: "r-1.1", timeout: 0, createdOn: 0), marker]).routingKey == "execute.workers,refund,v2")
        #expect(messages.execute(task, promise: root, children: [PromiseRecord(id: "r-1.1", timeout: 0, createdOn: 0)]).routingKey == "execute.workers")
        // A marker of a child workflow is its own, and a forged one that is no version routes as unpinned.
        let childs = PromiseRecord(id: CodeVersion.markerID(of: "r-1.1"), state: .resolved, value: PromiseValue(data: code.markerValue),
                                   timeout: 0, createdOn: 0, tags: [PromiseRecord.kindTag: CodeVersion.markerKind])
        #expect(messages.execute(task, promise: root, children: [childs]).routingKey == "execute.workers")
        let forged = PromiseRecord(id: CodeVersion.markerID(of: "r-1"), state: .resolved, value: PromiseValue(data: #"{"function":"a#b","version":1}"#),
                                   timeout: 0, createdOn: 0, tags: [PromiseRecord.kindTag: CodeVersion.markerKind])
        #expect(messages.execute(task, promise: root, children: [forged]).routingKey == "execute.workers")
    }
}
