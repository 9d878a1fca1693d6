import AMQP
import Foundation
import Synchronization
import Testing
import WarrenTestSupport
import WarrenStore

#if canImport(Glibc)
import Glibc
#endif

/// The orchestrator as users meet it: the real `warren serve` process, a real broker, a real
/// SQLite file, and messages published by a non-Swift client (`amqp-publish`).
@Suite("Orchestrator process")
struct OrchestratorTests {
    /// A test's view of one orchestrator: a connection, and a queue bound to its settled events.
    struct Harness {
        let orchestrator: OrchestratorProcess
        let connection: AMQPConnection
        let channel: AMQPChannel
        let events: AMQPConsumer

        static func start(_ arguments: [String] = []) async throws -> Harness {
            let orchestrator = OrchestratorProcess(url: try brokerURL())
            try await orchestrator.start(arguments)
            let connection = try await AMQPConnection.connect(url: orchestrator.url, name: "orchestrator-test")
            let channel = try await connection.openChannel()
            try await channel.confirmSelect()
            let events = try await channel.queueDeclare("", exclusive: true).queue
            try await channel.queueBind(events, exchange: orchestrator.prefix, routingKey: "settled.#")
            return Harness(orchestrator: orchestrator, connection: connection, channel: channel,
                           events: try await channel.basicConsume(queue: events, noAck: true))
        }

        func publish(_ kind: String, _ body: String, replyTo: String? = nil, correlationID: String? = nil, type: String? = nil) async throws {
            try await channel.basicPublish(body, exchange: orchestrator.prefix, routingKey: kind,
                                           properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                                                       correlationID: correlationID, replyTo: replyTo,
                                                                       messageID: UUID().uuidString, type: type)).wait()
        }

        /// `amqp-publish`, as an existing non-Swift system would send a command.
        func amqpPublish(_ kind: String, _ body: String) async throws {
            let r = try await run("/usr/bin/amqp-publish", ["--url=\(orchestrator.url)", "-e", orchestrator.prefix, "-r", kind,
                                                            "-p", "-C", "application/json", "-b", body])
            if r.status != 0 { throw TestFailure("amqp-publish failed: \(r.output)") }
        }

        func nextEvent(_ limit: Duration = .seconds(15)) async throws -> Record {
            let events = self.events
            return try await within(limit, "a settled event") {
                var it = events.makeAsyncIterator()
                guard let d = try await it.next() else { throw TestFailure("the event consumer ended") }
                #expect(d.properties.type == "promise.settled")
                return try JSONDecoder().decode(Record.self, from: Data(d.body))
            }
        }

        func stop() async {
            await connection.close()
            _ = await orchestrator.kill(SIGTERM)
            orchestrator.remove()
        }

        /// Runs `body` with a started harness; prints the orchestrator's log if it throws; stops.
        static func with(_ body: (Harness) async throws -> Void) async throws {
            let h = try await start()
            do {
                try await body(h)
            } catch {
                print(h.orchestrator.logText)
                await h.stop()
                throw error
            }
            await h.stop()
        }

        /// The next execute message for `group`, once the orchestrator has declared its queue.
        func nextExecute(group: String) async throws -> AMQPDelivery {
            let queue = orchestrator.prefix + ".group." + group
            return try await within(.seconds(15), "the execute message") {
                while true {
                    // A passive declare of a missing queue closes its channel: probe on a spare one.
                    let probe = try await connection.openChannel()
                    if let ok = try? await probe.queueDeclare(queue, passive: true), ok.messageCount > 0 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                var it = try await channel.basicConsume(queue: queue).makeAsyncIterator()
                return try await it.next()!
            }
        }
    }

    @Test func aPromiseResolvedWithAmqpPublishEmitsItsSettledEvent() async throws {
        try await Harness.with { h in
            try await h.amqpPublish("promise.create", #"{"id": "hitl-001.1", "timeout": "1h", "tags": {"human": "true"}}"#)
            try await h.amqpPublish("promise.resolve", #"{"id": "hitl-001.1", "value": "approved"}"#)
            let event = try await h.nextEvent()
            #expect(event.id == "hitl-001.1")
            #expect(event.state == "RESOLVED")
            #expect(event.value?.data == #""approved""#)
            // A second resolve is refused quietly: the first outcome won, no second event.
            try await h.amqpPublish("promise.resolve", #"{"id": "hitl-001.1", "value": "rejected"}"#)
            try await h.amqpPublish("promise.create", #"{"id": "marker", "timeout": "1h"}"#)
            try await h.amqpPublish("promise.cancel", #"{"id": "marker"}"#)
            let next = try await h.nextEvent()
            #expect(next.id == "marker" && next.state == "REJECTED_CANCELED")
        }
    }

    @Test func aCommandWithReplyToIsAnsweredWithThePromise() async throws {
        try await Harness.with { h in
            let replies = try await h.channel.queueDeclare("", exclusive: true).queue
            let consumer = try await h.channel.basicConsume(queue: replies, noAck: true)
            let body = #"{"id": "order-7", "timeout": 4102444800000, "param": {"amount": 120}, "idempotencyKey": "k7"}"#
            try await h.publish("promise.create", body, replyTo: replies, correlationID: "c-1")
            try await h.publish("promise.create", body, replyTo: replies, correlationID: "c-2")
            try await h.publish("promise.resolve", #"{"id": "no-such-promise", "value": 1}"#, replyTo: replies, correlationID: "c-3")
            struct Reply: Decodable { var promise: Record?; var created: Bool?; var error: ErrorBody? }
            struct ErrorBody: Decodable { var code: String; var message: String }
            var got: [String: Reply] = [:]
            try await within(.seconds(15), "three replies") {
                var it = consumer.makeAsyncIterator()
                var got: [String: Reply] = [:]
                while got.count < 3, let d = try await it.next() {
                    got[d.properties.correlationID ?? "?"] = try JSONDecoder().decode(Reply.self, from: Data(d.body))
                }
                return got
            }.forEach { got[$0.key] = $0.value }
            #expect(got["c-1"]?.created == true)
            #expect(got["c-1"]?.promise?.param?.data == #"{"amount":120}"#)
            #expect(got["c-1"]?.promise?.timeout == 4_102_444_800_000)
            #expect(got["c-2"]?.created == false)  // the same key: deduplicated
            #expect(got["c-3"]?.error?.code == "notFound")
        }
    }

    @Test func messagesThatCannotBeAppliedGoToTheDeadQueueWithTheirReason() async throws {
        try await Harness.with { h in
            let cases: [(kind: String, body: String, type: String?, reason: String)] = [
                ("promise.create", "{not json", nil, "not valid JSON"),
                ("promise.frobnicate", #"{"id": "x"}"#, nil, "unknown kind"),
                ("promise.create", #"{"timeout": "1h"}"#, nil, "'id' is missing"),
                ("promise.resolve", #"{"id": "nobody-made-me", "value": 1}"#, nil, "unknown promise"),
                // (A body over the size limit is refused from its header: HardeningTests.)
                ("promise.create", #"{"id": "bad id!", "timeout": "1h"}"#, nil, "character"),
                ("promise.create", #"{"id": "t", "timeout": "soon"}"#, nil, "duration"),
                ("promise.create", #"{"id": "typed"}"#, "promise.resolve", "disagrees"),
            ]
            for c in cases { try await h.publish(c.kind, c.body, type: c.type) }
            // Everything else goes on.
            try await h.amqpPublish("promise.create", #"{"id": "after-the-bad-ones", "timeout": "1h"}"#)
            try await h.amqpPublish("promise.resolve", #"{"id": "after-the-bad-ones", "value": true}"#)
            #expect(try await h.nextEvent().id == "after-the-bad-ones")

            let dead = try await h.channel.basicConsume(queue: h.orchestrator.prefix + ".dead")
            let reasons = try await within(.seconds(15), "the dead letters") {
                var it = dead.makeAsyncIterator()
                var reasons: [String] = []
                while reasons.count < cases.count, let d = try await it.next() {
                    reasons.append(d.properties.headers?["x-warren-error"]?.stringValue ?? "(none)")
                    try d.ack()
                }
                return reasons
            }
            for (c, reason) in zip(cases, reasons) {
                #expect(reason.contains(c.reason), "\(c.kind) \(c.body.prefix(40)): \(reason)")
            }
        }
    }

    @Test func aTimedOutPromiseIsSettledByItsTimer() async throws {
        try await Harness.with { h in
            try await h.publish("promise.create", #"{"id": "deadline", "timeout": "300ms"}"#)
            try await h.publish("promise.create", #"{"id": "nap", "timeout": "400ms", "tags": {"warren:timer": "true"}}"#)
            let first = try await h.nextEvent()
            #expect(first.id == "deadline" && first.state == "REJECTED_TIMEDOUT")
            let second = try await h.nextEvent()
            #expect(second.id == "nap" && second.state == "RESOLVED")
        }
    }

    @Test func startingAWorkflowSendsAnExecuteMessageToItsGroup() async throws {
        try await Harness.with { h in
            try await h.amqpPublish("workflow.start", #"{"id": "wf-1", "function": "foo-workflow", "args": ["wf-1"], "group": "workers", "timeout": "24h"}"#)
            let message = try await h.nextExecute(group: "workers")
            #expect(message.properties.type == "task.execute")
            struct Execute: Decodable { struct Task: Decodable { var id: String; var version: Int64; var group: String }; var task: Task; var promise: Record }
            let execute = try JSONDecoder().decode(Execute.self, from: Data(message.body))
            #expect(execute.task.id == "wf-1" && execute.task.version == 1 && execute.task.group == "workers")
            #expect(execute.promise.param?.data == #"{"args":["wf-1"],"function":"foo-workflow"}"#)
            try message.ack()
        }
    }

    /// Two workers with one task: a redelivered execute message is claimed under a new version,
    /// so the first holder's report no longer counts, and of two reports for one version only
    /// the holder's counts.
    @Test func racingWorkersOnOneTaskCannotBothCount() async throws {
        try await Harness.with { h in
            try await h.amqpPublish("workflow.start", #"{"id": "race-1", "function": "f", "args": [], "group": "racers"}"#)
            let execute = try await h.nextExecute(group: "racers")
            struct Execute: Decodable {
                struct Task: Decodable { var id: String; var version: Int64 }
                var task: Task; var children: [Record]
            }
            let first = try JSONDecoder().decode(Execute.self, from: Data(execute.body))
            #expect(first.task.version == 1 && first.children.isEmpty)
            try execute.ack()
            // Worker "a" holds version 1 (it got the first delivery). The message reaches worker
            // "c" redelivered: c claims, and gets version 2.
            let replies = try await h.channel.queueDeclare("", exclusive: true).queue
            let consumer = try await h.channel.basicConsume(queue: replies, noAck: true)
            try await h.publish("task.claim", #"{"id": "race-1", "version": 1, "worker": "c", "redelivered": true}"#,
                                replyTo: replies, correlationID: "claim")
            let claimed = try await within(.seconds(15), "the claim's reply") {
                var it = consumer.makeAsyncIterator()
                return try JSONDecoder().decode(Execute.self, from: Data(try await it.next()!.body))
            }
            #expect(claimed.task.version == 2)
            // a's report for version 1, then c's for version 2 with a step, then d's for version 2.
            try await h.publish("task.complete", #"{"id": "race-1", "version": 1, "worker": "a", "value": "a"}"#)
            try await h.publish("task.complete", #"{"id": "race-1", "version": 2, "worker": "c", "value": "c", "steps": [{"id": "race-1.1", "value": 7}]}"#)
            try await h.publish("task.complete", #"{"id": "race-1", "version": 2, "worker": "d", "value": "d"}"#)
            let event = try await h.nextEvent()
            #expect(event.id == "race-1" && event.value?.data == #""c""#)
            // No second outcome: the next event is the marker's.
            try await h.amqpPublish("promise.create", #"{"id": "race-marker", "timeout": "1h"}"#)
            try await h.amqpPublish("promise.cancel", #"{"id": "race-marker"}"#)
            #expect(try await h.nextEvent().id == "race-marker")
            // The step c reported is recorded below the workflow.
            try await h.publish("promise.get", #"{"id": "race-1.1"}"#, replyTo: replies, correlationID: "get")
            let step = try await within(.seconds(15), "the step") {
                var it = consumer.makeAsyncIterator()
                struct Reply: Decodable { var promise: Record? }
                return try JSONDecoder().decode(Reply.self, from: Data(try await it.next()!.body)).promise
            }
            #expect(step?.state == "RESOLVED" && step?.value?.data == "7")
        }
    }

    /// A burst of 1,000 promises created and resolved while the orchestrator is killed with
    /// SIGKILL and started again: every promise ends resolved, once, with its value.
    @Test func orchestratorKilledDuringABurstLosesNothing() async throws {
        let h = try await Harness.start()
        do {
            let count = 1000
            var confirmations: [PublishConfirmation] = []
            for i in 0..<count {
                for (kind, body) in [("promise.create", #"{"id": "burst-\#(i)", "timeout": "1h"}"#),
                                     ("promise.resolve", #"{"id": "burst-\#(i)", "value": \#(i)}"#)] {
                    confirmations.append(try h.channel.basicPublish(body, exchange: h.orchestrator.prefix, routingKey: kind,
                                                                    properties: .init(contentType: "application/json", deliveryMode: .persistent)))
                }
            }
            // Kill it once it has settled some of them.
            var seen = Set<String>()
            while seen.count < 50 { seen.insert(try await h.nextEvent().id) }
            let status = await h.orchestrator.kill(SIGKILL)
            #expect(status & 0x7f == SIGKILL)
            print("burst: killed the orchestrator after \(seen.count) settled events")
            for c in confirmations { try await c.wait() }
            try await h.orchestrator.start()
            let before = seen
            seen = try await within(.seconds(120), "every promise settled") {
                var seen = before
                while seen.count < count { seen.insert(try await h.nextEvent(.seconds(60)).id) }
                return seen
            }
            #expect(seen == Set((0..<count).map { "burst-\($0)" }))
            print("burst: all \(count) settled after the restart")
            // Stop it politely, then read its database: each promise resolved with its own value.
            let stopped = await h.orchestrator.kill(SIGTERM)
            #expect(stopped == 0, "warren serve exits 0 on SIGTERM; its log:\n\(h.orchestrator.logText.suffix(2000))")
            let store = try SQLiteStore(path: h.orchestrator.database)
            let promises = try await store.read { tx in
                var all: [PromiseRecord] = []
                var cursor: String? = nil
                repeat {
                    let page = try tx.search(PromiseSearch(id: "burst-*", limit: 1000, cursor: cursor), now: 0)
                    all += page.promises
                    cursor = page.cursor
                } while cursor != nil
                return all
            }
            #expect(promises.count == count)
            for p in promises {
                #expect(p.state == .resolved && p.value.data == String(p.id.dropFirst("burst-".count)), "\(p.id)")
            }
            let left = try await store.read { tx in try tx.outbox(after: 0, limit: 10) }
            #expect(left.isEmpty, "a graceful stop drains the outbox")
        } catch {
            print(h.orchestrator.logText.suffix(4000))
            await h.connection.close()
            h.orchestrator.remove()
            throw error
        }
        await h.connection.close()
        h.orchestrator.remove()
    }
}
