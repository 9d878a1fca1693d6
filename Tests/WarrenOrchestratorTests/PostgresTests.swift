import AMQP
import Foundation
import Testing
import Warren
import WarrenStore
import WarrenStorePostgres
import WarrenTestSupport
import Glibc

/// `warren serve --db postgres://…` on the private PostgreSQL server Scripts/test.sh starts
/// (`WARREN_TEST_POSTGRES_URL`), each test in a schema of its own: the real processes, a real
/// broker, SIGKILL.
@Suite("PostgreSQL")
struct PostgresTests {
    /// A database URL with a schema of its own.
    static func database() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["WARREN_TEST_POSTGRES_URL"] else {
            throw TestFailure("WARREN_TEST_POSTGRES_URL is not set: Scripts/test.sh starts a private PostgreSQL (Scripts/postgres.sh) and sets it")
        }
        return url + "?schema=o_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }

    @Test func theHumanInTheLoopWorkflowRunsOnPostgreSQL() async throws {
        let database = try Self.database()
        try await withWorkflows(database: database) { orchestrator, worker, client in
            let handle = try await client.beginRpc("pg-hitl-1", "foo-workflow", "pg-hitl-1", target: "workers")
            // The approval promise exists once the worker has mailed its id.
            let approval = try await within(.seconds(30), "the approval promise") { () async throws -> PromiseRecord in
                while true {
                    if let p = try? await client.promises.get("pg-hitl-1.1"), p.state == .pending { return p }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(approval.tags["human"] == "true")
            try await client.promises.resolve("pg-hitl-1.1", value: "approved")
            let result: String = try await handle.result(timeout: .seconds(30))
            #expect(result == "foo workflow pg-hitl-1 complete")
        }
        // What the orchestrator wrote is in PostgreSQL: the root, the approval and the step.
        let store = try await PostgresStore.open(url: database)
        defer { try? store.dropSchema(); store.closeSync() }
        let page = try await store.read { tx in try tx.search(PromiseSearch(id: "pg-hitl-1*"), now: 0) }
        #expect(page.promises.map(\.id) == ["pg-hitl-1", "pg-hitl-1.1", "pg-hitl-1.2"])
        #expect(page.promises.allSatisfy { $0.state == .resolved })
    }

    @Test func aSecondOrchestratorOnTheSameDatabaseRefusesToStart() async throws {
        let database = try Self.database()
        let first = OrchestratorProcess(url: try brokerURL(), database: database)
        defer { first.remove() }
        try await first.start()
        let second = try await run(productsDirectory + "/warren", ["serve", "--amqp-url", first.url, "--db", database,
                                                                  "--prefix", first.prefix + "x", "--http-port", "\(freePort())"])
        #expect(second.status == 1)
        #expect(second.output.contains("in use by another orchestrator") && second.output.contains("writer lock"), "\(second.output)")
        // The lock goes with the holder's session: once it is killed, another one starts.
        #expect(await first.kill(SIGKILL) & 0x7f == SIGKILL)
        let third = OrchestratorProcess(url: first.url, database: database, prefix: first.prefix)
        defer { third.remove() }
        try await within(.seconds(30), "a new orchestrator takes the database") { try await third.start() }
        _ = await third.kill(SIGTERM)
        let store = try await PostgresStore.open(url: database)
        try? store.dropSchema()
        store.closeSync()
    }

    @Test func theOrchestratorKilledDuringABurstOnPostgreSQLLosesNothing() async throws {
        let database = try Self.database()
        let orchestrator = OrchestratorProcess(url: try brokerURL(), database: database)
        defer { orchestrator.remove() }
        try await orchestrator.start()
        let connection = try await AMQPConnection.connect(url: orchestrator.url, name: "postgres-burst")
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        let events = try await channel.queueDeclare("", exclusive: true).queue
        try await channel.queueBind(events, exchange: orchestrator.prefix, routingKey: "settled.#")
        let consumer = try await channel.basicConsume(queue: events, noAck: true)
        let count = 300
        var confirmations: [PublishConfirmation] = []
        for i in 0..<count {
            for (kind, body) in [("promise.create", #"{"id": "pgb-\#(i)", "timeout": "1h"}"#), ("promise.resolve", #"{"id": "pgb-\#(i)", "value": \#(i)}"#)] {
                confirmations.append(try channel.basicPublish(body, exchange: orchestrator.prefix, routingKey: kind,
                                                              properties: .init(contentType: "application/json", deliveryMode: .persistent)))
            }
        }
        @Sendable func collect(_ before: Set<String>, until n: Int) async throws -> Set<String> {
            var seen = before
            var it = consumer.makeAsyncIterator()
            while seen.count < n {
                guard let d = try await it.next() else { throw TestFailure("the event consumer ended") }
                seen.insert(String(d.routingKey.dropFirst("settled.".count)))
            }
            return seen
        }
        var seen = try await within(.seconds(60), "the first events") { try await collect([], until: 20) }
        #expect(await orchestrator.kill(SIGKILL) & 0x7f == SIGKILL)
        for c in confirmations { try await c.wait() }
        try await orchestrator.start()
        let before = seen
        seen = try await within(.seconds(120), "every promise settled") { try await collect(before, until: count) }
        #expect(seen == Set((0..<count).map { "pgb-\($0)" }))
        #expect(await orchestrator.kill(SIGTERM) == 0, "\(orchestrator.logText.suffix(2000))")
        let store = try await PostgresStore.open(url: database)
        defer { try? store.dropSchema(); store.closeSync() }
        let promises = try await store.read { tx in
            var all: [PromiseRecord] = []
            var cursor: String? = nil
            repeat {
                let page = try tx.search(PromiseSearch(id: "pgb-*", limit: 1000, cursor: cursor), now: 0)
                all += page.promises
                cursor = page.cursor
            } while cursor != nil
            return all
        }
        #expect(promises.count == count)
        for p in promises { #expect(p.state == .resolved && p.value.data == String(p.id.dropFirst("pgb-".count)), "\(p.id)") }
        #expect(try await store.read { tx in try tx.outbox(after: 0, limit: 10) }.isEmpty, "the outbox drained")
    }
}
