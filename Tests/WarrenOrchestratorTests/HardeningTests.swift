import AMQP
import Foundation
import Testing
import Warren
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Every input fails alone: hostile and unlucky inputs against the real `warren serve`, real
/// brokers and real SQLite files. Each test is one case of issue 9's list.
@Suite("Hardening", .serialized)
struct HardeningTests {
    typealias Harness = OrchestratorTests.Harness

    /// A reply queue on the harness's channel, and a way to wait for the reply with a correlation id.
    struct Replies {
        let queue: String
        let consumer: AMQPConsumer

        init(_ h: Harness) async throws {
            queue = try await h.channel.queueDeclare("", exclusive: true).queue
            consumer = try await h.channel.basicConsume(queue: queue, noAck: true)
        }

        func next(_ what: String = "a reply") async throws -> (type: String?, json: [String: Any]) {
            let consumer = self.consumer
            let d = try await within(.seconds(20), what) {
                var it = consumer.makeAsyncIterator()
                guard let d = try await it.next() else { throw TestFailure("the reply consumer ended") }
                return d
            }
            return (d.properties.type, (try? JSONSerialization.jsonObject(with: Data(d.body))) as? [String: Any] ?? [:])
        }
    }

    static func errorOf(_ json: [String: Any]) -> (code: String, message: String)? {
        guard let e = json["error"] as? [String: Any] else { return nil }
        return (e["code"] as? String ?? "", e["message"] as? String ?? "")
    }

    /// Runs SQL on the orchestrator's database file from another process (Python's sqlite3), as an
    /// operator or a fault would.
    static func sql(_ database: String, _ statement: String) async throws {
        let r = try await run("/usr/bin/env", ["python3", "-c", """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], timeout=30); c.executescript(sys.argv[2]); c.commit()
            """, database, statement])
        if r.status != 0 { throw TestFailure("sqlite failed: \(r.output)") }
    }

    /// A trigger that makes SQLite refuse `operation` (INSERT or UPDATE) of promise `id`, as a
    /// corrupt index or a bug would, or run `body` instead of refusing.
    static func fault(_ database: String, _ operation: String, of id: String,
                      body: String = "SELECT RAISE(ABORT, 'injected fault')") async throws {
        try await sql(database, """
            CREATE TRIGGER fault_\(operation.lowercased())_\(id.replacingOccurrences(of: "-", with: "_"))
            BEFORE \(operation) ON promises WHEN NEW.id = '\(id)' BEGIN \(body); END;
            """)
    }

    /// The dead letters of an orchestrator's prefix, with their `x-warren-error` (or `x-death` reason).
    static func deadLetters(_ h: Harness, count: Int) async throws -> [(routingKey: String, reason: String, body: [UInt8])] {
        let dead = try await h.channel.basicConsume(queue: h.orchestrator.prefix + ".dead")
        return try await within(.seconds(30), "\(count) dead letters") {
            var it = dead.makeAsyncIterator()
            var got: [(String, String, [UInt8])] = []
            while got.count < count, let d = try await it.next() {
                let headers = d.properties.headers ?? [:]
                let reason = headers["x-warren-error"]?.stringValue ?? headers["x-first-death-reason"]?.stringValue ?? "(none)"
                got.append((d.routingKey, reason, d.body))
                try d.ack()
            }
            return got
        }
    }

    // MARK: Poison isolation

    @Test func aCommandTheDatabaseRefusesFailsAloneAndItsBatchCommits() async throws {
        try await Harness.with { h in
            // A real SQLite failure for one id: a trigger, as a corrupt index or a bug would fail.
            try await Self.fault(h.orchestrator.database, "INSERT", of: "poison")
            let replies = try await Replies(h)
            // Published back to back so that they share a batch.
            let confirmations = try ["before", "poison", "after"].map { id in
                try h.channel.basicPublish(#"{"id": "\#(id)", "timeout": "1h"}"#, exchange: h.orchestrator.prefix, routingKey: "promise.create",
                                           properties: BasicProperties(deliveryMode: .persistent, correlationID: id,
                                                                       replyTo: id == "poison" ? replies.queue : nil, messageID: id))
            }
            for c in confirmations { try await c.wait() }
            let reply = try await replies.next("the poison's error reply")
            #expect(reply.type == "error")
            #expect(Self.errorOf(reply.json)?.message.contains("injected fault") == true, "\(reply.json)")
            // The batch is applied again one command per transaction, in order: the poison's reply
            // goes out with its own commit, before the command after it is applied.
            for id in ["before", "after"] {
                let url = h.orchestrator.httpURL + "/promises/" + id
                try await within(.seconds(10), "\(id) applied") {
                    while try await http("GET", url).status != 200 { try await Task.sleep(for: .milliseconds(20)) }
                }
            }
            #expect(try await http("GET", h.orchestrator.httpURL + "/promises/poison").status == 404)
            let dead = try await Self.deadLetters(h, count: 1)
            #expect(dead[0].reason.contains("injected fault"), "\(dead[0].reason)")
            // The same through the HTTP API: one request fails, the ones beside it do not.
            async let a = http("POST", h.orchestrator.httpURL + "/promises", #"{"id": "http-a", "timeout": 4102444800000}"#)
            async let p = http("POST", h.orchestrator.httpURL + "/promises", #"{"id": "poison", "timeout": 4102444800000}"#)
            async let b = http("POST", h.orchestrator.httpURL + "/promises", #"{"id": "http-b", "timeout": 4102444800000}"#)
            let (ra, rp, rb) = try await (a, p, b)
            #expect(ra.status == 201 && rb.status == 201)
            #expect(rp.status == 400 && rp.text.contains("injected fault"), "\(rp.status) \(rp.text)")
        }
    }

    /// On a quorum queue too: Warren counts the attempts itself and dead-letters the command with
    /// its reason, long before the broker's delivery limit (which Warren sets, 1,000) would.
    @Test(arguments: ["classic", "quorum"])
    func aCommandThatKeepsStoppingTheOrchestratorIsDeadLetteredAfterBoundedAttempts(queueType: String) async throws {
        let h = try await Harness.start(["--queue-type", queueType])
        defer { Task { await h.stop() } }
        do {
            // Applying 'stuck' never finishes (a trigger computes for minutes): the orchestrator is
            // killed while it holds it, as a crash in the middle of a command would stop it.
            try await Self.fault(h.orchestrator.database, "INSERT", of: "stuck", body:
                "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000000) SELECT x FROM c)")
            try await h.publish("promise.create", #"{"id": "stuck", "timeout": "1h"}"#)
            let queue = h.orchestrator.prefix + ".orchestrator"
            // --max-attempts 2: the first delivery and two counted redeliveries stop it; the next is set aside.
            for round in 1...3 {
                try await within(.seconds(30), "round \(round): the orchestrator holding the command") {
                    while true {
                        let probe = try await h.connection.openChannel()
                        let ok = try await probe.queueDeclare(queue, passive: true)
                        try? await probe.close()
                        if ok.messageCount == 0, ok.consumerCount == 1 { return }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                // The broker counts it unacked only once it is delivered: give the process a moment in the trigger.
                try await Task.sleep(for: .milliseconds(300))
                _ = await h.orchestrator.kill(SIGKILL)
                try await h.orchestrator.start(["--max-attempts", "2", "--queue-type", queueType])
            }
            let dead = try await Self.deadLetters(h, count: 1)
            #expect(dead[0].reason.contains("delivered") && dead[0].reason.contains("times"), "\(dead[0].reason)")
            // And it goes on.
            try await h.amqpPublish("promise.create", #"{"id": "next", "timeout": "1h"}"#)
            try await h.amqpPublish("promise.resolve", #"{"id": "next", "value": 1}"#)
            #expect(try await h.nextEvent(.seconds(30)).id == "next")
        } catch {
            print(h.orchestrator.logText.suffix(4000))
            throw error
        }
    }

    @Test func aTimerWhoseConsequencesCannotBeWrittenFailsAloneAndTheOthersFire() async throws {
        try await Harness.with { h in
            try await Self.fault(h.orchestrator.database, "UPDATE", of: "bad-timer")
            let due = Int64(Date().timeIntervalSince1970 * 1000) + 800
            // The bad one is due first, so that it heads every batch of due timers.
            try await h.amqpPublish("promise.create", #"{"id": "bad-timer", "timeout": \#(due)}"#)
            try await h.amqpPublish("promise.create", #"{"id": "good-timer", "timeout": \#(due + 1)}"#)
            let event = try await h.nextEvent(.seconds(20))
            #expect(event.id == "good-timer" && event.state == "REJECTED_TIMEDOUT")
            try await within(.seconds(10), "the log naming the dropped timer") {
                while !h.orchestrator.logText.contains("a timer could not fire") { try await Task.sleep(for: .milliseconds(50)) }
            }
        }
    }

    @Test func aMalformedCommandWithReplyToGetsAnErrorReply() async throws {
        try await Harness.with { h in
            let replies = try await Replies(h)
            try await h.publish("promise.create", "{not json", replyTo: replies.queue, correlationID: "m-1")
            let reply = try await replies.next()
            #expect(reply.type == "error")
            #expect(Self.errorOf(reply.json)?.code == "invalidCommand")
            #expect(Self.errorOf(reply.json)?.message.contains("not valid JSON") == true)
            #expect(try await Self.deadLetters(h, count: 1)[0].reason.contains("not valid JSON"))
        }
    }

    @Test func aCallerErrorWithoutReplyToIsDeadLetteredWithItsReason() async throws {
        try await Harness.with { h in
            try await h.publish("workflow.start", #"{"id": "wf-1", "function": "a", "group": "nobody"}"#)
            try await h.publish("workflow.start", #"{"id": "wf-1", "function": "b", "group": "nobody"}"#)
            let dead = try await Self.deadLetters(h, count: 1)
            #expect(dead[0].reason.contains("alreadyExists") && dead[0].reason.contains("another function"), "\(dead[0].reason)")
        }
    }

    @Test func aLargeSearchFilterIsRefusedAtTheDoorAndTheOrchestratorGoesOn() async throws {
        try await Harness.with { h in
            let replies = try await Replies(h)
            var tags: [String: String] = [:]
            for i in 0..<1000 { tags["k\(i)"] = "v" }
            let tagJSON = String(decoding: try JSONSerialization.data(withJSONObject: tags), as: UTF8.self)
            try await h.publish("promise.search", #"{"id": "*", "tags": \#(tagJSON)}"#, replyTo: replies.queue, correlationID: "s-1")
            let a = try await replies.next()
            #expect(Self.errorOf(a.json)?.message.contains("1000 tags") == true, "\(a.json)")
            try await h.publish("promise.search", #"{"id": "\#(String(repeating: "a*", count: 25_000))"}"#, replyTo: replies.queue, correlationID: "s-2")
            let b = try await replies.next()
            #expect(Self.errorOf(b.json)?.message.contains("pattern") == true, "\(b.json)")
            // 64 tags, the limit, is a search like any other.
            let allowed = String(decoding: try JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: (0..<64).map { ("k\($0)", "v") })), as: UTF8.self)
            try await h.publish("promise.search", #"{"id": "*", "tags": \#(allowed)}"#, replyTo: replies.queue, correlationID: "s-3")
            #expect(Self.errorOf(try await replies.next().json) == nil)
            try await h.amqpPublish("promise.create", #"{"id": "still-here", "timeout": "1h"}"#)
            try await h.amqpPublish("promise.resolve", #"{"id": "still-here", "value": 1}"#)
            #expect(try await h.nextEvent().id == "still-here")
        }
    }

    // MARK: Limits at the door

    @Test func idsAreBoundedSoThatEveryRoutingKeyFits() async throws {
        try await Harness.with { h in
            let replies = try await Replies(h)
            let tooLong = String(repeating: "a", count: 241)
            try await h.publish("promise.create", #"{"id": "\#(tooLong)", "timeout": "1h"}"#, replyTo: replies.queue)
            #expect(Self.errorOf(try await replies.next().json)?.message.contains("limit is 240") == true)
            // At the edge: 240 bytes, whose settled event's routing key is 248 bytes.
            let longest = String(repeating: "b", count: 240)
            try await h.amqpPublish("promise.create", #"{"id": "\#(longest)", "timeout": "1h"}"#)
            try await h.amqpPublish("promise.resolve", #"{"id": "\#(longest)", "value": 1}"#)
            #expect(try await h.nextEvent().id == longest)
            // A group name over its limit is refused too (its queue name would not fit).
            try await h.publish("workflow.start", #"{"id": "g", "function": "f", "group": "\#(String(repeating: "g", count: 129))"}"#,
                                replyTo: replies.queue)
            #expect(Self.errorOf(try await replies.next().json)?.message.contains("task group") == true)
        }
    }

    @Test func aBodyOverTheLimitIsRefusedFromItsHeaderWithoutBufferingIt() async throws {
        try await Harness.with { h in
            let replies = try await Replies(h)
            // Ten bodies of 20 MiB: refused from their content headers, dead-lettered by the broker.
            let big = [UInt8](repeating: UInt8(ascii: "x"), count: 20 << 20)
            for i in 0..<10 {
                try await h.channel.basicPublish(big, exchange: h.orchestrator.prefix, routingKey: "promise.create",
                                                 properties: BasicProperties(deliveryMode: .persistent, correlationID: "big-\(i)",
                                                                             replyTo: i == 0 ? replies.queue : nil)).wait()
            }
            let reply = try await replies.next()
            #expect(Self.errorOf(reply.json)?.code == "payloadTooLarge")
            let dead = try await Self.deadLetters(h, count: 10)
            #expect(dead.allSatisfy { $0.reason == "rejected" && $0.body.count == 20 << 20 })
            // At the limit exactly it is read and applied (1 MiB + 64 KiB).
            let limit = (1 << 20) + 64 * 1024
            let prefix = #"{"id": "at-the-limit", "timeout": "1h", "param": ""#
            let atLimit = prefix + String(repeating: "y", count: limit - prefix.utf8.count - 2) + #""}"#
            #expect(atLimit.utf8.count == limit)
            try await h.publish("promise.create", atLimit, replyTo: replies.queue)
            let applied = try await replies.next()
            // Read, then refused by the payload limit (1 MiB) with a reason: it was not dropped unread.
            #expect(Self.errorOf(applied.json)?.code == "payloadTooLarge", "\(applied.json)")
            // The orchestrator never held a 20 MiB body: its peak memory stays far below ten of them.
            let status = try String(contentsOfFile: "/proc/\(h.orchestrator.pid)/status", encoding: .utf8)
            let peakKB = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
            #expect(peakKB > 0 && peakKB < 150_000, "peak RSS \(peakKB) kB")
        }
    }

    // MARK: The outbox never wedges

    @Test func aGroupQueueDeclaredWithOtherArgumentsIsUsedAsItIs() async throws {
        try await Harness.with { h in
            try await h.channel.queueDeclare(h.orchestrator.prefix + ".group.odd", durable: true, arguments: ["x-max-length": .int32(1000)])
            try await h.publish("workflow.start", #"{"id": "odd-1", "function": "f", "group": "odd"}"#)
            let execute = try await h.nextExecute(group: "odd")
            #expect(execute.properties.type == "task.execute")
            try execute.ack()
            #expect(try await http("GET", h.orchestrator.httpURL + "/ready").status == 200)
            // The warning says what differs and how to make them agree.
            #expect(h.orchestrator.logText.contains("the queue '\(h.orchestrator.prefix).group.odd' exists with")
                    && h.orchestrator.logText.contains("It is used as it is"), "\(h.orchestrator.logText)")
        }
    }

    @Test func anExecuteMessageWhoseQueueVanishedIsDeclaredAgainNotLost() async throws {
        try await Harness.with { h in
            try await h.publish("workflow.start", #"{"id": "ghost-1", "function": "f", "group": "ghost"}"#)
            try (try await h.nextExecute(group: "ghost")).ack()
            try await h.channel.queueDelete(h.orchestrator.prefix + ".group.ghost")
            try await h.publish("workflow.start", #"{"id": "ghost-2", "function": "f", "group": "ghost"}"#)
            let again = try await h.nextExecute(group: "ghost")
            #expect(String(decoding: again.body, as: UTF8.self).contains("ghost-2"))
        }
    }

    @Test func aMessageTheBrokerRefusesIsSetAsideAndEverythingElseGoesOut() async throws {
        // A broker whose max_message_size is below what the orchestrator was told (a misconfigured
        // operator): the settled event of a large promise is refused by the broker.
        try await withPrivateBroker(maximumMessageBytes: 700_000) { broker in
            let orchestrator = OrchestratorProcess(url: broker.url)
            defer { orchestrator.remove() }
            try await orchestrator.start()
            let connection = try await AMQPConnection.connect(url: broker.url, name: "refused-test")
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let events = try await channel.queueDeclare("", exclusive: true).queue
            try await channel.queueBind(events, exchange: orchestrator.prefix, routingKey: "settled.#")
            let consumer = try await channel.basicConsume(queue: events, noAck: true)

            let half = String(repeating: "z", count: 450_000)
            let b64 = Data("\"\(half)\"".utf8).base64EncodedString()
            #expect(try await http("POST", orchestrator.httpURL + "/promises", #"{"id": "large", "timeout": 4102444800000, "param": {"data": "\#(b64)"}}"#).status == 201)
            #expect(try await http("PATCH", orchestrator.httpURL + "/promises/large", #"{"state": "RESOLVED", "value": {"data": "\#(b64)"}}"#).status == 200)
            // Everything after it goes out.
            for id in ["small-1", "small-2"] {
                #expect(try await http("POST", orchestrator.httpURL + "/promises", #"{"id": "\#(id)", "timeout": 4102444800000}"#).status == 201)
                #expect(try await http("PATCH", orchestrator.httpURL + "/promises/\(id)", #"{"state": "RESOLVED"}"#).status == 200)
            }
            let seen = try await within(.seconds(30), "the small events") {
                var it = consumer.makeAsyncIterator()
                var ids: [String] = []
                while ids.count < 2, let d = try await it.next() { ids.append(try JSONDecoder().decode(Record.self, from: Data(d.body)).id) }
                return ids
            }
            #expect(seen == ["small-1", "small-2"])
            let aside = try await within(.seconds(30), "the refused event set aside") {
                while true {
                    let page = try await http("GET", orchestrator.httpURL + "/outbox")
                    if let m = (page.json["messages"] as? [[String: Any]])?.first(where: { $0["routingKey"] as? String == "settled.large" }) {
                        return m["reason"] as? String ?? ""
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(aside.contains("max"), "\(aside)")
            let cli = try await run(productsDirectory + "/warren", ["outbox", "list", "--server", orchestrator.httpURL])
            #expect(cli.status == 0 && cli.output.contains("settled.large"), "\(cli.output)")
            // Ready again: the outbox makes progress.
            try await within(.seconds(10), "ready") {
                while try await http("GET", orchestrator.httpURL + "/ready").status != 200 { try await Task.sleep(for: .milliseconds(50)) }
            }
            _ = await orchestrator.kill(SIGTERM)
        }
    }

    // MARK: One orchestrator per database

}
