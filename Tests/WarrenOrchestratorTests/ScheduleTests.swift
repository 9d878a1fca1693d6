import Foundation
import Testing
import Warren
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Schedules on a real `warren serve` and real workers: created over HTTP, AMQP and the CLI; a
/// tick that passes while the orchestrator is killed with SIGKILL starts once or not at all.
@Suite("Schedules", .serialized)
struct ScheduleTests {
    /// The tick a scheduled workflow's id names (`often:20261204T050102Z`), in epoch milliseconds.
    static func tick(of id: String) -> Int64? {
        guard let colon = id.lastIndex(of: ":") else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.date(from: String(id[id.index(after: colon)...])).map { Int64($0.timeIntervalSince1970 * 1000) }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The workflows a schedule started that resolved, by id.
    static func resolved(_ schedule: String, _ orchestrator: OrchestratorProcess) async throws -> [String] {
        let page = try await http("GET", orchestrator.httpURL + "/promises?id=\(schedule):*&state=resolved&limit=1000")
        return (page.json["promises"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    @Test func ticksStartDurablyAndATickPassedWhileTheOrchestratorWasKilledStartsOnceOrNotAtAll() async throws {
        try await withWorkflows(orchestratorArguments: ["--schedule-tolerance", "1s"]) { orchestrator, _, client in
            // Every two seconds, created over AMQP.
            let often = try await client.schedules.create("often", cron: "*/2 * * * * *", function: "double-workflow", 21)
            #expect(often.definition.missed == .once && often.nextTick != nil)
            // One tick, eight seconds from now (UTC), under each policy, over HTTP.
            let tick = (Self.nowMillis() / 1000 + 8) * 1000
            let t = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: Date(timeIntervalSince1970: Double(tick) / 1000))
            let cron = "\(t.second!) \(t.minute!) \(t.hour!) \(t.day!) \(t.month!) *"
            for policy in ["once", "skip"] {
                let made = try await http("POST", orchestrator.httpURL + "/schedules", #"""
                    {"id": "\#(policy)", "cron": "\#(cron)", "function": "double-workflow", "group": "workers", "args": [5], "missedTicks": "\#(policy)"}
                    """#)
                #expect(made.status == 201 && made.json["nextTick"] as? Int64 == tick, "\(made.text)")
            }
            let tickID: @Sendable (String) -> String = { schedule in ScheduleRecord.workflowID(schedule: schedule, tick: tick) }

            // The every-two-seconds schedule runs; then the orchestrator is killed before the tick.
            try await within(.seconds(30), "two ticks of 'often'") {
                while try await Self.resolved("often", orchestrator).count < 2 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(try await client.get(try await Self.resolved("often", orchestrator)[0]).result(as: Int.self) == 42)
            #expect(Self.nowMillis() < tick - 1000, "the test was too slow to kill the orchestrator before the tick")
            _ = await orchestrator.kill(SIGKILL)
            let killedAt = Self.nowMillis()

            // The tick passes while nothing runs, and more than the tolerance of a second with it.
            try await Task.sleep(for: .milliseconds(tick + 3000 - Self.nowMillis()))
            let restartedAt = Self.nowMillis()
            try await orchestrator.start(["--schedule-tolerance", "1s"])

            // `once` starts the missed tick's workflow (once); `skip` starts nothing and waits a year.
            #expect(try await within(.seconds(30), "the missed tick's workflow") { try await client.get(tickID("once")).result(as: Int.self) } == 10)
            let skip = try await within(.seconds(30), "the skip schedule after its missed tick") {
                while true {
                    let s = try await http("GET", orchestrator.httpURL + "/schedules/skip")
                    if let next = s.json["nextTick"] as? Int64, next > tick { return s.text }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let skipped = try #require(try JSONSerialization.jsonObject(with: Data(skip.utf8)) as? [String: Any])
            #expect(skipped["lastWorkflow"] == nil && (skipped["nextTick"] as? Int64 ?? 0) > tick + 300 * 86_400_000, "\(skip)")
            #expect(try await http("GET", orchestrator.httpURL + "/promises/" + tickID("skip")).status == 404)
            #expect(try await http("GET", orchestrator.httpURL + "/schedules/once").json["lastWorkflow"] as? String == tickID("once"))

            // `often` goes on after the restart; of the ticks it missed while down only the latest
            // can have started, so none in the middle of the outage did.
            let after = try await within(.seconds(30), "a tick of 'often' after the restart") {
                while true {
                    let ids = try await Self.resolved("often", orchestrator)
                    if ids.contains(where: { (Self.tick(of: $0) ?? 0) > restartedAt }) { return ids }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let outage = after.filter { id in Self.tick(of: id).map { $0 > killedAt + 500 && $0 < restartedAt - 2500 } ?? false }
            #expect(outage.isEmpty, "ticks missed during the outage started: \(outage)")
            #expect(Set(after).count == after.count)

            // Paused, it starts nothing more; deleted, it is gone, and its workflows remain.
            let paused = try await client.schedules.pause("often")
            #expect(paused.paused && paused.nextTick == nil)
            let count = try await Self.resolved("often", orchestrator).count
            let listed = try await client.schedules.list()
            #expect(listed.schedules.map(\.id) == ["often", "once", "skip"])
            _ = try await client.schedules.delete("often")
            await #expect(throws: WarrenError.self) { try await client.schedules.get("often") }
            #expect(try await Self.resolved("often", orchestrator).count >= count)
        }
    }

    @Test func theHTTPAPIAndTheCLIRefuseBadSchedulesWithReasons() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let base = orchestrator.httpURL
        let body = #"{"id": "daily-report", "cron": "0 9 * * MON-FRI", "timeZone": "Europe/Paris", "function": "daily-report", "group": "reports", "args": ["eu"], "timeout": "2h", "tags": {"team": "finance"}}"#
        let created = try await http("POST", base + "/schedules", body)
        #expect(created.status == 201, "\(created.text)")
        #expect(created.json["timeZone"] as? String == "Europe/Paris" && created.json["missedTicks"] as? String == "once"
            && created.json["timeout"] as? Int == 7_200_000 && (created.json["args"] as? [String]) == ["eu"])
        #expect(try await http("POST", base + "/schedules", body).status == 200)
        let conflict = try await http("POST", base + "/schedules", body.replacingOccurrences(of: "\"eu\"", with: "\"us\""))
        #expect(conflict.status == 409 && conflict.errorCode == "alreadyExists", "\(conflict.text)")
        for (bad, why) in [(#"{"id": "x", "cron": "0 9 * * FRY", "function": "f", "group": "g"}"#, "'FRY' is not"),
                           (#"{"id": "x.y", "cron": "@daily", "function": "f", "group": "g"}"#, "has a dot"),
                           (#"{"id": "x", "cron": "@daily", "function": "f", "group": "g", "timeZone": "Nowhere/City"}"#, "not a time zone"),
                           (#"{"id": "x", "cron": "@daily", "function": "f"}"#, "'group' is missing"),
                           (#"{"id": "x", "cron": "0 0 30 2 *", "function": "f", "group": "g"}"#, "never ticks"),
                           (#"[1]"#, "JSON object"), (#"{"#, "not valid JSON")] {
            let refused = try await http("POST", base + "/schedules", bad)
            #expect(refused.status == 400 && ((refused.json["error"] as? [String: Any])?["message"] as? String ?? "").contains(why),
                    "\(bad): \(refused.status) \(refused.text)")
        }
        #expect(try await http("GET", base + "/schedules/nothing").status == 404)
        #expect(try await http("POST", base + "/schedules/nothing/pause").status == 404)
        #expect(try await http("DELETE", base + "/schedules/nothing").status == 404)

        // The CLI: create, list, pause, resume, delete, and a refusal before anything is sent.
        var r = try await ProductTests.warren(orchestrator, ["schedules", "create", "--cron", "*/5 * * * *", "--function", "cleanup", "--missed", "skip",
                                                             "--timezone", "America/New_York", "--arg", "7"])
        #expect(r.status == 0 && r.output.contains("cleanup") && r.output.contains("*/5 * * * *") && r.output.contains("skip"), "\(r.output)")
        r = try await ProductTests.warren(orchestrator, ["schedules", "list"])
        #expect(r.status == 0 && r.output.contains("daily-report") && r.output.contains("cleanup") && r.output.contains("active"), "\(r.output)")
        r = try await ProductTests.warren(orchestrator, ["schedules", "pause", "cleanup"])
        #expect(r.status == 0 && r.output.contains("paused"), "\(r.output)")
        r = try await ProductTests.warren(orchestrator, ["schedules", "resume", "cleanup", "--json"])
        #expect(r.status == 0 && (ProductTests.json(r.output) as? [String: Any])?["paused"] as? Bool == false, "\(r.output)")
        r = try await ProductTests.warren(orchestrator, ["schedules", "delete", "cleanup"])
        #expect(r.status == 0, "\(r.output)")
        r = try await ProductTests.warren(orchestrator, ["schedules", "get", "cleanup"])
        #expect(r.status == 3 && r.output.contains("no schedule with id 'cleanup'"), "\(r.status) \(r.output)")
        r = try await ProductTests.warren(orchestrator, ["schedules", "create", "--cron", "0 9 * *", "--function", "f"])
        #expect(r.status == 64 && r.output.contains("has 4 fields"), "\(r.status) \(r.output)")
    }
}
