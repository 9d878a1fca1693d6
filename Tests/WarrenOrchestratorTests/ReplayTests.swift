import Logging
import Testing
import WarrenTestSupport
@testable import Warren

/// Replay against a recorded history, without an orchestrator: the history is given directly.
@Suite("Replay")
struct ReplayTests {
    func context(_ history: [PromiseSnapshot]) async throws -> (Context, Messenger) {
        let messenger = try await Messenger.connect(url: try brokerURL(), name: "replay-test", prefix: "replay-\(UInt32.random(in: 0..<UInt32.max))",
                                                    logger: Logger(label: "replay-test"))
        return (Context(id: "wf", history: history, messenger: messenger), messenger)
    }

    func recorded(_ id: String, kind: String, state: String = "RESOLVED", data: String? = nil) -> PromiseSnapshot {
        PromiseSnapshot(id: id, state: state, param: nil, value: .init(headers: nil, data: data), timeout: 0, tags: ["warren:kind": kind])
    }

    @Test func recordedStepsReturnTheirOutcomeWithoutRunning() async throws {
        let (ctx, messenger) = try await context([recorded("wf.1", kind: "run:double", data: "42"),
                                                  recorded("wf.2", kind: "promise", data: #""approved""#)])
        defer { Task { await messenger.close() } }
        let value = try await ctx.run({ (_: Context, _: Int) async throws -> Int in
            Issue.record("a recorded step ran again")
            return 0
        }, 21, name: "double")
        #expect(value == 42)
        let approval = try await ctx.promise()
        #expect(approval.id == "wf.2")
        #expect(try await approval.value(as: String.self) == "approved")
    }

    @Test func aReplayThatTakesAnotherPathIsANondeterminismErrorNamingTheStep() async throws {
        // The history says the first call was a promise; the code now makes a step first.
        let (ctx, messenger) = try await context([recorded("wf.1", kind: "promise", state: "PENDING")])
        defer { Task { await messenger.close() } }
        do {
            _ = try await ctx.run({ (_: Context, n: Int) async throws -> Int in n }, 1, name: "sendEmail")
            Issue.record("no error")
        } catch let e as WarrenError {
            #expect(e.code == .nondeterminism)
            #expect(e.message.contains("wf.1") && e.message.contains("promise") && e.message.contains("run:sendEmail"), "\(e.message)")
        }
    }

    @Test func awaitingAPendingPromiseSuspends() async throws {
        let (ctx, messenger) = try await context([recorded("wf.1", kind: "promise", state: "PENDING")])
        defer { Task { await messenger.close() } }
        let approval = try await ctx.promise()
        await #expect(throws: Suspension.self) { _ = try await approval.value(as: String.self) }
    }
}
