import Foundation
import Synchronization
import Testing
@testable import Warren

/// The SDK's replay core against a recorded history, with no broker: the transport answers
/// from memory and records what the run sent.
@Suite("Replay, without a broker")
struct ReplayTests {
    func recorded(_ id: String, kind: String, state: PromiseState = .resolved, data: String? = nil) -> PromiseRecord {
        PromiseRecord(id: id, state: state, value: PromiseValue(data: data), timeout: .max, createdOn: 0,
                      completedOn: state == .pending ? nil : 0, tags: [PromiseRecord.kindTag: kind])
    }

    func context(_ history: [PromiseRecord], transport: RecordingTransport = RecordingTransport()) -> Context {
        Context(id: "wf", history: history, transport: transport)
    }

    @Test func recordedStepsReturnTheirOutcomeWithoutRunning() async throws {
        let transport = RecordingTransport()
        let ctx = context([recorded("wf.1", kind: "run:double", data: "42"), recorded("wf.2", kind: "promise", data: #""approved""#)],
                          transport: transport)
        let value = try await ctx.run({ (_: Context, _: Int) async throws -> Int in
            Issue.record("a recorded step ran again")
            return 0
        }, 21, name: "double")
        #expect(value == 42)
        let approval = try await ctx.promise()
        #expect(approval.id == "wf.2")
        #expect(try await approval.value(as: String.self) == "approved")
        #expect(transport.sent.isEmpty, "a replay of recorded calls sends nothing")
        #expect(ctx.takeReport().steps.isEmpty)
    }

    @Test func aReplayThatTakesAnotherPathIsANondeterminismErrorNamingTheStep() async throws {
        // The history says the first call was a promise; the code now makes a step first.
        let ctx = context([recorded("wf.1", kind: "promise", state: .pending)])
        do {
            _ = try await ctx.run({ (_: Context, n: Int) async throws -> Int in n }, 1, name: "sendEmail")
            Issue.record("no error")
        } catch let e as WarrenError {
            #expect(e.code == .nondeterminism)
            #expect(e.message.contains("wf.1") && e.message.contains("promise") && e.message.contains("run:sendEmail"), "\(e.message)")
        }
    }

    @Test func awaitingAPendingPromiseSuspendsTheRunEvenIfTheCodeCatchesIt() async throws {
        let ctx = context([recorded("wf.1", kind: "promise", state: .pending)])
        let outcome = await ctx.run { () async throws -> String in
            let approval = try await ctx.promise()
            do { return try await approval.value(as: String.self) } catch { return "caught" }
        }
        #expect(try outcome.get() == "caught")
        let interrupt = ctx.takeReport().interrupt as? Suspension
        #expect(interrupt?.awaiting == ["wf.1"], "the run suspends on the promise, whatever the code did with the error")
    }

    @Test func newCallsGoThroughTheTransportAndNewStepsIntoTheReport() async throws {
        let transport = RecordingTransport()
        let ctx = context([recorded("wf.1", kind: "run:a", data: "1")], transport: transport)
        let outcome = await ctx.run { () async throws -> Int in
            let a = try await ctx.run({ (_: Context, n: Int) in n }, 0, name: "a")
            let b = try await ctx.run({ (_: Context, n: Int) in n + 1 }, a, name: "b")
            let approval = try await ctx.promise(tags: ["human": "true"])
            #expect(approval.id == "wf.3")
            return b
        }
        #expect(try outcome.get() == 2)
        let creates = transport.sent.filter { $0.kind == .createPromise }
        #expect(creates.count == 1)
        let body = try #require(creates.first.flatMap { try? JSONValue.parse($0.body).objectValue })
        #expect(body["id"]?.stringValue == "wf.3" && body["idempotencyKey"]?.stringValue == "wf.3")
        #expect(body["tags"]?.objectValue?["human"]?.stringValue == "true")
        let steps = ctx.takeReport().steps.compactMap { try? JSONValue.parse($0).objectValue }
        #expect(steps.map { $0["id"]?.stringValue } == ["wf.2"], "only the step run now is reported")
        #expect(steps.first?["value"] == .int(2))
    }

    @Test func parallelStepsRunTogetherAndTheRunWaitsForThem() async throws {
        let ctx = context([recorded("wf.2", kind: "run:slow", data: "20")])
        let started = Gate(count: 2)
        let outcome = await ctx.run { () async throws -> Int in
            // Two new steps that can finish only once both have started: they run in parallel.
            let a = try await ctx.beginRun({ (_: Context, n: Int) async throws -> Int in await started.arriveAndWait(); return n }, 1, name: "fast")
            let b = try await ctx.beginRun({ (_: Context, n: Int) async throws -> Int in 0 }, 2, name: "slow")  // recorded: not run
            let c = try await ctx.beginRun({ (_: Context, n: Int) async throws -> Int in await started.arriveAndWait(); return n }, 3, name: "fast")
            return try await a.value() + b.value() + c.value()
        }
        #expect(try outcome.get() == 24)
        let ids = ctx.takeReport().steps.compactMap { try? JSONValue.parse($0).objectValue?["id"]?.stringValue }
        #expect(Set(ids) == ["wf.1", "wf.3"])
    }

    @Test func parallelChildrenThatArePendingSuspendTheParent() async throws {
        let transport = RecordingTransport()
        let ctx = context([recorded("wf.1", kind: "rpc:child", state: .pending)], transport: transport)
        let outcome = await ctx.run { () async throws -> Int in
            let first = try await ctx.beginRpc("child", 1, target: "g")   // recorded, still running
            let second = try await ctx.beginRpc("child", 2, target: "g")  // started now
            return try await first.value(as: Int.self) + second.value(as: Int.self)
        }
        #expect(throws: Suspension.self) { try outcome.get() }
        let report = ctx.takeReport()
        #expect((report.interrupt as? Suspension)?.awaiting == ["wf.1"])
        #expect(report.children == ["wf.1", "wf.2"], "a parent waits for both before it completes")
        let starts = transport.sent.filter { $0.kind == .startWorkflow }.compactMap { try? JSONValue.parse($0.body).objectValue }
        #expect(starts.map { $0["id"]?.stringValue } == ["wf.2"])
        #expect(starts.first?["args"] == .array([.int(2)]) && starts.first?["group"]?.stringValue == "g")
    }

    @Test func stepsAreCancelledWithTheRun() async throws {
        let ctx = context([])
        let cancelled = Mutex(false)
        let (started, began) = AsyncStream.makeStream(of: Void.self)
        let run = Task {
            await ctx.run { () async throws -> String in
                _ = try await ctx.beginRun({ (_: Context, _: Int) async throws -> Int in
                    began.yield()
                    do { try await Task.sleep(for: .seconds(3600)) } catch { cancelled.withLock { $0 = true }; throw error }
                    return 0
                }, 0, name: "forever")
                return "returned"
            }
        }
        // The code returns at once; the run waits for its step, until the run is cancelled.
        for await _ in started { break }
        run.cancel()
        _ = await run.value
        #expect(cancelled.withLock { $0 }, "the step saw the run's cancellation")
    }
}

/// Answers every command with a new pending promise of the id it names, and records what was sent.
final class RecordingTransport: Transport {
    struct Sent: Sendable { var kind: MessageKind; var body: String }
    private let log = Mutex<[Sent]>([])
    var sent: [Sent] { log.withLock { $0 } }

    func promiseRequest(_ kind: MessageKind, _ body: String) async throws -> (promise: PromiseRecord, created: Bool) {
        log.withLock { $0.append(Sent(kind: kind, body: body)) }
        let fields = try JSONValue.parse(body).objectValue ?? [:]
        let tags = (fields["tags"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        return (PromiseRecord(id: fields["id"]?.stringValue ?? "?", timeout: .max, createdOn: 0, tags: tags), true)
    }

    func send(_ kind: MessageKind, _ body: String) throws -> any Receipt {
        log.withLock { $0.append(Sent(kind: kind, body: body)) }
        return Confirmed()
    }

    struct Confirmed: Receipt {
        func wait() async throws {}
    }
}

/// Lets `count` tasks through once all of them have arrived.
final class Gate: Sendable {
    private let state: Mutex<(left: Int, waiting: [CheckedContinuation<Void, Never>])>

    init(count: Int) { state = Mutex((count, [])) }

    func arriveAndWait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let release: [CheckedContinuation<Void, Never>] = state.withLock { s in
                s.left -= 1
                s.waiting.append(c)
                guard s.left == 0 else { return [] }
                defer { s.waiting.removeAll() }
                return s.waiting
            }
            for w in release { w.resume() }
        }
    }
}
