import AMQP
import Foundation
import Testing
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `warren dead list|replay|purge` (and `/dead` over HTTP) against a real broker and a real
/// `warren serve`: what the orchestrator dead-lettered is listed with its reason and left in the
/// queue, replayed to where it was going after the fix, or dropped.
@Suite("Dead letters", .serialized)
struct DeadLetterTests {
    typealias Harness = OrchestratorTests.Harness

    func queueDepth(_ h: Harness) async throws -> UInt32 {
        try await h.channel.queueDeclare(h.orchestrator.prefix + ".dead", passive: true).messageCount
    }

    func waitForDepth(_ h: Harness, _ n: UInt32) async throws {
        try await within(.seconds(30), "\(n) messages in the dead-letter queue") {
            while try await queueDepth(h) != n { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test func deadLettersAreListedReplayedAfterAFixAndPurged() async throws {
        let h = try await Harness.start()
        defer { h.orchestrator.remove() }
        let cli = { (args: [String]) in try await ProductTests.warren(h.orchestrator, args) }
        // A resolve of a promise nobody created yet, a body that is not JSON, and an event for an
        // unknown promise through the events exchange.
        try await h.publish("promise.resolve", #"{"id": "late-order", "value": "shipped"}"#)
        try await h.publish("promise.create", "{not json")
        try await h.channel.basicPublish(#"{"tracking": "XZ-1"}"#, exchange: h.orchestrator.prefix + ".events", routingKey: "parcel.arrived",
                                         properties: BasicProperties(contentType: "application/json", headers: ["x-warren-promise-id": "parcel-7"],
                                                                     deliveryMode: .persistent)).wait()
        try await waitForDepth(h, 3)

        // Listed (twice: a listing leaves them where they are), with reasons, keys, ages and previews.
        var r = try await cli(["dead", "list", "--json"])
        #expect(r.status == 0, "\(r.output)")
        for _ in 0..<2 {
            r = try await cli(["dead", "list", "--json"])
            let listed = ProductTests.json(r.output) as? [String: Any] ?? [:]
            let letters = listed["letters"] as? [[String: Any]] ?? []
            #expect(listed["total"] as? Int == 3 && letters.count == 3, "\(r.output)")
            let byKey = Dictionary(letters.map { ($0["routingKey"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            #expect((byKey["promise.resolve"]?["reason"] as? String ?? "").contains("unknown promise"), "\(letters)")
            #expect((byKey["promise.create"]?["reason"] as? String ?? "").contains("not valid JSON"), "\(letters)")
            #expect(byKey["promise.create"]?["preview"] as? String == "{not json")
            #expect(byKey["parcel.arrived"]?["exchange"] as? String == h.orchestrator.prefix + ".events", "\(letters)")
            #expect(letters.allSatisfy { ($0["deadOn"] as? Int64 ?? 0) > 0 && ($0["id"] as? String ?? "").count == 12 })
        }
        #expect(try await queueDepth(h) == 3)
        r = try await cli(["dead", "list"])
        #expect(r.status == 0 && r.output.contains("ROUTING KEY") && r.output.contains("unknown promise") && r.output.contains("3 selected of 3"), "\(r.output)")

        // After the fix (the promises exist), the resolve and the event are replayed to where
        // they were going and settle them; the bad body stays.
        for id in ["late-order", "parcel-7"] {
            #expect(try await http("POST", h.orchestrator.httpURL + "/promises", #"{"id": "\#(id)", "timeout": 4102444800000}"#).status == 201)
        }
        r = try await cli(["dead", "replay", "key:promise.resolve"])
        #expect(r.status == 0 && r.output.contains("replayed: 1"), "\(r.output)")
        let resolvedEvent = try await h.nextEvent()
        #expect(resolvedEvent.id == "late-order" && resolvedEvent.state == "RESOLVED")
        let listed = ProductTests.json(try await cli(["dead", "list", "--json", "--select", "key:parcel.*"]).output) as? [String: Any] ?? [:]
        let parcel = try #require((listed["letters"] as? [[String: Any]])?.first?["id"] as? String)
        r = try await cli(["dead", "replay", parcel])
        #expect(r.status == 0 && r.output.contains("replayed: 1"), "\(r.output)")
        #expect(try await h.nextEvent().id == "parcel-7")
        try await waitForDepth(h, 1)

        // A selector that is not one is refused; purge drops what it selects.
        r = try await cli(["dead", "purge", "whatever"])
        #expect(r.status == 65 && r.output.contains("selector 'whatever'"), "\(r.status) \(r.output)")
        r = try await cli(["dead", "purge", "reason:no match at all"])
        #expect(r.status == 0 && r.output.contains("purged: 0"), "\(r.output)")
        #expect(try await http("POST", h.orchestrator.httpURL + "/dead/purge").status == 400)
        r = try await cli(["dead", "purge", "all"])
        #expect(r.status == 0 && r.output.contains("purged: 1"), "\(r.output)")
        #expect(try await queueDepth(h) == 0)
        _ = await h.orchestrator.kill(SIGTERM)
    }
}
