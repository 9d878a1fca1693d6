import Foundation
import Testing
import Warren
import WarrenTestSupport
import WarrenTesting

#if canImport(Glibc)
import Glibc
#endif

/// Deploys under waiting workflows and cancellation, with real processes: `warren serve`, worker
/// processes whose code changes between deploys (WarrenTestWorker's WARREN_CODE), a real broker.
@Suite("Long-lived workflows", .serialized)
struct LongLivedTests {
    func task(_ id: String, of orchestrator: OrchestratorProcess) async throws -> [String: Any] {
        try await http("GET", orchestrator.httpURL + "/workflows/" + id).json["task"] as? [String: Any] ?? [:]
    }

    /// Waits until workflow `id`'s task is in `state`; returns why it is blocked, if it is.
    @discardableResult
    func waitForTask(_ id: String, state: String, of orchestrator: OrchestratorProcess) async throws -> String {
        try await within(.seconds(30), "task \(id) to be \(state)") {
            while true {
                let t = try await task(id, of: orchestrator)
                if t["state"] as? String == state { return t["blocked"] as? String ?? "" }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test func aDeployThatBreaksReplayBlocksTheTaskAndAFixedDeployResumesIt() async throws {
        try await withWorkflows(orchestratorArguments: ["--blocked-retry", "10m"]) { orchestrator, v1, client in
            let third = WorkerProcess(prefix: orchestrator.prefix, n: 3)
            defer { third.remove() }
            // v1 records its step and waits for the approval; a function no worker has yet blocks.
            _ = try await client.beginRpc("ev-1", "evolving-workflow", "ev-1", target: "workers")
            _ = try await client.beginRpc("later-1", "later-workflow", "later-1", target: "workers")
            try await waitForTask("ev-1", state: "suspended", of: orchestrator)
            let missing = try await waitForTask("later-1", state: "blocked", of: orchestrator)
            #expect(missing.contains("no function 'later-workflow'"), "\(missing)")

            // The broken deploy replays the history differently: the task blocks, the workflow waits.
            await v1.kill(SIGKILL)
            let broken = WorkerProcess(prefix: orchestrator.prefix, n: 2)
            defer { broken.remove() }
            try broken.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_CODE": "broken"])
            _ = try await client.promises.resolve("ev-1.2", value: "approved")
            let reason = try await waitForTask("ev-1", state: "blocked", of: orchestrator)
            #expect(reason.contains("ev-1.1") && reason.contains("run:note") && reason.contains("sleep"), "\(reason)")
            #expect(try await http("GET", orchestrator.httpURL + "/workflows/ev-1").json["state"] as? String == "PENDING")
            let listed = try await http("GET", orchestrator.httpURL + "/tasks?state=blocked").json["tasks"] as? [[String: Any]] ?? []
            #expect(Set(listed.compactMap { $0["id"] as? String }) == ["ev-1", "later-1"])

            // The fixed deploy, and the operator's retry: both finish, each with its history.
            await broken.kill(SIGKILL)
            try third.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_CODE": "fixed"])
            for id in ["ev-1", "later-1"] {
                let retried = try await http("POST", orchestrator.httpURL + "/workflows/\(id)/retry")
                #expect(retried.status == 200, "\(retried.json)")
            }
            let result = try await within(.seconds(30), "ev-1's result") { try await client.get("ev-1").result(as: String.self) }
            #expect(result == "evolving ev-1 approved under fixed")
            #expect(try await client.get("later-1").result(as: String.self) == "later later-1 under fixed")
            // Retrying what is not blocked is refused with a reason.
            let again = try await http("POST", orchestrator.httpURL + "/workflows/ev-1/retry")
            #expect(again.status == 400 && (again.json["error"] as? [String: Any])?["code"] as? String == "invalidTaskState", "\(again.status) \(again.json)")
        }
    }

    @Test func aPatchedDeployKeepsOldHistoriesOnTheirPathAndNewRunsOnTheNewOne() async throws {
        try await withWorkflows { orchestrator, v1, client in
            let patched = WorkerProcess(prefix: orchestrator.prefix, n: 2)
            defer { patched.remove() }
            let restarted = WorkerProcess(prefix: orchestrator.prefix, n: 3)
            defer { restarted.remove() }
            // Started under v1: its note is step 1, its approval step 2.
            _ = try await client.beginRpc("old-1", "evolving-workflow", "old-1", target: "workers")
            try await waitForTask("old-1", state: "suspended", of: orchestrator)
            await v1.kill(SIGKILL)
            // Started under the patched code: the marker, the audit, the note, then the approval.
            try patched.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_CODE": "patched"])
            _ = try await client.beginRpc("new-1", "evolving-workflow", "new-1", target: "workers")
            try await waitForTask("new-1", state: "suspended", of: orchestrator)
            #expect(try await client.promises.get("new-1.1").tags["warren:kind"] == "patch:audit")
            #expect(try await client.promises.get("new-1.4").state == .pending)
            // Another process of the patched code replays both from their histories.
            await patched.kill(SIGKILL)
            try restarted.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_CODE": "patched"])
            _ = try await client.promises.resolve("old-1.2", value: "approved")
            _ = try await client.promises.resolve("new-1.4", value: "approved")
            let old = try await within(.seconds(30), "old-1's result") { try await client.get("old-1").result(as: String.self) }
            #expect(old == "evolving old-1 approved under patched", "the old history keeps its path: no audit step")
            let new = try await within(.seconds(30), "new-1's result") { try await client.get("new-1").result(as: String.self) }
            #expect(new == "evolving new-1 approved under patched audited")
            await #expect(throws: WarrenError.self, "old-1 recorded no marker and no audit after its two calls") {
                _ = try await client.promises.get("old-1.3")
            }
        }
    }

    /// The code version a workflow recorded, from its marker promise.
    func codeVersion(_ id: String, _ client: Warren) async throws -> Int? {
        let marker = try await client.promises.get(CodeVersion.markerID(of: id))
        return marker.tags[PromiseRecord.kindTag] == CodeVersion.markerKind ? CodeVersion(marker: marker)?.version : nil
    }

    @Test func versionedDeploysKeepEachWorkflowOnTheCodeItStartedUnder() async throws {
        try await withWorkflows(workerEnvironment: ["WARREN_VERSIONS": "1"]) { orchestrator, v1, client in
            let v2 = WorkerProcess(prefix: orchestrator.prefix, n: 2)
            defer { v2.remove() }
            let both = WorkerProcess(prefix: orchestrator.prefix, n: 3)
            defer { both.remove() }
            // Deployed v1: two workflows start under it and wait for their approvals.
            for id in ["vo-1", "vo-2"] {
                _ = try await client.beginRpc(id, "versioned-workflow", id, target: "workers")
                try await waitForTask(id, state: "suspended", of: orchestrator)
                #expect(try await codeVersion(id, client) == 1)
            }
            // v1 goes, a v2-only deploy comes: vo-1's approval arrives, but its execute message
            // waits in v1's queue, untouched, while v2 starts and runs new workflows.
            await v1.kill(SIGKILL)
            try v2.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_VERSIONS": "2"])
            _ = try await client.promises.resolve("vo-1.2", value: "approved")
            _ = try await client.beginRpc("vn-1", "versioned-workflow", "vn-1", target: "workers")
            try await waitForTask("vn-1", state: "suspended", of: orchestrator)
            #expect(try await codeVersion("vn-1", client) == 2)
            #expect(try await client.promises.get("vn-1.1").state == .pending, "v2 waits before it notes")
            _ = try await client.promises.resolve("vn-1.1", value: "approved")
            let new = try await within(.seconds(30), "vn-1's result") { try await client.get("vn-1").result(as: String.self) }
            #expect(new == "versioned vn-1 approved under v2")
            // Meanwhile vo-1 neither moved nor failed: pending in v1's queue, no worker, not blocked.
            let waiting = try await task("vo-1", of: orchestrator)
            #expect(waiting["state"] as? String == "pending" && waiting["worker"] == nil && waiting["blocked"] == nil, "\(waiting)")
            #expect((waiting["code"] as? [String: Any])?["queue"] as? String == "\(orchestrator.prefix).group.workers,versioned-workflow,v1",
                    "\(waiting)")
            #expect(try await http("GET", orchestrator.httpURL + "/workflows/vo-1").json["state"] as? String == "PENDING")
            let listed = try await ProductTests.warren(orchestrator, ["tasks", "list", "--state", "pending"])
            #expect(listed.status == 0 && listed.output.contains("versioned-workflow v1")
                    && listed.output.contains("vo-1 waits in \(orchestrator.prefix).group.workers,versioned-workflow,v1 for a worker that serves versioned-workflow v1"),
                    "\(listed.output)")
            // A deploy serving both: every workflow finishes, each under its own code.
            try both.start(url: orchestrator.url, prefix: orchestrator.prefix, environment: ["WARREN_VERSIONS": "1,2"])
            let old = try await within(.seconds(30), "vo-1's result") { try await client.get("vo-1").result(as: String.self) }
            #expect(old == "versioned vo-1 approved under v1")
            _ = try await client.promises.resolve("vo-2.2", value: "rejected")
            let other = try await within(.seconds(30), "vo-2's result") { try await client.get("vo-2").result(as: String.self) }
            #expect(other == "versioned vo-2 rejected under v1")
            // A new workflow on the deploy of both starts under the highest version.
            _ = try await client.beginRpc("vn-2", "versioned-workflow", "vn-2", target: "workers")
            try await waitForTask("vn-2", state: "suspended", of: orchestrator)
            #expect(try await codeVersion("vn-2", client) == 2)
            #expect(!v2.text.contains("vo-1") && !v2.text.contains("task blocked"), "the v2-only worker never took a v1 workflow")
        }
    }

    /// WarrenTestWorker's `evolving-workflow` as each deploy has it (WARREN_CODE), for replays.
    static func evolving(_ code: String) -> @Sendable (Context, String) async throws -> String {
        { ctx, id in
            var audited = ""
            if code == "patched", ctx.patched("audit") {
                _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "audited \(s)" }, id, name: "audit")
                audited = " audited"
            }
            if code == "broken" {
                try await ctx.sleep(for: .milliseconds(1))
            } else {
                _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "noted \(s)" }, id, name: "note")
            }
            let decision: String = try await ctx.promise().value()
            return "evolving \(id) \(decision) under \(code)\(audited)"
        }
    }

    @Test func anExportedHistoryReplaysAgainstNewCodeBeforeItIsDeployed() async throws {
        try await withWorkflows { orchestrator, _, client in
            _ = try await client.beginRpc("ex-1", "evolving-workflow", "ex-1", target: "workers")
            try await waitForTask("ex-1", state: "suspended", of: orchestrator)
            let file = NSTemporaryDirectory() + "ex-1-\(UUID().uuidString).json"
            defer { try? FileManager.default.removeItem(atPath: file) }
            let exported = try await ProductTests.warren(orchestrator, ["workflows", "export", "ex-1", "--output", file])
            #expect(exported.status == 0, "\(exported.output)")
            let waiting = try WorkflowHistory(contentsOf: URL(fileURLWithPath: file))
            #expect(waiting.promise.id == "ex-1" && waiting.children.map(\.id) == ["ex-1.1", "ex-1.2"])

            func replay(_ code: String, _ history: WorkflowHistory) async throws -> ReplayReport {
                let env = WarrenTestEnvironment()
                env.register("evolving-workflow", Self.evolving(code))
                return try await env.replay(history)
            }
            // The code it ran under, and a patched change, replay it; the broken change departs at step 1.
            let same = try await replay("v1", waiting)
            #expect(same.difference == nil && same.outcome == .suspended(awaiting: ["ex-1.2"]) && same.newCalls.isEmpty, "\(same)")
            let patched = try await replay("patched", waiting)
            #expect(patched.difference == nil && patched.newCalls.isEmpty, "\(patched)")
            let broken = try await replay("broken", waiting)
            #expect(broken.difference?.contains("ex-1.1") == true && broken.difference?.contains("sleep") == true, "\(broken)")

            // Finished, its history replays to the same result, and a change of the result shows.
            _ = try await client.promises.resolve("ex-1.2", value: "approved")
            _ = try await within(.seconds(30), "ex-1's result") { try await client.get("ex-1").result(as: String.self) }
            let done = try await ProductTests.warren(orchestrator, ["workflows", "export", "ex-1"])
            let finished = try WorkflowHistory(json: Data(done.output.utf8))
            #expect(try await replay("v1", finished).difference == nil)
            let renamed = try await replay("fixed", finished)
            #expect(renamed.outcome == .completed("\"evolving ex-1 approved under fixed\"")
                    && renamed.difference?.contains("evolving ex-1 approved under v1") == true, "\(renamed)")
        }
    }

    @Test func aWorkflowContinuesAsNewOverManyRunsWithABoundedHistory() async throws {
        struct Loop: Codable, Sendable { var n: Int; var until: Int }
        try await withWorkflows { orchestrator, worker, client in
            let result = try await within(.seconds(120), "300 runs") {
                try await client.rpc("loop-1", "looping-workflow", Loop(n: 1, until: 300), target: "workers", as: String.self)
            }
            #expect(result == "looped 300 times, in run 300")
            // Every run's step is kept, linked by the markers; the last run's history is its own.
            #expect(try await client.promises.get("loop-1.r300.1").state == .resolved)
            #expect(try await client.promises.get("loop-1.1").state == .resolved)
            let marker = try await client.promises.get(RunMarker.markerID(of: "loop-1", run: 300))
            #expect(marker.tags[PromiseRecord.kindTag] == RunMarker.kind && marker.value.data?.contains("\"n\":300") == true)
            // Its export holds every run (a replay takes the latest).
            let exported = try await ProductTests.warren(orchestrator, ["workflows", "export", "loop-1"])
            #expect(exported.status == 0 && exported.output.contains("loop-1.r300.1"))
        }
    }

    @Test func aCanceledWorkflowSeesItAtItsAwaitAndCompensates() async throws {
        try await withWorkflows { orchestrator, worker, client in
            let waiting = Task { try await client.rpc("cw-1", "compensating-workflow", "cw-1", target: "workers", as: String.self) }
            try await waitForTask("cw-1", state: "suspended", of: orchestrator)
            let canceled = try await client.cancel("cw-1", reason: "customer withdrew")
            #expect(canceled.state == .rejectedCanceled)
            // The caller waiting for the result hears it at once.
            do {
                _ = try await within(.seconds(30), "the canceled result") { try await waiting.value }
                Issue.record("a canceled workflow returned a result")
            } catch let e as WarrenError {
                #expect(e.code == .canceled, "\(e)")
            }
            // Its code ran once more, caught the cancellation and compensated.
            _ = try await worker.line(startingWith: "compensated: cw-1")
            try await waitForTask("cw-1", state: "completed", of: orchestrator)
            let approval = try await client.promises.get("cw-1.1")
            #expect(approval.state == .rejectedCanceled)
            let step = try await client.promises.get("cw-1.2")
            #expect(step.state == .resolved, "the compensating step is recorded")
            // The workflow stays canceled; a second cancel changes nothing; the CLI says so too.
            #expect(try await client.cancel("cw-1").state == .rejectedCanceled)
            let view = try await http("GET", orchestrator.httpURL + "/workflows/cw-1").json
            #expect(view["state"] as? String == "REJECTED_CANCELED")
            let cli = try await run(productsDirectory + "/warren", ["workflows", "get", "cw-1", "--server", orchestrator.httpURL])
            #expect(cli.status == 0 && cli.output.contains("REJECTED_CANCELED"), "\(cli.output)")
            let unknown = try await run(productsDirectory + "/warren", ["workflows", "cancel", "nope", "--server", orchestrator.httpURL])
            #expect(unknown.status != 0 && unknown.output.contains("no workflow"), "\(unknown.output)")
        }
    }
}
