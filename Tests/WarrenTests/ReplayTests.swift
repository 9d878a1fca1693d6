import Foundation
import Logging
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

/// Patches and the replay-aware logger, against recorded histories.
@Suite("Patches and replay-aware logging, without a broker")
struct PatchTests {
    func recorded(_ id: String, kind: String, state: PromiseState = .resolved, data: String? = nil) -> PromiseRecord {
        PromiseRecord(id: id, state: state, value: PromiseValue(data: data), timeout: .max, createdOn: 0,
                      completedOn: state == .pending ? nil : 0, tags: [PromiseRecord.kindTag: kind])
    }

    /// A workflow after a change: a new step behind `patched`, then the approval it had before.
    func changed(_ ctx: Context) async throws -> (took: Bool, approval: String) {
        let took = ctx.patched("notify-manager")
        if took { try await ctx.run({ (_: Context, _: Int) async throws -> Int in 1 }, 0, name: "notifyManager") }
        let approval = try await ctx.promise()
        return (took, approval.id)
    }

    @Test func aNewRunTakesTheNewBranchAndRecordsItsMarker() async throws {
        let ctx = Context(id: "wf", history: [], transport: RecordingTransport())
        let (took, approval) = try await ctx.run { try await self.changed(ctx) }.get()
        #expect(took && approval == "wf.3")
        let steps = ctx.takeReport().steps
        #expect(steps.count == 2 && steps[0].contains(#""wf.1""#) && steps[0].contains("patch:notify-manager"), "\(steps)")
    }

    @Test func aHistoryRecordedBeforeTheChangeReplaysUnchanged() async throws {
        // The old code made the approval first, and waits on it.
        let ctx = Context(id: "wf", history: [recorded("wf.1", kind: "promise", state: .pending)], transport: RecordingTransport())
        let (took, approval) = try await changed(ctx)
        #expect(!took && approval == "wf.1")
        let report = ctx.takeReport()
        #expect(report.steps.isEmpty && report.departure == nil)
    }

    @Test func aHistoryWithTheMarkerTakesTheNewBranchAgainWithoutRecordingIt() async throws {
        let history = [recorded("wf.1", kind: "patch:notify-manager", data: "true"), recorded("wf.2", kind: "run:notifyManager", data: "1"),
                       recorded("wf.3", kind: "promise", state: .pending)]
        let ctx = Context(id: "wf", history: history, transport: RecordingTransport())
        let (took, approval) = try await changed(ctx)
        #expect(took && approval == "wf.3")
        #expect(ctx.takeReport().steps.isEmpty)
    }

    @Test func aPatchPastTheHistoryIsNewCode() async throws {
        // The old run stopped at its approval; the change comes after it, so the resumed run takes it.
        let ctx = Context(id: "wf", history: [recorded("wf.1", kind: "promise", data: #""ok""#)], transport: RecordingTransport())
        _ = try await ctx.promise().value(as: String.self)
        #expect(ctx.patched("after-approval"))
    }

    @Test func aDeprecatedPatchSkipsRecordedMarkersAndRecordsNothing() async throws {
        let withMarker = Context(id: "wf", history: [recorded("wf.1", kind: "patch:notify-manager", data: "true"),
                                                     recorded("wf.2", kind: "run:notifyManager", data: "1")], transport: RecordingTransport())
        withMarker.deprecatePatch("notify-manager")
        #expect(try await withMarker.run({ (_: Context, _: Int) async throws -> Int in 9 }, 0, name: "notifyManager") == 1)
        let fresh = Context(id: "wf", history: [], transport: RecordingTransport())
        _ = try await fresh.run {
            fresh.deprecatePatch("notify-manager")
            return try await fresh.run({ (_: Context, _: Int) async throws -> Int in 9 }, 0, name: "notifyManager")
        }.get()
        #expect(fresh.takeReport().steps.first?.contains(#""wf.1""#) == true)
    }

    @Test func removingAPatchWithoutDeprecatingItBlocksTheReplay() async throws {
        let ctx = Context(id: "wf", history: [recorded("wf.1", kind: "patch:notify-manager", data: "true")], transport: RecordingTransport())
        await #expect(throws: WarrenError.self) { _ = try await ctx.promise() }
        #expect(ctx.takeReport().departure?.message.contains("patch:notify-manager") == true)
    }

    @Test func theLoggerIsQuietWhileTheRunReplaysAndSpeaksOnceItIsPast() async throws {
        let lines = Lines()
        let base = Logger(label: "test") { _ in lines }
        // The human-in-the-loop shape: a promise, a line, the await.
        @Sendable func workflow(_ ctx: Context) async throws -> String {
            let approval = try await ctx.promise()
            ctx.logger.info("waiting on human interaction")
            let decision: String = try await approval.value()
            ctx.logger.info("decided: \(decision)")
            return decision
        }
        let first = Context(id: "wf", history: [], transport: RecordingTransport(), logger: base)
        #expect(!first.isReplaying)
        _ = await first.run { try await workflow(first) }  // suspends at the await
        let resumed = Context(id: "wf", history: [recorded("wf.1", kind: "promise", data: #""approved""#)], transport: RecordingTransport(),
                              logger: base)
        #expect(resumed.isReplaying)
        #expect(try await resumed.run { try await workflow(resumed) }.get() == "approved")
        #expect(!resumed.isReplaying)
        #expect(lines.all == ["waiting on human interaction", "decided: approved"], "\(lines.all)")
    }
}

/// A log handler that keeps the messages.
final class Lines: LogHandler, @unchecked Sendable {
    private let kept = Mutex<[String]>([])
    var all: [String] { kept.withLock { $0 } }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { kept.withLock { $0.append(event.message.description) } }
}
