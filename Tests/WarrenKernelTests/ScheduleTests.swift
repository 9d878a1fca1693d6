import Foundation
import Testing
import WarrenContract
import WarrenKernel
import WarrenStore

/// Epoch milliseconds of an ISO 8601 UTC time (`2026-12-07T09:00:00Z`).
func ms(_ iso: String) -> Int64 {
    Int64(ISO8601DateFormatter().date(from: iso)!.timeIntervalSince1970 * 1000)
}

func iso(_ ms: Int64?) -> String? {
    ms.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0) / 1000)) }
}

@Suite("Cron expressions")
struct CronTests {
    func next(_ cron: String, after: String, zone: String = "UTC") throws -> String? {
        iso(try CronExpression(cron).next(after: ms(after), in: TimeZone(identifier: zone)!))
    }

    @Test func fiveFieldsSixFieldsNamesStepsAndMacros() throws {
        // Friday 10:00 → the next weekday at nine is Monday.
        #expect(try next("0 9 * * MON-FRI", after: "2026-12-04T10:00:00Z") == "2026-12-07T09:00:00Z")
        #expect(try next("0 9 * * mon-fri", after: "2026-12-07T08:59:59Z") == "2026-12-07T09:00:00Z")
        // Strictly after: a tick at the instant itself is not the next one.
        #expect(try next("0 9 * * *", after: "2026-12-07T09:00:00Z") == "2026-12-08T09:00:00Z")
        #expect(try next("*/15 * * * * *", after: "2026-12-07T12:00:07Z") == "2026-12-07T12:00:15Z")
        #expect(try next("*/15 * * * * *", after: "2026-12-07T12:00:45Z") == "2026-12-07T12:01:00Z")
        #expect(try next("5,35 */6 * * *", after: "2026-12-07T06:40:00Z") == "2026-12-07T12:05:00Z")
        #expect(try next("0 0 1 JAN,JUL *", after: "2026-12-07T00:00:00Z") == "2027-01-01T00:00:00Z")
        #expect(try next("30 8 * * 7", after: "2026-12-07T00:00:00Z") == "2026-12-13T08:30:00Z")  // 7 is Sunday
        #expect(try next("0 10-14/2 * * *", after: "2026-12-07T10:00:00Z") == "2026-12-07T12:00:00Z")
        #expect(try next("0 22/1 * * *", after: "2026-12-07T23:30:00Z") == "2026-12-08T22:00:00Z")
        #expect(try next("@hourly", after: "2026-12-07T10:30:00Z") == "2026-12-07T11:00:00Z")
        #expect(try next("@daily", after: "2026-12-07T10:30:00Z") == "2026-12-08T00:00:00Z")
        #expect(try next("@weekly", after: "2026-12-07T10:30:00Z") == "2026-12-13T00:00:00Z")
        #expect(try next("@monthly", after: "2026-12-07T10:30:00Z") == "2027-01-01T00:00:00Z")
        #expect(try next("@yearly", after: "2026-12-07T10:30:00Z") == "2027-01-01T00:00:00Z")
        // Milliseconds past a second: the next whole second.
        #expect(try CronExpression("* * * * * *").next(after: ms("2026-12-07T10:30:00Z") + 400) == ms("2026-12-07T10:30:01Z"))
    }

    @Test func bothDayFieldsRestrictedMatchEitherAndImpossibleDatesNeverTick() throws {
        // The 1st of the month or a Monday, as cron reads it: Monday the 7th comes first.
        #expect(try next("0 12 1 * MON", after: "2026-12-04T00:00:00Z") == "2026-12-07T12:00:00Z")
        #expect(try next("0 12 1 * MON", after: "2026-12-28T13:00:00Z") == "2027-01-01T12:00:00Z")
        #expect(try next("0 12 ? * MON", after: "2026-12-04T00:00:00Z") == "2026-12-07T12:00:00Z")
        // Only in leap years; never for the 30th of February.
        #expect(try next("0 0 29 2 *", after: "2026-03-01T00:00:00Z") == "2028-02-29T00:00:00Z")
        #expect(try next("0 0 30 2 *", after: "2026-03-01T00:00:00Z") == nil)
        #expect(try next("0 0 31 4 *", after: "2026-03-01T00:00:00Z") == nil)
        // The 31st skips the months without one.
        #expect(try next("0 0 31 * *", after: "2026-12-31T00:00:00Z") == "2027-01-31T00:00:00Z")
        #expect(try next("0 0 31 * *", after: "2027-01-31T00:00:00Z") == "2027-03-31T00:00:00Z")
    }

    @Test func aTimeZoneKeepsTheWallClockAcrossItsChanges() throws {
        // Nine in Paris is 08:00 UTC in winter and 07:00 UTC in summer (clocks change on 2026-03-29).
        #expect(try next("0 9 * * *", after: "2026-03-27T12:00:00Z", zone: "Europe/Paris") == "2026-03-28T08:00:00Z")
        #expect(try next("0 9 * * *", after: "2026-03-28T12:00:00Z", zone: "Europe/Paris") == "2026-03-29T07:00:00Z")
        #expect(try next("0 9 * * MON-FRI", after: "2026-12-04T10:00:00Z", zone: "America/New_York") == "2026-12-04T14:00:00Z")  // 05:00 in New York
        // 02:30 does not exist on 2026-03-29 in Paris: it ticks at 03:30 (01:30 UTC), once.
        #expect(try next("30 2 * * *", after: "2026-03-28T12:00:00Z", zone: "Europe/Paris") == "2026-03-29T01:30:00Z")
        #expect(try next("30 2 * * *", after: "2026-03-29T01:30:00Z", zone: "Europe/Paris") == "2026-03-30T00:30:00Z")
        // 02:30 happens twice on 2026-10-25 in Paris: it ticks at the first (00:30 UTC) only.
        #expect(try next("30 2 * * *", after: "2026-10-24T12:00:00Z", zone: "Europe/Paris") == "2026-10-25T00:30:00Z")
        #expect(try next("30 2 * * *", after: "2026-10-25T00:30:00Z", zone: "Europe/Paris") == "2026-10-26T01:30:00Z")
        // Every 30 minutes through the repeated hour: each wall time once, in order.
        var t = ms("2026-10-25T00:00:00Z")
        var ticks: [String] = []
        for _ in 0..<4 {
            t = try #require(try CronExpression("0,30 * * * *").next(after: t, in: TimeZone(identifier: "Europe/Paris")!))
            ticks.append(iso(t)!)
        }
        #expect(ticks == ["2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z", "2026-10-25T03:00:00Z"])
    }

    @Test func aMalformedExpressionSaysWhatIsWrong() {
        func problem(_ text: String) -> String {
            do {
                _ = try CronExpression(text)
                return "parsed"
            } catch {
                return error.message
            }
        }
        #expect(problem("* * * *").contains("has 4 fields"))
        #expect(problem("61 * * * *").contains("minute field '61': 61 is outside 0-59"))
        #expect(problem("0 9 * * MON-FRX").contains("'FRX' is not a number or a name (SUN-SAT)"))
        #expect(problem("0 9 * 13 *").contains("month field '13'"))
        #expect(problem("5-1 * * * *").contains("runs backwards"))
        #expect(problem("*/0 * * * *").contains("step '0'"))
        #expect(problem("1,,2 * * * *").contains("empty item"))
        #expect(problem("@every 5m").contains("not a cron macro"))
        #expect(problem("0 0 L * *").contains("'L' is not a number"))
        #expect(problem("0 0 * * * * *").contains("has 7 fields"))
    }

    @Test func aTicksWorkflowIDIsTheScheduleAndTheTickInUTC() {
        #expect(ScheduleRecord.workflowID(schedule: "daily-report", tick: ms("2026-12-07T09:00:00Z")) == "daily-report:20261207T090000Z")
        #expect(ScheduleRecord.workflowID(schedule: "s", tick: ms("2027-01-02T03:04:05Z")) == "s:20270102T030405Z")
    }
}

/// Schedules in the kernel, on the in-memory store with a clock the test moves.
@Suite("Schedules")
struct ScheduleKernelTests {
    let store = MemoryStore()
    let kernel = Kernel(Kernel.Configuration(topology: Topology(prefix: "w"), scheduleTolerance: 60_000))

    func daily(_ missed: ScheduleDefinition.MissedTicks = .once, function: String = "daily-report") -> ScheduleDefinition {
        ScheduleDefinition(cron: "0 9 * * *", function: function, group: "reports", args: #"["eu"]"#, timeout: 3_600_000,
                           tags: ["team": "finance"], missed: missed)
    }

    func create(_ id: String, _ d: ScheduleDefinition, at now: Int64) async throws -> (schedule: ScheduleRecord, created: Bool) {
        try await store.write { [kernel] tx in try kernel.createSchedule(id: id, d, tx: tx, now: now) }
    }

    /// Fires the timers due at `now`; returns the ids of the workflows whose execute messages they sent.
    func fire(at now: Int64) async throws -> [String] {
        let effects = try await store.write { [kernel] tx in
            let effects = try kernel.fireTimers(tx: tx, now: now, limit: 100).effects
            try tx.enqueue(effects)
            return effects
        }
        return effects.messages.filter { $0.kind == MessageKind.execute.rawValue }.compactMap { m in
            (try? JSONValue.parse(m.body))?.objectValue?["task"]?.objectValue?["id"]?.stringValue
        }
    }

    func schedule(_ id: String) async throws -> ScheduleRecord? { try await store.read { try $0.schedule(id: id) } }
    func promise(_ id: String, at now: Int64) async throws -> PromiseRecord? { try await store.read { try $0.promise(id: id, now: now) } }

    @Test func eachTickStartsItsWorkflowOnceAndTheNextTickIsArmed() async throws {
        let now = ms("2026-12-07T08:00:00Z")
        let (s, created) = try await create("daily", daily(), at: now)
        #expect(created && iso(s.nextTick) == "2026-12-07T09:00:00Z")
        #expect(try await store.write { try $0.nextTimerDue() } == ms("2026-12-07T09:00:00Z"))
        #expect(try await fire(at: ms("2026-12-07T08:59:59Z")).isEmpty)

        #expect(try await fire(at: ms("2026-12-07T09:00:00Z") + 40) == ["daily:20261207T090000Z"])
        let wf = try #require(try await promise("daily:20261207T090000Z", at: now))
        #expect(wf.tags["warren:schedule"] == "daily" && wf.tags["warren:function"] == "daily-report" && wf.tags["team"] == "finance")
        #expect(wf.param.data == #"{"args":["eu"],"function":"daily-report"}"#)
        #expect(wf.timeout == ms("2026-12-07T10:00:00Z") + 40)
        #expect(try await store.read { try $0.task(id: "daily:20261207T090000Z")?.group } == "reports")
        let after = try #require(try await schedule("daily"))
        #expect(iso(after.nextTick) == "2026-12-08T09:00:00Z" && iso(after.lastTick) == "2026-12-07T09:00:00Z")
        #expect(after.lastWorkflow == "daily:20261207T090000Z" && after.lastError == nil)

        // A tick fired again (an orchestrator that stopped before it knew its commit): the
        // workflow of that tick exists, nothing more starts.
        try await store.write { tx in
            var again = after
            again.nextTick = ms("2026-12-07T09:00:00Z")
            try tx.saveSchedule(again)
        }
        #expect(try await fire(at: ms("2026-12-07T09:00:01Z")).isEmpty)
        #expect(iso(try await schedule("daily")?.nextTick) == "2026-12-08T09:00:00Z")
        #expect(try await fire(at: ms("2026-12-08T09:00:00Z")) == ["daily:20261208T090000Z"])
    }

    @Test func ticksMissedWhileDownStartOnceOrNotAtAllByPolicy() async throws {
        let now = ms("2026-12-07T08:00:00Z")
        _ = try await create("once", daily(.once), at: now)
        _ = try await create("skip", daily(.skip), at: now)
        // Down from 08:30 on the 7th to 10:00 on the 10th: four ticks missed.
        let back = ms("2026-12-10T10:00:00Z")
        #expect(try await fire(at: back) == ["once:20261210T090000Z"])
        for id in ["once", "skip"] { #expect(iso(try await schedule(id)?.nextTick) == "2026-12-11T09:00:00Z") }
        #expect(try await schedule("skip")?.lastWorkflow == nil)
        // A tick started within the tolerance is not missed, whatever the policy.
        #expect(Set(try await fire(at: ms("2026-12-11T09:00:59Z"))) == ["once:20261211T090000Z", "skip:20261211T090000Z"])
    }

    @Test func aScheduleOfEverySecondStoppedForAMonthCatchesUpWithoutWalkingEachSecond() async throws {
        let now = ms("2026-11-01T00:00:00Z")
        _ = try await create("often", ScheduleDefinition(cron: "* * * * * *", function: "f", group: "g", timeout: 60_000), at: now)
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try await fire(at: ms("2026-12-01T00:00:00Z") + 500) == ["often:20261201T000000Z"])
        #expect(clock.now - started < .seconds(2))
        #expect(iso(try await schedule("often")?.nextTick) == "2026-12-01T00:00:01Z")
    }

    @Test func pauseResumeAndDelete() async throws {
        let now = ms("2026-12-07T08:00:00Z")
        _ = try await create("daily", daily(), at: now)
        let paused = try await store.write { [kernel] tx in try kernel.pauseSchedule("daily", tx: tx, now: now + 1) }
        #expect(paused.paused && paused.nextTick == nil)
        #expect(try await store.write { try $0.nextTimerDue() } == nil)
        #expect(try await fire(at: ms("2026-12-09T09:00:00Z")).isEmpty)
        // Resumed on the 9th after nine: the ticks while paused start nothing; the 10th is next.
        let resumed = try await store.write { [kernel] tx in try kernel.resumeSchedule("daily", tx: tx, now: ms("2026-12-09T09:30:00Z")) }
        #expect(!resumed.paused && iso(resumed.nextTick) == "2026-12-10T09:00:00Z")
        let deleted = try await store.write { [kernel] tx in try kernel.deleteSchedule("daily", tx: tx, now: now) }
        #expect(deleted.id == "daily")
        #expect(try await schedule("daily") == nil)
        #expect(try await store.write { try $0.nextTimerDue() } == nil)
        await #expect(throws: StoreError.self) { try await store.write { [kernel] tx in try kernel.deleteSchedule("daily", tx: tx, now: now) } }
    }

    @Test func theSameDefinitionAgainFindsItAnotherIsAConflictAndBadOnesAreRefused() async throws {
        let now = ms("2026-12-07T08:00:00Z")
        _ = try await create("daily", daily(), at: now)
        #expect(try await create("daily", daily(), at: now + 5).created == false)
        do {
            _ = try await create("daily", daily(function: "other"), at: now)
            Issue.record("a conflicting definition was accepted")
        } catch let e as StoreError {
            #expect(e.code == .alreadyExists)
        }
        func refusal(_ id: String, _ d: ScheduleDefinition) async -> String {
            do {
                _ = try await create(id, d, at: now)
                return "created"
            } catch let e as StoreError {
                return e.message
            } catch {
                return "\(error)"
            }
        }
        var d = daily()
        #expect(await refusal("a.b", d).contains("has a dot"))
        #expect(await refusal("", d).contains("empty"))
        #expect(await refusal(String(repeating: "x", count: 201), d).contains("the limit is 200"))
        d.cron = "0 25 * * *"
        #expect(await refusal("x", d).contains("hour field '25'"))
        d.cron = "0 0 30 2 *"
        #expect(await refusal("x", d).contains("never ticks"))
        d = daily()
        d.timeZone = "Mars/Olympus"
        #expect(await refusal("x", d).contains("'Mars/Olympus' is not a time zone"))
        d = daily()
        d.args = #"{"a":1}"#
        #expect(await refusal("x", d).contains("JSON array"))
        d = daily()
        d.tags = ["warren:function": "x"]
        #expect(await refusal("x", d).contains("Warren's own"))
        d = daily()
        d.group = "bad group"
        #expect(await refusal("x", d).contains("task group"))
        #expect(try await store.read { try $0.schedules(limit: 10, cursor: nil).schedules.map(\.id) } == ["daily"])
    }

    @Test func aTickWhoseWorkflowIDIsTakenFailsAloneAndTheScheduleGoesOn() async throws {
        let now = ms("2026-12-07T08:00:00Z")
        _ = try await create("daily", daily(), at: now)
        // Someone started another function under the id of the first tick's workflow.
        let squatter = CreatePromise(id: "daily:20261207T090000Z", idempotencyKey: "daily:20261207T090000Z",
                                     param: PromiseValue(data: #"{"args":[],"function":"other"}"#), timeout: now + 86_400_000,
                                     tags: ["warren:function": "other"], taskGroup: "reports")
        _ = try await store.write { [kernel] tx in try kernel.startWorkflow(squatter, function: "other", tx: tx, now: now) }
        #expect(try await fire(at: ms("2026-12-07T09:00:00Z")).isEmpty)
        let s = try #require(try await schedule("daily"))
        #expect(s.lastError?.contains("daily:20261207T090000Z") == true && s.lastWorkflow == nil, "\(s)")
        #expect(iso(s.nextTick) == "2026-12-08T09:00:00Z")
        #expect(try await fire(at: ms("2026-12-08T09:00:00Z")) == ["daily:20261208T090000Z"])
        #expect(try await schedule("daily")?.lastError == nil)
    }

    @Test func theScheduleCommandsDecodeFromTheContractAndAnswerInAReply() async throws {
        let now = ms("2026-12-07T08:00:00Z")
        func decode(_ kind: MessageKind, _ body: String) throws(ContractError) -> Command {
            try Command.decode(routingKey: kind.rawValue, type: nil, body: Array(body.utf8), now: now, defaultTimeout: 86_400_000,
                               maximumBodyBytes: 1 << 20)
        }
        let create = try decode(.createSchedule, #"{"id":"d","cron":"0 9 * * MON-FRI","timeZone":"Europe/Paris","function":"f","group":"g","args":[1],"timeout":"2h","missedTicks":"skip"}"#)
        #expect(create == .createSchedule(id: "d", ScheduleDefinition(cron: "0 9 * * MON-FRI", timeZone: "Europe/Paris", function: "f", group: "g",
                                                                     args: "[1]", timeout: 7_200_000, missed: .skip)))
        let caller = Caller(replyTo: "amq.gen-r", correlationID: "c1")
        let effects = try await store.write { [kernel] tx in try kernel.apply(create, from: caller, tx: tx, now: now) }
        let reply = try #require(effects.messages.first)
        let body = try #require(try JSONValue.parse(reply.body).objectValue)
        #expect(reply.routingKey == "amq.gen-r" && body["created"] == .bool(true))
        let record = try #require(body["schedule"].flatMap(ScheduleRecord.init(json:)))
        // Nine in Paris on Monday the 7th is 08:00 UTC; it is 08:00 UTC now, so the next is Tuesday's.
        #expect(record.id == "d" && record.definition.timeZone == "Europe/Paris" && iso(record.nextTick) == "2026-12-08T08:00:00Z", "\(record)")
        #expect(try decode(.listSchedules, "{}") == .listSchedules(limit: 100, cursor: nil))
        for (bad, why) in [(#"{"id":"d","function":"f","group":"g"}"#, "'cron' is missing"),
                           (#"{"id":"d","cron":"@daily","function":"f","group":"g","missedTicks":"all"}"#, "once or skip"),
                           (#"{"id":"d","cron":"@daily","function":"f","group":"g","args":3}"#, "JSON array"),
                           (#"{"id":"d","cron":"@daily","function":"f","group":"g","timeout":5}"#, "duration")] {
            do {
                _ = try decode(.createSchedule, bad)
                Issue.record("\(bad) was accepted")
            } catch {
                #expect(error.reason.contains(why), "\(error.reason)")
            }
        }
        // A refused create with no one to tell is dead-lettered with the reason.
        let refused = try await store.write { [kernel] tx in
            try kernel.apply(.createSchedule(id: "e", ScheduleDefinition(cron: "0 99 * * *", function: "f", group: "g", timeout: 1)),
                             from: .none, tx: tx, now: now)
        }
        #expect(refused.deadLetter?.contains("hour field '99'") == true, "\(String(describing: refused.deadLetter))")
    }
}
