import AMQP
import Foundation
import Synchronization
import Testing
import Warren
import WarrenStore
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The engine's guarantees under failure, each with real processes: `warren serve`, worker
/// processes, a real broker (a private one where the test stops it or changes its settings).
@Suite("Guarantees", .serialized)
struct GuaranteeTests {
    final class Counter: Sendable {
        private let count = Atomic<Int>(0)
        func add() { count.add(1, ordering: .relaxed) }
        var value: Int { count.load(ordering: .relaxed) }
    }

    /// Starts `count` workflows of `double-workflow` (n → 2n) with `rpc` and returns their results.
    static func doubleAll(_ client: Warren, _ count: Int, tag: String, progress: Counter) async throws -> [Int: Int] {
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for n in 0..<count {
                group.addTask {
                    let r = try await client.rpc("\(tag)-\(n)", "double-workflow", n, target: "workers", as: Int.self)
                    progress.add()
                    return (n, r)
                }
            }
            var results: [Int: Int] = [:]
            for try await (n, r) in group { results[n] = r }
            return results
        }
    }

    /// Waits until `condition` holds, checking every 10 ms.
    static func until(_ what: String, within limit: Duration = .seconds(60), _ condition: @escaping @Sendable () -> Bool) async throws {
        try await within(limit, what) { while !condition() { try await Task.sleep(for: .milliseconds(10)) } }
    }

    /// Every root `<tag>-<n>` in the orchestrator's database is resolved once, with 2n.
    static func expectResolvedOnce(database: String, tag: String, count: Int) async throws {
        let store = try SQLiteStore(path: database)
        let roots = try await store.read { tx in
            var all: [PromiseRecord] = []
            var cursor: String? = nil
            repeat {
                let page = try tx.search(PromiseSearch(id: tag + "-*", limit: 1000, cursor: cursor), now: 0)
                all += page.promises.filter { !$0.id.contains(".") }
                cursor = page.cursor
            } while cursor != nil
            return all
        }
        #expect(roots.count == count)
        for root in roots {
            let n = Int(root.id.split(separator: "-").last!)!
            #expect(root.state == .resolved && root.value.data == "\(2 * n)", "\(root)")
            // Completed by one report: the idempotency key of the task's completion.
            #expect(root.idempotencyKeyForComplete == "complete:\(root.id)")
        }
    }

    @Test func orchestratorKilledDuringABurstOf1000WorkflowsLosesNoneAndRunsNoneTwice() async throws {
        try await withWorkflows { orchestrator, worker, client in
            let done = Counter()
            let burst = Task { try await Self.doubleAll(client, 1000, tag: "burst", progress: done) }
            // Kill it while the burst is under way: some workflows finished, most not (results
            // come in batches, so the kill comes early: at the first twenty).
            try await Self.until("20 workflows completed") { done.value >= 20 }
            let atKill = done.value
            #expect(await orchestrator.kill(SIGKILL) & 0x7f == SIGKILL)
            try await orchestrator.start()
            let results = try await within(.seconds(120), "1,000 workflows after the restart") { try await burst.value }
            print("orchestrator killed after \(atKill) of 1,000 workflows had completed; all \(results.count) completed after its restart")
            #expect(atKill < 1000)
            #expect(results.count == 1000)
            #expect(results.allSatisfy { $0.value == 2 * $0.key })
            try await Self.expectResolvedOnce(database: orchestrator.database, tag: "burst", count: 1000)
        }
    }

    @Test func brokerStoppedAndStartedDuringARunEveryWorkflowCompletes() async throws {
        try await withPrivateBroker { broker in
            try await withWorkflows(broker: broker.url) { orchestrator, worker, client in
                // Workflows that sleep durably for 1.5 s: the broker goes away while they wait.
                let results = Task {
                    try await withThrowingTaskGroup(of: String.self) { group in
                        for n in 0..<100 {
                            group.addTask { try await client.rpc("nap-\(n)", "sleepy-workflow", 1500, target: "workers", as: String.self) }
                        }
                        var all: [String] = []
                        for try await r in group { all.append(r) }
                        return all
                    }
                }
                try await Self.until("the first workflows to wait") { worker.text.components(separatedBy: "task suspended").count > 10 }
                try await broker.stop()
                try await broker.restart()
                let all = try await within(.seconds(120), "100 workflows after the broker's restart") { try await results.value }
                #expect(all.count == 100)
                #expect(all.allSatisfy { $0 == "slept 1500 ms after computing 3000" })
            }
        }
    }

    @Test func aWaitFarLongerThanTheBrokersConsumerTimeoutCompletes() async throws {
        try await withPrivateBroker(consumerTimeoutMillis: 1000) { broker in
            // The control: this broker does close the channel of a consumer that holds a delivery
            // longer than the timeout.
            let connection = try await AMQPConnection.connect(url: broker.url, name: "holds-a-delivery")
            let channel = try await connection.openChannel()
            let queue = try await channel.queueDeclare("", exclusive: true).queue
            try await channel.basicPublish("held", exchange: "", routingKey: queue).wait()
            let consumer = try await channel.basicConsume(queue: queue)
            let held = try await within(.seconds(60), "the consumer timeout closing the channel") {
                var it = consumer.makeAsyncIterator()
                let first = try await it.next()
                do {
                    while try await it.next() != nil {}
                    return (first, "the consumer ended")
                } catch {
                    return (first, "\(error)")
                }
            }
            #expect(held.0 != nil)
            #expect(held.1.contains("consumer") || held.1.contains("406") || held.1.contains("timeout"), "\(held.1)")
            await connection.close()

            try await withWorkflows(broker: broker.url) { orchestrator, worker, client in
                let result = try await within(.seconds(60), "a workflow that waits 6 s") {
                    try await client.rpc("long-nap", "sleepy-workflow", 6000, target: "workers", as: String.self)
                }
                #expect(result == "slept 6000 ms after computing 12000")
                #expect(!worker.text.contains("PRECONDITION_FAILED"), "a worker channel was closed by the consumer timeout:\n\(worker.text)")
                #expect(!orchestrator.logText.contains("PRECONDITION_FAILED"), "an orchestrator channel was closed by the consumer timeout")
            }
        }
    }

    @Test func aFailingStepIsRetriedOnADurableTimerUntilItSucceeds() async throws {
        try await withWorkflows { orchestrator, worker, client in
            let counter = NSTemporaryDirectory() + "warren-orchestrator-tests/\(orchestrator.prefix)-flaky"
            defer { unlink(counter) }
            let started = ContinuousClock.now
            let result = try await within(.seconds(30), "the flaky workflow") {
                try await client.rpc("flaky-1", "flaky-workflow", counter, target: "workers", as: String.self)
            }
            #expect(result == "succeeded on attempt 3")
            // Back-offs of 200 ms and 400 ms, each on a timer of the orchestrator: the worker let
            // the workflow go in between (two retry reports).
            #expect(ContinuousClock.now - started >= .milliseconds(600))
            #expect(worker.text.components(separatedBy: "task retries a step").count - 1 == 2, "\(worker.text)")
        }
    }

    @Test func childWorkflowsRunOnWorkersAndAParentWaitsForTheChildrenItStarted() async throws {
        try await withWorkflows { orchestrator, worker, client in
            let result = try await within(.seconds(30), "the parent") {
                try await client.rpc("parent-1", "parent-workflow", 5, target: "workers", as: String.self)
            }
            #expect(result == "parent of 10")
            // The child it started and did not await had completed before the parent did.
            let child = try await client.promises.get("parent-1.2")
            let parent = try await client.promises.get("parent-1")
            #expect(child.state == .resolved && child.value.data == "20")
            #expect(parent.state == .resolved)
            // Replays of the parent returned the recorded time, not a new one.
            let lines = worker.text.split(separator: "\n").filter { $0.hasPrefix("parent returns at") }
            #expect(lines.count >= 2 && Set(lines).count == 1, "\(lines)")
            // Steps started with beginRun run at the same time.
            let parallel = try await within(.seconds(30), "the parallel workflow") {
                try await client.rpc("parallel-1", "parallel-workflow", 3, target: "workers", as: Int.self)
            }
            #expect(parallel == 300 + 3, "peak concurrency × 100 + sum: \(parallel)")
            // A detached child may outlive its parent.
            #expect(try await client.rpc("detached-1", "detached-parent", 4, target: "workers", as: String.self) == "started detached-1.1")
            let left = try await client.promises.get("detached-1.1")
            #expect(left.state == .pending, "the parent waited for its detached child")
            let detachedChild = try await client.get("detached-1.1").result(as: Int.self)
            #expect(detachedChild == 8)
        }
    }

    @Test func aPromiseWithAKnownIdIsResolvedByItAndRunTargetsTheCallersGroup() async throws {
        // A client of the workers' own group: run() starts the workflow there.
        try await withWorkflows(clientGroup: "workers") { orchestrator, worker, client in
            let handle = try await client.beginRun("named-1", "named-approval", "order-7")
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            let approval = try await client.promises.get("approval-order-7")
            #expect(approval.state == .pending && approval.tags["human"] == "true")
            try await client.promises.resolve("approval-order-7", value: "approved")
            #expect(try await handle.result(as: String.self) == "order-7: approved")
            #expect(try await client.run("named-1", "named-approval", "order-7", as: String.self) == "order-7: approved")
            // The rest of the client's promise API, over AMQP.
            let created = try await client.promises.create("client-1", timeout: .seconds(3600), idempotencyKey: "k", tags: ["batch": "c"])
            #expect(created.state == .pending && created.tags["batch"] == "c")
            #expect(try await client.promises.create("client-1", idempotencyKey: "k").id == "client-1")  // deduplicated
            _ = try await client.promises.create("client-2", tags: ["batch": "c"])
            let page = try await client.promises.search("client-*", state: "pending", tags: ["batch": "c"], limit: 1)
            #expect(page.promises.map(\.id) == ["client-1"] && page.cursor != nil)
            let next = try await client.promises.search("client-*", state: "pending", tags: ["batch": "c"], limit: 1, cursor: page.cursor)
            #expect(next.promises.map(\.id) == ["client-2"])
            // The cursor carries its search: following it alone (another pattern given) stays on this search.
            let followed = try await client.promises.search("*", limit: 1, cursor: page.cursor)
            #expect(followed.promises.map(\.id) == ["client-2"])
            #expect(try await client.promises.cancel("client-2").state == .rejectedCanceled)
            #expect(try await client.promises.reject("client-1", value: "no").state == .rejected)
            await #expect(throws: WarrenError.self) { try await client.promises.get("no-such-promise") }
        }
    }
}
