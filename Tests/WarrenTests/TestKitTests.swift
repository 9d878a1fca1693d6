import Foundation
import Synchronization
import Testing
import Warren
import WarrenTesting

/// The test kit itself: workflows in-process on the kernel and the in-memory store, on a
/// virtual clock.
@Suite("Test kit")
struct TestKitTests {
    @Test func aWeekLongSleepFinishesAtOnceAndTheClockIsVirtual() async throws {
        let env = WarrenTestEnvironment()
        env.register("weekly") { (ctx: Context, _: String) async throws -> Double in
            let before = try await ctx.now()
            try await ctx.sleep(for: .seconds(7 * 86_400))
            return try await ctx.now().timeIntervalSince(before)
        }
        try await env.start("w-1", "weekly", "")
        #expect(try env.task("w-1")?.state == "suspended")
        try await env.advanceUntilSettled("w-1")
        #expect(try env.result(of: "w-1", as: Double.self) == 7 * 86_400, "ctx.now() follows the virtual clock")
    }

    @Test func aScheduleStartsAWorkflowAtEachTickTheVirtualClockPasses() async throws {
        // Monday 2027-01-04 at midnight UTC.
        let env = WarrenTestEnvironment(startingAt: Date(timeIntervalSince1970: 1_799_020_800))
        env.register("daily-report") { (ctx: Context, region: String) async throws -> String in
            let day = try await ctx.now()
            try await ctx.sleep(for: .seconds(3600))  // the report takes an hour
            return "report \(region) \(Int(day.timeIntervalSince1970))"
        }
        let created = try env.schedule("daily", cron: "0 9 * * MON-FRI", timeZone: "Europe/Paris", "daily-report", "eu")
        #expect(created.nextTick == Int64(1_799_049_600_000), "nine in Paris is eight UTC in winter")
        try await env.advance(by: .seconds(7 * 86_400))
        let ids = (0..<7).map { day in ScheduleRecord.workflowID(schedule: "daily", tick: 1_799_020_800_000 + Int64(day) * 86_400_000 + 8 * 3_600_000) }
        let ran = try ids.filter { try env.promise($0)?.state == .resolved }
        #expect(ran == Array(ids.prefix(5)), "Monday to Friday, not the weekend")
        #expect(try env.promise(ids[5]) == nil && env.promise(ids[6]) == nil)
        #expect(try env.result(of: ids[0], as: String.self) == "report eu \(1_799_020_800 + 8 * 3600)")
        #expect(try env.schedule("daily")?.lastWorkflow == ids[4])
    }

    @Test func aFailingStepIsRetriedOnVirtualBackOffs() async throws {
        let env = WarrenTestEnvironment()
        let attempts = Mutex(0)
        env.register("flaky") { (ctx: Context, _: String) async throws -> Int in
            try await ctx.run({ (_: Context, _: String) async throws -> Int in
                let n = attempts.withLock { $0 += 1; return $0 }
                if n < 3 { throw CocoaError(.fileReadUnknown) }
                return n
            }, "", name: "flaky", retry: RetryPolicy(maximumAttempts: 5, initialDelay: .seconds(3600), maximumDelay: .seconds(7200)))
        }
        try await env.start("f-1", "flaky", "")
        let settled = try env.promise("f-1")?.isSettled
        #expect(attempts.withLock { $0 } == 1 && settled == false)
        try await env.advance(by: .seconds(3599))
        #expect(attempts.withLock { $0 } == 1, "the back-off has not passed")
        try await env.advanceUntilSettled("f-1")
        #expect(try env.result(of: "f-1", as: Int.self) == 3)
    }

    @Test func childWorkflowsAndTheCallTree() async throws {
        let env = WarrenTestEnvironment()
        env.register("child") { (_: Context, n: Int) async throws -> Int in n * 2 }
        env.register("parent") { (ctx: Context, n: Int) async throws -> Int in
            let a = try await ctx.beginRpc("child", n, target: "workers")
            let b = try await ctx.beginRpc("child", n + 1, target: "workers")
            let x: Int = try await a.value()
            let y: Int = try await b.value()
            return x + y
        }
        try await env.start("p-1", "parent", 5)
        #expect(try env.result(of: "p-1", as: Int.self) == 22)
        #expect(try env.tree("p-1").map(\.id) == ["p-1.1", "p-1.2"])
    }

    @Test func aPromiseTheTestSettlesAndACancellationThatCompensates() async throws {
        let env = WarrenTestEnvironment()
        env.register("approval") { (ctx: Context, id: String) async throws -> String in
            let approval = try await ctx.promise(tags: ["human": "true"])
            do {
                return try await approval.value()
            } catch let e as WarrenError where e.code == .canceled {
                _ = try await ctx.run({ (_: Context, s: String) async throws -> String in "withdrawn \(s)" }, id, name: "withdraw")
                throw e
            }
        }
        try await env.start("a-1", "approval", "a-1")
        try await env.resolve(try #require(try env.waiting(for: "a-1", tags: ["human": "true"]).first).id, "yes")
        #expect(try env.result(of: "a-1", as: String.self) == "yes")

        try await env.start("a-2", "approval", "a-2")
        #expect(throws: WarrenError.self, "not finished yet") { try env.result(of: "a-2", as: String.self) }
        try await env.cancel("a-2", reason: "withdrawn by the customer")
        #expect(try env.promise("a-2")?.state == .rejectedCanceled)
        #expect(try env.tree("a-2").contains { $0.tags["warren:kind"] == "run:withdraw" && $0.state == .resolved })
    }

    @Test func aDeadlineTimesOutAPromise() async throws {
        let env = WarrenTestEnvironment()
        env.register("deadline") { (ctx: Context, _: String) async throws -> String in
            let approval = try await ctx.promise(timeout: .seconds(3 * 86_400))
            do { return try await approval.value() } catch let e as WarrenError where e.code == .timedOut { return "timed out" }
        }
        try await env.start("d-1", "deadline", "")
        try await env.timeOut(try #require(try env.waiting(for: "d-1").first).id)
        #expect(try env.result(of: "d-1", as: String.self) == "timed out")
    }

    @Test func aLoopThatContinuesAsNewKeepsEachRunsHistoryShort() async throws {
        let env = WarrenTestEnvironment(maximumCallsPerRun: 10)
        env.register("daily") { (ctx: Context, day: Int) async throws -> Int in
            _ = try await ctx.run({ (_: Context, d: Int) async throws -> Int in d }, day, name: "digest")
            #expect(ctx.runNumber == day + 1)
            if day == 100 { return day }
            try await ctx.sleep(for: .seconds(86_400))
            return try await ctx.continueAsNew(day + 1)
        }
        try await env.start("daily-1", "daily", 0)
        try await env.advanceUntilSettled("daily-1")
        #expect(try env.result(of: "daily-1", as: Int.self) == 100)
        #expect(try env.promise(RunMarker.markerID(of: "daily-1", run: 101))?.state == .resolved)
        #expect(try env.promise("daily-1.r101.1")?.tags["warren:kind"] == "run:digest")
        #expect(env.now.timeIntervalSince1970 - 1_800_000_000 == 100 * 86_400, "100 days, virtually")

        // A run that passes the limit of calls blocks, and says what to do.
        env.register("endless") { (ctx: Context, _: Int) async throws -> Int in
            for i in 0..<100 { _ = try await ctx.run({ (_: Context, i: Int) async throws -> Int in i }, i, name: "tick") }
            return 0
        }
        try await env.start("endless-1", "endless", 0)
        let blocked = try env.task("endless-1")
        #expect(blocked?.state == "blocked" && blocked?.blocked?.contains("continueAsNew") == true, "\(String(describing: blocked))")
    }

    @Test func aWorkflowFromBeforeVersionsKeepsTheUnversionedCodeAndAnUnservedVersionBlocks() async throws {
        let env = WarrenTestEnvironment()
        env.register("x") { (ctx: Context, _: String) async throws -> String in
            "old " + (try await ctx.promise().value(as: String.self))
        }
        try await env.start("x-1", "x", "")
        env.register("x", version: 1) { (_: Context, _: String) async throws -> String in "v1" }
        try await env.resolve("x-1.1", "done")
        #expect(try env.result(of: "x-1", as: String.self) == "old done", "recorded before versions: the unversioned code runs it")
        try await env.start("x-2", "x", "")
        #expect(try env.result(of: "x-2", as: String.self) == "v1", "a new one takes the version")

        // Another deploy has only versions: the legacy history blocks, saying what to register.
        let legacy = WarrenTestEnvironment()
        legacy.register("x") { (ctx: Context, _: String) async throws -> String in try await ctx.promise().value(as: String.self) }
        try await legacy.start("x-3", "x", "")
        let history = WorkflowHistory(promise: try #require(try legacy.promise("x-3")), children: try legacy.tree("x-3"))
        let versionsOnly = WarrenTestEnvironment()
        versionsOnly.register("x", version: 2) { (_: Context, _: String) async throws -> String in "v2" }
        let report = try await versionsOnly.replay(history)
        #expect(report.difference?.contains("started before x had versions") == true, "\(report)")

        // A history pinned to v1, on a deploy that serves only v2, blocks too (it is never run under v2).
        let pinned = WarrenTestEnvironment()
        pinned.register("x", version: 1) { (ctx: Context, _: String) async throws -> String in try await ctx.promise().value(as: String.self) }
        try await pinned.start("x-4", "x", "")
        let report2 = try await versionsOnly.replay(WorkflowHistory(promise: try #require(try pinned.promise("x-4")), children: try pinned.tree("x-4")))
        #expect(report2.difference?.contains("started under x v1") == true && report2.newCalls.isEmpty, "\(report2)")
    }

    @Test func versionsPinWorkflowsAndADepartureBlocks() async throws {
        let env = WarrenTestEnvironment()
        env.register("v", version: 1) { (ctx: Context, _: String) async throws -> String in
            _ = try await ctx.promise().value(as: String.self)
            return "v1"
        }
        try await env.start("v-1", "v", "")
        #expect(try env.promise(CodeVersion.markerID(of: "v-1")).flatMap(CodeVersion.init(marker:))?.version == 1)
        env.register("v", version: 2) { (_: Context, _: String) async throws -> String in "v2" }
        try await env.start("v-2", "v", "")
        #expect(try env.result(of: "v-2", as: String.self) == "v2", "a new workflow starts under the highest version")
        try await env.resolve("v-1.1", "ok")
        #expect(try env.result(of: "v-1", as: String.self) == "v1", "an old one keeps its own")

        // Code that departs from a recorded history blocks the task with the reason.
        let other = WarrenTestEnvironment()
        other.register("w") { (ctx: Context, _: String) async throws -> String in
            try await ctx.promise().value(as: String.self)
        }
        try await other.start("w-1", "w", "")
        let history = WorkflowHistory(promise: try #require(try other.promise("w-1")), children: try other.tree("w-1"))
        let changed = WarrenTestEnvironment()
        changed.register("w") { (ctx: Context, _: String) async throws -> String in
            try await ctx.sleep(for: .seconds(1))
            return try await ctx.promise().value(as: String.self)
        }
        let report = try await changed.replay(history)
        #expect(report.difference?.contains("w-1.1") == true, "\(report)")
        if case .blocked = report.outcome {} else { Issue.record("\(report.outcome)") }
    }
}
