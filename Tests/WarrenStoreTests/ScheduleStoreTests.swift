import Foundation
import Testing
@testable import WarrenStore

/// Schedules as each backend stores them: one row, its next tick a timer that follows it.
@Suite("Schedule storage")
struct ScheduleStoreTests {
    func record(_ id: String, next: Int64?, paused: Bool = false) -> ScheduleRecord {
        ScheduleRecord(id: id, definition: ScheduleDefinition(cron: "0 9 * * MON-FRI", timeZone: "Europe/Paris", function: "daily-report",
                                                              group: "reports", args: #"["eu",{"n":1}]"#, timeout: 3_600_000,
                                                              tags: ["team": "finance"], missed: .skip),
                       paused: paused, nextTick: next, createdOn: t0, updatedOn: t0)
    }

    @Test(arguments: Backend.allCases) func aScheduleIsStoredFoundAgainAndItsTimerFollowsItsNextTick(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let store = temp.store
        let created = try store.writeSync { tx in try tx.createSchedule(record("daily", next: t0 + hour), now: t0) }
        #expect(created.created && created.schedule == record("daily", next: t0 + hour))
        #expect(try store.writeSync { tx in try tx.schedule(id: "daily") } == record("daily", next: t0 + hour))
        // The same again: found. Another definition: refused, and nothing changed.
        #expect(try store.writeSync { tx in try tx.createSchedule(record("daily", next: t0 + 2 * hour), now: t0) }.created == false)
        var other = record("daily", next: t0 + hour)
        other.definition.function = "other"
        #expect(throws: StoreError.self) { try store.writeSync { tx in try tx.createSchedule(other, now: t0) } }
        #expect(try store.writeSync { tx in try tx.nextTimerDue() } == t0 + hour)

        // Not due yet; then due: the schedule as stored, its timer gone.
        #expect(try store.writeSync { tx in try tx.fireTimers(now: t0 + hour - 1, limit: 10) }.isEmpty)
        let fired = try store.writeSync { tx in try tx.fireTimers(now: t0 + hour, limit: 10) }
        #expect(fired == [.scheduleTick(record("daily", next: t0 + hour))])
        #expect(try store.writeSync { tx in try tx.nextTimerDue() } == nil)

        // Saving the next tick arms it; saving again moves the timer, not adds one.
        var next = record("daily", next: t0 + 25 * hour)
        next.lastTick = t0 + hour
        next.lastWorkflow = "daily:x"
        next.lastError = "why"
        next.updatedOn = t0 + hour
        try store.writeSync { tx in try tx.saveSchedule(next) }
        next.nextTick = t0 + 26 * hour
        try store.writeSync { tx in try tx.saveSchedule(next) }
        #expect(try store.writeSync { tx in try tx.schedule(id: "daily") } == next)
        #expect(try store.writeSync { tx in try tx.nextTimerDue() } == t0 + 26 * hour)
        #expect(try store.writeSync { tx in try tx.fireTimers(now: t0 + 25 * hour, limit: 10) }.isEmpty)

        // Paused: no timer. A timer left from before a change does not tick.
        var paused = next
        paused.paused = true
        paused.nextTick = nil
        try store.writeSync { tx in try tx.saveSchedule(paused) }
        #expect(try store.writeSync { tx in try tx.nextTimerDue() } == nil)
        #expect(throws: StoreError.self) { try store.writeSync { tx in try tx.saveSchedule(record("missing", next: t0)) } }

        // Deleted: the row and its timer.
        try store.writeSync { tx in try tx.saveSchedule(next) }
        #expect(try store.writeSync { tx in try tx.deleteSchedule(id: "daily") } == next)
        #expect(try store.writeSync { tx in try tx.deleteSchedule(id: "daily") } == nil)
        #expect(try store.writeSync { tx in try tx.schedule(id: "daily") } == nil)
        #expect(try store.writeSync { tx in try tx.nextTimerDue() } == nil)
    }

    @Test(arguments: Backend.allCases) func schedulesAreListedInIDOrderAPageAtATime(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        for id in ["c", "a", "e", "b", "d"] {
            _ = try temp.store.writeSync { tx in try tx.createSchedule(record(id, next: t0 + hour), now: t0) }
        }
        var ids: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try temp.store.writeSync { [cursor] tx in try tx.schedules(limit: 2, cursor: cursor) }
            #expect(page.schedules.count <= 2)
            ids += page.schedules.map(\.id)
            cursor = page.cursor
        } while cursor != nil
        #expect(ids == ["a", "b", "c", "d", "e"])
    }
}

@Suite("Search cursors")
struct SearchCursorTests {
    @Test func aCursorCarriesItsSearchAndAPlainIDStillContinuesTheGivenOne() throws {
        let search = PromiseSearch(id: "hitl-*", states: [.rejected, .rejectedTimedout], tags: ["human": "true"], limit: 7)
        let cursor = search.cursor(after: "hitl-042.1")
        #expect(cursor.hasPrefix("q!") && !cursor.contains("="))
        var expected = search
        expected.cursor = "hitl-042.1"
        #expect(try PromiseSearch().continuing(cursor) == expected)
        #expect(try search.continuing("hitl-040") == PromiseSearch(id: "hitl-*", states: [.rejected, .rejectedTimedout], tags: ["human": "true"],
                                                                    limit: 7, cursor: "hitl-040"))
        // A forged cursor cannot ask for more than a page's limit.
        let forged = "q!" + Data(#"{"id":"*","limit":100000000,"after":"a"}"#.utf8).base64EncodedString()
        for bad in ["q!", "q!!!", "q!bm90LWEtY3Vyc29y", "q!" + String(repeating: "A", count: 9000), forged] {
            #expect(throws: StoreError.self) { try PromiseSearch().continuing(bad) }
        }
    }
}
