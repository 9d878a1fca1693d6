import AMQP
import Foundation
import Testing
import Warren
import WarrenStore
import WarrenStorePostgres
import WarrenTestSupport
import Glibc

/// Two `warren serve` on one PostgreSQL database: one active, one `--standby`. The active one is
/// SIGKILLed (and, separately, SIGSTOPped past its lease and continued) with workflows in
/// flight: the standby takes over, every workflow completes once with its result, and the old
/// leader, once continued, writes nothing. `WARREN_FAILOVER_WORKFLOWS` sets how many (200 by
/// default; the 1,000 with `WARREN_FAILOVER_WORKFLOWS=1000`).
@Suite("Failover", .serialized)
struct FailoverTests {
    static let workflows = Int(ProcessInfo.processInfo.environment["WARREN_FAILOVER_WORKFLOWS"] ?? "") ?? 200

    /// An active orchestrator, a standby, a worker and a client on one database and prefix.
    func withPair(_ body: (OrchestratorProcess, OrchestratorProcess, Warren) async throws -> Void) async throws {
        let database = try PostgresTests.database()
        let active = OrchestratorProcess(url: try brokerURL(), database: database, name: "-a")
        let standby = OrchestratorProcess(url: active.url, database: database, prefix: active.prefix, name: "-b")
        let worker = WorkerProcess(prefix: active.prefix, n: 1)
        defer {
            active.remove(); standby.remove(); worker.remove()
            if let store = try? PostgresStore(url: database) { try? store.dropSchema(); store.closeSync() }
        }
        try await active.start()
        try standby.launch(["--standby"])
        try await within(.seconds(30), "the standby waits") {
            while !standby.logText.contains("standby: another orchestrator holds") { try await Task.sleep(for: .milliseconds(20)) }
        }
        try worker.start(url: active.url, prefix: active.prefix)
        let client = try await Warren(url: active.url, group: "failover-client", prefix: active.prefix)
        do {
            try await body(active, standby, client)
        } catch {
            print("active log:\n\(active.logText.suffix(3000))\nstandby log:\n\(standby.logText.suffix(3000))\nworker log:\n\(worker.text.suffix(2000))")
            await client.close()
            throw error
        }
        await client.close()
    }

    /// Starts the workflows: each computes a step, sleeps on a durable timer, and returns.
    func start(_ n: Int, _ client: Warren, tag: String) async throws -> [(Int, WorkflowHandle)] {
        var handles: [(Int, WorkflowHandle)] = []
        for i in 0..<n {
            let millis = 300 + (i % 7) * 100
            handles.append((millis, try await client.beginRpc("fo-\(tag)-\(i)", "sleepy-workflow", millis, target: "workers")))
        }
        return handles
    }

    func expectAllComplete(_ handles: [(Int, WorkflowHandle)]) async throws {
        try await within(.seconds(180), "every workflow's result") {
            for (millis, handle) in handles {
                let result: String = try await handle.result(timeout: .seconds(170))
                #expect(result == "slept \(millis) ms after computing \(millis * 2)", "\(handle.id)")
            }
        }
    }

    /// Each root settled once, resolved, its task completed.
    func expectSettledOnce(_ database: String, tag: String, count: Int) async throws {
        let store = try await PostgresStore.open(url: database)
        defer { store.closeSync() }
        let (roots, tasks) = try await store.read { tx in
            var roots: [PromiseRecord] = []
            var cursor: String? = nil
            repeat {
                let page = try tx.search(PromiseSearch(id: "fo-\(tag)-*", limit: 1000, cursor: cursor), now: 0)
                roots += page.promises.filter { !$0.id.contains(".") }
                cursor = page.cursor
            } while cursor != nil
            return (roots, try roots.compactMap { try tx.task(id: $0.id) })
        }
        #expect(roots.count == count && roots.allSatisfy { $0.state == .resolved })
        #expect(tasks.count == count && tasks.allSatisfy { $0.state == .completed })
    }

    @Test func theStandbyTakesOverWhenTheActiveOrchestratorIsKilled() async throws {
        try await withPair { active, standby, client in
            let handles = try await start(Self.workflows, client, tag: "kill")
            let killed = ContinuousClock.now
            #expect(await active.kill(SIGKILL) & 0x7f == SIGKILL)
            try await standby.waitUntilServing(within: .seconds(30))
            print("failover: the standby consumed \(ContinuousClock.now - killed) after the active one was SIGKILLed")
            try await expectAllComplete(handles)
            try await expectSettledOnce(active.database, tag: "kill", count: Self.workflows)
        }
    }

    @Test func aStoppedLeaderLosesItsLeaseAndOnceContinuedWritesNothing() async throws {
        try await withPair { active, standby, client in
            let handles = try await start(Self.workflows, client, tag: "stop")
            let stopped = ContinuousClock.now
            Glibc.kill(active.pid, SIGSTOP)
            // Its session idles past the lease; the server ends it and the standby takes the lock.
            try await within(.seconds(30), "the standby takes over") {
                while !standby.logText.contains("took the writer lock") { try await Task.sleep(for: .milliseconds(20)) }
            }
            print("failover: the standby took the lock \(ContinuousClock.now - stopped) after the active one was SIGSTOPped")
            Glibc.kill(active.pid, SIGCONT)
            // Its next write finds its session gone, cannot take the lock again, and is refused: it
            // gives its deliveries back and stops consuming.
            try await within(.seconds(90), "the old leader is refused") {
                while !active.logText.contains("lost the writer lock") { try await Task.sleep(for: .milliseconds(20)) }
            }
            try await expectAllComplete(handles)
            try await expectSettledOnce(active.database, tag: "stop", count: Self.workflows)
            #expect(!active.logText.contains("took the writer lock"))
            // New work goes through the new leader alone.
            try await expectAllComplete(try await start(20, client, tag: "after"))
        }
    }
}
