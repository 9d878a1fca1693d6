import AMQP
import Foundation
import Testing
import Warren
import WarrenContract
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Warren as a good citizen of a broker a team runs (issue 11): quorum queues, queues declared
/// by someone else with other arguments, topology the team declares itself (`--declare verify`,
/// `warren topology export` imported with `rabbitmqctl import_definitions`), and the team's own
/// events settling promises through an exchange-to-exchange binding.
@Suite("Topology", .serialized)
struct TopologyTests {
    static func connect(_ url: String) async throws -> (AMQPConnection, AMQPChannel) {
        let c = try await AMQPConnection.connect(url: url, name: "topology-test")
        return (c, try await c.openChannel())
    }

    /// Whether `queue` is a quorum queue: declaring it as classic is refused as inequivalent.
    static func isQuorum(_ queue: String, url: String) async throws -> Bool {
        let (c, ch) = try await connect(url)
        defer { Task { await c.close() } }
        // The other arguments as Warren declares them, so that only the type can differ.
        let arguments: FieldTable = queue.hasSuffix(".dead") ? [:] : ["x-dead-letter-exchange": .string(queue.split(separator: ".")[0] + ".dlx")]
        do {
            try await ch.queueDeclare(queue, durable: true, arguments: arguments)
            return false
        } catch let e as AMQPError where e.code == .preconditionFailed {
            return e.message.contains("x-queue-type")
        }
    }

    @Test func quorumQueuesCarryTheHumanInTheLoopFlow() async throws {
        try await withWorkflows(orchestratorArguments: ["--queue-type", "quorum"], workerEnvironment: ["WARREN_QUEUE_TYPE": "quorum"]) { orchestrator, worker, client in
            let result = Task { try await client.rpc("q-1", "foo-workflow", "q-1", target: "workers", as: String.self) }
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            _ = try await client.promises.resolve("q-1.1", value: "approved")
            #expect(try await within(.seconds(30), "the workflow") { try await result.value } == "foo workflow q-1 complete")
            for queue in ["orchestrator", "dead", "group.workers"] {
                #expect(try await Self.isQuorum(orchestrator.prefix + "." + queue, url: orchestrator.url), "\(queue) is not a quorum queue")
            }
        }
    }

    @Test func aQueueDeclaredWithAnotherTypeIsUsedAsItIsAndTheLogSaysWhatDiffers() async throws {
        let orchestrator = OrchestratorProcess(url: try brokerURL())
        defer { orchestrator.remove() }
        // The team declared the orchestrator's queue as classic (as Warren did before it was told
        // quorum); Warren is told quorum now.
        let (c, ch) = try await Self.connect(orchestrator.url)
        defer { Task { await c.close() } }
        try await ch.queueDeclare(orchestrator.prefix + ".orchestrator", durable: true,
                                  arguments: ["x-dead-letter-exchange": .string(orchestrator.prefix + ".dlx")])
        try await orchestrator.start(["--queue-type", "quorum"])
        let log = orchestrator.logText
        #expect(log.contains("the queue '\(orchestrator.prefix).orchestrator' exists with x-queue-type unset, but Warren declares it with x-queue-type quorum"), "\(log)")
        #expect(log.contains("--queue-type classic"), "\(log)")
        // And it works: a promise created and resolved over AMQP.
        let client = try await Warren(url: orchestrator.url, group: "gateway", prefix: orchestrator.prefix)
        defer { Task { await client.close() } }
        _ = try await client.promises.create("mismatch-1", timeout: .seconds(3600))
        #expect(try await client.promises.resolve("mismatch-1", value: 1).state == .resolved)
        _ = await orchestrator.kill(SIGTERM)
    }

    @Test func exportedDefinitionsImportIntoAFreshBrokerAndWarrenRunsOnThemWithDeclareVerify() async throws {
        try await withPrivateBroker { broker in
            let prefix = OrchestratorProcess.newPrefix()
            // Without the topology, --declare verify refuses to start and says what is missing.
            let orchestrator = OrchestratorProcess(url: broker.url, prefix: prefix)
            defer { orchestrator.remove() }
            let refused = try await run(productsDirectory + "/warren", ["serve", "--amqp-url", broker.url, "--prefix", prefix, "--db", orchestrator.database,
                                                                       "--http-port", "\(freePort())", "--declare", "verify"])
            #expect(refused.status == 1 && refused.output.contains("has no exchange '\(prefix)'") && refused.output.contains("queue '\(prefix).orchestrator'")
                    && refused.output.contains("warren topology export"), "\(refused.output)")
            // The team imports the definitions Warren prints (quorum queues, the group's queue included).
            let export = try await run(productsDirectory + "/warren", ["topology", "export", "--prefix", prefix, "--queue-type", "quorum", "--group", "workers"])
            #expect(export.status == 0)
            let file = NSTemporaryDirectory() + "\(prefix)-definitions.json"
            try export.output.write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            let imported = try await broker.ctl(["import_definitions", file])
            #expect(!imported.lowercased().contains("error"), "\(imported)")
            // Warren declares nothing now (a user without configure permission would do), and runs.
            try await orchestrator.start(["--declare", "verify", "--queue-type", "quorum"])
            let worker = WorkerProcess(prefix: prefix, n: 1)
            defer { worker.remove() }
            try worker.start(url: broker.url, prefix: prefix, environment: ["WARREN_DECLARE": "verify", "WARREN_QUEUE_TYPE": "quorum"])
            let client = try await Warren(url: broker.url, group: "gateway", prefix: prefix, declare: .verify)
            defer { Task { await client.close() } }
            let result = Task { try await client.rpc("v-1", "foo-workflow", "v-1", target: "workers", as: String.self) }
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            _ = try await client.promises.resolve("v-1.1", value: "approved")
            #expect(try await within(.seconds(30), "the workflow") { try await result.value } == "foo workflow v-1 complete")
            #expect(try await Self.isQuorum(prefix + ".group.workers", url: broker.url))
            // A group whose queue nobody declared: its execute message is set aside, saying which queue to create.
            #expect(try await http("POST", orchestrator.httpURL + "/workflows", #"{"id": "v-2", "function": "foo-workflow", "group": "undeclared"}"#).status == 201)
            let base = orchestrator.httpURL
            let reason = try await within(.seconds(30), "the execute message set aside") {
                while true {
                    let page = try await http("GET", base + "/outbox")
                    if let first = (page.json["messages"] as? [[String: Any]])?.first { return first["reason"] as? String ?? "" }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(reason.contains("create the queue '\(prefix).group.undeclared'"), "\(reason)")
            _ = await orchestrator.kill(SIGTERM)
        }
    }

    @Test func theTeamsOwnEventSettlesAPromiseThroughAnExchangeToExchangeBinding() async throws {
        try await withWorkflows { orchestrator, worker, client in
            let (c, ch) = try await Self.connect(orchestrator.url)
            defer { Task { await c.close() } }
            try await ch.confirmSelect()
            // The team's existing exchange and event, bound into Warren's events exchange.
            let orders = orchestrator.prefix + "-orders"
            try await ch.exchangeDeclare(orders, type: "topic", durable: true)
            try await ch.exchangeBind(destination: orchestrator.prefix + ".events", source: orders, routingKey: "order.approved")
            let result = Task { try await client.rpc("order-7", "order-workflow", "order-7", target: "workers", as: String.self) }
            _ = try await worker.line(startingWith: "waiting for order-7-approval")
            _ = try await worker.line(startingWith: "", containing: "task suspended")
            // Other events on that exchange do not reach Warren; an approved one without the header is dead-lettered with the reason.
            try await ch.basicPublish(#"{"order": "order-7"}"#, exchange: orders, routingKey: "order.shipped",
                                      properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent)).wait()
            try await ch.basicPublish(#"{"order": "order-7"}"#, exchange: orders, routingKey: "order.approved",
                                      properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent)).wait()
            let dead = try await ch.basicConsume(queue: orchestrator.prefix + ".dead")
            let letter = try await within(.seconds(20), "the dead letter") {
                var it = dead.makeAsyncIterator()
                return try await it.next()!
            }
            #expect(letter.routingKey == "order.approved")
            #expect(letter.properties.headers?["x-warren-error"]?.stringValue?.contains("x-warren-promise-id") == true)
            // The event as the team's service sends it, with the promise's id in a header: its body is the value.
            try await ch.basicPublish(#"{"approvedBy": "ada", "order": "order-7"}"#, exchange: orders, routingKey: "order.approved",
                                      properties: BasicProperties(contentType: "application/json", headers: ["x-warren-promise-id": "order-7-approval"],
                                                                  deliveryMode: .persistent)).wait()
            #expect(try await within(.seconds(30), "the order") { try await result.value } == "order-7 approved by ada")
            let p = try await client.promises.get("order-7-approval")
            #expect(p.value.headers["content-type"] == "application/json")
            // On another of Warren's kinds the header names nothing: a report cannot settle a promise that way.
            _ = try await client.promises.create("guarded-1", timeout: .seconds(3600))
            try await ch.basicPublish(#"{"approvedBy": "mallory"}"#, exchange: orchestrator.prefix, routingKey: "task.progress",
                                      properties: BasicProperties(contentType: "application/json", headers: ["x-warren-promise-id": "guarded-1"],
                                                                  deliveryMode: .persistent)).wait()
            let refused = try await within(.seconds(20), "the report refused") {
                var it = dead.makeAsyncIterator()
                return try await it.next()!
            }
            #expect(refused.routingKey == "task.progress", "\(refused.routingKey)")
            #expect(try await client.promises.get("guarded-1").state == .pending)
            // A text body becomes a JSON string; the header also works on promise.resolve itself.
            _ = try await client.promises.create("text-1", timeout: .seconds(3600))
            try await ch.basicPublish("looks good", exchange: orchestrator.prefix, routingKey: "promise.resolve",
                                      properties: BasicProperties(contentType: "text/plain", headers: ["x-warren-promise-id": "text-1"], deliveryMode: .persistent)).wait()
            let text = try await within(.seconds(20), "text-1 settled") {
                while true {
                    let p = try await client.promises.get("text-1")
                    if p.isSettled { return p }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(text.value.data == #""looks good""# && text.value.headers["content-type"] == "text/plain")
        }
    }

    @Test func theMismatchExplanationReadsBothFormsOfRabbitMQsMessage() {
        let t = Topology(prefix: "warren", queueType: .quorum)
        let old = t.explainMismatch(queue: "warren.orchestrator", brokerMessage: "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue "
            + "'warren.orchestrator' in vhost '/': received the value 'quorum' of type 'longstr' but current is none")
        #expect(old.hasPrefix("the queue 'warren.orchestrator' exists with x-queue-type unset, but Warren declares it with x-queue-type quorum"), "\(old)")
        let new = t.explainMismatch(queue: "q", brokerMessage: "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'")
        #expect(new.contains("exists with x-queue-type quorum, but Warren declares it with x-queue-type classic") && new.contains("--queue-type quorum"), "\(new)")
        let other = t.explainMismatch(queue: "q", brokerMessage: "inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received none but current is the value '10' of type 'signedint'")
        #expect(other.contains("exists with x-max-length 10, but Warren declares it with x-max-length unset") && other.contains("--declare verify"), "\(other)")
    }
}
