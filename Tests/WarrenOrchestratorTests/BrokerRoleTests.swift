import AMQP
import Foundation
import Testing
import Warren
import WarrenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The broker's roles (issue 10, item 5), with real users the test creates on a private broker,
/// each with the least permissions docs/rabbitmq.md gives: the human-in-the-loop flow runs
/// with them, and each role is refused what it must not do, by the broker (permissions and topic
/// permissions), by the orchestrator (`--group-users`, reply queues) or by the worker (the
/// execute message's `user_id`).
@Suite("Broker roles", .serialized)
struct BrokerRoleTests {
    /// The permissions of each role for `prefix` on one vhost, exactly as docs/rabbitmq.md
    /// gives them for `warren`: (configure, write, read), and the topic permissions on the
    /// exchange (write, read), if any.
    static func roles(_ p: String, group: String) -> [String: (perms: [String], topic: [String]?)] {
        [
            "orchestrator": ([#"^\#(p)(\.(dlx|dead|events|orchestrator|group\..+))?$"#,
                              #"^(amq\.default|\#(p)(\.(dlx|dead|events|orchestrator|group\..+))?)$"#,
                              #"^\#(p)(\.(dlx|dead|events|orchestrator|group\..+))?$"#], nil),
            "worker": ([#"^\#(p)\.(group\.\#(group)(,.+)?|reply\..+)$"#,
                        #"^\#(p)(\.(dlx|group\.\#(group)(,.+)?))?$"#,
                        #"^\#(p)(\.(group\.\#(group)(,.+)?|reply\..+))?$"#],
                       [#"^(task\..+|promise\.(create|get|subscribe)|workflow\.start)$"#, #"^execute\.\#(group)(,.+)?$"#]),
            "client": ([#"^\#(p)\.reply\..+$"#, #"^\#(p)$"#, #"^\#(p)\.reply\..+$"#],
                       [#"^(workflow\.start|promise\.(get|subscribe))$"#, "^$"]),
            "resolver": (["^$", #"^\#(p)$"#, "^$"], [#"^promise\.(resolve|reject)$"#, "^$"]),
        ]
    }

    /// A private broker with one user per role (two workers, of groups `workers` and `other`),
    /// an orchestrator that knows which user reports for which group, and a worker of `workers`
    /// that trusts only the orchestrator's execute messages.
    struct Stack {
        let broker: PrivateBroker
        let orchestrator: OrchestratorProcess
        let worker: WorkerProcess
        func url(_ user: String) -> String { "amqp://\(user):\(user)-pass-0123@127.0.0.1:\(broker.port)/%2f" }
        var prefix: String { orchestrator.prefix }
    }

    func withStack(_ body: (Stack) async throws -> Void) async throws {
        try await withPrivateBroker { broker in
            // The orchestrator's prefix, chosen before its users are made.
            let prefix = OrchestratorProcess.newPrefix()
            let users = [("orch", "orchestrator", "workers"), ("worker-a", "worker", "workers"), ("worker-b", "worker", "other"),
                         ("client", "client", "workers"), ("resolver", "resolver", "workers")]
            for (user, role, group) in users {
                let (perms, topic) = Self.roles(prefix, group: group)[role]!
                _ = try await broker.ctl(["add_user", user, "\(user)-pass-0123"])
                _ = try await broker.ctl(["set_permissions", "-p", "/", user] + perms)
                if let topic { _ = try await broker.ctl(["set_topic_permissions", "-p", "/", user, prefix] + topic) }
            }
            let orchestrator = OrchestratorProcess(url: "amqp://orch:orch-pass-0123@127.0.0.1:\(broker.port)/%2f", prefix: prefix)
            let worker = WorkerProcess(prefix: prefix, n: 1)
            defer { orchestrator.remove(); worker.remove() }
            try await orchestrator.start(["--group-users", "workers=worker-a;other=worker-b"])
            let stack = Stack(broker: broker, orchestrator: orchestrator, worker: worker)
            try worker.start(url: stack.url("worker-a"), prefix: prefix, environment: ["WARREN_ORCHESTRATOR_USER": "orch"])
            do {
                _ = try await worker.line(startingWith: "", containing: "worker serving")
                _ = try await within(.seconds(30), "the worker to consume") {
                    while try await Self.consumers(stack, prefix + ".group.workers") == 0 { try await Task.sleep(for: .milliseconds(50)) }
                }
                try await body(stack)
            } catch {
                print(orchestrator.logText.suffix(4000), worker.text.suffix(3000))
                throw error
            }
        }
    }

    static func consumers(_ s: Stack, _ queue: String) async throws -> UInt32 {
        let c = try await AMQPConnection.connect(url: s.broker.url, name: "roles-probe")
        defer { Task { await c.close() } }
        return (try? await (try await c.openChannel()).queueDeclare(queue, passive: true))?.consumerCount ?? 0
    }

    /// Publishes as `user` with confirms; returns the broker's refusal, if any.
    static func publish(_ s: Stack, as user: String, _ routingKey: String, _ body: String, userID: String? = nil,
                        replyTo: String? = nil) async throws -> AMQPError? {
        let connection = try await AMQPConnection.connect(url: s.url(user), name: "roles-\(user)")
        defer { Task { await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.confirmSelect()
        do {
            try await channel.basicPublish(body, exchange: s.prefix, routingKey: routingKey, properties: BasicProperties(
                contentType: "application/json", deliveryMode: .persistent, replyTo: replyTo, messageID: UUID().uuidString, userID: userID)).wait()
            return nil
        } catch let e as AMQPError {
            return e
        }
    }

    /// The next dead letter of the stack's prefix: its routing key and reason.
    static func nextDeadLetter(_ s: Stack) async throws -> (routingKey: String, reason: String, sender: String?) {
        let connection = try await AMQPConnection.connect(url: s.broker.url, name: "roles-dead")
        defer { Task { await connection.close() } }
        let dead = try await (try await connection.openChannel()).basicConsume(queue: s.prefix + ".dead")
        return try await within(.seconds(20), "a dead letter") {
            var it = dead.makeAsyncIterator()
            guard let d = try await it.next() else { throw TestFailure("the dead-letter consumer ended") }
            try d.ack()
            let h = d.properties.headers ?? [:]
            return (d.routingKey, h["x-warren-error"]?.stringValue ?? h["x-first-death-reason"]?.stringValue ?? "(none)", h["x-warren-sender"]?.stringValue)
        }
    }

    @Test func eachRoleWorksWithItsLeastPermissionsAndIsRefusedTheRest() async throws {
        try await withStack { s in
            let base = s.orchestrator.httpURL
            // A client with the client role starts the workflow and waits for it; the resolver
            // role settles the approval: the whole flow runs on least permissions.
            let client = try await Warren(url: s.url("client"), group: "gateway", prefix: s.prefix)
            defer { Task { await client.close() } }
            let result = Task { try await client.rpc("roles-1", "foo-workflow", "roles-1", target: "workers", as: String.self) }
            _ = try await s.worker.line(startingWith: "approve: ")
            _ = try await s.worker.line(startingWith: "", containing: "task suspended")
            #expect(try await Self.publish(s, as: "resolver", "promise.resolve", #"{"id": "roles-1.1", "value": "approved"}"#) == nil)
            #expect(try await within(.seconds(30), "the workflow's result") { try await result.value } == "foo workflow roles-1 complete")

            // The resolver may not start workflows, forge reports or execute messages, or create
            // promises: the broker refuses each publish (topic permissions), and closes its channel.
            let second = Task { try await client.rpc("roles-2", "foo-workflow", "roles-2", target: "workers", as: String.self) }
            _ = try await s.worker.line(startingWith: "approve: ", containing: "roles-2.1")
            _ = try await within(.seconds(30), "roles-2 to suspend") {
                while (try await http("GET", base + "/workflows/roles-2").json["task"] as? [String: Any])?["state"] as? String != "suspended" {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let version = (try await http("GET", base + "/workflows/roles-2").json["task"] as? [String: Any])?["version"] as? Int ?? 0
            let forgedReport = #"{"id": "roles-2", "version": \#(version), "worker": "x", "state": "resolved", "value": "forged"}"#
            for (key, body) in [("workflow.start", #"{"id": "evil-1", "function": "foo-workflow", "args": ["evil-1"], "group": "workers"}"#),
                                ("task.complete", forgedReport),
                                ("execute.workers", #"{"task": {"id": "evil-2", "version": 1, "group": "workers"}}"#),
                                ("promise.create", #"{"id": "evil-3", "timeout": "1h"}"#)] {
                let refusal = try await Self.publish(s, as: "resolver", key, body)
                #expect(refusal?.message.contains("403 ACCESS_REFUSED") == true, "the resolver published \(key): \(String(describing: refusal))")
            }
            #expect(try await http("GET", base + "/promises/evil-1").status == 404)
            #expect(try await http("GET", base + "/promises/evil-3").status == 404)
            // The client may not settle promises either.
            #expect(try await Self.publish(s, as: "client", "promise.resolve", #"{"id": "roles-2.1", "value": "x"}"#)?.message.contains("403 ACCESS_REFUSED") == true)

            // A worker of another group may publish reports (task.*), but not for this group's
            // task: the orchestrator refuses it with the reason, and the workflow is untouched.
            #expect(try await Self.publish(s, as: "worker-b", "task.complete", forgedReport, userID: "worker-b") == nil)
            var dead = try await Self.nextDeadLetter(s)
            #expect(dead.routingKey == "task.complete" && dead.reason.contains("'worker-b' may not report on or decide for task 'roles-2'")
                    && dead.reason.contains("group 'workers'") && dead.sender == "worker-b", "\(dead)")
            // Without a user_id it is refused too (the orchestrator cannot know who sent it) …
            #expect(try await Self.publish(s, as: "worker-b", "task.complete", forgedReport) == nil)
            dead = try await Self.nextDeadLetter(s)
            #expect(dead.reason.contains("(no user_id property) may not report"), "\(dead)")
            // … and naming another user is refused by the broker itself.
            let impersonation = try await Self.publish(s, as: "worker-b", "task.complete", forgedReport, userID: "worker-a")
            #expect(impersonation?.message.contains("406 PRECONDITION_FAILED") == true, "\(String(describing: impersonation))")
            // Nor may it create a promise inside this group's workflow.
            #expect(try await Self.publish(s, as: "worker-b", "promise.create", #"{"id": "roles-2.9", "timeout": "1h"}"#, userID: "worker-b") == nil)
            dead = try await Self.nextDeadLetter(s)
            #expect(dead.reason.contains("may not create 'roles-2.9' inside workflow 'roles-2'"), "\(dead)")
            #expect(try await http("GET", base + "/promises/roles-2.9").status == 404)
            #expect(try await http("GET", base + "/workflows/roles-2").json["state"] as? String == "PENDING")

            // The workflow goes on as if nothing happened.
            #expect(try await Self.publish(s, as: "resolver", "promise.resolve", #"{"id": "roles-2.1", "value": "approved"}"#) == nil)
            #expect(try await within(.seconds(30), "roles-2's result") { try await second.value } == "foo workflow roles-2 complete")
        }
    }

    @Test func aForgedExecuteMessageIsRefusedByTheWorker() async throws {
        try await withStack { s in
            // Someone who may publish execute.workers (here the broker's administrator, guest)
            // but is not the orchestrator: the worker refuses, the broker dead-letters it.
            let forged = #"{"children": [], "promise": {"id": "forged-1", "state": "PENDING", "timeout": 4102444800000, "#
                + #""param": {"headers": {}, "data": "{\"function\":\"foo-workflow\",\"args\":[\"forged-1\"]}"}}, "#
                + #""task": {"id": "forged-1", "version": 1, "group": "workers"}}"#
            let connection = try await AMQPConnection.connect(url: s.broker.url, name: "roles-forger")
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            try await channel.confirmSelect()
            try await channel.basicPublish(forged, exchange: s.prefix, routingKey: "execute.workers",
                                           properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent, userID: "guest")).wait()
            _ = try await s.worker.line(startingWith: "", containing: "execute message refused")
            let dead = try await Self.nextDeadLetter(s)
            #expect(dead.routingKey == "execute.workers" && dead.reason == "rejected", "\(dead)")
            #expect(!s.worker.text.contains("approve: "), "the forged execute ran:\n\(s.worker.text)")
            // The orchestrator's own execute messages still run.
            let client = try await Warren(url: s.url("client"), group: "gateway", prefix: s.prefix)
            defer { Task { await client.close() } }
            _ = try await client.beginRpc("roles-3", "foo-workflow", "roles-3", target: "workers")
            _ = try await s.worker.line(startingWith: "approve: ", containing: "roles-3.1")
        }
    }

    @Test func repliesGoOnlyToReplyQueues() async throws {
        try await withStack { s in
            // A command asking the orchestrator to answer into its own queue (or any queue).
            let refusal = try await Self.publish(s, as: "client", "promise.get", #"{"id": "anything"}"#, userID: "client",
                                                 replyTo: s.prefix + ".orchestrator")
            #expect(refusal == nil)
            let dead = try await Self.nextDeadLetter(s)
            #expect(dead.routingKey == "promise.get" && dead.reason.contains("is not a reply queue"), "\(dead)")
            // Nothing was published into it: the orchestrator's queue holds nothing but its own commands.
            let c = try await AMQPConnection.connect(url: s.broker.url, name: "roles-check")
            defer { Task { await c.close() } }
            #expect(try await (try await c.openChannel()).queueDeclare(s.prefix + ".orchestrator", passive: true).messageCount == 0)
        }
    }
}
