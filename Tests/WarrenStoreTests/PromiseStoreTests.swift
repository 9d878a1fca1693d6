import Foundation
import GRDB
import Testing
@testable import WarrenStore

@Suite("Promise store")
struct PromiseStoreTests {
    @Test func opensWithWALAndFullSynchronousAndMigrates() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        #expect(try temp.sqlite.pragma("journal_mode") == "wal")
        #expect(try temp.sqlite.pragma("synchronous") == "2")  // FULL
        #expect(try temp.sqlite.appliedMigrations() == ["v1", "v2", "v3", "v4", "v5"])
        // Reopening an up-to-date file changes nothing.
        _ = try temp.store.create("kept")
        let again = try SQLiteStore(path: temp.path)
        #expect(try again.get("kept")?.state == .pending)
    }

    @Test func refusesADatabaseWrittenByANewerVersion() throws {
        let temp = try TempStore()
        defer { temp.remove() }
        // A newer Warren would have recorded a migration this one does not know.
        let queue = try DatabaseQueue(path: temp.path)
        try queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')") }
        let error = expectStoreError(.incompatibleDatabase) { _ = try SQLiteStore(path: temp.path) }
        #expect(error?.message.contains("newer version") == true)
    }

    @Test func refusesAFileThatIsNotADatabase() throws {
        let path = NSTemporaryDirectory() + "warren-not-a-db-\(UUID().uuidString).db"
        try Data("this is not SQLite, just text that is long enough to be read as a header.......".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        expectStoreError(.incompatibleDatabase) { _ = try SQLiteStore(path: path) }
    }

    @Test(arguments: Backend.allCases) func pendingPromisePastItsTimeoutReadsAsTimedOutAndATimerResolves(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("plain", timeout: t0 + 100)
        _ = try s.create("sleep", timeout: t0 + 100, tags: [PromiseRecord.timerTag: "true"])
        #expect(try s.get("plain", now: t0 + 99)?.state == .pending)
        #expect(try s.get("plain", now: t0 + 100)?.state == .rejectedTimedout)
        #expect(try s.get("sleep", now: t0 + 100)?.state == .resolved)
        // A resolve after the timeout loses: the first outcome (the timeout) wins.
        expectStoreError(.alreadySettled) { _ = try s.settle("plain", key: "late", strict: true, now: t0 + 150) }
        // Search sees the same states before any timer has fired.
        let timedOut = try s.writeSync { tx in try tx.search(PromiseSearch(states: [.rejectedTimedout]), now: t0 + 150) }
        #expect(timedOut.promises.map(\.id) == ["plain"])
        let pending = try s.writeSync { tx in try tx.search(PromiseSearch(states: [.pending]), now: t0 + 150) }
        #expect(pending.promises.isEmpty)
    }

    @Test(arguments: Backend.allCases) func firingTimersSettlesTimeoutsAndResumesWaiters(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try s.create("wf", group: "workers")
        _ = try s.create("wf.1", timeout: t0 + 100)
        _ = try s.create("wf.2", timeout: t0 + 200, tags: [PromiseRecord.timerTag: "true"])
        _ = try s.writeSync { tx in try tx.claimTask(id: "wf", version: 1, worker: "w1", now: t0) }
        _ = try s.writeSync { tx in try tx.suspendTask(id: "wf", version: 1, worker: "w1", awaiting: ["wf.1"], steps: [], now: t0) }
        #expect(try s.writeSync { tx in try tx.nextTimerDue() } == t0 + 100)
        #expect(try s.writeSync { tx in try tx.fireTimers(now: t0 + 99, limit: 10) }.isEmpty)
        let fired = try s.writeSync { tx in try tx.fireTimers(now: t0 + 250, limit: 10) }
        #expect(fired.count == 2)
        guard case .promiseTimeout(let first)? = fired.first else { Issue.record("\(fired)"); return }
        #expect(first.promise.id == "wf.1" && first.promise.state == .rejectedTimedout && first.promise.completedOn == t0 + 100)
        #expect(first.resumedTasks.map(\.id) == ["wf"])
        #expect(first.resumedTasks.first?.version == 2)
        guard case .promiseTimeout(let second)? = fired.last else { Issue.record("\(fired)"); return }
        #expect(second.promise.state == .resolved)
        // Fired timers are gone; a second call finds nothing.
        #expect(try s.writeSync { tx in try tx.fireTimers(now: t0 + 250, limit: 10) }.isEmpty)
        #expect(try s.writeSync { tx in try tx.nextTimerDue() } == t0 + hour)  // wf's own timeout
    }

    @Test(arguments: Backend.allCases) func searchFiltersByStateTagsAndIdPatternWithCursorPaging(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        for i in 0..<250 {
            _ = try s.create(String(format: "order-%03d", i), tags: ["kind": i % 2 == 0 ? "human" : "machine"])
        }
        _ = try s.create("other-1", tags: ["kind": "human"])
        for i in stride(from: 0, to: 250, by: 5) { _ = try s.settle(String(format: "order-%03d", i)) }

        var ids: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try s.writeSync { [cursor] tx in
                try tx.search(PromiseSearch(id: "order-*", states: [.pending], tags: ["kind": "human"], limit: 40, cursor: cursor), now: t0 + 2)
            }
            #expect(page.promises.count <= 40)
            ids += page.promises.map(\.id)
            cursor = page.cursor
        } while cursor != nil
        let expected = (0..<250).filter { $0 % 2 == 0 && $0 % 5 != 0 }.map { String(format: "order-%03d", $0) }
        #expect(ids == expected)
        // The default page is 100; the limit is checked.
        #expect(try s.writeSync { tx in try tx.search(PromiseSearch(), now: t0) }.promises.count == 100)
        expectStoreError(.invalidArgument) { _ = try s.writeSync { tx in try tx.search(PromiseSearch(limit: 1001), now: t0) } }
        expectStoreError(.invalidID) { _ = try s.writeSync { tx in try tx.search(PromiseSearch(id: "a[b]*"), now: t0) } }
    }

    @Test func validationErrors() throws {
        var limits = StoreLimits()
        limits.maximumPayloadBytes = 100
        let temp = try TempStore(limits: limits)
        defer { temp.remove() }
        let s = temp.store
        expectStoreError(.invalidID) { _ = try s.create("") }
        expectStoreError(.invalidID) { _ = try s.create(String(repeating: "a", count: 256)) }
        let bad = expectStoreError(.invalidID) { _ = try s.create("has space") }
        #expect(bad?.message.contains("0x20") == true)
        expectStoreError(.invalidID) { _ = try s.create("émoji") }
        expectStoreError(.invalidID) { _ = try s.create("a..b") }
        expectStoreError(.invalidID) { _ = try s.create("ok", key: "") }
        expectStoreError(.invalidID) { _ = try s.create("ok", key: String(repeating: "k", count: 256)) }
        expectStoreError(.invalidID) { _ = try s.create("ok", tags: ["": "x"]) }
        expectStoreError(.invalidID) { _ = try s.create("ok", tags: ["k": String(repeating: "v", count: 256)]) }
        expectStoreError(.invalidArgument) { _ = try s.create("ok", tags: Dictionary(uniqueKeysWithValues: (0..<65).map { ("t\($0)", "v") })) }
        let big = expectStoreError(.payloadTooLarge) {
            _ = try s.writeSync { tx in
                try tx.createPromise(CreatePromise(id: "big", param: PromiseValue(data: String(repeating: "x", count: 101)), timeout: t0 + hour), now: t0)
            }
        }
        #expect(big?.message.contains("100") == true)
        _ = try s.create("ok")
        expectStoreError(.payloadTooLarge) { _ = try s.settle("ok", data: String(repeating: "y", count: 101)) }
        expectStoreError(.notFound) { _ = try s.settle("missing") }
        expectStoreError(.invalidID) { _ = try s.create("ok2", group: "bad group") }
        #expect(try s.get("ok")?.state == .pending)  // nothing refused left a trace
        #expect(try s.get("big") == nil)
    }

    @Test(arguments: Backend.allCases) func outboxMessagesCommitWithTheirChangeAndComeInOrder(_ backend: Backend) async throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        _ = try await s.write { tx in
            _ = try tx.createPromise(CreatePromise(id: "a", timeout: t0 + hour), now: t0)
            try tx.enqueue(OutboxMessage(exchange: "warren", routingKey: "settled.a", kind: "promise.settled", headers: ["h": "1"], body: Array("one".utf8)))
            try tx.enqueue(OutboxMessage(exchange: "warren", routingKey: "settled.a", kind: "promise.settled", body: Array("two".utf8)))
        }
        // A transaction that fails takes its outbox messages with it.
        await #expect(throws: StoreError.self) {
            try await s.write { tx in
                try tx.enqueue(OutboxMessage(exchange: "warren", routingKey: "x", kind: "k", body: Array("lost".utf8)))
                _ = try tx.createPromise(CreatePromise(id: "a", timeout: t0 + hour), now: t0)  // already exists: throws
            }
        }
        let messages = try await s.read { tx in try tx.outbox(after: 0, limit: 10) }
        #expect(messages.map { String(decoding: $0.body, as: UTF8.self) } == ["one", "two"])
        #expect(messages[0].headers == ["h": "1"] && messages[0].kind == "promise.settled")
        #expect(messages[0].sequence < messages[1].sequence)
        try await s.write { tx in try tx.deleteOutbox(sequences: [messages[0].sequence]) }
        let left = try await s.read { tx in try tx.outbox(after: 0, limit: 10) }
        #expect(left.map(\.sequence) == [messages[1].sequence])
    }

    @Test(arguments: Backend.allCases) func aBadCommandFailsAloneInItsBatch(_ backend: Backend) async throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        // Each command in one transaction; a refused one leaves no trace and the others go on.
        let commands: [@Sendable (any StoreTransaction) throws -> Void] = [
            { _ = try $0.createPromise(CreatePromise(id: "one", timeout: t0 + hour), now: t0) },
            { _ = try $0.createPromise(CreatePromise(id: "bad id", timeout: t0 + hour), now: t0) },
            { _ = try $0.settlePromise(SettlePromise(id: "nobody", completion: .resolve), now: t0) },
            { _ = try $0.createPromise(CreatePromise(id: "two", timeout: t0 + hour), now: t0) },
            { _ = try $0.settlePromise(SettlePromise(id: "one", completion: .resolve, value: PromiseValue(data: "\"ok\"")), now: t0) },
            { _ = try $0.settlePromise(SettlePromise(id: "one", completion: .reject, strict: true), now: t0) },
        ]
        let results: [Result<Void, StoreError>] = try await s.write { tx in
            commands.map { command in
                do { return .success(try command(tx)) } catch let e as StoreError { return .failure(e) } catch { return .failure(StoreError(.databaseError, "\(error)")) }
            }
        }
        #expect(results.count == 6)
        #expect((try? results[0].get()) != nil)
        #expect(results[1].failureCode == .invalidID)
        #expect(results[2].failureCode == .notFound)
        #expect((try? results[3].get()) != nil)
        #expect((try? results[4].get()) != nil)
        #expect(results[5].failureCode == .alreadySettled)
        #expect(try s.get("one")?.value.data == "\"ok\"")
        #expect(try s.get("two")?.state == .pending)
    }

    @Test(arguments: Backend.allCases) func retentionDeletesSettledWorkflowsOnly(_ backend: Backend) throws {
        let temp = try TempStore(backend)
        defer { temp.remove() }
        let s = temp.store
        // An old finished workflow with children, a finished one with a pending detached child,
        // a running one, and a recent finished one.
        for (root, children) in [("old", 3), ("detached", 2), ("running", 2), ("recent", 1)] {
            _ = try s.create(root, group: "workers")
            for c in 1...children { _ = try s.create("\(root).\(c)") }
        }
        for c in 1...3 { _ = try s.settle("old.\(c)", now: t0 + 10) }
        _ = try s.settle("old", now: t0 + 10)
        _ = try s.settle("detached.1", now: t0 + 10)
        _ = try s.settle("detached", now: t0 + 10)
        _ = try s.settle("recent.1", now: t0 + 10_000)
        _ = try s.settle("recent", now: t0 + 10_000)
        _ = try s.create("oldie")  // a root whose id shares a prefix, not a child of "old"
        _ = try s.settle("oldie", now: t0 + 10)
        let deleted = try s.writeSync { tx in try tx.deleteSettledWorkflows(completedBefore: t0 + 1000, limit: 100) }
        #expect(deleted == 2)  // old and oldie
        #expect(try s.get("old") == nil && s.get("old.1") == nil && s.get("old.3") == nil && s.get("oldie") == nil)
        #expect(try s.writeSync { tx in try tx.task(id: "old") } == nil)
        #expect(try s.get("detached") != nil && s.get("detached.2") != nil)
        #expect(try s.get("running") != nil && s.get("recent") != nil)
    }
}

extension Result where Failure == StoreError {
    var failureCode: StoreError.Code? {
        if case .failure(let e) = self { return e.code }
        return nil
    }
}
