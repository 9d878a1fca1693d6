import AMQP
import Foundation
import Testing
import WarrenTestSupport
import Warren

#if canImport(Glibc)
import Glibc
#endif

/// The seed article's flow, end to end, with real processes: `warren serve`, a worker process
/// running `foo-workflow`, a client calling `rpc`, and a human's approval published with
/// `amqp-publish`, as an existing non-Swift system would.
@Suite("Human in the loop", .serialized)
struct HumanInTheLoopTests {
    func approve(_ promiseID: String, url: String, prefix: String) async throws {
        let r = try await run("/usr/bin/amqp-publish", ["--url=\(url)", "-e", prefix, "-r", "promise.resolve", "-p",
                                                        "-C", "application/json", "-b", #"{"id": "\#(promiseID)", "value": "approved"}"#])
        if r.status != 0 { throw TestFailure("amqp-publish failed: \(r.output)") }
    }

    @Test(arguments: [false, true])
    func theWorkflowWaitsForTheHumanAndCompletes(killWorkerWhileWaiting: Bool) async throws {
        try await withReplaceableWorker { orchestrator, first, second, client in
            let result = Task { try await client.rpc("hitl-001", "foo-workflow", "hitl-001", target: "workers", as: String.self) }
            // sendEmail prints the approval link with the promise id.
            let link = try await first.line(startingWith: "approve: ")
            let promiseID = String(link.split(separator: "=").last!)
            #expect(promiseID == "hitl-001.1")
            if killWorkerWhileWaiting {
                // Once the workflow waits (suspended, holding no delivery), kill its worker,
                // approve, and start another.
                _ = try await first.line(startingWith: "", containing: "task suspended")
                await first.kill(SIGKILL)
                try await approve(promiseID, url: orchestrator.url, prefix: orchestrator.prefix)
                try second.start(url: orchestrator.url, prefix: orchestrator.prefix)
                _ = try await second.line(startingWith: "unblocked: approved")
                // It resumed after the await: sendEmail, before it, did not run again.
                #expect(!second.text.contains("approve: "), "the step before the wait ran again:\n\(second.text)")
            } else {
                try await approve(promiseID, url: orchestrator.url, prefix: orchestrator.prefix)
            }
            let message = try await within(.seconds(30), "the workflow's result") { try await result.value }
            #expect(message == "foo workflow hitl-001 complete")
            // Starting the same workflow again returns its result without running it again.
            let again = try await client.rpc("hitl-001", "foo-workflow", "hitl-001", target: "workers", as: String.self)
            #expect(again == message)
            #expect((first.text + second.text).components(separatedBy: "approve: ").count - 1 == 1)
            print("human in the loop (worker killed while waiting: \(killWorkerWhileWaiting)): \(message)")
        }
    }

    @Test func aDurableSleepSuspendsAndResumes() async throws {
        try await withWorkflows { _, _, client in
            let started = ContinuousClock.now
            let result = try await within(.seconds(30), "the sleepy workflow") {
                try await client.rpc("nap-1", "sleepy-workflow", 300, target: "workers", as: String.self)
            }
            #expect(result == "slept 300 ms after computing 600")
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            // sleep(until:): a deadline from the recorded time.
            let until = try await within(.seconds(30), "sleep until") {
                try await client.rpc("nap-until-1", "sleep-until-workflow", 300, target: "workers", as: Int.self)
            }
            #expect(until >= 300, "woke \(until) ms after the recorded time")
        }
    }

    @Test func aWorkerKilledInTheMiddleOfAStepIsReplacedAndTheWorkflowCompletes() async throws {
        try await withReplaceableWorker { orchestrator, first, second, client in
            let result = Task { try await client.rpc("slow-1", "slow-workflow", "slow-1", target: "workers", as: String.self) }
            _ = try await first.line(startingWith: "step started")
            await first.kill(SIGKILL)  // in the middle of the step: its execute message was never acked
            try second.start(url: orchestrator.url, prefix: orchestrator.prefix)
            let message = try await within(.seconds(30), "the workflow's result") { try await result.value }
            #expect(message == "slow workflow: slow-1 done")
            // Steps run at least once: the second worker ran it again, from the top.
            _ = try await second.line(startingWith: "step started")
        }
    }

    @Test func aLongStepFinishedBeforeTheWorkerDiedIsNotRunAgain() async throws {
        try await withReplaceableWorker { orchestrator, first, second, client in
            let result = Task { try await client.rpc("long-1", "two-slow-steps", "long-1", target: "workers", as: String.self) }
            // Step A (1.2 s) finished and went out as progress; the worker dies during step B.
            _ = try await first.line(startingWith: "step B started")
            let a = try await within(.seconds(10), "step A recorded") {
                while true {
                    if let p = try? await client.promises.get("long-1.1"), p.isSettled { return p }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(a.value.data == #""A""#)
            await first.kill(SIGKILL)
            try second.start(url: orchestrator.url, prefix: orchestrator.prefix)
            let message = try await within(.seconds(30), "the workflow's result") { try await result.value }
            #expect(message == "long-1: AB")
            _ = try await second.line(startingWith: "step B started")
            #expect(!second.text.contains("step A started"), "step A ran again:\n\(second.text)")
        }
    }
}
